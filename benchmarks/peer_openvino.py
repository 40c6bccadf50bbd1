"""
The same-engine peer of the inference benchmark: torchvision's ``maskrcnn_resnet50_fpn`` run by
OpenVINO, split as trashpole's model is (:mod:`trashpole.predict.stages`) and converted the same
way (``torch.export`` + ``openvino.convert_model``), with torchvision's own code in between.

Neither torchvision's model as a whole nor its ONNX file converts: ``openvino.convert_model`` on
the module fails in tracing, and OpenVINO 2026.4 rejects the ONNX file's ``Loop`` node (checked
with torchvision 0.29.1). The split is the one that works for both models, so that the
comparison is engine against engine on the same shape of work:

- features: ``backbone`` (ResNet-50 + FPN) + ``rpn.head``;
- boxes: ``box_roi_pool`` (MultiScaleRoIAlign) + ``box_head`` + ``box_predictor``;
- masks: ``mask_roi_pool`` + ``mask_head`` + ``mask_predictor``;
- between them, torchvision's ``transform``, anchors, ``filter_proposals``,
  ``postprocess_detections``, ``maskrcnn_inference`` and ``transform.postprocess``.
"""

from collections import OrderedDict
from typing import Dict, List

import torch
from torch import nn


class _Features(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.backbone, self.head = model.backbone, model.rpn.head

    def forward(self, images: torch.Tensor):
        features = list(self.backbone(images).values())
        objectness, deltas = self.head(features)
        return tuple(features) + tuple(objectness) + tuple(deltas)


def _pool(pool, features: List[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
    """torchvision's MultiScaleRoIAlign for one image (its level mapper, scales and sampling;
    ``aligned=False`` as torchvision), with the number of boxes left symbolic for export."""
    from torchvision.ops import roi_align

    levels = pool.map_levels([boxes])
    rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], dim=1)
    size = pool.output_size
    out = features[0].new_zeros((boxes.shape[0], features[0].shape[1], size[0], size[1]))
    for level, scale in enumerate(pool.scales):
        index = torch.nonzero(levels == level).squeeze(1)
        pooled = roi_align(features[level], rois[index], size, scale, pool.sampling_ratio)
        out = out.index_put((index,), pooled)
    return out


class _Rois(nn.Module):
    """ROI pooling + head + predictor for one image (the pooler's scales and level mapper are
    set by one eager call of torchvision's pooler before export)."""

    def __init__(self, pool, head, predictor):
        super().__init__()
        self.pool, self.head, self.predictor = pool, head, predictor

    def forward(self, f0, f1, f2, f3, boxes):
        return self.predictor(self.head(_pool(self.pool, [f0, f1, f2, f3], boxes)))


def _export(module: nn.Module, args, shapes):
    import openvino as ov

    from trashpole.compat.openvino import telemetry_off

    program = torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
    with telemetry_off():
        return ov.convert_model(program)


class TorchvisionOpenVINO:
    """
    torchvision's Mask R-CNN on OpenVINO (see the module docstring), for images of one size
    (the benchmark's): ``model([image])`` takes torchvision's input (Tensor[3, H, W] of float
    RGB in 0-1) and returns its output dicts.

    Args:
        model: torchvision's ``MaskRCNN`` in eval mode.
        image: a sample input of the benchmark's size.
        precision: "bf16" or "f32".
    """

    def __init__(self, model, image: torch.Tensor, precision: str):
        from torch.export import Dim

        from trashpole.predict.openvino import compile_stages

        self.model = model
        with torch.no_grad():
            images, _ = model.transform([image])
            outputs = _Features(model)(images.tensors)
        features = outputs[:5]
        size = tuple(images.image_sizes[0])
        boxes = torch.tensor([[4.0, 4.0, 60.0, 90.0], [10.0, 20.0, 200.0, 120.0]])
        heads = model.roi_heads
        rois = {
            "boxes": _Rois(heads.box_roi_pool, heads.box_head, heads.box_predictor),
            "masks": _Rois(heads.mask_roi_pool, heads.mask_head, heads.mask_predictor),
        }
        converted = {"features": _export(_Features(model), (images.tensors,), None)}
        named = OrderedDict((str(i), f) for i, f in enumerate(features[:4]))
        for name, module in rois.items():
            with torch.no_grad():  # torchvision's pooler sets its scales from the real sizes
                module.pool(named, [boxes], [size])
            shapes = (None, None, None, None, {0: Dim("boxes", min=1)})
            converted[name] = _export(module, (*features[:4], boxes), shapes)
        self.stages = compile_stages(converted, precision)
        self.description = f"torchvision openvino {precision}"

    @torch.no_grad()
    def __call__(self, inputs: List[torch.Tensor]) -> List[Dict]:
        model, results = self.model, []
        for image in inputs:
            images, _ = model.transform([image])
            results.append(self._one(images, [tuple(image.shape[-2:])])[0])
        return results

    def _one(self, images, original_sizes):
        from torchvision.models.detection.roi_heads import maskrcnn_inference
        from torchvision.models.detection.rpn import concat_box_prediction_layers

        model, rpn = self.model, self.model.rpn
        outputs = self.stages["features"](images.tensors)
        features = list(outputs[:5])
        objectness, deltas = list(outputs[5:10]), list(outputs[10:15])
        anchors = rpn.anchor_generator(images, features)
        per_level = [o[0].numel() for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        proposals = rpn.box_coder.decode(deltas, anchors).view(1, -1, 4)
        boxes, _ = rpn.filter_proposals(proposals, objectness, images.image_sizes, per_level)
        logits, regression = self.stages["boxes"](*features[:4], boxes[0])
        heads = model.roi_heads
        detected, scores, labels = heads.postprocess_detections(
            logits, regression, boxes, images.image_sizes
        )
        result = [{"boxes": detected[0], "scores": scores[0], "labels": labels[0]}]
        if len(detected[0]):
            mask_logits = self.stages["masks"](*features[:4], detected[0])
            result[0]["masks"] = maskrcnn_inference(mask_logits, labels)[0]
        return model.transform.postprocess(result, images.image_sizes, original_sizes)
