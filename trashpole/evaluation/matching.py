"""
Per-image work of the trashpole evaluator: masks to RLE, mask IoU, crowd handling, the one-to-one
instance matching, the same rule along the score ranking for precision-recall curves, and the
painted per-pixel class maps of the semantic view.

Everything here works on one image and returns small numbers (lists, a few small arrays); the
full-size masks it receives are dropped when the call returns. The definitions these functions
implement are written out in :mod:`trashpole.evaluation.metrics`.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util

from .matching_rule import match_instances, ranked_hits

logger = logging.getLogger(__name__)

# A prediction whose area lies at least this much inside crowd regions is ignored.
CROWD_IGNORE_FRACTION = 0.5
# Mask IoU a ranked prediction needs to be a true positive in the precision-recall curves (AP50).
AP_IOU = 0.5

RLE = Dict[str, Any]


def masks_to_rles(masks: np.ndarray) -> List[RLE]:
    """
    Encode binary masks as compressed COCO RLE.

    Args:
        masks: ndarray[N, H, W] of bool (or 0/1 integers).

    Returns:
        list of N RLE dicts (``size`` [H, W], ``counts`` bytes).
    """
    return [_encode_one(mask.astype(bool, copy=False)) for mask in masks]


def _encode_one(mask: np.ndarray) -> RLE:
    """
    COCO RLE of one [H, W] bool mask, the same as ``pycocotools.mask.encode`` returns.

    RLE runs go down the columns, so only the band of columns the object spans needs a
    column-major copy; the columns left and right of it are zero runs added arithmetically.
    This is several times faster than encoding a Fortran copy of the full image.
    """
    height, width = mask.shape
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return mask_util.frPyObjects(
            {"counts": [height * width], "size": [height, width]}, height, width
        )
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    flat = np.asfortranarray(mask[:, x0:x1]).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.r_[0, change, flat.size]).tolist()
    if flat[0]:
        counts.insert(0, 0)  # RLE counts start with a run of zeros
    counts[0] += x0 * height
    tail = (width - x1) * height
    if not flat[-1]:
        counts[-1] += tail
    elif tail:
        counts.append(tail)
    return mask_util.frPyObjects({"counts": counts, "size": [height, width]}, height, width)


def segmentation_to_rle(segm: Any, height: int, width: int, where: str = "annotation") -> RLE:
    """
    Turn a detectron2 ``segmentation`` field into one compressed RLE.

    Args:
        segm: list of polygons (each a flat list ``[x0, y0, x1, y1, ...]`` of at least 3 points),
            an uncompressed RLE (``counts`` a list of ints) or a compressed RLE (``counts`` bytes
            or str).
        height, width: image size in pixels.
        where: text naming the record, used in error messages.

    Returns:
        compressed RLE dict of an [height, width] mask (several polygons are merged).
    """
    if isinstance(segm, list):
        polygons = [p for p in segm if len(p) >= 6]
        if not polygons:
            raise ValueError(
                f"{where}: segmentation has no polygon with at least 3 points ({segm!r}); "
                "fix or drop the annotation in the export"
            )
        return mask_util.merge(mask_util.frPyObjects(polygons, height, width))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        if list(segm["size"]) != [height, width]:
            raise ValueError(
                f"{where}: RLE size {list(segm['size'])} differs from the image size "
                f"[{height}, {width}]; re-export the annotation at the image's size"
            )
        if isinstance(segm["counts"], list):
            return mask_util.frPyObjects(segm, height, width)
        counts = segm["counts"]
        return {
            "size": [height, width],
            "counts": counts.encode() if isinstance(counts, str) else counts,
        }
    raise ValueError(
        f"{where}: unsupported segmentation {type(segm).__name__}; expected polygons or an RLE dict"
    )


def mask_iou(pred_rles: Sequence[RLE], gt_rles: Sequence[RLE]) -> np.ndarray:
    """
    Pairwise mask IoU.

    Args:
        pred_rles: N compressed RLEs.
        gt_rles: G compressed RLEs of the same image size.

    Returns:
        ndarray[N, G] of float64 in [0, 1].
    """
    if len(pred_rles) == 0 or len(gt_rles) == 0:
        return np.zeros((len(pred_rles), len(gt_rles)), dtype=np.float64)
    iou = mask_util.iou(list(pred_rles), list(gt_rles), [0] * len(gt_rles))
    return np.asarray(iou, dtype=np.float64).reshape(len(pred_rles), len(gt_rles))


def crowd_fraction(pred_rles: Sequence[RLE], crowd_rles: Sequence[RLE]) -> np.ndarray:
    """
    Fraction of each prediction's area that lies inside the union of the crowd regions.

    Args:
        pred_rles: N compressed RLEs.
        crowd_rles: C compressed RLEs (crowd ground truth) of the same image size.

    Returns:
        ndarray[N] of float64 in [0, 1]; 0 for an empty prediction or when C == 0.
    """
    if len(pred_rles) == 0 or len(crowd_rles) == 0:
        return np.zeros(len(pred_rles), dtype=np.float64)
    crowd = mask_util.merge(list(crowd_rles), intersect=False)
    # With iscrowd=1 pycocotools divides the intersection by the prediction's area.
    frac = mask_util.iou(list(pred_rles), [crowd], [1])
    return np.asarray(frac, dtype=np.float64).reshape(len(pred_rles))


def paint_class_map(
    rles: Sequence[RLE],
    classes: Sequence[int],
    height: int,
    width: int,
    background: int,
    masks: Optional[Sequence[np.ndarray]] = None,
) -> np.ndarray:
    """
    Paint instances into a per-pixel class map, later instances on top of earlier ones.

    Args:
        rles: K compressed RLEs, in painting order.
        classes: K contiguous class ids.
        height, width: map size.
        background: value of unpainted pixels.
        masks: optional K ndarray[H, W] of bool, the same masks already decoded (saves decoding
            the RLEs).

    Returns:
        ndarray[H, W] of uint8 (int32 when ``background`` > 254).
    """
    dtype = np.uint8 if background < 255 else np.int32
    class_map = np.full((height, width), background, dtype=dtype)
    if len(rles) == 0:
        return class_map
    boxes = mask_util.toBbox(list(rles))  # [K, 4] XYWH, used to paint only each mask's box
    for k, (rle, cls) in enumerate(zip(rles, classes)):
        x, y, w, h = (int(v) for v in boxes[k])
        if w == 0 or h == 0:
            continue
        mask = masks[k] if masks is not None else mask_util.decode(rle)
        crop = mask[y : y + h, x : x + w].astype(bool, copy=False)
        class_map[y : y + h, x : x + w][crop] = cls
    return class_map


def paint_ground_truth(gt: "GroundTruth", background: int) -> np.ndarray:
    """
    Class map of the ground truth: crowd regions first, then the instances in annotation order,
    later ones on top.

    Args:
        gt: the image's ground truth.
        background: value of unpainted pixels.

    Returns:
        ndarray[H, W] (see :func:`paint_class_map`).
    """
    rles = gt.crowd_rles + gt.rles
    classes = np.concatenate([gt.crowd_classes, gt.classes]).astype(np.int64)
    # The painting order only matters between overlapping masks of different classes. The
    # others are painted first as one merged mask per class (a few decodes instead of one per
    # instance), then the ordered ones one by one in annotation order.
    ordered = np.zeros(len(rles), dtype=bool)
    if len(rles) > 1:
        # With iscrowd=1 pycocotools gives intersection / area of the first mask: > 0 iff they
        # overlap.
        overlap = np.asarray(mask_util.iou(rles, rles, [1] * len(rles))) > 0
        ordered = (overlap & (classes[:, None] != classes[None, :])).any(axis=1)
    dtype = np.uint8 if background < 255 else np.int32
    class_map = np.full((gt.height, gt.width), background, dtype=dtype)
    for c in np.unique(classes[~ordered]):
        group = [r for r, k, o in zip(rles, classes, ordered) if k == c and not o]
        class_map[mask_util.decode(mask_util.merge(group, intersect=False)).astype(bool)] = c
    for k in np.flatnonzero(ordered):
        x, y, w, h = (int(v) for v in mask_util.toBbox(rles[k]))
        crop = mask_util.decode(rles[k])[y : y + h, x : x + w].astype(bool)
        class_map[y : y + h, x : x + w][crop] = classes[k]
    return class_map


def pixel_confusion(gt_map: np.ndarray, pred_map: np.ndarray, num_labels: int) -> np.ndarray:
    """
    Pixel confusion counts between two class maps.

    Args:
        gt_map, pred_map: ndarray[H, W] of ints in [0, num_labels).
        num_labels: classes plus background.

    Returns:
        ndarray[num_labels, num_labels] of int64, rows true, columns predicted.
    """
    index = gt_map.astype(np.int64).ravel() * num_labels + pred_map.ravel()
    counts = np.bincount(index, minlength=num_labels * num_labels)
    return counts.reshape(num_labels, num_labels)


@dataclass
class ImageResult:
    """
    What the evaluator keeps of one image (a few numbers per instance, no masks).

    Attributes:
        image_id, file_name, height, width: from the input.
        gt_classes: contiguous class of each non-crowd ground-truth instance, annotation order.
        gt_ious: IoU of each ground-truth instance with its matched prediction (0: unmatched).
        gt_pred_classes: class of the matched prediction, -1 when unmatched.
        false_classes: classes of counted predictions left unmatched (false detections).
        num_pred: predictions that count (score >= threshold and not ignored by a crowd region).
        num_ignored: predictions above the score threshold ignored because of crowd regions.
        num_crowd: crowd regions in the ground truth.
    """

    image_id: Any
    file_name: str
    height: int
    width: int
    gt_classes: List[int] = field(default_factory=list)
    gt_ious: List[float] = field(default_factory=list)
    gt_pred_classes: List[int] = field(default_factory=list)
    false_classes: List[int] = field(default_factory=list)
    num_pred: int = 0
    num_ignored: int = 0
    num_crowd: int = 0

    @property
    def mean_iou(self) -> float:
        """Mean IoU over this image's ground-truth instances; NaN without any."""
        return float(np.mean(self.gt_ious)) if self.gt_ious else float("nan")

    def rank_key(self) -> float:
        """
        Score that orders images in the galleries: the image's mean IoU; for an image without
        ground truth, 1 when nothing was predicted and 0 when something was.
        """
        if self.gt_ious:
            return self.mean_iou
        return 0.0 if self.false_classes else 1.0

    def to_dict(self, iou_thresh: float) -> Dict[str, Any]:
        """JSON-friendly summary, with hit/miss counts at ``iou_thresh``."""
        tp = sum(
            1
            for iou, gc, pc in zip(self.gt_ious, self.gt_classes, self.gt_pred_classes)
            if iou >= iou_thresh and gc == pc
        )
        mean_iou = self.mean_iou
        return {
            "image_id": self.image_id,
            "file_name": self.file_name,
            "num_gt": len(self.gt_classes),
            "num_pred": self.num_pred,
            "num_ignored": self.num_ignored,
            "num_crowd": self.num_crowd,
            "TP": tp,
            "FP": self.num_pred - tp,
            "FN": len(self.gt_classes) - tp,
            "mIoU": None if np.isnan(mean_iou) else 100.0 * mean_iou,
            "gt_classes": list(self.gt_classes),
            "gt_ious": [round(100.0 * v, 4) for v in self.gt_ious],
            "gt_pred_classes": list(self.gt_pred_classes),
            "false_classes": list(self.false_classes),
        }


