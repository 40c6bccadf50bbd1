#!/usr/bin/env python
"""
Run a trashpole model exported by tools/export_model.py, without trashpole or detectron2.

    python examples/run_exported.py --model export/model.ts --image street.jpg --draw out.jpg
    python examples/run_exported.py --model export/model.onnx --image street.jpg --json out.json

Needs numpy and opencv, plus torch and torchvision for a TorchScript file (importing torchvision
registers the roi_align and nms operators the graph calls) or onnxruntime for an ONNX file. The
class names, input size and channel order come from export_meta.json beside the model.

The steps are those of detectron2's DefaultPredictor and detector_postprocess: resize the shorter
side to the test size, run the graph on a float32 CHW image in 0-255 (it normalizes and pads
itself), scale the boxes back to the original image, clip them, drop empty ones, and paste each
M x M mask probability map into its box by bilinear sampling, thresholded at 0.5.
"""

import argparse
import json
import os
import sys
import warnings
from typing import Dict, List, Tuple

import cv2
import numpy as np

META_FILE = "export_meta.json"


def read_meta(model_path: str) -> Dict:
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), META_FILE)
    if not os.path.isfile(path):
        sys.exit(f"{path} not found: keep export_meta.json next to the exported model")
    with open(path) as f:
        return json.load(f)


def resized_shape(height: int, width: int, short: int, longest: int) -> Tuple[int, int]:
    """Size after scaling the shorter side to ``short`` with the longer side at most ``longest``."""
    if short <= 0:
        return height, width
    scale = short / min(height, width)
    new_h, new_w = height * scale, width * scale
    if max(new_h, new_w) > longest:
        shrink = longest / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


def preprocess(image_bgr: np.ndarray, meta: Dict) -> np.ndarray:
    """
    The model input of a BGR image: float32 [3, h, w] in 0-255, channels as the model expects.

    detectron2 resizes with PIL's bilinear filter, this with OpenCV's: on images that need
    resizing the inputs differ by a few grey levels, which can move borderline detections.
    """
    size = meta["input"]
    image = image_bgr[:, :, ::-1] if size["channel_order"] == "RGB" else image_bgr
    height, width = image.shape[:2]
    new_h, new_w = resized_shape(height, width, size["min_size_test"], size["max_size_test"])
    if (new_h, new_w) != (height, width):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


def run_model(model_path: str, image: np.ndarray, meta: Dict) -> Dict[str, np.ndarray]:
    """Run the exported graph on one input; returns its outputs by the names in the meta file."""
    if model_path.endswith(".onnx"):
        import onnxruntime

        session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        values = session.run(None, {meta["input"]["name"]: image})
    else:
        import torch
        import torchvision  # noqa: F401  (registers torchvision::roi_align and torchvision::nms)

        with warnings.catch_warnings():
            # torch >= 2.10 marks torch.jit deprecated; loading TorchScript still needs it
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated")
            module = torch.jit.load(model_path, map_location="cpu")
        with torch.no_grad():
            values = [v.numpy() for v in module(torch.from_numpy(image))]
    return dict(zip(meta["outputs"], values))


def _sampling_matrix(lo: float, hi: float, size: int, mask_size: int, start: int, stop: int):
    """
    Weights [size, mask_size] of bilinear sampling along one axis: row i samples the mask at the
    centre of output pixel i, mapped from the box [lo, hi] onto the mask's cells, with zeros
    outside the mask (grid_sample with align_corners=False) and outside [start, stop).
    """
    centres = np.arange(size, dtype=np.float32) + np.float32(0.5)
    grid = (centres - np.float32(lo)) / np.float32(hi - lo) * 2 - 1
    coords = ((grid + 1) * mask_size - 1) / 2
    left = np.floor(coords)
    frac = coords - left
    weights = np.zeros((size, mask_size), dtype=np.float32)
    rows = np.arange(size)
    for index, w in ((left, 1 - frac), (left + 1, frac)):
        inside = (index >= 0) & (index < mask_size)
        weights[rows[inside], index[inside].astype(int)] += w[inside]
    weights[:start] = 0
    weights[stop:] = 0
    return weights


