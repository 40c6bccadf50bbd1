"""
Mask R-CNN split where its shapes stop being static, so that an engine can run the networks and
detectron2 the rest.

Three networks hold nearly all the multiply-adds, and each has a static graph for any image size
and any number of boxes:

- :class:`FeatureStage`: normalized, padded image -> FPN features and the RPN head's outputs
  (already flattened as ``RPN.forward`` flattens them);
- :class:`BoxStage`: features + proposal boxes -> class scores and box deltas (ROIAlign on the
  FPN levels, box head, box predictor's linear layers);
- :class:`MaskStage`: features + detected boxes -> mask logits (ROIAlign, mask head).

Between them, :func:`run_stages` runs detectron2's own code, which has data-dependent control
flow that no graph exporter captures: anchors, proposal decoding and NMS
(``RPN.predict_proposals``), box decoding and per-class NMS (``FastRCNNOutputLayers.inference``),
mask selection (``mask_rcnn_inference``) and pasting at image size (``detector_postprocess``).
That glue holds no weights, so the same code serves every backend: the PyTorch stages (the
reference the tests compare with) and the OpenVINO ones (:mod:`trashpole.predict.openvino`).
"""

import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.modeling import GeneralizedRCNN
from detectron2.modeling.poolers import ROIPooler, assign_boxes_to_levels
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_inference
from detectron2.structures import Boxes, Instances
from torch import nn

from trashpole.errors import UserError

# A stage as the glue calls it: tensors in, a tuple of tensors out.
StageFn = Callable[..., Sequence[torch.Tensor]]


def check_supported(model: nn.Module) -> None:
    """Raise a UserError unless ``model`` is a Mask R-CNN / Faster R-CNN that the stages cover:
    a ``GeneralizedRCNN`` with an RPN and ``StandardROIHeads`` over several FPN levels."""
    heads = getattr(model, "roi_heads", None)
    if not isinstance(model, GeneralizedRCNN) or type(heads) is not StandardROIHeads:
        raise UserError(
            f"the OpenVINO backend runs GeneralizedRCNN with StandardROIHeads (Mask R-CNN, "
            f"Faster R-CNN); this config builds {type(model).__name__} with "
            f"{type(heads).__name__}: use --backend pytorch"
        )
    if model.proposal_generator is None:
        raise UserError("the OpenVINO backend needs an RPN (MODEL.PROPOSAL_GENERATOR.NAME RPN)")


def blocked_layout_hint(feature: torch.Tensor) -> torch.Tensor:
    """
    ``feature`` through a 1x1 depthwise convolution with weight 1: the same values (exactly, in
    fp32), but in OpenVINO's CPU plugin a convolution's output comes in its blocked layout
    (nChw16c), where ROIAlign reads 16 channels at once. Fed from a stage input, which is planar
    NCHW, OpenVINO's ROIAlign reads one channel at a time: 1000 boxes on a 160x160x256 map took
    about 3x longer that way (docs/performance.md).
    """
    channels = feature.shape[1]
    weight = torch.ones((channels, 1, 1, 1), dtype=feature.dtype, device=feature.device)
    return nn.functional.conv2d(feature, weight, groups=channels)


def pool_boxes(pooler: ROIPooler, features: List[torch.Tensor], boxes: torch.Tensor):
    """
    detectron2's multi-level ROIAlign (``ROIPooler.forward``) for the boxes of one image, written
    so that ``torch.export`` keeps the number of boxes symbolic.

    Args:
        pooler: the ROI head's pooler (its level poolers, levels and canonical size are used).
        features: Tensor[1, C, Hl, Wl] per level, finest first.
        boxes: Tensor[R, 4] of float32, XYXY in input pixels.

    Returns:
        Tensor[R, C, S, S] of pooled features (S: the pooler's output size).
    """
    features = [blocked_layout_hint(f) for f in features]
    levels = assign_boxes_to_levels(
        [Boxes(boxes)],
        pooler.min_level,
        pooler.max_level,
        pooler.canonical_box_size,
        pooler.canonical_level,
    )
    rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], dim=1)
    size = pooler.output_size
    out = features[0].new_zeros((boxes.shape[0], features[0].shape[1], size[0], size[1]))
    for level, level_pooler in enumerate(pooler.level_poolers):
        index = torch.nonzero(levels == level).squeeze(1)
        out = out.index_put((index,), level_pooler(features[level], rois[index]))
    return out


