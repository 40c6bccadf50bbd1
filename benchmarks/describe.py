"""What a timed model really is: its set-up read from the model itself (weights' dtype, memory
format, fused modules, norms left, ROIAlign sampling, proposals, threads) and from one forward
(the dtype and layout of the features it computed), so that a benchmark row's label cannot say
more than what ran. Works on detectron2 models (prepared by trashpole or not) and torchvision's
Mask R-CNN."""

import contextlib
from collections import Counter
from typing import Any, Dict, Iterator

import torch
from torch import nn

from trashpole.compat.pytorch import forward_pre_hooks
from trashpole.speed import gt_masks

# ResNet depth by (block type, blocks per stage), for both libraries
_DEPTHS = {
    ("BasicBlock", (2, 2, 2, 2)): 18,
    ("BasicBlock", (3, 4, 6, 3)): 34,
    ("Bottleneck", (3, 4, 6, 3)): 50,
    ("Bottleneck", (3, 4, 23, 3)): 101,
}
_DTYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def _unwrap(model: Any) -> nn.Module:
    """The nn.Module of a model or of a predictor (``.model``)."""
    while not isinstance(model, nn.Module):  # a predictor, or the PyTorch backend's wrapper
        model = model.model
    return model


def _is_torchvision(model: nn.Module) -> bool:
    return hasattr(model, "rpn") and hasattr(model, "transform")


def _resnet_depth(model: nn.Module) -> str:
    """ "R50" and the like, from the residual stages' block types and counts."""
    stages = []
    if _is_torchvision(model):
        body = model.backbone.body
        stages = [getattr(body, f"layer{i}", None) for i in range(1, 5)]
    elif hasattr(model.backbone, "bottom_up"):
        stages = [getattr(model.backbone.bottom_up, f"res{i}", None) for i in range(2, 6)]
    if not stages or any(s is None for s in stages):
        return "?"
    kind = "Bottleneck" if "Bottleneck" in type(stages[0][0]).__name__ else "BasicBlock"
    depth = _DEPTHS.get((kind, tuple(len(s) for s in stages)))
    return f"R{depth}" if depth else "R?"


def _roi_aligns(model: nn.Module) -> list:
    """The ROIAlign modules (detectron2) or MultiScaleRoIAlign poolers (torchvision)."""
    return [m for m in model.modules() if type(m).__name__ in ("ROIAlign", "ThreadedROIAlign")] + [
        m for m in model.modules() if type(m).__name__ == "MultiScaleRoIAlign"
    ]


