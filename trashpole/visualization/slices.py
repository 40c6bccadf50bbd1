"""
A picture of sliced inference at work: the mask pieces that the slices returned for one object,
side by side with the one instance they were merged into (``tools/slice_picture.py``; the rule:
:mod:`trashpole.predict.merge`).

Left panel: the image around the object, the edges of the slices that saw it as dashed white
lines, and each slice's piece in its own colour (the palette's colours other than the class's). Right panel: the merged mask in the class colour
(:mod:`trashpole.visualization.palette`), with the same slice edges.
"""

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from trashpole.predict.merge import Piece, Window, resolved_whole
from trashpole.visualization.palette import CLASS_COLORS

Region = Tuple[int, int, int, int]


def pick_merged_group(
    pieces: Sequence[Piece], groups: Sequence[Sequence[int]], category: int
) -> Optional[int]:
    """
    The group that shows the merge best: of class ``category``, one whose mask the slices make
    (not one the whole-image pass resolved: :func:`trashpole.predict.merge.resolved_whole`) if
    there is one, with pieces from the most slices (the whole-image pass not counted), then the
    largest merged area.

    Returns:
        the group's index in ``groups``, or None when no group of that class joins pieces of two
        slices or more.
    """
    best, best_key = None, None
    for k, group in enumerate(groups):
        members = [pieces[i] for i in group]
        slices = {p.window for p in members if not p.whole}
        if members[0].category != category or len(slices) < 2:
            continue
        key = (resolved_whole(members) is None, len(slices), sum(p.area for p in members))
        if best_key is None or key > best_key:
            best, best_key = k, key
    return best


def _region(members: Sequence[Piece], shape: Tuple[int, int], pad: float = 0.6) -> Region:
    """The pieces' hull padded by ``pad`` of its larger side, inside the image."""
    boxes = np.array([p.box for p in members])
    x0, y0 = boxes[:, :2].min(axis=0)
    x1, y1 = boxes[:, 2:].max(axis=0)
    margin = int(pad * max(x1 - x0, y1 - y0))
    height, width = shape
    return (
        max(0, x0 - margin),
        max(0, y0 - margin),
        min(width, x1 + margin),
        min(height, y1 + margin),
    )


def _paint(canvas: np.ndarray, piece: Piece, region: Region, rgb, alpha: float = 0.6) -> None:
    """Blend a piece's mask into ``canvas`` (the region's crop, RGB) in colour ``rgb``."""
    mask = np.zeros(canvas.shape[:2], bool)
    piece.paste(mask, region[0], region[1])
    canvas[mask] = (1 - alpha) * canvas[mask] + alpha * np.asarray(rgb, np.float32)


def _edges(canvas: np.ndarray, windows: Sequence[Window], region: Region, scale: float) -> None:
    """Dashed white lines where slice edges cross the region (canvas already scaled)."""
    rx0, ry0, rx1, ry1 = region
    xs = sorted({x for w in windows for x in (w[0], w[2]) if rx0 < x < rx1})
    ys = sorted({y for w in windows for y in (w[1], w[3]) if ry0 < y < ry1})
    height, width = canvas.shape[:2]
    dash = max(4, int(0.02 * max(height, width)))
    for x in xs:
        cx = int(round((x - rx0) * scale))
        for y in range(0, height, 2 * dash):
            cv2.line(canvas, (cx, y), (cx, min(height, y + dash)), (255, 255, 255), 2)
    for y in ys:
        cy = int(round((y - ry0) * scale))
        for x in range(0, width, 2 * dash):
            cv2.line(canvas, (x, cy), (min(width, x + dash), cy), (255, 255, 255), 2)


def merge_picture(
    image_bgr: np.ndarray,
    members: Sequence[Piece],
    merged: Piece,
    windows: Sequence[Window],
    height_px: int = 480,
) -> np.ndarray:
    """
    The two panels of the module docstring, as one RGB image ``height_px`` high.

    Args:
        image_bgr: the whole image (uint8 BGR).
        members: the group's pieces (slices and possibly the whole-image pass).
        merged: the instance they were merged into.
        windows: the slice windows whose edges to draw (those of the group's pieces).

    Returns:
        ndarray[height_px, W, 3] of uint8, RGB.
    """
    region = _region(members, image_bgr.shape[:2])
    rx0, ry0, rx1, ry1 = region
    crop = image_bgr[ry0:ry1, rx0:rx1, ::-1].astype(np.float32)
    left, right = crop.copy(), crop.copy()
    own = CLASS_COLORS[merged.category % len(CLASS_COLORS)]
    others = [c for c in CLASS_COLORS if c != own]  # the pieces in the palette's other colours
    slices = [p for p in members if not p.whole]
    for k, piece in enumerate(slices):
        _paint(left, piece, region, others[k % len(others)])
    _paint(right, merged, region, own)
    scale = height_px / crop.shape[0]
    size = (max(1, int(round(crop.shape[1] * scale))), height_px)
    panels: List[np.ndarray] = []
    for panel in (left, right):
        panel = cv2.resize(np.clip(panel, 0, 255).astype(np.uint8), size, cv2.INTER_NEAREST)
        _edges(panel, windows, region, scale)
        panels.append(panel)
    gap = np.full((height_px, 8, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1]], axis=1)
