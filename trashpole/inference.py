"""
Speed options for inference on the CPU, shared by the predictor and the evaluation path.

``cfg.TRASHPOLE.INFERENCE`` holds three choices (bf16 autocast, channels_last, thread count);
:func:`apply_inference_options` prepares a model for them once, and :func:`inference_autocast`
opens the bf16 region around each forward. Whatever runs in bf16, the parts that need fp32 stay
in fp32: the box predictor (scores and box deltas), the RPN's outputs before decoding and NMS,
ROIAlign (its boxes would otherwise be rounded to bf16, ~4 px steps at 640 px) and the mask
probabilities that are pasted into the image. The outputs are therefore fp32 boxes and scores and
bool masks, as without the options. For an inference-only model it also folds norms, fuses
conv+ReLU(+add) and spreads ROIAlign over the threads (exact). Measurements: docs/performance.md.

Typical use::

    model = apply_inference_options(model, cfg)  # once, after the weights are loaded
    with torch.no_grad(), inference_autocast(cfg):
        outputs = model(inputs)
"""

import concurrent.futures
import contextlib
import functools
import logging
from typing import Any, Iterator, Optional, Union

import torch
from detectron2.config import CfgNode
from detectron2.layers import Conv2d, FrozenBatchNorm2d, ROIAlign
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.proposal_generator.rpn import StandardRPNHead
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.modeling.roi_heads.mask_head import BaseMaskRCNNHead
from detectron2.structures import Boxes, Instances
from torch import nn
from torch.nn import functional as F

from trashpole.errors import UserError

logger = logging.getLogger(__name__)

# A hook handle list is kept on the model under this name, so the guards are installed only once.
_GUARD_ATTR = "_trashpole_fp32_guards"


@functools.lru_cache(maxsize=None)
def bf16_supported() -> bool:
    """Whether this CPU has native bf16 instructions (AVX-512 BF16 or AMX); without them bf16
    autocast runs, but emulated and slower than fp32."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


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


def apply_inference_options(
    model: nn.Module, cfg: CfgNode, inference_only: bool = True
) -> nn.Module:
    """
    Prepare a detectron2 model, once and in place, for fast inference by ``cfg``:

    - ``TRASHPOLE.INFERENCE.NUM_THREADS``: sets torch's thread count (process-wide);
    - ``TRASHPOLE.INFERENCE.CHANNELS_LAST``: converts the weights to channels_last, so that the
      convolutions run on NHWC tensors (oneDNN's native layout);
    - ``TRASHPOLE.INFERENCE.BF16`` (on a CPU with native bf16, else ignored with a warning):
      installs the fp32 guards (see the module docstring) and, for an inference-only model,
      stores the conv and linear weights in bf16; the forward must then run inside
      :func:`inference_autocast`;
    - ``inference_only`` (always on in the predictor): folds every FrozenBatchNorm2d and
      eval-mode BatchNorm2d that follows a convolution into the convolution's weights and bias
      (:func:`fuse_conv_norm`), lets oneDNN apply the ReLU and the residual add inside the
      convolution (:func:`fuse_conv_activations`) and spreads ROIAlign over the threads
      (:func:`thread_roi_align`). Same results up to fp32 rounding, fewer passes over the
      feature maps. The model must not be trained afterwards: keep it False for a model that is
      still training (the evaluation during training), which then gets threads, channels_last
      and the bf16 guards only.

    Args:
        model: a detectron2 model with its weights loaded.
        cfg: a trashpole config.
        inference_only: the model is used for inference only (see above).

    Returns:
        the same model, in eval mode when ``inference_only`` is set.
    """
    options = cfg.TRASHPOLE.INFERENCE
    set_num_threads(int(options.NUM_THREADS))
    if inference_only:
        model.eval()
        fused = fuse_conv_norm(model)
        logger.debug(f"folded {fused} normalization layers into their convolutions")
        fused = fuse_conv_activations(model)
        logger.debug(f"{fused} convolutions run with their ReLU (and residual add) fused")
        thread_roi_align(model)
    if options.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    if options.BF16 and not bf16_supported():
        logger.warning(
            "TRASHPOLE.INFERENCE.BF16 is set but this CPU has no native bf16 instructions "
            "(AVX-512 BF16 or AMX), where bf16 is slower than fp32: running in fp32"
        )
    if use_bf16(cfg):
        install_fp32_guards(model)
        if inference_only:
            cast_weights_to_bf16(model)
    return model


def cast_weights_to_bf16(model: nn.Module) -> int:
    """
    Store the weights and biases of the convolutions and linear layers in bf16, in place, so that
    autocast does not cast them again at every forward (~44M values for R50-FPN). The model then
    runs only under :func:`inference_autocast`; a pre-hook says so if it is called without.
    Norm layers and the box predictor stay fp32. For inference-only models (as norm folding).

    Args:
        model: a model prepared by :func:`install_fp32_guards`.

    Returns:
        how many layers were cast.
    """
    count = 0
    fp32 = {id(m) for p in model.modules() if isinstance(p, _Fp32BoxPredictor) for m in p.modules()}
    for module in model.modules():
        if id(module) in fp32:
            continue
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            for param in (module.weight, module.bias):
                if param is not None:
                    param.data = param.data.to(torch.bfloat16)
            count += 1
    if count:
        model.register_forward_pre_hook(_require_autocast)
    return count


def _require_autocast(module: nn.Module, args: tuple) -> None:
    if not torch.is_autocast_enabled("cpu"):
        raise RuntimeError(
            "this model holds bf16 weights (TRASHPOLE.INFERENCE.BF16 was set when it was "
            "prepared): call it inside trashpole.inference.inference_autocast(cfg)"
        )


def fuse_conv_norm(model: nn.Module) -> int:
    """
    Fold the norm of each detectron2 ``Conv2d`` (FrozenBatchNorm2d, or BatchNorm2d in eval mode)
    into the convolution, in place; ``conv.norm`` becomes None.

    Args:
        model: any module; other norms (GroupNorm...) are left alone.

    Returns:
        how many norms were folded.
    """
    count = 0
    for module in model.modules():
        if not isinstance(module, Conv2d):
            continue
        norm = module.norm
        if isinstance(norm, nn.BatchNorm2d) and norm.training:
            continue  # its statistics still change
        if not isinstance(norm, (FrozenBatchNorm2d, nn.BatchNorm2d)):
            continue
        if norm.running_mean is None:  # BatchNorm2d(track_running_stats=False)
            continue
        with torch.no_grad():
            scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
            bias = module.bias if module.bias is not None else torch.zeros_like(scale)
            new_bias = (bias - norm.running_mean) * scale + norm.bias
            module.weight.mul_(scale.reshape(-1, 1, 1, 1))
            module.bias = nn.Parameter(new_bias, requires_grad=module.weight.requires_grad)
        module.norm = None
        count += 1
    return count


def _pointwise_op_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_convolution_pointwise"
    )


def _fusable(conv: Optional[nn.Module]) -> bool:
    return (
        isinstance(conv, Conv2d)
        and conv.norm is None
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )


def _conv_pointwise(
    conv: Conv2d, x: torch.Tensor, unary: str = "none", add: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``conv(x)`` (+ ``add``), then ``unary`` ("relu" or "none"), in one oneDNN call, in the
    weights' dtype."""
    x = x.to(conv.weight.dtype)
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    if add is None:
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, *geometry, unary, [], ""
        )
    if not x.is_contiguous(memory_format=torch.channels_last):
        # oneDNN fuses the add only in NHWC; PyTorch's NCHW fallback has no bf16 kernel
        out = torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, *geometry, "none", [], ""
        )
        out += add.to(out.dtype)
        return out.relu_() if unary == "relu" else out
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, add.to(conv.weight.dtype), conv.weight, conv.bias, *geometry, "add", 1.0, unary, [], ""
    )


