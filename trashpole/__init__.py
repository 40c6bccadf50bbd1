"""trashpole: detectron2 Mask R-CNN for trash cans and poles."""

from trashpole import compat
from trashpole.compat import openvino as openvino_compat

__version__ = "0.1.0"

# adapt detectron2 / fvcore / torch before any of them is used (see trashpole/compat/)
compat.apply()
# OpenVINO's telemetry sends usage events from `import openvino` on unless declined: decline it
# before anything imports openvino (see trashpole/compat/openvino.py)
openvino_compat.disable_telemetry()


def load_predictor(*args, **kwargs):
    """Build a predictor from a trained run; see :func:`trashpole.predict.load_predictor`."""
    # imported on use: ``import trashpole`` stays light (no model code) for the data tools
    from trashpole.predict.predictor import load_predictor as _load

    return _load(*args, **kwargs)