def feature_names(model: GeneralizedRCNN) -> List[str]:
    """The FPN features the RPN and the ROI heads read, in the backbone's order."""
    heads = model.roi_heads
    wanted = list(model.proposal_generator.in_features) + list(heads.box_in_features)
    if heads.mask_on:
        wanted += list(heads.mask_in_features)
    return [n for n in model.backbone.output_shape() if n in wanted]


class FeatureStage(nn.Module):
    """
    Backbone + FPN + RPN head of a built detectron2 model (shares its modules).

    ``forward(image)``: ``image`` is Tensor[1, 3, H, W] of float32, normalized and padded to the
    backbone's size divisibility. Returns, in order: the FPN features of ``feature_names``
    (Tensor[1, C, Hl, Wl] each), then per RPN level the objectness logits Tensor[1, Hl*Wl*A] and
    the anchor deltas Tensor[1, Hl*Wl*A, 4], flattened as ``RPN.forward`` does.
    """

    def __init__(self, model: GeneralizedRCNN):
        super().__init__()
        self.backbone = model.backbone
        self.rpn_head = model.proposal_generator.rpn_head
        self.rpn_features = list(model.proposal_generator.in_features)
        self.feature_names = feature_names(model)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        features = self.backbone(image)
        logits, deltas = self.rpn_head([features[n] for n in self.rpn_features])
        flat: List[torch.Tensor] = []
        for score in logits:
            flat.append(score.permute(0, 2, 3, 1).flatten(1))
        for delta in deltas:
            n, _, h, w = delta.shape
            flat.append(delta.view(n, -1, 4, h, w).permute(0, 3, 4, 1, 2).flatten(1, -2))
        return tuple(features[n] for n in self.feature_names) + tuple(flat)