class _FusedBottleneckBlock(BottleneckBlock):
    """detectron2's bottleneck block with conv+ReLU and conv+add+ReLU fused (inference only)."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        out = _conv_pointwise(self.conv1, x, "relu")
        out = _conv_pointwise(self.conv2, out, "relu")
        shortcut = x if self.shortcut is None else _conv_pointwise(self.shortcut, x)
        return _conv_pointwise(self.conv3, out, "relu", add=shortcut)


class _FusedBasicBlock(BasicBlock):
    """detectron2's basic block (ResNet-18/34) with its convs fused likewise (inference only)."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        out = _conv_pointwise(self.conv1, x, "relu")
        shortcut = x if self.shortcut is None else _conv_pointwise(self.shortcut, x)
        return _conv_pointwise(self.conv2, out, "relu", add=shortcut)


class _FusedBasicStem(BasicStem):
    """detectron2's stem with conv+ReLU fused (inference only)."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        x = _conv_pointwise(self.conv1, x, "relu")
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class _FusedConvReLU(Conv2d):
    """detectron2's Conv2d with a ReLU activation and no norm, fused (inference only)."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        return _conv_pointwise(self, x, "relu")


def fuse_conv_activations(model: nn.Module) -> int:
    """
    Make the ResNet blocks and stem, and each ``Conv2d`` with a ReLU activation, run their
    convolution, residual add and ReLU as one oneDNN call (what ``torch.compile`` would do on
    the CPU) when no gradient is recorded; with gradients they run as before. Only modules
    whose norms were folded (:func:`fuse_conv_norm`) qualify. In place, by switching the
    modules' classes; a no-op without oneDNN.

    Args:
        model: a detectron2 model.

    Returns:
        how many modules were switched.
    """
    if not _pointwise_op_available():
        return 0
    count = 0
    for module in model.modules():
        convs = [getattr(module, n, None) for n in ("conv1", "conv2", "conv3", "shortcut")]
        convs = [c for c in convs if c is not None]
        if not all(_fusable(c) for c in convs):
            continue
        if type(module) is BottleneckBlock:
            module.__class__ = _FusedBottleneckBlock
        elif type(module) is BasicBlock:
            module.__class__ = _FusedBasicBlock
        elif type(module) is BasicStem:
            module.__class__ = _FusedBasicStem
        elif type(module) is Conv2d and _fusable(module) and _is_relu(module.activation):
            module.__class__ = _FusedConvReLU
        else:
            continue
        count += 1
    return count


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


