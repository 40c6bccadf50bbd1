# detectron2's process launcher, so that tools import detectron2's engine through trashpole,
# after trashpole.compat has run (see trashpole/compat/__init__.py, 1.)
from detectron2.engine import launch

from .checkpoint import TrashPoleCheckpointer
from .derive import derive_from_data
from .setup import argument_parser, register_datasets, setup
from .trainer import Trainer, build_optimizer

__all__ = [
    "Trainer",
    "TrashPoleCheckpointer",
    "argument_parser",
    "build_optimizer",
    "launch",
    "derive_from_data",
    "register_datasets",
    "setup",
]
