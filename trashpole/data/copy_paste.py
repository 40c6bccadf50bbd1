"""
Copy-paste of instances between training images (after each has been augmented).

A donor instance is pasted where it lies in the donor image, and only where it covers no pixel of
an instance already there: the polygons of the receiving image then need no cutting, and the
pasted ones are the donor's (clipped to the image), so every mask stays exact.
"""

from typing import List, Tuple

import numpy as np
from detectron2.structures import BoxMode
from detectron2.structures.masks import polygons_to_bitmask

from .polygons import clip_polygon, polygon_area


def instance_mask(annotation: dict, height: int, width: int) -> np.ndarray:
    """
    The mask of a transformed annotation on a (height, width) image.

    Args:
        annotation: a dict after ``transform_instance_annotations``: ``segmentation`` is a list
            of flat polygons or an ndarray[h, w] mask.
        height, width: the image.

    Returns:
        ndarray[height, width] of bool (a larger mask is cut, a smaller one padded with False).
    """
    segm = annotation["segmentation"]
    if isinstance(segm, list):
        return polygons_to_bitmask([np.asarray(p, dtype=np.float64) for p in segm], height, width)
    out = np.zeros((height, width), dtype=bool)
    h, w = min(height, segm.shape[0]), min(width, segm.shape[1])
    out[:h, :w] = segm[:h, :w].astype(bool)
    return out


def clip_annotation(annotation: dict, height: int, width: int) -> dict:
    """A copy of a transformed annotation clipped to a (height, width) image, with its box
    recomputed from its mask (XYXY_ABS); ``segmentation`` is empty when nothing is left."""
    a = dict(annotation)
    segm = a["segmentation"]
    if isinstance(segm, list):
        polys = [clip_polygon(np.reshape(p, (-1, 2)), width, height) for p in segm]
        polys = [p for p in polys if len(p) >= 3 and polygon_area(p) > 0]
        a["segmentation"] = [p.reshape(-1) for p in polys]
        points = np.concatenate(polys) if polys else np.zeros((0, 2))
        lo, hi = (points.min(0), points.max(0)) if len(points) else (np.zeros(2), np.zeros(2))
    else:
        mask = instance_mask(a, height, width)
        a["segmentation"] = mask
        ys, xs = np.nonzero(mask)
        lo = np.array([xs.min(), ys.min()]) if len(xs) else np.zeros(2)
        hi = np.array([xs.max() + 1, ys.max() + 1]) if len(xs) else np.zeros(2)
    a["bbox"] = [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])]
    a["bbox_mode"] = BoxMode.XYXY_ABS
    return a


def is_empty(annotation: dict) -> bool:
    """Whether a (clipped) annotation has no mask left."""
    segm = annotation["segmentation"]
    return len(segm) == 0 if isinstance(segm, list) else not segm.any()


def copy_paste(
    image: np.ndarray,
    annotations: List[dict],
    donor_image: np.ndarray,
    donor_annotations: List[dict],
    rng: np.random.RandomState,
) -> Tuple[np.ndarray, List[dict], int]:
    """
    Paste a random, non-empty subset of the donor's instances into an image.

    Each chosen donor instance, clipped to the image, is pasted (its pixels copied) unless it
    would cover a pixel of an instance of the image or of one pasted before it.

    Args:
        image: ndarray[H, W, C], the receiving image (not modified).
        annotations: its transformed annotations (not modified).
        donor_image: ndarray[h, w, C], the donor image (any size; what lies outside H x W is
            not pasted).
        donor_annotations: the donor's transformed annotations.
        rng: the random generator.

    Returns:
        (new image, annotations with the pasted ones appended, number pasted).
    """
    h, w = image.shape[:2]
    ph, pw = min(h, donor_image.shape[0]), min(w, donor_image.shape[1])
    occupied = np.zeros((h, w), dtype=bool)
    for a in annotations:
        occupied |= instance_mask(a, h, w)
    out, pasted = image.copy(), list(annotations)
    if not donor_annotations:
        return out, pasted, 0
    count = rng.randint(1, len(donor_annotations) + 1)
    chosen = rng.choice(len(donor_annotations), size=count, replace=False)
    for i in sorted(chosen):
        candidate = clip_annotation(donor_annotations[i], ph, pw)
        if is_empty(candidate):
            continue
        mask = instance_mask(candidate, h, w)
        if not mask.any() or (mask & occupied).any():
            continue
        out[mask] = donor_image[:ph, :pw][mask[:ph, :pw]]
        occupied |= mask
        if not isinstance(candidate["segmentation"], list):
            candidate["segmentation"] = mask
        pasted.append(candidate)
    return out, pasted, len(pasted) - len(annotations)