def describe_model(model: Any) -> Dict[str, Any]:
    """
    The set-up of a detection model as it stands (after any preparation).

    Args:
        model: a detectron2 ``GeneralizedRCNN`` (or a predictor holding one in ``.model``) or a
            torchvision ``MaskRCNN``.

    Returns:
        ``library`` ("trashpole" or "torchvision"), ``arch`` ("R50-FPN"...), ``weights_dtype``
        (of the convolutions: "fp32", "bf16" or "mixed"), ``channels_last`` (the 3x3 conv
        weights are NHWC), ``norm_layers`` (norm modules), ``threaded_roi_align`` (count),
        ``sampling_ratios`` (sorted list of ROIAlign samples per bin; 0 = adaptive),
        ``proposals`` and ``detections`` (at test time), ``train_proposals``,
        ``trainable_fraction`` (of the parameters), ``threads`` (torch's, now) and
        ``indexed_gt_masks``
        (training bitmask targets reach the mask loss as an index, not a copy per RoI: always in
        torchvision, with ``TRASHPOLE.TRAIN.INDEXED_GT_MASKS`` in trashpole).
    """
    model = _unwrap(model)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    dtypes = {_DTYPES.get(c.weight.dtype, str(c.weight.dtype)) for c in convs}
    square = [c.weight for c in convs if c.weight.shape[-1] == 3 and c.weight.shape[1] > 1]
    norms = [
        m
        for m in model.modules()
        if "BatchNorm" in type(m).__name__ or "GroupNorm" in type(m).__name__
    ]
    aligns = _roi_aligns(model)
    if _is_torchvision(model):
        proposals = (_rpn_top_n(model.rpn, False), _rpn_top_n(model.rpn, True))
        detections = model.roi_heads.detections_per_img
    else:
        proposals = model.proposal_generator.post_nms_topk
        proposals = (proposals[False], proposals[True])
        detections = model.roi_heads.box_predictor.test_topk_per_image
    params = list(model.parameters())
    return {
        "library": "torchvision" if _is_torchvision(model) else "trashpole",
        "arch": f"{_resnet_depth(model)}-FPN",
        "weights_dtype": dtypes.pop() if len(dtypes) == 1 else "mixed",
        "channels_last": bool(square)
        and all(w.is_contiguous(memory_format=torch.channels_last) for w in square)
        and not square[0].is_contiguous(),
        "norm_layers": len(norms),
        "threaded_roi_align": sum(type(m).__name__ == "ThreadedROIAlign" for m in aligns),
        "sampling_ratios": sorted({int(m.sampling_ratio) for m in aligns}),
        "proposals": int(proposals[0]),
        "train_proposals": int(proposals[1]),
        "detections": int(detections),
        "trainable_fraction": sum(p.numel() for p in params if p.requires_grad)
        / max(1, sum(p.numel() for p in params)),
        "threads": torch.get_num_threads(),
        "indexed_gt_masks": _is_torchvision(model) or _indexes_gt_masks(model),
    }


def _rpn_top_n(rpn: nn.Module, training: bool) -> int:
    """The proposals torchvision's RPN keeps after NMS in training or in inference mode (its
    public ``post_nms_top_n()`` answers for the mode the RPN is in)."""
    was_training = rpn.training
    rpn.training = training  # the flag alone: the RPN's submodules are not touched
    try:
        return rpn.post_nms_top_n()
    finally:
        rpn.training = was_training


def _indexes_gt_masks(model: nn.Module) -> bool:
    """Whether trashpole's gt-mask indexing hook is on the model's ROI heads."""
    return any(hook is gt_masks._index_targets for hook in forward_pre_hooks(model.roi_heads))


@contextlib.contextmanager
def observe_features(model: Any) -> Iterator[Dict[str, Any]]:
    """
    Record what the backbone computed during the forwards inside the block: the dtype and
    layout of its first output feature map, and whether CPU autocast was on.

    Yields:
        a dict filled by each forward: ``feature_dtype`` ("fp32", "bf16"...),
        ``feature_channels_last`` and ``autocast``.
    """
    model = _unwrap(model)
    seen: Dict[str, Any] = {}

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        feature = next(iter(output.values())) if isinstance(output, dict) else output
        seen["feature_dtype"] = _DTYPES.get(feature.dtype, str(feature.dtype))
        seen["feature_channels_last"] = bool(
            feature.is_contiguous(memory_format=torch.channels_last) and not feature.is_contiguous()
        )
        seen["autocast"] = torch.is_autocast_enabled("cpu")

    handle = model.backbone.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def label(setup: Dict[str, Any], seen: Dict[str, Any], training: bool = False) -> str:
    """
    A table label from :func:`describe_model` and :func:`observe_features`, e.g. ``trashpole
    R50-FPN: bf16 autocast, NHWC, ROIAlign 2, 1000 prop, 2 thr`` ("bf16 autocast" where the
    weights stayed fp32). With ``training``, the training proposals, the norms, the way bitmask
    targets reach the mask loss, and the trainable share of the parameters.
    """
    compute = seen.get("feature_dtype", "?")
    dtype = compute if compute == setup["weights_dtype"] else f"{compute} autocast"
    parts = [dtype, "NHWC" if seen.get("feature_channels_last") else "NCHW"]
    if training:
        parts.append(f"{setup['norm_layers']} norms")
    ratios = "/".join("adaptive" if r == 0 else str(r) for r in setup["sampling_ratios"])
    threaded = " threaded" if setup["threaded_roi_align"] else ""
    parts.append(f"ROIAlign {ratios}{threaded}")
    if training:
        parts.append(f"{setup['train_proposals']} prop")
        if "indexed_gt_masks" in setup:
            indexed = setup["indexed_gt_masks"]
            parts.append("bitmask targets " + ("indexed" if indexed else "copied"))
        parts.append(f"{100 * setup['trainable_fraction']:.0f}% trainable")
    else:
        parts.append(f"{setup['proposals']} prop")
    parts.append(f"{setup['threads']} thr")
    return f"{setup['library']} {setup['arch']}: " + ", ".join(parts)


