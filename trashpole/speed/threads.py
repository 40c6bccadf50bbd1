"""Threads: torch's intra-op thread count, and ROIAlign spread over the cores (exact: each box is
pooled by one thread, as in the serial op)."""

import concurrent.futures
import functools
import logging

import torch
from detectron2.layers import ROIAlign
from torch import nn

from trashpole.errors import UserError

logger = logging.getLogger(__name__)


def set_num_threads(num_threads: int) -> None:
    """
    Set torch's intra-op thread count (process-wide); 0 leaves torch's default (one per core).

    Args:
        num_threads: threads, >= 0.
    """
    if num_threads < 0:
        raise UserError(f"TRASHPOLE.INFERENCE.NUM_THREADS is {num_threads}; use 0 or more")
    if num_threads > 0 and torch.get_num_threads() != num_threads:
        logger.info(f"torch threads: {torch.get_num_threads()} -> {num_threads}")
        torch.set_num_threads(num_threads)


# The smallest number of boxes worth splitting over threads (below it the hand-off costs more).
_MIN_ROIS_PER_THREAD = 32


@functools.lru_cache(maxsize=None)
def _roi_align_pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    # one pool per thread count for the whole process: creating threads at every call would
    # cost more than the split saves
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="roi_align")


class _ThreadedROIAlign(ROIAlign):
    """detectron2's ROIAlign whose boxes are split over ``torch.get_num_threads()`` threads
    (torchvision's CPU kernel runs on one core). Same result; inference only."""

    def forward(self, input, rois):
        threads = torch.get_num_threads()
        if (
            torch.is_grad_enabled()
            or input.device.type != "cpu"
            or threads < 2
            or len(rois) < 2 * _MIN_ROIS_PER_THREAD
        ):
            return super().forward(input, rois)
        chunks = rois.chunk(min(threads, len(rois) // _MIN_ROIS_PER_THREAD))
        align = super().forward  # thread-local state (autocast, grad mode) is not needed here
        # the pool's threads are invisible to torch.profiler: this scope gives their wall time
        with torch.profiler.record_function("trashpole::roi_align_threaded"):
            parts = list(_roi_align_pool(threads).map(lambda r: align(input, r), chunks))
            return torch.cat(parts)


def thread_roi_align(model: nn.Module) -> int:
    """
    Spread each ROIAlign of ``model`` over the torch threads when no gradient is recorded (in
    place, by switching the modules' class).

    Returns:
        how many ROIAlign modules were switched.
    """
    count = 0
    for module in model.modules():
        if type(module) is ROIAlign:
            module.__class__ = _ThreadedROIAlign
            count += 1
    return count
