"""
CPU speed options of the PyTorch backend (``cfg.TRASHPOLE.INFERENCE``) and of training.

The PyTorch backend gets the generic switches only (bf16 autocast where the CPU has native bf16,
channels_last, thread count); on a CPU the inference engine is OpenVINO
(:mod:`trashpole.predict.openvino`), which replaced the hand-written fusions, bf16 weight casting,
threaded ROIAlign at inference and ``torch.compile`` of the backbone (docs/performance.md).
:func:`apply_inference_options` prepares a model once, :func:`inference_autocast` opens the bf16
region around each forward. Whatever runs in bf16, the parts that need fp32 stay in fp32: the box
predictor (scores and box deltas), the RPN's outputs before decoding and NMS, ROIAlign (its boxes
would otherwise be rounded to bf16, ~4 px steps at 640 px) and the mask probabilities that are
pasted into the image; training's bf16 autocast uses the same guards.

Modules: ``precision`` (bf16 and the fp32 guards), ``threads`` (thread count, threaded ROIAlign
for training), ``options`` (the config applied to a model); for training, ``gt_masks`` (bitmask
targets without a copy per proposal).

Typical use::

    model = apply_inference_options(model, cfg)  # once, after the weights are loaded
    with torch.no_grad(), inference_autocast(cfg):
        outputs = model(inputs)
"""

from trashpole.speed.gt_masks import IndexedBitMasks, index_gt_masks
from trashpole.speed.options import (
    apply_inference_options,
    fp32_opts,
    set_test_size,
    speed_opts,
)
from trashpole.speed.precision import (
    bf16_supported,
    cpu_features,
    inference_autocast,
    install_fp32_guards,
    to_fp32,
    use_bf16,
)
from trashpole.speed.threads import set_num_threads, thread_roi_align

__all__ = [
    "IndexedBitMasks",
    "apply_inference_options",
    "bf16_supported",
    "cpu_features",
    "fp32_opts",
    "index_gt_masks",
    "inference_autocast",
    "install_fp32_guards",
    "set_num_threads",
    "set_test_size",
    "speed_opts",
    "thread_roi_align",
    "to_fp32",
    "use_bf16",
]
