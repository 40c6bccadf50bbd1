"""
The pictures of report.html, drawn with OpenCV (fast enough for thousands of images): per image
one downscaled JPEG of the photo and two transparent PNG overlays, the ground truth and the
prediction, which the page stacks on the photo (so the photo is stored and loaded once, and the
masks can be hidden).
"""

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util

from trashpole.images import UnreadableImage, read_bgr

RLE = Dict[str, Any]  # a pycocotools compressed RLE: {"size": [h, w], "counts": bytes}

logger = logging.getLogger(__name__)

PANEL_SIDE = 480  # longest side of a report.html picture, pixels
JPEG_QUALITY = 82
FILL_ALPHA = 110  # opacity (0-255) of a mask's fill in an overlay; outlines and labels are opaque
CROWD_COLOR = (150, 150, 150)  # RGB
# Overlays are mostly transparent with flat fills: no PNG row filter is as small as libpng's
# adaptive filtering and 2-3x faster to write (OpenCV >= 4.10 has the flag).
PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):
    PNG_FLAGS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
# Outcome of a ground-truth instance -> RGB color of its outline and label
OUTCOME_COLORS = {
    "hit": (20, 150, 60),
    "missed": (220, 30, 30),
    "wrong class": (150, 40, 170),
    "low IoU": (230, 120, 0),
}


def panel_size(height: int, width: int, side: int = PANEL_SIDE) -> Tuple[int, int]:
    """(height, width) of the pictures of an image of ``height`` x ``width``: longest side
    ``side``, never enlarged."""
    scale = min(1.0, side / max(height, width, 1))
    return max(1, round(height * scale)), max(1, round(width * scale))


def read_photo(file_name: str, size: Tuple[int, int]) -> np.ndarray:
    """
    The photo at panel size, BGR, turned by its EXIF orientation as the model sees it
    (:func:`trashpole.images.read_bgr`); a gray picture (and a warning) when it cannot be read.

    Args:
        file_name: image file.
        size: (height, width) wanted.

    Returns:
        ndarray[size[0], size[1], 3] of uint8.
    """
    try:
        # a large JPEG is decoded at 1/8, 1/4 or 1/2 of its size when that still covers the panel
        image, _ = read_bgr(file_name, at_least=size)
    except (UnreadableImage, OSError) as e:
        logger.warning("report.html: cannot read %s (%s); drawing on a gray picture", file_name, e)
        return np.full((*size, 3), 128, dtype=np.uint8)
    if image.shape[:2] != tuple(size):
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return image


def _small_mask(rle: RLE, size: Tuple[int, int]) -> Optional[Tuple[np.ndarray, int, int]]:
    """
    An RLE mask resized to an image of ``size``, cut to its box: (ndarray[h, w] of uint8 0/1,
    x, y of its top-left corner), or None for an empty mask. Only the box is resized, which is
    several times faster than the whole mask for the usual small objects.
    """
    x, y, w, h = (float(v) for v in mask_util.toBbox(rle))
    if w <= 0 or h <= 0:
        return None
    height, width = rle["size"]
    sy, sx = size[0] / height, size[1] / width
    x0, y0 = int(x * sx), int(y * sy)
    x1 = min(size[1], max(x0 + 1, int(np.ceil((x + w) * sx))))
    y1 = min(size[0], max(y0 + 1, int(np.ceil((y + h) * sy))))
    crop = mask_util.decode(rle)[int(y) : int(y + h), int(x) : int(x + w)]
    if crop.shape != (y1 - y0, x1 - x0):
        # area interpolation then a 0.5 threshold keeps thin objects better than nearest
        crop = cv2.resize(crop * 255, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA) >= 128
    return np.ascontiguousarray(crop, dtype=np.uint8), x0, y0


def _bgra(rgb: Sequence[int], alpha: int) -> Tuple[int, int, int, int]:
    return (int(rgb[2]), int(rgb[1]), int(rgb[0]), alpha)


def _label(canvas: np.ndarray, text: str, x: int, y: int, rgb: Sequence[int]) -> None:
    """A white label on an opaque tag of color ``rgb``, its top-left corner near (x, y)."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    h, w = canvas.shape[:2]
    x = int(min(max(x, 0), max(w - tw - 4, 0)))
    y = int(min(max(y, 0), max(h - th - base - 4, 0)))
    cv2.rectangle(canvas, (x, y), (x + tw + 4, y + th + base + 3), _bgra(rgb, 235), -1)
    cv2.putText(
        canvas, text, (x + 2, y + th + 2), font, scale, (255, 255, 255, 255), 1, cv2.LINE_AA
    )


def draw_overlay(
    size: Tuple[int, int],
    rles: Sequence[RLE],
    fill_colors: Sequence[Sequence[int]],
    labels: Sequence[Optional[str]],
    label_colors: Sequence[Sequence[int]],
) -> np.ndarray:
    """
    A transparent overlay of instance masks: a translucent fill, an opaque outline and a label.

    Args:
        size: (height, width) of the overlay.
        rles: N compressed RLEs at the image's full size.
        fill_colors: N RGB fill colors.
        labels: N label texts (None: no label).
        label_colors: N RGB colors of the outline and label tag.

    Returns:
        ndarray[H, W, 4] of uint8, BGRA.
    """
    canvas = np.zeros((*size, 4), dtype=np.uint8)
    tags = []
    for rle, fill, text, color in zip(rles, fill_colors, labels, label_colors):
        small = _small_mask(rle, size)
        if small is None or not small[0].any():
            continue
        mask, x, y = small
        h, w = mask.shape
        canvas[y : y + h, x : x + w][mask.astype(bool)] = _bgra(fill, FILL_ALPHA)
        # a zero border, so that an object cut by its box's edge still gets its outline there
        padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        contours, _ = cv2.findContours(
            padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x - 1, y - 1)
        )
        cv2.drawContours(canvas, contours, -1, _bgra(color, 255), 2, cv2.LINE_AA)
        if text:
            tags.append((text, x, y - 16, color))
    for text, x, y, color in tags:  # labels last, so that no mask covers them
        _label(canvas, text, x, y, color)
    return canvas


def write_image_files(
    prefix: str,
    photo: np.ndarray,
    truth: np.ndarray,
    prediction: np.ndarray,
) -> List[str]:
    """
    Write ``<prefix>.jpg`` (the photo), ``<prefix>_truth.png`` and ``<prefix>_pred.png``.

    Args:
        prefix: path without extension.
        photo: ndarray[H, W, 3] BGR.
        truth, prediction: ndarray[H, W, 4] BGRA overlays.

    Returns:
        the three paths.
    """
    paths = [f"{prefix}.jpg", f"{prefix}_truth.png", f"{prefix}_pred.png"]
    ok = cv2.imwrite(paths[0], photo, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    for path, overlay in zip(paths[1:], (truth, prediction)):
        ok &= cv2.imwrite(path, overlay, PNG_FLAGS)
    if not ok:
        raise OSError(f"{os.path.dirname(prefix)}: could not write the pictures of {prefix}")
    return paths