@dataclass
class GroundTruth:
    """
    Ground truth of one image as RLEs.

    Attributes:
        rles, classes: the non-crowd instances (G RLEs, ndarray[G] of int), annotation order.
        crowd_rles, crowd_classes: the crowd regions (``iscrowd: 1``).
        height, width: image size.
    """

    rles: List[RLE]
    classes: np.ndarray
    crowd_rles: List[RLE]
    crowd_classes: np.ndarray
    height: int
    width: int


def ground_truth_from_record(record: Dict[str, Any], num_classes: int) -> GroundTruth:
    """
    Read the ground truth of a detectron2 dataset dict.

    Args:
        record: dict with ``file_name``, ``height``, ``width`` and ``annotations`` (each with
            ``segmentation``, contiguous ``category_id`` and optional ``iscrowd``).
        num_classes: number of thing classes, to validate ``category_id``.

    Returns:
        GroundTruth.
    """
    height, width = int(record["height"]), int(record["width"])
    rles, classes, crowd_rles, crowd_classes = [], [], [], []
    for k, anno in enumerate(record.get("annotations", [])):
        where = (
            f"{record.get('file_name', '?')} (image_id {record.get('image_id')}), annotation {k}"
        )
        cls = int(anno["category_id"])
        if not 0 <= cls < num_classes:
            raise ValueError(
                f"{where}: category_id {cls} is outside the contiguous ids [0, {num_classes - 1}]; "
                "register the data set with trashpole.data so ids are mapped"
            )
        if "segmentation" not in anno:
            raise ValueError(
                f"{where}: has no segmentation; the mask metrics need one per instance"
            )
        rle = segmentation_to_rle(anno["segmentation"], height, width, where)
        if anno.get("iscrowd", 0):
            crowd_rles.append(rle)
            crowd_classes.append(cls)
        else:
            rles.append(rle)
            classes.append(cls)
    return GroundTruth(
        rles=rles,
        classes=np.asarray(classes, dtype=np.int64),
        crowd_rles=crowd_rles,
        crowd_classes=np.asarray(crowd_classes, dtype=np.int64),
        height=height,
        width=width,
    )


