#!/usr/bin/env python
"""
Run a trashpole model exported to OpenVINO IR, without trashpole: OpenVINO runs the three
networks, detectron2 the steps between them.

    python tools/export_model.py --run output/demo --format openvino --output export_ov
    python examples/run_openvino.py --export export_ov --image street.jpg --draw out.jpg

Needs openvino, detectron2 (its Python code: anchors, proposal decoding, NMS, mask pasting),
torch, numpy and OpenCV. The export folder holds features.xml, boxes.xml and masks.xml (+ .bin),
config.yaml (the model's detectron2 config, for the steps between the networks; its weights are
not used) and export_meta.json (class names, input size).

The steps, as detectron2's GeneralizedRCNN.inference does them:
1. resize the shorter side to the test size; normalize and pad (``model.preprocess_image``);
2. features.xml: FPN features + the RPN's objectness logits and anchor deltas;
3. anchors, proposal decoding and NMS (``rpn.predict_proposals``);
4. boxes.xml on the proposals: class scores and box deltas; then box decoding and per-class NMS
   (``box_predictor.inference``);
5. masks.xml on the detected boxes: mask logits; then ``mask_rcnn_inference`` and
   ``detector_postprocess`` (boxes back to the image, masks pasted at 0.5).
"""

import argparse
import json
import os
import sys

import cv2
import numpy as np
import openvino as ov
import torch
from detectron2.config import get_cfg
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_inference


def load(export_dir: str, precision: str):
    """The export's meta, the detectron2 model whose code runs between the networks, and the
    compiled networks."""
    with open(os.path.join(export_dir, "export_meta.json")) as f:
        meta = json.load(f)
    cfg = get_cfg()
    cfg.set_new_allowed(True)  # the config also holds trashpole's own keys
    cfg.merge_from_file(os.path.join(export_dir, meta["glue_config"]))
    cfg.MODEL.DEVICE, cfg.MODEL.WEIGHTS = "cpu", ""
    model = build_model(cfg).eval()
    core = ov.Core()
    hint = {"INFERENCE_PRECISION_HINT": precision}
    nets = {
        name: core.compile_model(os.path.join(export_dir, file), "CPU", hint)
        for name, file in meta["stages"].items()
    }
    return meta, model, nets


def infer(net, *tensors: torch.Tensor):
    """One OpenVINO call on torch tensors; its outputs as torch tensors."""
    result = net([t.numpy() for t in tensors])
    return [torch.from_numpy(result[out].copy()) for out in net.outputs]


@torch.no_grad()
def predict(meta, model, nets, image_bgr: np.ndarray):
    """Detections of one BGR image, at its size (detectron2 Instances)."""
    size = meta["input"]
    image = image_bgr[:, :, ::-1] if size["channel_order"] == "RGB" else image_bgr
    resize = T.ResizeShortestEdge([size["min_size_test"]] * 2, size["max_size_test"])
    image = resize.get_transform(image).apply_image(image)
    tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)).astype("float32"))
    images = model.preprocess_image([{"image": tensor}])

    outputs = infer(nets["features"], images.tensor)
    names = meta["features"]
    features = dict(zip(names, outputs[: len(names)]))
    rpn, heads = model.proposal_generator, model.roi_heads
    levels = len(rpn.in_features)
    logits, deltas = outputs[len(names) :][:levels], outputs[len(names) :][levels:]
    anchors = rpn.anchor_generator([features[n] for n in rpn.in_features])
    proposals = rpn.predict_proposals(anchors, logits, deltas, images.image_sizes)

    box_inputs = [features[n] for n in meta["stage_inputs"]["boxes"]]
    scores_deltas = infer(nets["boxes"], *box_inputs, proposals[0].proposal_boxes.tensor)
    instances = heads.box_predictor.inference(tuple(scores_deltas), proposals)[0]
    if "masks" in nets and len(instances[0]):
        mask_inputs = [features[n] for n in meta["stage_inputs"]["masks"]]
        (mask_logits,) = infer(nets["masks"], *mask_inputs, instances[0].pred_boxes.tensor)
        mask_rcnn_inference(mask_logits, instances)
    height, width = image_bgr.shape[:2]
    return detector_postprocess(instances[0], height, width)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--export", required=True, help="folder written by --format openvino")
    p.add_argument("--image", required=True, help="a photo")
    p.add_argument("--precision", default="f32", help="f32, or bf16 on CPUs that have it")
    p.add_argument("--json", help="write the detections (boxes, classes, scores) here")
    p.add_argument("--draw", help="write the image with the masks drawn here")
    args = p.parse_args(argv)
    image = cv2.imread(args.image)
    if image is None:
        sys.exit(f"{args.image}: not a readable image")
    meta, model, nets = load(args.export, args.precision)
    found = predict(meta, model, nets, image)
    names = meta["class_names"]
    records = [
        {"class": names[int(c)], "score": round(float(s), 4), "bbox_xyxy": b.tolist()}
        for b, c, s in zip(found.pred_boxes.tensor, found.pred_classes, found.scores)
    ]
    print(f"{len(records)} detections")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    if args.draw and found.has("pred_masks"):
        for mask in found.pred_masks.numpy():
            image[mask] = (0.5 * image[mask] + (0, 90, 200)).astype(np.uint8)
        cv2.imwrite(args.draw, image)
    return records


if __name__ == "__main__":
    main()