def paste_mask(probs: np.ndarray, box: np.ndarray, height: int, width: int, threshold: float):
    """
    One mask at image size.

    Args:
        probs: float32 [M, M] mask probabilities over the box.
        box: [x0, y0, x1, y1] in image pixels.
        height, width: image size.
        threshold: probability at which a pixel is on.

    Returns:
        bool array [height, width].
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    # detectron2 pastes only over the box grown by one pixel; outside it the mask is off.
    xs = (max(int(np.floor(x0)) - 1, 0), min(int(np.ceil(x1)) + 1, width))
    ys = (max(int(np.floor(y0)) - 1, 0), min(int(np.ceil(y1)) + 1, height))
    wy = _sampling_matrix(y0, y1, height, probs.shape[0], *ys)
    wx = _sampling_matrix(x0, x1, width, probs.shape[1], *xs)
    return (wy @ probs @ wx.T) >= threshold


def postprocess(raw: Dict[str, np.ndarray], height: int, width: int, meta: Dict) -> Dict:
    """
    Detections at the original image size.

    Returns:
        boxes float32 [N, 4] XYXY, classes int64 [N], scores float32 [N], masks bool [N, H, W].
    """
    in_h, in_w = (int(v) for v in raw["image_size"])
    boxes = raw["pred_boxes"].astype(np.float32).copy()
    boxes[:, 0::2] *= np.float32(width / in_w)
    boxes[:, 1::2] *= np.float32(height / in_h)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, probs = boxes[keep], raw["pred_masks"][keep][:, 0]
    masks = np.zeros((len(boxes), height, width), dtype=bool)
    for i, (p, box) in enumerate(zip(probs, boxes)):
        masks[i] = paste_mask(p, box, height, width, meta["mask_threshold"])
    return {
        "boxes": boxes,
        "classes": raw["pred_classes"][keep].astype(np.int64),
        "scores": raw["scores"][keep].astype(np.float32),
        "masks": masks,
    }


def draw(image_bgr: np.ndarray, detections: Dict, names: List[str]) -> np.ndarray:
    """The image with each mask tinted and its box and "name score" drawn."""
    out = image_bgr.copy()
    rng = np.random.default_rng(0)
    for box, cls, score, mask in zip(
        *(detections[k] for k in ("boxes", "classes", "scores", "masks"))
    ):
        colour = rng.integers(64, 256, 3)
        out[mask] = (0.5 * out[mask] + 0.5 * colour).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        c = tuple(int(v) for v in colour)
        cv2.rectangle(out, (x0, y0), (x1, y1), c, 1)
        label = f"{names[cls]} {score:.2f}"
        cv2.putText(out, label, (x0, max(y0 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, c, 1)
    return out


def to_records(detections: Dict, names: List[str]) -> List[Dict]:
    return [
        {
            "category_id": int(cls),
            "category": names[cls],
            "score": float(score),
            "bbox_xyxy": [float(v) for v in box],
            "mask_area": int(mask.sum()),
        }
        for box, cls, score, mask in zip(
            *(detections[k] for k in ("boxes", "classes", "scores", "masks"))
        )
    ]


def main(argv=None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="model.ts or model.onnx")
    p.add_argument("--image", required=True, help="image file")
    p.add_argument("--score", type=float, default=0.0, help="print/keep detections scoring this+")
    p.add_argument("--draw", default=None, help="write the image with detections drawn here")
    p.add_argument("--json", default=None, help="write the detections (no masks) as JSON here")
    p.add_argument("--npz", default=None, help="write boxes, classes, scores, masks as .npz here")
    args = p.parse_args(argv)

    meta = read_meta(args.model)
    image = cv2.imread(args.image)
    if image is None:
        sys.exit(f"{args.image}: not a readable image")
    raw = run_model(args.model, preprocess(image, meta), meta)
    detections = postprocess(raw, image.shape[0], image.shape[1], meta)
    keep = detections["scores"] >= args.score
    detections = {k: v[keep] for k, v in detections.items()}

    names = meta["class_names"]
    records = to_records(detections, names)
    for r in records:
        box = ", ".join(f"{v:.1f}" for v in r["bbox_xyxy"])
        print(f"{r['category']:>12s} {r['score']:.3f} [{box}] mask {r['mask_area']} px")
    print(f"{len(records)} detections in {args.image}")
    if args.draw:
        cv2.imwrite(args.draw, draw(image, detections, names))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"file_name": args.image, "predictions": records}, f, indent=1)
    if args.npz:
        np.savez_compressed(args.npz, **detections)
    return detections


if __name__ == "__main__":
    main()
