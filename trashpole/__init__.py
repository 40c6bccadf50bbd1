"""trashpole: detectron2 Mask R-CNN for trash cans and poles."""

from trashpole import compat, compat_openvino

__version__ = "0.1.0"

# adapt detectron2 / fvcore / torch before any of them is used (see trashpole/compat.py)
compat.apply()
# OpenVINO's telemetry sends usage events from `import openvino` on unless declined: decline it
# before anything imports openvino (see trashpole/compat_openvino.py)
compat_openvino.disable_telemetry()


def load_predictor(*args, **kwargs):
    """Build a predictor from a trained run; see :func:`trashpole.predict.load_predictor`."""
    # imported on use: ``import trashpole`` stays light (no model code) for the data tools
    from trashpole.predict.predictor import load_predictor as _load

    return _load(*args, **kwargs)
