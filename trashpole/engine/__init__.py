from .checkpoint import TrashPoleCheckpointer
from .defaults import argument_parser, register_datasets, setup
from .trainer import Trainer, build_optimizer, evaluate_and_report

__all__ = [
    "Trainer",
    "TrashPoleCheckpointer",
    "argument_parser",
    "build_optimizer",
    "evaluate_and_report",
    "register_datasets",
    "setup",
]
