"""
trashpole's reaches into detectron2 and fvcore names that are not public API (see
:mod:`trashpole.compat` for the list and the test of each).

Written for detectron2 0.7 (``sal-detectron2``, upstream commit a59f0563) and fvcore 0.1.5. Each
function or class here is the only place that spells one such name; detectron2 is imported
inside the functions, so that importing this module stays light.
"""

from typing import Any, List, Optional

# --- DefaultTrainer's loop trainer -------------------------------------------------------------
# DefaultTrainer builds a SimpleTrainer (or the CUDA-only AMPTrainer) inside __init__, with no
# build_* method to override, keeps it in the attribute below and hands it each step. trashpole
# swaps in its CPU bf16 trainer there after __init__.
LOOP_TRAINER_ATTR = "_trainer"


def loop_trainer(trainer: Any) -> Any:
    """The SimpleTrainer that a DefaultTrainer runs each step through."""
    return getattr(trainer, LOOP_TRAINER_ATTR)


def replace_loop_trainer(trainer: Any, loop: Any) -> None:
    """Make the DefaultTrainer ``trainer`` run its steps (and keep its model, data loader and
    optimizer) through ``loop``, a SimpleTrainer."""
    setattr(trainer, LOOP_TRAINER_ATTR, loop)


# --- DefaultTrainer's last evaluation results ------------------------------------------------
# The evaluation function that DefaultTrainer.build_hooks gives its EvalHook stores its results
# in the attribute below, and DefaultTrainer.train checks TEST.EXPECTED_RESULTS against them.
# trashpole's trainer replaces that function with its own, which stores them in the same place.
EVAL_RESULTS_ATTR = "_last_eval_results"


def keep_eval_results(trainer: Any, results: Any) -> None:
    """Store ``results`` where DefaultTrainer.train looks for the last evaluation's results."""
    setattr(trainer, EVAL_RESULTS_ATTR, results)


def kept_eval_results(trainer: Any) -> Optional[Any]:
    """The results of the trainer's last evaluation, or None before the first one."""
    return getattr(trainer, EVAL_RESULTS_ATTR, None)


# --- the model-loading step of fvcore's Checkpointer -------------------------------------------
# Checkpointer.load reads a file, then loads its "model" entry through the method below (which
# detectron2's DetectionCheckpointer extends with its name matching) and logs what did not fit;
# the keys whose shapes differ are returned by that method alone. The mixin hands them to a
# public method of the subclass.
class ModelLoadReport:
    """
    Mixin for a checkpointer (put it before ``DetectionCheckpointer`` in the bases): after the
    weights of a checkpoint went into the model, :meth:`model_loaded` is called with what fvcore
    found.
    """

    def _load_model(self, checkpoint: Any) -> Any:
        # the parent pops "model" from the checkpoint: its keys are read first
        keys = list(checkpoint.get("model", {}))
        incompatible = super()._load_model(checkpoint)
        if incompatible is not None:
            self.model_loaded(keys, incompatible)
        return incompatible

    def model_loaded(self, keys: List[str], incompatible: Any) -> None:
        """
        Override to act on a load.

        Args:
            keys: the names of the checkpoint's model tensors.
            incompatible: fvcore's ``_IncompatibleKeys`` (``missing_keys``, ``unexpected_keys``,
                ``incorrect_shapes``: (name, shape in the checkpoint, shape in the model)).
        """
