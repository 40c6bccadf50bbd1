"""The speed options of cfg.TRASHPOLE.INFERENCE applied to a model, test-size and command-line
helpers."""

import logging
from typing import Optional

import torch
from detectron2.config import CfgNode
from torch import nn

from trashpole.errors import UserError
from trashpole.speed import precision
from trashpole.speed.threads import set_num_threads

logger = logging.getLogger(__name__)


def apply_inference_options(
    model: nn.Module, cfg: CfgNode, inference_only: bool = True
) -> nn.Module:
    """
    Prepare a detectron2 model, once and in place, for the PyTorch backend by ``cfg``: the generic
    PyTorch switches, nothing hand-written (the CPU engine is OpenVINO, trashpole.predict.openvino):

    - ``TRASHPOLE.INFERENCE.NUM_THREADS``: sets torch's thread count (process-wide);
    - ``TRASHPOLE.INFERENCE.CHANNELS_LAST``: converts the weights to channels_last, so that the
      convolutions run on NHWC tensors (oneDNN's native layout);
    - ``TRASHPOLE.INFERENCE.BF16`` (on a CPU with native bf16, else ignored with a warning):
      installs the fp32 guards (see :mod:`trashpole.speed.precision`); the forward must then run
      inside :func:`inference_autocast`.

    With every key off the model runs as detectron2 builds it, in fp32 NCHW.

    Args:
        model: a detectron2 model with its weights loaded.
        cfg: a trashpole config.
        inference_only: the model is used for inference only (put in eval mode); False for a
            model that is still training (the evaluations during training).

    Returns:
        the same model.
    """
    options = cfg.TRASHPOLE.INFERENCE
    set_num_threads(int(options.NUM_THREADS))
    if inference_only:
        model.eval()
    if options.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    if options.BF16 and not precision.bf16_supported():
        logger.warning(
            "TRASHPOLE.INFERENCE.BF16 is set but this CPU has no native bf16 instructions "
            "(AVX-512 BF16 or AMX), where bf16 is slower than fp32: running in fp32"
        )
    if precision.use_bf16(cfg):
        precision.install_fp32_guards(model)
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

    Returns:
        list of str.
    """
    opts = []
    flags = (("BF16", bf16), ("CHANNELS_LAST", channels_last))
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


def fp32_opts() -> list:
    """Overrides for an fp32 NCHW model (bf16 and channels_last off): detectron2's model as
    built."""
    return speed_opts(bf16=False, channels_last=False)
