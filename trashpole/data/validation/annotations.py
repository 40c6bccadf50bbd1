"""Annotation records: category, polygons and RLE masks, boxes; repaired when that needs no guess,
skipped and counted when it would."""

import math
from typing import Any, Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_util
from detectron2.structures import BoxMode

from trashpole.data.geometry import (
    exif_transform_mask,
    exif_transform_points,
    polygon_area,
    segmentation_box,
)
from trashpole.data.validation.images import Entry
from trashpole.data.validation.problems import ValidationReport, is_id, is_int, is_number

# Boxes that stick out of the image by at most this many pixels are rounding, clipped silently.
BOX_TOLERANCE = 1.0

# ---------------------------------------------------------------------------------------------
# annotations


def load_annotations(
    annotations: List[Any],
    entries: Dict[Any, Entry],
    known_images: set,
    id_map: Dict[int, int],
    category_ids: List[int],
    report: ValidationReport,
    masks: bool = True,
) -> None:
    """Check every annotation and append the usable ones to their image's record."""
    seen: Dict[Any, Any] = {}
    listed = sorted(category_ids)
    for index, ann in enumerate(annotations):
        aid = ann.get("id") if isinstance(ann, dict) and is_id(ann.get("id")) else None
        label = f"annotation {aid}" if aid is not None else f"annotation at index {index}"
        if not isinstance(ann, dict) or not (is_id(ann.get("image_id")) and "category_id" in ann):
            report.add("annotation_record_invalid", label, "has no image_id or category_id")
            continue
        if aid is not None:
            if aid in seen:
                if seen[aid] == ann:
                    report.add("duplicate_annotation", label, "is listed twice; repeat dropped")
                    continue
                report.add("duplicate_annotation_id", label, "id is used by another annotation")
            else:
                seen[aid] = ann
        image_id, cid = ann["image_id"], ann["category_id"]
        if image_id not in known_images:
            report.add("unknown_image", label, f"refers to image {image_id}, which is not listed")
            continue
        if not is_int(cid) or cid not in id_map:
            text = f"refers to category {cid}, which is not in categories {listed}"
            report.add("unknown_category", label, text)
            continue
        entry = entries.get(image_id)
        if entry is None:
            report.stats["annotations_of_skipped_images"] += 1
            continue
        obj = _convert_annotation(ann, entry, label, report, masks)
        if obj is not None:
            obj["category_id"] = id_map[cid]
            entry.record["annotations"].append(obj)


def _convert_annotation(
    ann: dict, entry: Entry, label: str, report: ValidationReport, masks: bool = True
) -> Optional[dict]:
    """Segmentation and box of one annotation in the image's (EXIF-applied) frame, or None.

    With ``masks=False`` an annotation without a mask becomes a box-only record.
    """
    if not masks and _segmentation_is_missing(ann.get("segmentation")):
        if _parse_box(ann.get("bbox")) is None:
            text = f"has no segmentation and an unusable bbox {ann.get('bbox')!r}"
            report.add("bbox_missing", label, text)
            return None
        bbox = _convert_bbox(ann.get("bbox"), None, entry, label, report)
        if bbox is None:
            return None
        return {
            "bbox": bbox,
            "bbox_mode": BoxMode.XYWH_ABS,
            "iscrowd": 1 if ann.get("iscrowd") else 0,
        }
    segm = _convert_segmentation(ann.get("segmentation"), entry, label, report)
    if segm is None:
        return None
    bbox = _convert_bbox(ann.get("bbox"), segm, entry, label, report)
    if bbox is None:
        return None
    iscrowd = 1 if ann.get("iscrowd") else 0
    return {"bbox": bbox, "bbox_mode": BoxMode.XYWH_ABS, "segmentation": segm, "iscrowd": iscrowd}


def _segmentation_is_missing(segm: Any) -> bool:
    """No mask at all: absent, ``[]``, ``{}`` or ``[[]]`` (what box-only exports write)."""
    if segm is None or (isinstance(segm, (list, dict)) and len(segm) == 0):
        return True
    return isinstance(segm, list) and all(isinstance(p, list) and not p for p in segm)


def _convert_segmentation(segm: Any, entry: Entry, label: str, report: ValidationReport):
    if _segmentation_is_missing(segm):
        report.add("segmentation_missing", label, "has no segmentation (box only)")
        return None
    if isinstance(segm, dict):
        return _convert_rle(segm, entry, label, report)
    if not isinstance(segm, list):
        report.add("segmentation_invalid", label, f"has a segmentation of type {type(segm)}")
        return None
    if all(is_number(v) for v in segm):
        report.add("segmentation_flat", label, "has a flat polygon; it was wrapped in a list")
        segm = [segm]
    polygons = []
    for k, poly in enumerate(segm):
        checked = _check_polygon(poly, entry, f"{label} polygon {k}", report)
        if checked is not None:
            polygons.append(checked)
    if not polygons:
        report.add("segmentation_empty", label, "has no usable polygon left")
        return None
    return polygons