def is_openvino(model: Any) -> bool:
    """Whether ``model`` (or the predictor holding it) runs on OpenVINO: its compiled stages."""
    while not isinstance(model, nn.Module) and not hasattr(model, "stages"):
        model = getattr(model, "model", None)
        if model is None:
            return False
    return hasattr(model, "stages")


# OpenVINO's element types as the inference precision hint prints them
_PRECISIONS = {"<Type: 'bfloat16'>": "bf16", "<Type: 'float32'>": "f32", "<Type: 'float16'>": "f16"}


def describe_openvino(model: Any) -> Dict[str, Any]:
    """
    What an OpenVINO model ran, read from each compiled stage's runtime graph (what the CPU
    plugin executes, after its own precision choices).

    Args:
        model: an OpenVINO model with ``stages`` (trashpole's, the torchvision peer's) or a
            predictor holding one.

    Returns:
        ``library``, ``engine`` ("openvino"), ``precision`` (the stages' inference precision
        hint), ``ops``: stage -> {"Convolution bf16": count, "Convolution u8": ...} for the
        convolutions, fully connected layers and ROIAligns, ``int8_convolutions`` (count over
        the stages) and ``threads``.
    """
    while not hasattr(model, "stages"):
        model = model.model
    ops: Dict[str, Dict[str, int]] = {}
    hints = set()
    for name, stage in model.stages.items():
        hints.add(str(stage.compiled.get_property("INFERENCE_PRECISION_HINT")))
        counts: Counter = Counter()
        for op in stage.compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            kind = info["layerType"].astype(str)
            if kind in ("Convolution", "FullyConnected", "Deconvolution", "ROIAlign"):
                counts[f"{kind} {info['runtimePrecision'].astype(str)}"] += 1
        ops[name] = dict(counts)
    int8 = sum(n for o in ops.values() for k, n in o.items() if k.endswith(("u8", "i8")))
    # the network and the work it was converted with, read from the PyTorch model it came from
    source = describe_model(getattr(model, "glue", None) or model.model)
    return {
        **{k: source[k] for k in ("arch", "sampling_ratios", "proposals", "detections")},
        "library": "torchvision" if "torchvision" in model.description else "trashpole",
        "engine": "openvino",
        "precision": "/".join(sorted(_PRECISIONS.get(h, h) for h in hints)),
        "ops": ops,
        "int8_convolutions": int8,
        "threads": torch.get_num_threads(),
    }


def openvino_label(setup: Dict[str, Any]) -> str:
    """A table label from :func:`describe_openvino`, e.g. ``trashpole R50-FPN on OpenVINO:
    bf16, int8 convolutions 43, ROIAlign 2, 1000 prop, 2 thr`` (what the runtime graphs hold, not
    what was asked for)."""
    parts = [setup["precision"]]
    if setup["int8_convolutions"]:
        parts.append(f"int8 convolutions {setup['int8_convolutions']}")
    ratios = "/".join("adaptive" if r == 0 else str(r) for r in setup["sampling_ratios"])
    parts += [f"ROIAlign {ratios}", f"{setup['proposals']} prop", f"{setup['threads']} thr"]
    return f"{setup['library']} {setup['arch']} on OpenVINO: " + ", ".join(parts)
