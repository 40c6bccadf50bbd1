"""
RPN anchors from the data, in the spirit of YOLO's autoanchor: the aspect ratios (and optionally a
common scale of the sizes) that let the most training boxes reach the RPN's positive IoU.

detectron2's ``DefaultAnchorGenerator`` puts, at every position of an FPN level, one anchor per
(size, aspect ratio) of that level: area ``size**2``, ``height / width = ratio``. The RPN head
predicts one objectness logit and four deltas per anchor, so the number of ratios fixes the shape
of its last two layers; :func:`fit_anchors` keeps that number unless asked otherwise, so that a
pretrained RPN head still loads whole (see docs/real_photos.md).

Coverage is measured on shapes alone, as autoanchor does: each box is compared with anchors of
the same centre. It is an upper bound of what the anchor grid gives (an anchor's centre is up to
half a stride away from the box's).
"""

import logging
import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

# Candidate aspect ratios (height / width) tried by the greedy search: log-spaced, 1/32 to 32.
CANDIDATE_RATIOS = np.exp(np.linspace(math.log(1 / 32), math.log(32), 121))
# Common factors tried on every anchor size with TRASHPOLE.ANCHORS.FIT_SIZES, after the sizes are
# rescaled so that the first is SIZE_BASE pixels (detectron2's).
SIZE_FACTORS = tuple(2.0 ** (k / 4) for k in range(-4, 3))
SIZE_BASE = 32.0


@dataclass
class AnchorFit:
    """The result of :func:`fit_anchors`: anchor sizes per level, the ratios shared by all
    levels, and the coverage (share of boxes whose best anchor reaches the IoU) before and
    after."""

    sizes: List[List[float]]
    ratios: List[float]
    coverage_before: float
    coverage_after: float
    mean_iou_before: float
    mean_iou_after: float


def cell_anchor_shapes(sizes: Iterable[float], ratios: Iterable[float]) -> np.ndarray:
    """
    Widths and heights of the anchors detectron2 puts at one position.

    Args:
        sizes: anchor sizes (square root of the area, pixels).
        ratios: aspect ratios, height / width.

    Returns:
        ndarray[A, 2] of (width, height), A = len(sizes) * len(ratios).
    """
    shapes = []
    for size in sizes:
        for ratio in ratios:
            w = math.sqrt(size * size / ratio)
            shapes.append((w, ratio * w))
    return np.asarray(shapes, dtype=np.float64).reshape(-1, 2)


def best_anchor_iou(boxes_wh: np.ndarray, anchors_wh: np.ndarray) -> np.ndarray:
    """
    For each box, the IoU with its best anchor when both share a centre.

    Args:
        boxes_wh: ndarray[N, 2] of box (width, height).
        anchors_wh: ndarray[A, 2] of anchor (width, height).

    Returns:
        ndarray[N] of IoU in [0, 1].
    """
    if len(boxes_wh) == 0:
        return np.zeros(0)
    b = boxes_wh[:, None, :]
    a = anchors_wh[None, :, :]
    inter = np.minimum(b[..., 0], a[..., 0]) * np.minimum(b[..., 1], a[..., 1])
    union = b[..., 0] * b[..., 1] + a[..., 0] * a[..., 1] - inter
    return (inter / np.maximum(union, 1e-12)).max(axis=1)


def _score(boxes_wh, sizes, ratios, iou_thresh) -> Tuple[float, float]:
    """(coverage, mean best IoU) of an anchor set; compared as a tuple, coverage first."""
    iou = best_anchor_iou(boxes_wh, cell_anchor_shapes(_flat(sizes), ratios))
    if len(iou) == 0:
        return 0.0, 0.0
    return float((iou >= iou_thresh).mean()), float(iou.mean())


def _flat(sizes: Sequence[Sequence[float]]) -> List[float]:
    return [s for level in sizes for s in level]


def fit_ratios(
    boxes_wh: np.ndarray, sizes: Sequence[Sequence[float]], num: int, iou_thresh: float
) -> List[float]:
    """
    Greedily choose ``num`` aspect ratios from :data:`CANDIDATE_RATIOS`: each step adds the ratio
    that most raises the coverage (then the mean best IoU) over all anchor sizes.

    Args:
        boxes_wh: ndarray[N, 2] of box (width, height) at the training size.
        sizes: anchor sizes per FPN level (``MODEL.ANCHOR_GENERATOR.SIZES``).
        num: how many ratios.
        iou_thresh: the IoU an anchor needs to be a positive (the RPN's upper threshold).

    Returns:
        ``num`` ratios (height / width), ascending, rounded to 3 significant digits.
    """
    chosen: List[float] = []
    for _ in range(num):
        scores = [_score(boxes_wh, sizes, chosen + [c], iou_thresh) for c in CANDIDATE_RATIOS]
        chosen.append(float(CANDIDATE_RATIOS[max(range(len(scores)), key=scores.__getitem__)]))
    return sorted(float(f"{r:.3g}") for r in chosen)


