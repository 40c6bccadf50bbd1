"""Threads: torch's intra-op thread count, and ROIAlign spread over the cores (exact: each box is
pooled by one thread, and each image's gradient summed by one thread, as in the serial op)."""

import concurrent.futures
import functools
import logging
from typing import List

import torch
from detectron2.layers import ROIAlign
from torch import nn

from trashpole.compat.pytorch import roi_align_backward
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


def _split_by_image(rois: torch.Tensor, num_images: int) -> List[torch.Tensor]:
    """Indices of the boxes of each image (column 0 of ``rois`` is the image index)."""
    image = rois[:, 0].to(torch.int64)
    return [torch.nonzero(image == i).squeeze(1) for i in range(num_images)]


class _ThreadedROIAlignFunction(torch.autograd.Function):
    """
    torchvision's CPU ROIAlign with its forward split over threads by box and its backward by
    image. Bit-identical to the serial op: each output box is pooled by one thread; the backward
    adds each image's boxes into that image's gradient in the serial op's order, and no two
    threads write to the same image. The kernels run in fp32, as torchvision's autocast kernel
    runs them; the output and the input's gradient take the input's dtype, as there.
    """

    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio, aligned, threads):
        x, r = input.float(), rois.float()
        ctx.save_for_backward(r)
        ctx.params = (spatial_scale, output_size[0], output_size[1], sampling_ratio, aligned)
        ctx.shape, ctx.dtype, ctx.threads = tuple(input.shape), input.dtype, threads
        chunks = r.chunk(max(1, min(threads, len(r) // _MIN_ROIS_PER_THREAD)))
        scale, ph, pw, ratio, aligned = ctx.params

        def pool(part):
            return torch.ops.torchvision.roi_align(x, part, scale, ph, pw, ratio, aligned)

        with torch.profiler.record_function("trashpole::roi_align_threaded"):
            parts = list(_roi_align_pool(threads).map(pool, chunks))
        return torch.cat(parts).to(input.dtype)

    @staticmethod
    def backward(ctx, grad):
        (rois,) = ctx.saved_tensors
        num_images, channels, height, width = ctx.shape
        scale, ph, pw, ratio, aligned = ctx.params
        grad = grad.float()

        def image_grad(index: torch.Tensor) -> torch.Tensor:
            if len(index) == 0:
                return grad.new_zeros((1, channels, height, width))
            own = rois[index].clone()
            own[:, 0] = 0  # this image alone, as image 0 of a batch of one
            return roi_align_backward(
                grad[index], own, scale, ph, pw, 1, channels, height, width, ratio, aligned
            )

        with torch.profiler.record_function("trashpole::roi_align_backward_threaded"):
            parts = _roi_align_pool(ctx.threads).map(image_grad, _split_by_image(rois, num_images))
            grad_input = torch.cat(list(parts)).to(ctx.dtype)
        return grad_input, None, None, None, None, None, None


class ThreadedROIAlign(ROIAlign):
    """detectron2's ROIAlign spread over ``torch.get_num_threads()`` threads (torchvision's CPU
    kernel runs on one core): at inference the boxes are split over the threads; in training
    the forward too, and the backward by image. Same result as the serial op."""

    @classmethod
    def like(cls, align: ROIAlign) -> "ThreadedROIAlign":
        """A threaded ROIAlign with the settings of ``align`` (it holds no weights)."""
        return cls(align.output_size, align.spatial_scale, align.sampling_ratio, align.aligned)

    def forward(self, input, rois):
        threads = torch.get_num_threads()
        if input.device.type != "cpu" or threads < 2:
            return super().forward(input, rois)
        if torch.is_grad_enabled() and input.requires_grad:
            if input.dim() != 4 or len(input) < 2:
                return super().forward(input, rois)  # one image: nothing to split the backward by
            # detectron2 casts the boxes to the features' dtype (bf16 under autocast) first
            rois = rois.to(dtype=input.dtype)
            return _ThreadedROIAlignFunction.apply(
                input,
                rois,
                self.output_size,
                self.spatial_scale,
                self.sampling_ratio,
                self.aligned,
                threads,
            )
        if len(rois) < 2 * _MIN_ROIS_PER_THREAD:
            return super().forward(input, rois)
        chunks = rois.chunk(min(threads, len(rois) // _MIN_ROIS_PER_THREAD))
        align = super().forward  # thread-local state (autocast, grad mode) is not needed here
        # the pool's threads are invisible to torch.profiler: this scope gives their wall time
        with torch.profiler.record_function("trashpole::roi_align_threaded"):
            parts = list(_roi_align_pool(threads).map(lambda r: align(input, r), chunks))
            return torch.cat(parts)


def thread_roi_align(model: nn.Module) -> int:
    """
    Spread each ROIAlign of ``model`` over the torch threads: every plain detectron2
    :class:`ROIAlign` submodule (the poolers' ``level_poolers``) is replaced in its parent by a
    :class:`ThreadedROIAlign` with the same settings. It pays in training when the batch has two
    images or more, and at inference with many boxes.

    Returns:
        how many ROIAlign modules were replaced.
    """
    plain = [n for n, module in model.named_modules() if n and type(module) is ROIAlign]
    for name in plain:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        parent.register_module(child, ThreadedROIAlign.like(parent.get_submodule(child)))
    return len(plain)
