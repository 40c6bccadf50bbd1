"""The speed options of cfg.TRASHPOLE.INFERENCE applied to a model, test-size and command-line
helpers."""

import logging
from typing import Optional

import torch
from detectron2.config import CfgNode
from torch import nn

from trashpole.errors import UserError
from trashpole.speed import precision
from trashpole.speed.fusion import fuse_conv_activations, fuse_conv_norm
from trashpole.speed.threads import set_num_threads, thread_roi_align

logger = logging.getLogger(__name__)


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
    - ``TRASHPOLE.INFERENCE.FUSE`` (inference-only models): folds every FrozenBatchNorm2d and
      eval-mode BatchNorm2d that follows a convolution into the convolution's weights and bias
      (:func:`fuse_conv_norm`) and lets oneDNN apply the ReLU and the residual add inside the
      convolution (:func:`fuse_conv_activations`). Same results up to fp32 rounding, fewer
      passes over the feature maps;
    - ``TRASHPOLE.INFERENCE.THREADED_ROI_ALIGN`` (inference-only models): spreads ROIAlign's
      boxes over the threads (:func:`thread_roi_align`, bit-identical).

    - ``TRASHPOLE.INFERENCE.COMPILE`` (inference-only models): ``torch.compile`` of the
      backbone + FPN (:func:`compile_backbone`); the first forward compiles. Norms are still
      folded (FUSE), but the conv+ReLU(+add) fusion is left to Inductor.

    With every key off the model runs as detectron2 builds it, in fp32 NCHW.

    Args:
        model: a detectron2 model with its weights loaded.
        cfg: a trashpole config.
        inference_only: the model is used for inference only (always so in the predictor).
            Keep it False for a model that is still training (the evaluations during training),
            which then gets threads, channels_last and the bf16 guards only: folded norms and
            bf16 weights cannot be trained.

    Returns:
        the same model, in eval mode when ``inference_only`` is set.
    """
    options = cfg.TRASHPOLE.INFERENCE
    set_num_threads(int(options.NUM_THREADS))
    if inference_only:
        model.eval()
        if options.FUSE:
            fused = fuse_conv_norm(model)
            logger.debug(f"folded {fused} normalization layers into their convolutions")
        if options.FUSE and not options.COMPILE:
            # the hand-fused oneDNN calls have no fake-tensor kernels: torch.compile would break
            # its graph at every block; Inductor fuses conv+ReLU(+add) itself
            fused = fuse_conv_activations(model)
            logger.debug(f"{fused} convolutions run with their ReLU (and residual add) fused")
        if options.THREADED_ROI_ALIGN:
            thread_roi_align(model)
    if options.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    if options.BF16 and not precision.bf16_supported():
        logger.warning(
            "TRASHPOLE.INFERENCE.BF16 is set but this CPU has no native bf16 instructions "
            "(AVX-512 BF16 or AMX), where bf16 is slower than fp32: running in fp32"
        )
    if precision.use_bf16(cfg):
        precision.install_fp32_guards(model)
        if inference_only:
            precision.cast_weights_to_bf16(model)
    if inference_only and options.COMPILE:
        compile_backbone(model)
    return model


def compile_backbone(model: nn.Module) -> nn.Module:
    """
    Replace ``model.backbone`` (ResNet + FPN: the convolutions, ~90% of the multiply-adds) by
    its ``torch.compile`` (Inductor) version, with Inductor's weight freezing on so that it
    prepacks the weights and fuses convolutions with their pointwise neighbours, as oneDNN's
    post-ops do. Shapes are compiled as they come (one graph per input size). The rest of the
    model (RPN decoding, NMS, ROIAlign, heads, pasting) stays eager: its shapes change with
    every image. Inference only (no gradients: frozen weights). Sets
    ``torch._inductor.config.freezing`` process-wide.

    Returns:
        the model, changed in place.
    """
    import torch._inductor.config as inductor_config  # loads the compiler: only when compiling

    inductor_config.freezing = True
    if not hasattr(model.backbone, "_orig_mod"):
        model.backbone = torch.compile(model.backbone, dynamic=False)
    return model


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
    bf16: Optional[bool] = None,
    channels_last: Optional[bool] = None,
    threads: int = 0,
    proposals: int = 0,
    sampling_ratio: int = -1,
    fuse: Optional[bool] = None,
    threaded_roi_align: Optional[bool] = None,
    compile: Optional[bool] = None,
) -> list:
    """
    Config overrides (a flat KEY VALUE list, for ``load_config`` or ``tools/train_net.py``) for
    the speed choices; a choice left at None (or 0, -1) adds nothing, so the config's value
    stays; True and False are written out, so any option can be switched off.

    Args:
        bf16: ``TRASHPOLE.INFERENCE.BF16``.
        channels_last: ``TRASHPOLE.INFERENCE.CHANNELS_LAST``.
        threads: ``TRASHPOLE.INFERENCE.NUM_THREADS`` (0: leave).
        proposals: ``MODEL.RPN.POST_NMS_TOPK_TEST``, the proposals that reach the box head (0:
            leave).
        sampling_ratio: ROIAlign samples per bin side in the box and mask poolers (0 = adaptive,
            detectron2's default; -1: leave).
        fuse: ``TRASHPOLE.INFERENCE.FUSE`` (norm folding and fused conv+ReLU(+add)).
        threaded_roi_align: ``TRASHPOLE.INFERENCE.THREADED_ROI_ALIGN``.
        compile: ``TRASHPOLE.INFERENCE.COMPILE``.

    Returns:
        list of str.
    """
    opts = []
    flags = (
        ("BF16", bf16),
        ("CHANNELS_LAST", channels_last),
        ("FUSE", fuse),
        ("THREADED_ROI_ALIGN", threaded_roi_align),
        ("COMPILE", compile),
    )
    for key, value in flags:
        if value is not None:
            opts += [f"TRASHPOLE.INFERENCE.{key}", str(bool(value))]
    if threads:
        opts += ["TRASHPOLE.INFERENCE.NUM_THREADS", str(int(threads))]
    if proposals:
        opts += ["MODEL.RPN.POST_NMS_TOPK_TEST", str(int(proposals))]
    if sampling_ratio >= 0:
        for head in ("ROI_BOX_HEAD", "ROI_MASK_HEAD"):
            opts += [f"MODEL.{head}.POOLER_SAMPLING_RATIO", str(int(sampling_ratio))]
    return opts


def fp32_opts(plain: bool = False) -> list:
    """
    Overrides for an fp32 NCHW model: bf16 and channels_last off; with ``plain`` also no norm
    folding, no fused convolutions and no threaded ROIAlign, i.e. detectron2's model as built.
    """
    off = False if plain else None
    return speed_opts(bf16=False, channels_last=False, fuse=off, threaded_roi_align=off)
