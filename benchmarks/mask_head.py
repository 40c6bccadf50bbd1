"""
What the mask head costs a training step of the CPU recipe, at several widths
(``MODEL.ROI_MASK_HEAD.CONV_DIM``; the recipe's choice is in its config, docs/real_photos.md).

In training, detectron2 runs the mask head on every positive RoI: up to
``ROI_HEADS.BATCH_SIZE_PER_IMAGE * POSITIVE_FRACTION`` an image, 128 for the CPU recipe's batch
of 4. Each row builds the head from the CPU recipe's config with one ``CONV_DIM`` (random weights,
seed 0) and times its forward and backward on that many RoIs of pooled FPN features (14x14, the
FPN's channels), with the recipe's switches as the trainer applies them: bf16 autocast where the
CPU runs bf16 natively, channels_last. Rows run in turn, one call each a round; medians are
reported. The multiply-adds of a RoI are counted from the built layers' shapes, and each row's
label is read from the module that ran (its convolutions' widths).
"""

import logging
import statistics
from typing import Any, Dict, Sequence

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import build_mask_head

from benchmarks.measure import CPU_CONFIG, measuring, time_alternating, use_threads, write_result
from trashpole.config import load_config
from trashpole.speed import precision

logger = logging.getLogger(__name__)

NAME = "mask-head"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"rois": 4, "rounds": 1, "warmup": 0, "dims": (32, 16)}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "repeats": "rounds"}


def build_head(cfg, dim: int) -> torch.nn.Module:
    """The mask head of ``cfg`` (the CPU recipe) with ``CONV_DIM`` ``dim`` (random weights, seed
    0)."""
    cfg = cfg.clone()
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = dim
    torch.manual_seed(0)
    side = cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
    shape = ShapeSpec(channels=cfg.MODEL.FPN.OUT_CHANNELS, height=side, width=side)
    return build_mask_head(cfg, shape)


def macs_per_roi(head: torch.nn.Module, side: int) -> int:
    """Multiply-adds of one RoI through ``head``'s convolutions and deconvolution, from their
    shapes (``side``: the pooled features' side; each 3x3 convolution keeps it, the 2x2
    deconvolution doubles it)."""
    total = 0
    for layer in head.modules():
        if isinstance(layer, torch.nn.ConvTranspose2d):
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total += side * side * layer.in_channels * layer.out_channels * k
            side *= layer.stride[0]
        elif isinstance(layer, torch.nn.Conv2d):
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total += side * side * layer.in_channels * layer.out_channels * k
    return total


def describe(head: torch.nn.Module, bf16: bool) -> str:
    """The row's label, read from the head that ran."""
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] == 3]
    widths = sorted({m.out_channels for m in convs})
    switches = "bf16 autocast" if bf16 else "fp32"
    return f"{len(convs)} 3x3 convs of {widths} channels + deconv, {switches}, channels_last"


def _step(head: torch.nn.Module, features: torch.Tensor, bf16: bool):
    """One forward and backward of the head's layers (the loss: their outputs' sum)."""

    def step() -> None:
        head.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = head.layers(features)
        out.float().sum().backward()

    return step


def run(
    out_dir: str,
    threads: int = 0,
    rois: int = 128,
    rounds: int = 6,
    warmup: int = 2,
    dims: Sequence[int] = (256, 128, 64),
) -> Dict[str, Any]:
    """
    Time the mask head's forward and backward at each width.

    Args:
        out_dir: folder for ``mask_head_benchmark.json``.
        threads: torch threads (0: torch's default).
        rois: positive RoIs a step (128: the CPU recipe's most, batch 4).
        rounds: timed rounds (after ``warmup`` untimed ones).
        warmup: untimed rounds first.
        dims: the ``CONV_DIM`` of each row.

    Returns:
        ``rows`` (``CONV_DIM`` as text -> ``label``, ``median_s``, ``times_s``,
        ``gmac_per_step``), the settings and the header of :func:`benchmarks.measure.measuring`.
    """
    use_threads(threads)
    bf16 = precision.bf16_supported()
    cfg = load_config(CPU_CONFIG)
    heads = {str(dim): build_head(cfg, dim).to(memory_format=torch.channels_last) for dim in dims}
    channels, side = cfg.MODEL.FPN.OUT_CHANNELS, cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
    features = torch.randn(rois, channels, side, side).contiguous(memory_format=torch.channels_last)
    steps = {name: _step(head, features, bf16) for name, head in heads.items()}
    with measuring(NAME, rois=rois, pooled=[channels, side, side], rounds=rounds) as result:
        times, _ = time_alternating(steps, warmup, rounds)
    result["rows"] = {
        name: {
            "label": describe(heads[name], bf16),
            "median_s": statistics.median(times[name]),
            "times_s": times[name],
            "gmac_per_step": rois * macs_per_roi(heads[name], side) / 1e9,
        }
        for name in heads
    }
    write_result(result, out_dir, "mask_head_benchmark.json")
    return result


def format_table(result: Dict[str, Any]) -> str:
    """The rows of :func:`run` as a text table."""
    lines = [f"{'CONV_DIM':>8} {'s/step':>8} {'GMAC':>7}  what ran"]
    for name, row in result["rows"].items():
        lines.append(
            f"{name:>8} {row['median_s']:>8.3f} {row['gmac_per_step']:>7.1f}  {row['label']}"
        )
    lines.append(
        f"forward + backward on {result['rois']} RoIs of {result['pooled']}; "
        f"{result['rounds']} rounds, threads {result['threads']}; "
        f"load {result['load_before']} -> {result['load_after']}"
    )
    return "\n".join(lines)
