"""Instance masks to COCO polygons that rasterize back to the mask."""

from typing import Dict, Optional

import cv2
import numpy as np

from synthetic.scene import MIN_AREA
from trashpole.data.geometry import signed_polygon_area


def _offset_outwards(p: np.ndarray, dist: float) -> np.ndarray:
    """Moves every vertex of closed polygon ``p`` (ndarray[N, 2]) outwards by ``dist`` (mitred)."""
    edge = np.roll(p, -1, axis=0) - p
    edge /= np.maximum(np.linalg.norm(edge, axis=1, keepdims=True), 1e-9)
    normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1) * (
        1.0 if signed_polygon_area(p) > 0 else -1.0
    )
    prev = np.roll(normal, 1, axis=0)
    miter = (normal + prev) / np.maximum(1.0 + np.sum(normal * prev, axis=1, keepdims=True), 0.5)
    return p + dist * miter


def _contour_polygon(contour: np.ndarray, epsilon: float) -> Optional[np.ndarray]:
    """A contour of pixel indices -> polygon along the pixels' outer edges (COCO coordinates, in
    which pixel (i, j) covers [i, i+1] x [j, j+1]); None if it has fewer than 3 points."""
    approx = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
    if len(approx) < 3:
        approx = contour.reshape(-1, 2)
    if len(approx) < 3:
        return None
    return _offset_outwards(approx.astype(np.float64) + 0.5, 0.5)


def instance_to_annotation(
    mask: np.ndarray, min_area: int = MIN_AREA, epsilon: float = 0.6
) -> Optional[Dict]:
    """Turns an instance mask into a COCO polygon annotation.

    Every outer contour of the mask becomes one polygon, lightly simplified (``epsilon`` px) and
    traced along the outer edges of the boundary pixels, so that rasterizing the polygons with
    pycocotools gives back the mask. Parts smaller than ~15% of ``min_area`` are dropped.

    Args:
        mask: ndarray[H, W] of bool, the instance's visible pixels.
        min_area: masks with fewer pixels give None.
        epsilon: largest distance (px) between a simplified polygon and the contour.

    Returns:
        {"segmentation": list of flat [x1, y1, x2, y2, ...] lists (each >= 3 points, inside the
        image), "bbox": [x, y, w, h] of the polygons, "area": polygon area}, or None if the mask is
        too small.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"instance_to_annotation: expected a 2-D mask, got shape {mask.shape}")
    if int(mask.sum()) < min_area:
        return None
    h, w = mask.shape
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        poly = _contour_polygon(contour, epsilon)
        if poly is None:
            continue
        poly = np.round(np.clip(poly, 0, (w, h)), 2)
        if abs(signed_polygon_area(poly)) >= max(4.0, 0.15 * min_area):
            polygons.append(poly)
    if not polygons:
        return None
    pts = np.vstack(polygons)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return {
        "segmentation": [p.ravel().tolist() for p in polygons],
        "bbox": [float(x0), float(y0), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
        "area": round(sum(abs(signed_polygon_area(p)) for p in polygons), 2),
    }
