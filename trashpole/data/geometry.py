"""Plane geometry of annotations: polygon areas, mask boxes and EXIF re-orientation of points
and masks. Shared by the data checks and the synthetic export."""

from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

# EXIF orientation -> the PIL transpose that shows the image upright (as detectron2's read_image)
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def signed_polygon_area(xy: np.ndarray) -> float:
    """Signed area of a closed polygon ndarray[N, 2] (shoelace): positive when its vertices run
    counter-clockwise in a y-up frame (clockwise on screen, where y grows downwards)."""
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def polygon_area(xy: np.ndarray) -> float:
    """Area of a simple polygon given as ndarray[N, 2]."""
    return abs(signed_polygon_area(xy))


def exif_transform_points(xy: np.ndarray, orientation: int, width: int, height: int) -> np.ndarray:
    """Move points drawn on raw (un-rotated) pixels to where ``read_image`` shows them.

    Args:
        xy: ndarray[N, 2] of (x, y) in the raw image, pixel-edge coordinates (0..width).
        orientation: EXIF orientation 1..8.
        width, height: size of the raw image.

    Returns:
        ndarray[N, 2] of (x, y) in the image after the EXIF orientation is applied.
    """
    x, y = xy[:, 0], xy[:, 1]
    W, H = width, height
    out = {
        2: (W - x, y),
        3: (W - x, H - y),
        4: (x, H - y),
        5: (y, x),
        6: (H - y, x),
        7: (H - y, W - x),
        8: (y, W - x),
    }.get(orientation, (x, y))
    return np.stack(out, axis=1)


def exif_transform_mask(mask: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to a mask (ndarray[H, W] of uint8) the way read_image does."""
    method = EXIF_TRANSPOSE.get(orientation)
    if method is None:
        return mask
    return np.asarray(Image.fromarray(mask).transpose(method))


def segmentation_area(segm: Any) -> float:
    """Mask area in pixels of a list of polygons (summed) or an RLE dict."""
    if isinstance(segm, dict):
        counts = segm["counts"]
        rle = {
            "size": segm["size"],
            "counts": counts.encode() if isinstance(counts, str) else counts,
        }
        return float(mask_util.area(rle))
    return sum(polygon_area(np.asarray(p, dtype=np.float64).reshape(-1, 2)) for p in segm)


def segmentation_box(segm: Any) -> np.ndarray:
    """Tight [x0, y0, x1, y1] of a list of polygons or an RLE dict."""
    if isinstance(segm, dict):
        counts = segm["counts"]
        rle = {
            "size": segm["size"],
            "counts": counts.encode() if isinstance(counts, str) else counts,
        }
        x, y, w, h = mask_util.toBbox(rle)
        return np.array([x, y, x + w, y + h], dtype=np.float64)
    xy = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segm])
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])
