"""
CPU speed options of the predictor and the evaluation path: ``cfg.TRASHPOLE.INFERENCE``.

``cfg.TRASHPOLE.INFERENCE`` holds the choices (bf16 autocast, channels_last, norm folding and fused
convolutions, threaded ROIAlign, thread count), each of which can be switched off;
:func:`apply_inference_options` prepares a model for them once, and :func:`inference_autocast`
opens the bf16 region around each forward. Whatever runs in bf16, the parts that need fp32 stay
in fp32: the box predictor (scores and box deltas), the RPN's outputs before decoding and NMS,
ROIAlign (its boxes would otherwise be rounded to bf16, ~4 px steps at 640 px) and the mask
probabilities that are pasted into the image. The outputs are therefore fp32 boxes and scores and
bool masks, as without the options. For an inference-only model it also folds norms, fuses
conv+ReLU(+add) and spreads ROIAlign over the threads (exact; tests/test_speed_exact.py compares
each with detectron2's plain fp32 outputs). Measurements: docs/performance.md.

Modules: ``precision`` (bf16 and the fp32 guards), ``fusion`` (norm folding, fused layers),
``threads`` (thread count, threaded ROIAlign), ``options`` (the config applied to a model);
for training, ``gt_masks`` (bitmask targets without a copy per proposal).

Typical use::

    model = apply_inference_options(model, cfg)  # once, after the weights are loaded
    with torch.no_grad(), inference_autocast(cfg):
        outputs = model(inputs)
"""

from trashpole.speed.fusion import fuse_conv_activations, fuse_conv_norm
from trashpole.speed.gt_masks import IndexedBitMasks, index_gt_masks
from trashpole.speed.options import (
    apply_inference_options,
    compile_backbone,
    fp32_opts,
    set_test_size,
    speed_opts,
)
from trashpole.speed.precision import (
    bf16_supported,
    cast_weights_to_bf16,
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
    "cast_weights_to_bf16",
    "compile_backbone",
    "cpu_features",
    "fp32_opts",
    "fuse_conv_activations",
    "fuse_conv_norm",
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
