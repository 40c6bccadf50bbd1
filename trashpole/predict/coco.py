"""Predictions as JSON records and as a COCO results file with the ids of a COCO JSON."""

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

from trashpole.errors import MissingFileError, UserError


def instances_to_records(instances, class_names: Sequence[str]) -> List[Dict]:
    """
    Predictions as JSON-ready dicts: class, score, box [x0, y0, x1, y1] and an RLE mask.

    Args:
        instances: detectron2 Instances on the CPU.
        class_names: names by contiguous class id.
    """
    records = []
    boxes = instances.pred_boxes.tensor.numpy().tolist() if instances.has("pred_boxes") else []
    masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
    for i in range(len(instances)):
        cls = int(instances.pred_classes[i])
        rec = {
            "category_id": cls,
            "category": class_names[cls],
            "score": round(float(instances.scores[i]), 5),
            "bbox_xyxy": [round(v, 2) for v in boxes[i]],
        }
        if masks is not None:
            rle = mask_util.encode(np.asfortranarray(masks[i].astype(np.uint8)))
            rec["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        records.append(rec)
    return records


def read_coco_ids(json_file: str, class_names: Sequence[str]) -> Tuple[Dict[str, int], List[int]]:
    """
    Image ids by file name and category ids by class of a COCO JSON.

    Args:
        json_file: a COCO JSON with ``images`` and ``categories``.
        class_names: the model's classes in contiguous-id order.

    Returns:
        (``{file_name: id}`` with both the JSON's ``file_name`` and its base name as keys,
        ``[category id of class 0, of class 1, ...]``)
    """

    if not os.path.isfile(json_file):
        raise MissingFileError(f"--coco-images {json_file!r} does not exist; give a COCO JSON")
    with open(json_file) as f:
        data = json.load(f)
    image_ids: Dict[str, int] = {}
    for image in data.get("images", []):
        image_ids[image["file_name"]] = image["id"]
        image_ids.setdefault(os.path.basename(image["file_name"]), image["id"])
    by_name = {c["name"]: c["id"] for c in data.get("categories", [])}
    missing = [n for n in class_names if n not in by_name]
    if missing:
        raise UserError(
            f"{json_file}: the model's classes {missing} are not among its categories "
            f"{sorted(by_name)}; give the COCO JSON of the data set the model was trained on"
        )
    return image_ids, [by_name[n] for n in class_names]


def coco_image_id(image_ids: Dict[str, int], path: str, json_file: Optional[str]) -> int:
    for key in (path, os.path.basename(path)):
        if key in image_ids:
            return image_ids[key]
    raise UserError(
        f"{json_file}: no image named {os.path.basename(path)!r} (from {path}); predict the "
        "images of that JSON's split, or leave out --coco-images to number the images in order"
    )


def records_to_coco(
    records: Sequence[Dict], image_id: int, category_ids: Sequence[int]
) -> List[Dict]:
    """
    One image's records (from :func:`instances_to_records`) as COCO results entries.

    Args:
        records: the image's predictions.
        image_id: the image's id in the COCO JSON.
        category_ids: data-set category id of each contiguous class id.

    Returns:
        list of ``{"image_id", "category_id", "bbox" (XYWH), "score", "segmentation"}``.
    """
    results = []
    for rec in records:
        x0, y0, x1, y1 = rec["bbox_xyxy"]
        entry = {
            "image_id": image_id,
            "category_id": category_ids[rec["category_id"]],
            "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
            "score": rec["score"],
        }
        if "segmentation" in rec:
            entry["segmentation"] = rec["segmentation"]
        results.append(entry)
    return results