def fit_anchors(
    boxes_wh: np.ndarray,
    sizes: Sequence[Sequence[float]],
    ratios: Sequence[float],
    iou_thresh: float,
    num_ratios: int = 0,
    fit_sizes: bool = False,
) -> AnchorFit:
    """
    Anchor ratios (and, with ``fit_sizes``, one factor on every size) fitted to boxes.

    Args:
        boxes_wh: ndarray[N, 2] of box (width, height) at the training size, N > 0.
        sizes: the config's anchor sizes per level.
        ratios: the config's aspect ratios (one list, shared by the levels).
        iou_thresh: the RPN's positive IoU (``MODEL.RPN.IOU_THRESHOLDS[-1]``).
        num_ratios: how many ratios to choose; 0 keeps the config's number (and so the shape of
            a pretrained RPN head).
        fit_sizes: also try the factors :data:`SIZE_FACTORS` on every size, rescaled so that
            the first is :data:`SIZE_BASE` (the number of sizes per level never changes; a fit
            of a fit's output gives it back).

    Returns:
        :class:`AnchorFit`; the config's anchors are kept unless a fit covers more boxes.
    """
    num = num_ratios or len(ratios)
    before = _score(boxes_wh, sizes, list(ratios), iou_thresh)
    best = None
    # the factors apply to the sizes rescaled to detectron2's first size (32 px), so that a fit
    # run again on its own output (a run's config.yaml) gives the same sizes
    base = SIZE_BASE / sizes[0][0] if fit_sizes else 1.0
    for factor in SIZE_FACTORS if fit_sizes else (1.0,):
        scaled = [[float(f"{s * base * factor:.4g}") for s in level] for level in sizes]
        new_ratios = fit_ratios(boxes_wh, scaled, num, iou_thresh)
        score = _score(boxes_wh, scaled, new_ratios, iou_thresh)
        if best is None or score > best[0]:
            best = (score, scaled, new_ratios)
    if best[0][0] <= before[0]:  # no more boxes covered: the config's anchors stay
        best = (before, [list(level) for level in sizes], list(ratios))
    after, new_sizes, new_ratios = best
    return AnchorFit(new_sizes, new_ratios, before[0], after[0], before[1], after[1])


def boxes_at_scale(
    dicts: Sequence[dict], scale_of: "callable", min_side: float = 1.0
) -> np.ndarray:
    """
    (width, height) of every non-crowd box of ``dicts`` at the training size.

    Args:
        dicts: detectron2 dataset dicts with XYWH_ABS boxes.
        scale_of: (image height, image width) -> the factor the trainer resizes that image by.
        min_side: boxes narrower than this (pixels, after scaling) are raised to it, so that a
            degenerate box does not dominate a ratio fit.

    Returns:
        ndarray[N, 2] of float64.
    """
    rows = []
    for d in dicts:
        scale = scale_of(d["height"], d["width"])
        for a in d.get("annotations", []):
            if a.get("iscrowd", 0):
                continue
            rows.append((a["bbox"][2] * scale, a["bbox"][3] * scale))
    return np.maximum(np.asarray(rows, dtype=np.float64).reshape(-1, 2), min_side)


def derive_anchors(cfg, dicts: Sequence[dict], scale_of: "callable") -> Optional[AnchorFit]:
    """
    Fit ``MODEL.ANCHOR_GENERATOR`` to the boxes of ``dicts`` (``TRASHPOLE.ANCHORS``) and log the
    coverage before and after; the config is not changed here.

    Args:
        cfg: a trashpole config.
        dicts: the train records.
        scale_of: (image height, image width) -> the training resize factor.

    Returns:
        the fit, or None when ``TRASHPOLE.ANCHORS.FROM_DATA`` is off or there are no boxes.
    """
    if not cfg.TRASHPOLE.ANCHORS.FROM_DATA:
        return None
    ratios = cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS
    if len(ratios) != 1:
        raise ValueError(
            "TRASHPOLE.ANCHORS.FROM_DATA fits one list of aspect ratios shared by the levels; "
            f"MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS has {len(ratios)}: give one list, or set "
            "TRASHPOLE.ANCHORS.FROM_DATA False"
        )
    boxes = boxes_at_scale(dicts, scale_of)
    if len(boxes) == 0:
        return None
    thresh = cfg.MODEL.RPN.IOU_THRESHOLDS[-1]
    fit = fit_anchors(
        boxes,
        cfg.MODEL.ANCHOR_GENERATOR.SIZES,
        ratios[0],
        thresh,
        num_ratios=cfg.TRASHPOLE.ANCHORS.NUM_RATIOS,
        fit_sizes=cfg.TRASHPOLE.ANCHORS.FIT_SIZES,
    )
    logger.info(
        f"Anchor coverage (share of {len(boxes)} train boxes whose best anchor reaches IoU "
        f"{thresh:g}, same centre): {fit.coverage_before:.1%} with the config's anchors "
        f"(mean best IoU {fit.mean_iou_before:.3f}), {fit.coverage_after:.1%} with sizes "
        f"{fit.sizes} and ratios {fit.ratios} (mean best IoU {fit.mean_iou_after:.3f})"
    )
    return fit