class BoxStage(nn.Module):
    """ROIAlign + box head + box predictor's linear layers. ``forward(*features, boxes)`` with
    the box head's features (Tensor[1, C, Hl, Wl] each) and Tensor[R, 4] proposals returns
    ``(scores Tensor[R, K+1], deltas Tensor[R, 4K])`` (logits, as the predictor gives them)."""

    def __init__(self, model: GeneralizedRCNN):
        super().__init__()
        heads = model.roi_heads
        self.pooler, self.head, self.predictor = (
            heads.box_pooler,
            heads.box_head,
            heads.box_predictor,
        )

    def forward(self, *inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        *features, boxes = inputs
        return self.predictor(self.head(pool_boxes(self.pooler, list(features), boxes)))


class MaskStage(nn.Module):
    """ROIAlign + the mask head's layers. ``forward(*features, boxes)`` returns the mask logits
    Tensor[R, K or 1, M, M] of the given Tensor[R, 4] boxes."""

    def __init__(self, model: GeneralizedRCNN):
        super().__init__()
        heads = model.roi_heads
        self.pooler, self.head = heads.mask_pooler, heads.mask_head

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *features, boxes = inputs
        return self.head.layers(pool_boxes(self.pooler, list(features), boxes))


def build_stages(model: GeneralizedRCNN) -> Dict[str, nn.Module]:
    """The stages of a built model (sharing its weights): ``{"features", "boxes"[, "masks"]}``."""
    check_supported(model)
    stages = {"features": FeatureStage(model), "boxes": BoxStage(model)}
    if model.roi_heads.mask_on:
        stages["masks"] = MaskStage(model)
    return stages


def stage_inputs(model: GeneralizedRCNN) -> Dict[str, List[str]]:
    """Names of the FPN features each ROI stage takes, in order (a subset of the feature
    stage's ``feature_names``)."""
    heads = model.roi_heads
    names = {"boxes": list(heads.box_in_features)}
    if heads.mask_on:
        names["masks"] = list(heads.mask_in_features)
    return names


class Laps:
    """Wall time of each phase of :func:`run_stages`, added up over calls (seconds by phase);
    ``lap(name)`` charges the time since the previous lap to ``name``."""

    def __init__(self):
        self.seconds: Dict[str, float] = {}
        self._last = time.perf_counter()

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now

    @staticmethod
    def off() -> "Laps":
        """Laps that time nothing (what code timed only by the benchmarks runs with)."""
        return _NoLaps()


class _NoLaps(Laps):
    def lap(self, name: str) -> None:
        pass


@torch.no_grad()
def run_stages(
    model: GeneralizedRCNN,
    stages: Dict[str, StageFn],
    batched_inputs: List[Dict],
    laps: Optional[Laps] = None,
) -> List[Dict[str, Instances]]:
    """
    ``GeneralizedRCNN.inference`` with the networks run by ``stages`` and detectron2's own
    code in between (see the module docstring); images go one at a time.

    Args:
        model: the detectron2 model whose glue (preprocessing, anchors, decoding, NMS,
            postprocessing) runs; its weights are not used.
        stages: callables for ``"features"``, ``"boxes"`` and (Mask R-CNN) ``"masks"`` with the
            signatures of :class:`FeatureStage`, :class:`BoxStage` and :class:`MaskStage`.
        batched_inputs: detectron2's model inputs: ``{"image": Tensor[3, h, w], "height",
            "width"}`` per image, the image already resized.
        laps: where to add up the time of each phase (the stages, the glue between them and
            the pasting), for the benchmarks; None times nothing.

    Returns:
        ``[{"instances": Instances}]`` at each image's original size, as the model returns.
    """
    rpn, heads = model.proposal_generator, model.roi_heads
    names = feature_names(model)
    per_stage = stage_inputs(model)
    laps = laps or Laps.off()
    results = []
    for inputs in batched_inputs:
        laps.start()
        images = model.preprocess_image([inputs])
        laps.lap("preprocess")
        outputs = list(stages["features"](images.tensor))
        laps.lap("features")
        features = dict(zip(names, outputs[: len(names)]))
        flat = outputs[len(names) :]
        num_levels = len(rpn.in_features)
        anchors = rpn.anchor_generator([features[n] for n in rpn.in_features])
        proposals = rpn.predict_proposals(
            anchors, flat[:num_levels], flat[num_levels:], images.image_sizes
        )
        laps.lap("proposals")
        instances = _detect(heads, stages, features, per_stage, proposals, laps)
        height = inputs.get("height", images.image_sizes[0][0])
        width = inputs.get("width", images.image_sizes[0][1])
        results.append({"instances": detector_postprocess(instances, height, width)})
        laps.lap("paste")
    return results


def _detect(heads, stages, features, per_stage, proposals, laps: Laps) -> Instances:
    """Box stage, detectron2's box inference, mask stage and mask selection for one image."""
    boxes = proposals[0].proposal_boxes.tensor
    box_features = [features[n] for n in per_stage["boxes"]]
    if len(boxes):
        scores, deltas = stages["boxes"](*box_features, boxes)
    else:  # no proposal survived: nothing to classify
        classes = heads.num_classes
        scores, deltas = boxes.new_zeros((0, classes + 1)), boxes.new_zeros((0, 4 * classes))
    laps.lap("boxes")
    instances = heads.box_predictor.inference((scores, deltas), proposals)[0][0]
    laps.lap("box decoding and NMS")
    if "masks" not in stages:
        return instances
    detected = instances.pred_boxes.tensor
    if len(detected):
        logits = stages["masks"](*[features[n] for n in per_stage["masks"]], detected)
    else:
        size = heads.mask_pooler.output_size[0] * 2  # the standard head upsamples once
        logits = detected.new_zeros((0, 1, size, size))
    laps.lap("masks")
    mask_rcnn_inference(logits, [instances])
    laps.lap("mask selection")
    return instances
