"""bf16 on the CPU: whether the CPU has it, the autocast region, and the fp32 guards
that keep boxes, scores, ROIAlign and mask probabilities in fp32."""

import contextlib
import functools
from typing import Any, Callable, Dict, Iterator, Optional, Union

import torch
from detectron2.config import CfgNode
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.proposal_generator.rpn import StandardRPNHead
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.modeling.roi_heads.mask_head import BaseMaskRCNNHead
from detectron2.structures import Boxes, Instances
from torch import nn

from trashpole.compat.pytorch import mkldnn_bf16_supported, tensor_version

# A hook handle list is kept on the model under this name, so the guards are installed only once.
_GUARD_ATTR = "_trashpole_fp32_guards"


# the /proc/cpuinfo flags that decide which speed options pay off
ISA_FLAGS = (
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@functools.lru_cache(maxsize=None)
def cpu_features() -> Dict[str, Any]:
    """
    What this CPU offers, probed at run time (the machine may change between runs).

    Returns:
        ``{"model": str, "flags": {flag: bool for ISA_FLAGS}, "onednn_bf16": bool}``: the CPU
        model and flags from ``/proc/cpuinfo`` (empty where it is missing), and whether oneDNN
        runs bf16 natively (:func:`bf16_supported`).
    """
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "flags": {name: name in flags for name in ISA_FLAGS},
        "onednn_bf16": bf16_supported(),
    }


@functools.lru_cache(maxsize=None)
def bf16_supported() -> bool:
    """Whether this CPU has native bf16 instructions (AVX-512 BF16 or AMX); without them bf16
    autocast runs, but emulated and slower than fp32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def inference_autocast(cfg_or_enabled: Union[CfgNode, bool]) -> Iterator[None]:
    """
    CPU bf16 autocast while open, if ``TRASHPOLE.INFERENCE.BF16`` is set and the CPU has native
    bf16 (:func:`use_bf16`), or if the flag is True; otherwise does nothing. Use it around the
    forward of a model prepared by :func:`apply_inference_options`, so that its fp32 guards are
    in place.

    Args:
        cfg_or_enabled: a trashpole config, or a bool.
    """
    if isinstance(cfg_or_enabled, CfgNode):
        enabled = use_bf16(cfg_or_enabled)
    else:
        enabled = bool(cfg_or_enabled)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
        yield


def use_bf16(cfg: CfgNode) -> bool:
    """``TRASHPOLE.INFERENCE.BF16``, unless the CPU lacks native bf16 (then it would only slow
    things down, so fp32 is used)."""
    return bool(cfg.TRASHPOLE.INFERENCE.BF16) and bf16_supported()


def install_fp32_guards(model: nn.Module) -> None:
    """
    Keep the precision-critical parts of a detectron2 Mask R-CNN in fp32 under bf16 autocast:
    the box predictor (class scores and box deltas: two small linear layers) runs in fp32; the
    RPN head's outputs and the mask logits are cast to fp32 as they leave their layer; the
    features that ROIAlign samples are cast to fp32 as they enter the pooler (detectron2 casts
    the boxes to the features' dtype). All by forward hooks (the modules stay detectron2's own
    classes); idempotent.

    Args:
        model: a detectron2 model (GeneralizedRCNN or any module holding these parts).
    """
    if getattr(model, _GUARD_ATTR, None):
        return
    handles = []
    for module in model.modules():
        if isinstance(module, ROIPooler):
            handles.append(module.register_forward_pre_hook(_inputs_to_fp32))
        elif isinstance(module, FastRCNNOutputLayers):
            handles.extend(_run_in_fp32(module))
        elif isinstance(module, StandardRPNHead):
            handles.append(module.register_forward_hook(_output_to_fp32))
        elif isinstance(module, BaseMaskRCNNHead) and isinstance(
            getattr(module, "predictor", None), nn.Module
        ):
            handles.append(module.predictor.register_forward_hook(_output_to_fp32))
    setattr(model, _GUARD_ATTR, handles)


def context_around_forward(
    module: nn.Module, make_context: Callable[[], Any], on_inputs: Optional[Callable] = None
) -> list:
    """
    Hooks that open ``make_context()`` when ``module``'s forward starts and close it when the
    forward ends, also when it raises; ``on_inputs``, if given, maps the forward's positional
    arguments (a tuple) on the way in. The module itself is not changed.

    Returns:
        the two hook handles (``remove()`` them to undo).
    """
    open_contexts: list = []

    def enter(module, args):
        context = make_context()
        context.__enter__()
        open_contexts.append(context)
        return on_inputs(args) if on_inputs is not None else None

    def leave(module, args, output):
        open_contexts.pop().__exit__(None, None, None)

    return [
        module.register_forward_pre_hook(enter),
        module.register_forward_hook(leave, always_call=True),
    ]


def _run_in_fp32(module: nn.Module) -> list:
    """Hooks that run ``module``'s forward in fp32 even inside an autocast region (autocast off,
    inputs cast to fp32); for detectron2's box predictor, whose scores rank the detections and
    whose deltas place the boxes."""
    return context_around_forward(
        module,
        lambda: torch.autocast("cpu", enabled=False),
        lambda args: tuple(to_fp32(a) for a in args),
    )


# attribute of a feature map that holds its NCHW fp32 copy: (version of the source, copy)
_FP32_COPY_ATTR = "_trashpole_nchw_fp32"


def _inputs_to_fp32(module: nn.Module, args: tuple) -> tuple:
    return ([nchw_fp32(f) for f in args[0]],) + tuple(args[1:])


def nchw_fp32(feature: torch.Tensor) -> torch.Tensor:
    """
    ``feature`` as NCHW fp32, which ROIAlign's CPU kernel wants: one copy gives both. The copy is
    kept on the source tensor (and freed with it), so the box and mask poolers, which sample the
    same feature maps in one forward, convert each only once; an in-place change of the source
    (its version counter) makes a new copy.

    Args:
        feature: Tensor[N, C, H, W] of any float dtype and layout.
    """
    if feature.dtype == torch.float32 and feature.is_contiguous():
        return feature
    cached = getattr(feature, _FP32_COPY_ATTR, None)
    if cached is not None and cached[0] == tensor_version(feature):
        return cached[1]
    copy = feature.to(dtype=torch.float32, memory_format=torch.contiguous_format)
    setattr(feature, _FP32_COPY_ATTR, (tensor_version(feature), copy))
    return copy


def _output_to_fp32(module: nn.Module, args: tuple, output: Any) -> Any:
    return to_fp32(output)


def to_fp32(obj: Any) -> Any:
    """
    ``obj`` with every bf16/fp16 tensor turned into fp32, through lists, tuples, dicts,
    :class:`Instances` and :class:`Boxes` (Instances are changed in place).

    Args:
        obj: a tensor, a container of them, or anything else (returned as is).
    """
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.dtype in (torch.bfloat16, torch.float16) else obj
    if isinstance(obj, Boxes):
        return Boxes(to_fp32(obj.tensor))
    if isinstance(obj, Instances):
        for name, value in obj.get_fields().items():
            obj.set(name, to_fp32(value))
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_fp32(o) for o in obj)
    if isinstance(obj, dict):
        return {k: to_fp32(v) for k, v in obj.items()}
    return obj
