"""
trashpole's reaches into torch and torchvision names that are not public API (see
:mod:`trashpole.compat` for the list and the test of each).

Each function here is the only place that spells one such name, so that a torch or torchvision
release that renames it breaks one function and one test, not the code that calls it.
"""

import contextlib
import importlib
from typing import Callable, Iterator, List

import torch
from torch import nn


# --- bf16 support of the CPU, as oneDNN sees it ------------------------------------------------
# torch has no public question for "does oneDNN run bf16 natively here" (torch.backends.mkldnn
# answers only is_available); the operator below is what torch's own tests and inductor ask.
def mkldnn_bf16_supported() -> bool:
    """Whether oneDNN reports native bf16 on this CPU (ask only where
    ``torch.backends.mkldnn.is_available()``)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


# --- a tensor's version counter ----------------------------------------------------------------
# Every in-place change of a tensor bumps a counter that autograd keeps; torch exposes it only
# as the attribute below. trashpole uses it to tell whether a cached copy is still current.
def tensor_version(tensor: torch.Tensor) -> int:
    """How many in-place changes ``tensor`` (and the storage it shares) has seen."""
    return tensor._version


# --- torchvision's ROIAlign backward kernel ----------------------------------------------------
# torchvision registers the gradient of roi_align as its own operator; calling it directly gives
# the gradient of one image's boxes without running the forward again (trashpole.speed.threads
# spreads it over threads, one image each).
def roi_align_backward(
    grad: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    batch_size: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """
    The gradient of ``torchvision.ops.roi_align`` with respect to its input.

    Args:
        grad: Tensor[K, C, pooled_height, pooled_width], the gradient of the pooled output.
        rois: Tensor[K, 5] of (batch index, x0, y0, x1, y1), as the forward took them.
        spatial_scale, sampling_ratio, aligned: the forward's arguments.
        batch_size, channels, height, width: the shape of the forward's input.

    Returns:
        Tensor[batch_size, channels, height, width].
    """
    return torch.ops.torchvision._roi_align_backward(
        grad,
        rois,
        spatial_scale,
        pooled_height,
        pooled_width,
        batch_size,
        channels,
        height,
        width,
        sampling_ratio,
        aligned,
    )


# --- the forward pre-hooks of a module ---------------------------------------------------------
# nn.Module registers hooks through public methods but lists them only in a private dict.
def forward_pre_hooks(module: nn.Module) -> List[Callable]:
    """The functions registered with ``module.register_forward_pre_hook``, in call order."""
    return list(module._forward_pre_hooks.values())


# --- a library function inside a profiler scope --------------------------------------------------
# Mask pasting is one step of a model's postprocessing, not an operator of its own, so the
# profiler cannot tell its time apart. Both libraries call it through a name of their module
# (looked up at call time), which is replaced for the length of the context by a wrapper that
# opens a record_function scope.
MASK_PASTE_FUNCTIONS = {
    "torchvision": ("torchvision.models.detection.transform", "paste_masks_in_image"),
    "detectron2": ("detectron2.modeling.meta_arch.rcnn", "detector_postprocess"),
}


@contextlib.contextmanager
def mask_paste_in_scope(library: str, scope: str) -> Iterator[None]:
    """
    While open, the mask-pasting function of ``library`` runs inside the profiler scope
    ``scope`` (a ``torch.profiler.record_function`` of that name).

    Args:
        library: a key of MASK_PASTE_FUNCTIONS ("torchvision" or "detectron2").
        scope: the scope's name in the profiler's events.
    """
    module_name, name = MASK_PASTE_FUNCTIONS[library]
    module = importlib.import_module(module_name)
    original = getattr(module, name)

    def scoped(*args, **kwargs):
        with torch.profiler.record_function(scope):
            return original(*args, **kwargs)

    setattr(module, name, scoped)
    try:
        yield
    finally:
        setattr(module, name, original)