@dataclass
class ImageEvaluation:
    """
    Everything the evaluator keeps of one image.

    Attributes:
        result: the matching summary.
        pr_scores, pr_classes, pr_tp: ndarray[M] of every prediction not ignored by a crowd
            region, whatever its score (the precision-recall curves sweep the score).
        pr_num_gt: ndarray[K] of non-crowd ground-truth instances per class.
        pixel_confusion: ndarray[K + 1, K + 1] of int64 pixel counts (background last).
        kept_rles, kept_classes, kept_scores: the predictions above the score threshold, as RLEs,
            for the report's gallery.
    """

    result: ImageResult
    pr_scores: np.ndarray
    pr_classes: np.ndarray
    pr_tp: np.ndarray
    pr_num_gt: np.ndarray
    pixel_confusion: np.ndarray
    kept_rles: List[RLE]
    kept_classes: List[int]
    kept_scores: List[float]


def evaluate_image(
    gt: GroundTruth,
    pred_masks: np.ndarray,
    scores: np.ndarray,
    pred_classes: np.ndarray,
    num_classes: int,
    score_thresh: float,
    image_id: Any = None,
    file_name: str = "",
    iou_thresh: float = 0.5,
) -> ImageEvaluation:
    """
    Match one image's predictions to its ground truth and count what the metrics need.

    Args:
        gt: the image's ground truth.
        pred_masks: ndarray[N, H, W] of bool at the image's size.
        scores: ndarray[N] of float.
        pred_classes: ndarray[N] of int, contiguous ids.
        num_classes: K, the number of thing classes; background is label K.
        score_thresh: predictions with a lower score do not count (except in the PR curves, which
            match at IoU ``AP_IOU``).
        image_id, file_name: identify the image in the result.
        iou_thresh: the IoU a matched pair needs to be a hit (:func:`match_instances`).

    Returns:
        ImageEvaluation.
    """
    pred_rles = masks_to_rles(pred_masks)
    iou = mask_iou(pred_rles, gt.rles)
    ignored = crowd_fraction(pred_rles, gt.crowd_rles) >= CROWD_IGNORE_FRACTION
    kept = scores >= score_thresh
    result = ImageResult(image_id, file_name, gt.height, gt.width)
    _match_counted(result, gt, iou, pred_classes, kept, ignored, iou_thresh)
    considered = np.flatnonzero(~ignored)
    pr_tp = ranked_hits(
        iou[considered], scores[considered], pred_classes[considered], gt.classes, AP_IOU
    )
    keep_idx = np.flatnonzero(kept)
    return ImageEvaluation(
        result=result,
        pr_scores=scores[considered].astype(np.float32),
        pr_classes=pred_classes[considered].astype(np.int16),
        pr_tp=pr_tp,
        pr_num_gt=np.bincount(gt.classes, minlength=num_classes).astype(np.int64),
        pixel_confusion=_semantic_confusion(
            gt, pred_rles, pred_masks, scores, pred_classes, kept, num_classes
        ),
        kept_rles=[pred_rles[p] for p in keep_idx],
        kept_classes=pred_classes[keep_idx].tolist(),
        kept_scores=scores[keep_idx].tolist(),
    )


