"""Checkpoints that survive a kill and say plainly what a pretrained checkpoint did not fill."""

import logging
import os
import tempfile
from typing import Any, Dict, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

from trashpole.compat.d2 import ModelLoadReport

logger = logging.getLogger(__name__)


def atomic_torch_save(obj: Any, path: str) -> None:
    """
    ``torch.save`` to a temporary file in the same folder, then rename it over ``path``: a process
    killed mid-write leaves the previous file intact instead of a truncated one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(text: str, path: str) -> None:
    """Write a small text file through a temporary file and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class TrashPoleCheckpointer(ModelLoadReport, DetectionCheckpointer):
    """
    detectron2's ``DetectionCheckpointer`` with atomic writes (checkpoint, then the
    ``last_checkpoint`` tag) and one summary line after loading weights into a model whose
    class-specific layers have other shapes (the 80-class COCO checkpoint into 2 classes).
    """

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data: Dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        logger.info(f"Saving checkpoint to {save_file}")
        atomic_torch_save(data, save_file)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write_text(last_filename_basename, os.path.join(self.save_dir, "last_checkpoint"))

    def model_loaded(self, keys: List[str], incompatible: Any) -> None:
        """After a load: one line naming the tensors that kept their initialisation because
        their shapes differ (see :class:`~trashpole.compat.d2.ModelLoadReport`)."""
        total = len(keys)
        skipped = sorted({k for k, _, _ in incompatible.incorrect_shapes})
        if skipped:
            logger.info(
                f"Loaded {total - len(skipped)} of {total} checkpoint tensors; "
                f"{len(skipped)} class-specific tensors have other shapes in this model and keep "
                f"their fresh initialisation: {', '.join(skipped)}"
            )