def _check_polygon(poly: Any, entry: Entry, label: str, report: ValidationReport):
    """One polygon as a flat list [x1, y1, ...] in the read_image frame, or None."""
    try:
        pts = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        pts = None
    if pts is None or pts.ndim != 1 or len(pts) % 2 or not np.isfinite(pts).all():
        report.add("polygon_degenerate", label, "is not a flat list of numbers [x1, y1, ...]")
        return None
    if len(pts) < 6:
        report.add("polygon_degenerate", label, f"has {len(pts) // 2} points; needs at least 3")
        return None
    xy = pts.reshape(-1, 2)
    if entry.exif:
        xy = exif_transform_points(xy, *entry.exif)
    if polygon_area(xy) <= 1e-6:
        report.add("polygon_degenerate", label, "has zero area")
        return None
    w, h = entry.record["width"], entry.record["height"]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    if hi[0] <= 0 or hi[1] <= 0 or lo[0] >= w or lo[1] >= h:
        report.add("polygon_outside", label, f"lies outside the {w}x{h} image")
        return None
    return xy.ravel().tolist() if entry.exif else list(poly)


def _convert_rle(segm: dict, entry: Entry, label: str, report: ValidationReport):
    """A compressed RLE dict (``counts`` as str) in the read_image frame, or None."""
    jw, jh = entry.json_size
    size, counts = segm.get("size"), segm.get("counts")
    if not isinstance(size, (list, tuple)) or [int(v) for v in size if is_number(v)] != [jh, jw]:
        text = f"has RLE size {size!r}; the image is [height, width] = [{jh}, {jw}]"
        report.add("rle_invalid", label, text)
        return None
    try:
        if isinstance(counts, list):
            if not all(is_int(c) and c >= 0 for c in counts) or sum(counts) != jh * jw:
                raise ValueError(f"uncompressed counts must be {jh * jw} pixels in total")
            rle = mask_util.frPyObjects({"size": [jh, jw], "counts": counts}, jh, jw)
        elif isinstance(counts, (str, bytes)):
            raw = counts.encode("ascii") if isinstance(counts, str) else counts
            rle = {"size": [jh, jw], "counts": raw}
        else:
            raise ValueError(f"counts of type {type(counts).__name__}")
        area = int(mask_util.area(rle))
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        report.add("rle_invalid", label, f"has an unreadable RLE: {e}")
        return None
    if not 0 < area <= jh * jw:
        report.add("segmentation_empty", label, f"has an RLE mask of {area} pixels")
        return None
    if entry.exif:
        mask = exif_transform_mask(mask_util.decode(rle), entry.exif[0])
        rle = mask_util.encode(np.asfortranarray(mask))
    counts = rle["counts"]
    return {
        "size": list(rle["size"]),
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def _convert_bbox(box: Any, segm: Any, entry: Entry, label: str, report: ValidationReport):
    """The box [x, y, w, h] clipped to the image, or None if nothing is left."""
    xyxy = _parse_box(box)
    if xyxy is not None and entry.exif:
        corners = np.array([xyxy[:2], xyxy[2:]])
        pts = exif_transform_points(corners, *entry.exif)
        xyxy = pts.min(axis=0).tolist() + pts.max(axis=0).tolist()
    if xyxy is None:
        xyxy = segmentation_box(segm).tolist()
        report.add("bbox_invalid", label, f"has bbox {box!r}; rebuilt from the segmentation")
    w, h = entry.record["width"], entry.record["height"]
    # plain floats: this runs for every annotation and numpy's per-call cost dominates here
    x0, y0 = min(max(xyxy[0], 0.0), w), min(max(xyxy[1], 0.0), h)
    x1, y1 = min(max(xyxy[2], 0.0), w), min(max(xyxy[3], 0.0), h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        report.add("bbox_outside", label, f"has bbox {box!r} outside the {w}x{h} image")
        return None
    if max(abs(a - b) for a, b in zip((x0, y0, x1, y1), xyxy)) > BOX_TOLERANCE:
        report.add("bbox_clipped", label, f"has bbox {box!r} beyond the {w}x{h} image; clipped")
    return [x0, y0, x1 - x0, y1 - y0]


def _parse_box(box: Any) -> Optional[List[float]]:
    """[x0, y0, x1, y1] from a COCO [x, y, w, h], or None if malformed or empty."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(is_number(v) for v in box):
        return None
    x, y, w, h = (float(v) for v in box)
    if not (math.isfinite(x + y + w + h) and w > 0 and h > 0):
        return None
    return [x, y, x + w, y + h]