def _match_counted(
    result: ImageResult,
    gt: GroundTruth,
    iou: np.ndarray,
    pred_classes: np.ndarray,
    kept: np.ndarray,
    ignored: np.ndarray,
    iou_thresh: float,
) -> None:
    """Fill ``result`` from the one-to-one matching of the counted predictions (``kept``, above
    the score threshold, and not ``ignored``, inside a crowd region: ndarray[N] of bool) to the
    ground truth; ``iou`` is ndarray[N, G], predictions by ground-truth instances."""
    counted = np.flatnonzero(kept & ~ignored)
    result.gt_classes = gt.classes.tolist()
    result.gt_ious = [0.0] * len(gt.rles)
    result.gt_pred_classes = [-1] * len(gt.rles)
    result.num_pred = len(counted)
    result.num_ignored = int((kept & ignored).sum())
    result.num_crowd = len(gt.crowd_rles)
    matched = set()
    same_class = pred_classes[counted][:, None] == gt.classes[None, :]
    for row, g in match_instances(iou[counted], iou_thresh, same_class):
        p = counted[row]
        matched.add(p)
        result.gt_ious[g] = float(iou[p, g])
        result.gt_pred_classes[g] = int(pred_classes[p])
    result.false_classes = [int(pred_classes[p]) for p in counted if p not in matched]


def _semantic_confusion(
    gt: GroundTruth,
    pred_rles: List[RLE],
    pred_masks: np.ndarray,
    scores: np.ndarray,
    pred_classes: np.ndarray,
    kept: np.ndarray,
    num_classes: int,
) -> np.ndarray:
    """The pixel confusion, ndarray[K + 1, K + 1] of int64, of the semantic view: ground truth
    with crowd regions first (instances drawn over them), the kept predictions in increasing
    score so that the higher score ends on top."""
    order = np.flatnonzero(kept)
    order = order[np.argsort(scores[order], kind="mergesort")]
    gt_map = paint_ground_truth(gt, background=num_classes)
    pred_map = paint_class_map(
        [pred_rles[p] for p in order],
        pred_classes[order].tolist(),
        gt.height,
        gt.width,
        background=num_classes,
        masks=[pred_masks[p] for p in order],
    )
    return pixel_confusion(gt_map, pred_map, num_classes + 1)