def _is_relu(activation: Any) -> bool:
    return isinstance(activation, nn.ReLU) or activation in (F.relu, F.relu_, torch.relu)


def install_fp32_guards(model: nn.Module) -> None:
    """
    Keep the precision-critical parts of a detectron2 Mask R-CNN in fp32 under bf16 autocast:
    the box predictor (class scores and box deltas: two small linear layers) runs in fp32; the
    RPN head's outputs and the mask logits are cast to fp32 as they leave their layer; the
    features that ROIAlign samples are cast to fp32 as they enter the pooler (detectron2 casts
    the boxes to the features' dtype). By hooks and a class switch; idempotent.

    Args:
        model: a detectron2 model (GeneralizedRCNN or any module holding these parts).
    """
    if getattr(model, _GUARD_ATTR, None):
        return
    handles = []
    for module in model.modules():
        if isinstance(module, ROIPooler):
            handles.append(module.register_forward_pre_hook(_inputs_to_fp32))
        elif type(module) is FastRCNNOutputLayers:
            module.__class__ = _Fp32BoxPredictor
        elif isinstance(module, (StandardRPNHead, FastRCNNOutputLayers)):
            handles.append(module.register_forward_hook(_output_to_fp32))
        elif isinstance(module, BaseMaskRCNNHead) and isinstance(
            getattr(module, "predictor", None), nn.Module
        ):
            handles.append(module.predictor.register_forward_hook(_output_to_fp32))
    setattr(model, _GUARD_ATTR, handles)


class _Fp32BoxPredictor(FastRCNNOutputLayers):
    """detectron2's box predictor run in fp32 even under autocast: its scores rank the
    detections and its deltas place the boxes."""

    def forward(self, x):
        with torch.autocast("cpu", enabled=False):
            return super().forward(x.float())


def _inputs_to_fp32(module: nn.Module, args: tuple) -> tuple:
    # ROIAlign's CPU kernel wants NCHW fp32: one copy gives both
    features = [f.to(dtype=torch.float32, memory_format=torch.contiguous_format) for f in args[0]]
    return (features,) + tuple(args[1:])


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


def set_test_size(cfg: CfgNode, size: int) -> CfgNode:
    """
    Resize test images so that their shorter side is ``size`` pixels, keeping the config's ratio
    of ``INPUT.MAX_SIZE_TEST`` to ``INPUT.MIN_SIZE_TEST`` for the longer side (640 with a 384/384
    config gives 640/640; with detectron2's 800/1333 it gives 640/1066). In place.

    Args:
        cfg: unfrozen config.
        size: shorter side in pixels (> 0).

    Returns:
        the same cfg.
    """
    if size <= 0:
        raise UserError(f"test input size {size}: give a positive number of pixels")
    ratio = cfg.INPUT.MAX_SIZE_TEST / max(1, cfg.INPUT.MIN_SIZE_TEST)
    cfg.INPUT.MIN_SIZE_TEST = int(size)
    cfg.INPUT.MAX_SIZE_TEST = int(round(size * max(1.0, ratio)))
    return cfg


def speed_opts(
    bf16: bool = False,
    channels_last: bool = False,
    threads: int = 0,
    proposals: int = 0,
    sampling_ratio: int = -1,
) -> list:
    """
    Config overrides (a flat KEY VALUE list, for ``load_config`` or ``tools/train_net.py``) for
    the speed choices; a choice left at its default adds nothing, so the config's value stays.

    Args:
        bf16: ``TRASHPOLE.INFERENCE.BF16 True``.
        channels_last: ``TRASHPOLE.INFERENCE.CHANNELS_LAST True``.
        threads: ``TRASHPOLE.INFERENCE.NUM_THREADS`` (0: leave).
        proposals: ``MODEL.RPN.POST_NMS_TOPK_TEST``, the proposals that reach the box head (0:
            leave).
        sampling_ratio: ROIAlign samples per bin side in the box and mask poolers (0 = adaptive,
            detectron2's default; -1: leave).

    Returns:
        list of str.
    """
    opts = []
    if bf16:
        opts += ["TRASHPOLE.INFERENCE.BF16", "True"]
    if channels_last:
        opts += ["TRASHPOLE.INFERENCE.CHANNELS_LAST", "True"]
    if threads:
        opts += ["TRASHPOLE.INFERENCE.NUM_THREADS", str(int(threads))]
    if proposals:
        opts += ["MODEL.RPN.POST_NMS_TOPK_TEST", str(int(proposals))]
    if sampling_ratio >= 0:
        for head in ("ROI_BOX_HEAD", "ROI_MASK_HEAD"):
            opts += [f"MODEL.{head}.POOLER_SAMPLING_RATIO", str(int(sampling_ratio))]
    return opts
