"""
The trashpole metrics: definitions (this docstring is the reference) and the arithmetic that turns
the per-image counts of :mod:`trashpole.evaluation.matching` into numbers.

Units: every rate is in percent (0-100), as detectron2's COCOEvaluator reports AP; counts are
plain integers. A rate whose denominator is zero is NaN in the results dict (``null`` in
``metrics.json``), never silently 0 or 100.

Which predictions count
    A prediction counts when its score is >= the score threshold (default 0.5). Ground truth with
    ``iscrowd: 1`` is a *crowd region*, not an instance: it is never matched, and a counted
    prediction whose area lies at least half inside the union of the image's crowd regions
    (intersection / prediction area >= 0.5) is *ignored*: it is removed before matching and is
    neither a hit nor a false detection. An empty prediction mask is never ignored (and never
    matched: it is a false detection).

Instance matching (per image): the one rule
    Counted predictions and non-crowd ground-truth instances are matched one-to-one. A *hit* is
    a matched pair with mask IoU >= the IoU threshold (default 0.5); a *right-class hit* is a hit
    whose predicted class is the true class. Of all one-to-one pairings, the matching is the one
    with, in this order:

    1. the most right-class hits: matching is class-aware where it counts, as in COCO, so a
       wrong-class prediction never takes a hit away from a right-class one;
    2. then the most hits of any class: never fewer hits than another pairing would give;
    3. then the largest summed IoU over all matched pairs.

    Pairs with IoU 0 are dropped, so a match always overlaps. A matched pair below the IoU
    threshold stays matched: it gives partial credit to mIoU and is a miss plus a false
    detection for everything else. mIoU, accuracy, precision/recall/F1, the confusion matrix
    and ``per_image.json`` all use this one matching; AP50 applies it at every score threshold.

    Two hand-worked cases (tests/test_evaluation_metrics.py): a pole in the truth, a pole
    prediction at IoU 0.7 and a trash-can prediction at IoU 0.8: the pole prediction is matched
    (TP 1, FP 1, FN 0), where maximising summed IoU alone took the trash can (TP 0, FP 2).
    IoU A-G1 0.95, A-G2 0.5, B-G1 0.5, B-G2 0.3: A-G2 and B-G1 are matched (2 hits), where
    summed IoU alone took A-G1 and B-G2 (1.25 > 1.0, but 1 hit).

mIoU (mean IoU)
    Mean over all ground-truth instances of the data set (pooled, not a mean of per-image means)
    of the IoU with the matched prediction; an unmatched instance counts 0. It measures mask
    quality and coverage: false detections do not lower it, and the class enters only through
    the matching (a wrong-class prediction counts when it is the match, but a right-class hit is
    matched before it). ``mIoU-<class>`` averages over the instances of that true class. NaN
    without ground truth. The per-image mean IoU (``per_image.json``, galleries) is the same mean
    over the image's instances; an image without ground truth has none (``null``) and is ranked
    in the galleries as 100 when nothing was predicted there and 0 otherwise.

accuracy
    Among hits (matched pairs with IoU >= IoU threshold), the percentage whose predicted class is
    the true class. NaN when there is no hit. Since the matching takes right-class hits first, a
    wrong-class hit is left only where no right-class prediction could hit that object: accuracy
    measures class confusion among the objects that were found. It is 100 whenever every hit has
    the right class, and says nothing about missed objects or false detections (recall and
    precision do); the report says so when it happens.

precision, recall, F1 (at the IoU threshold)
    TP: right-class hits of the matching, i.e. the most that any one-to-one pairing can give.
    FP: counted predictions that are not a TP (false detections, low-IoU matches, wrong classes).
    FN: ground-truth instances that are not a TP.
    precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN) (equal to
    the harmonic mean of precision and recall; 0, not NaN, when only one of them is undefined,
    e.g. no predictions at all; NaN only without both objects and predictions).
    Overall values pool all classes (micro average). Per class, a hit with the wrong class is an
    FP of the predicted class and an FN of the true class.

confusion matrix
    Rows are true labels, columns predicted labels, labels = classes + "background" (last). Each
    ground-truth instance adds 1 to its row: at the predicted class for a hit, else at
    background (missed). Each counted prediction that is not a hit adds 1 to the background row
    (false detection), including the prediction of a low-IoU match. The background-background
    cell is always 0. Row sums are ground-truth counts per class, column sums prediction counts,
    the diagonal is the TP of each class, and precision/recall per class can be read from it.

AP50 (mask, per class and mean)
    Mask AP at IoU 0.5 with the matching rule applied at every score threshold: all predictions
    not ignored by crowd regions, whatever their score, are ranked by score; at each rank, TP is
    the most right-class hits at IoU 0.5 that the predictions ranked so far can make one-to-one
    in each image (level 1 of the matching). Precision and recall along the ranking give the
    curve, so at the evaluator's score threshold (and an IoU threshold of 0.5) it passes exactly
    through the reported precision and recall. AP is the 101-point interpolated area under it,
    as COCO computes it. NaN for a class without ground truth; ``AP50`` is the mean over classes
    with ground truth. It differs from COCO's segm AP50, which matches greedily in score order
    (a high-scoring prediction takes the object of its highest IoU even when a lower-scoring one
    needed it, so COCO can count fewer hits), keeps 100 detections per image and lets unmatched
    detections match crowd regions after the instances.

pixel metrics (semantic view)
    Per image, both truth and prediction are painted into a per-pixel class map initialized to
    background: the truth with its crowd regions first and the instances over them in annotation
    order; the predictions with score >= threshold (crowd-ignored ones included: a pixel is a
    pixel) in increasing score, so that where they overlap the higher score wins. Pixel counts
    are summed over the data set into a (classes + 1)^2 confusion matrix. ``pixel_IoU-<label>`` =
    TP / (TP + FP + FN) over pixels (NaN when the label appears in neither map),
    ``pixel_mIoU`` is their mean over the thing classes (background excluded, NaN skipped), and
    ``pixel_accuracy`` is the fraction of all pixels, background included, whose predicted label
    equals the true one.
"""

import logging
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .matching import ImageResult

logger = logging.getLogger(__name__)

BACKGROUND = "background"

# One line per metric, shown in report.md. Keys are results-dict keys without the class suffix.
METRIC_DESCRIPTIONS: Dict[str, str] = {
    "mIoU": "mean mask IoU of each ground-truth instance with its matched prediction "
    "(0 when missed); false detections do not lower it (matching: the one rule)",
    "accuracy": "share of hits (matched pairs with IoU >= IoU threshold) whose class is right "
    "(matching: the one rule, right-class hits first)",
    "precision": "TP / predictions that count: how many detections are right (mask and class; "
    "matching: the one rule)",
    "recall": "TP / ground-truth instances: how many objects were found with the right class "
    "(matching: the one rule)",
    "F1": "2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall",
    "AP50": "our mask AP at IoU 0.5, the one matching rule applied at every score threshold "
    "(COCO's segm AP50 matches greedily by score)",
    "pixel_IoU": "per-pixel IoU of the painted class maps",
    "pixel_mIoU": "mean of the per-class pixel IoUs (background excluded)",
    "pixel_accuracy": "share of all pixels (background included) with the right label",
}

COCO_DESCRIPTIONS: Dict[str, str] = {
    "AP": "COCO AP: area under the precision-recall curve, averaged over IoU 0.50:0.05:0.95",
    "AP50": "COCO AP at IoU 0.5 only (a loose match counts)",
    "AP75": "COCO AP at IoU 0.75 only (a tight match is needed)",
    "APs": "COCO AP on small objects (area < 32^2 pixels)",
    "APm": "COCO AP on medium objects (32^2 to 96^2 pixels)",
    "APl": "COCO AP on large objects (area > 96^2 pixels)",
}


def _rate(num: float, den: float) -> float:
    """num / den in percent, NaN when den is 0."""
    return 100.0 * num / den if den > 0 else float("nan")


def instance_confusion(
    records: Sequence[ImageResult], num_classes: int, iou_thresh: float
) -> np.ndarray:
    """
    Instance confusion matrix (see the module docstring).

    Args:
        records: per-image results.
        num_classes: K; background is label K.
        iou_thresh: IoU a matched pair needs to be a hit.

    Returns:
        ndarray[K + 1, K + 1] of int64, rows true, columns predicted.
    """
    bg = num_classes
    cm = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for rec in records:
        for gc, iou, pc in zip(rec.gt_classes, rec.gt_ious, rec.gt_pred_classes):
            if pc >= 0 and iou >= iou_thresh:
                cm[gc, pc] += 1
            else:
                cm[gc, bg] += 1
                if pc >= 0:
                    cm[bg, pc] += 1
        for pc in rec.false_classes:
            cm[bg, pc] += 1
    return cm


def precision_recall_curve(
    scores: np.ndarray, is_tp: np.ndarray, num_gt: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Precision and recall as the score threshold goes down through the ranked predictions.

    Args:
        scores: ndarray[M] of float.
        is_tp: ndarray[M] of bool.
        num_gt: ground-truth instances of the class.

    Returns:
        (recall, precision, thresholds): ndarray[M] each, in decreasing-score order, as
        fractions; recall is NaN-filled when num_gt is 0.
    """
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(is_tp[order]).astype(np.float64)
    fp = np.cumsum(~is_tp[order]).astype(np.float64)
    recall = tp / num_gt if num_gt > 0 else np.full_like(tp, np.nan)
    precision = tp / np.maximum(tp + fp, 1.0)
    return recall, precision, scores[order]


def interpolated_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """
    COCO's 101-point interpolated average precision.

    Args:
        recall, precision: ndarray[M] from :func:`precision_recall_curve`.

    Returns:
        AP as a fraction in [0, 1]; 0 when there are no predictions.
    """
    if len(recall) == 0:
        return 0.0
    # Make precision non-increasing from the right (the envelope COCO samples).
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    samples = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, samples, side="left")
    sampled = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1)], 0.0)
    return float(np.mean(sampled))


def pixel_metrics(cm: np.ndarray, class_names: Sequence[str]) -> Dict[str, float]:
    """
    Semantic-view metrics from the pixel confusion matrix.

    Args:
        cm: ndarray[K + 1, K + 1] of pixel counts, rows true, columns predicted, background last.
        class_names: K names.

    Returns:
        dict with ``pixel_IoU-<name>`` (classes and background), ``pixel_mIoU`` and
        ``pixel_accuracy``, in percent.
    """
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    out = {}
    labels = list(class_names) + [BACKGROUND]
    ious = [_rate(tp[k], union[k]) for k in range(len(labels))]
    for name, iou in zip(labels, ious):
        out[f"pixel_IoU-{name}"] = iou
    thing = np.asarray(ious[: len(class_names)])
    out["pixel_mIoU"] = float(np.nanmean(thing)) if np.isfinite(thing).any() else float("nan")
    out["pixel_accuracy"] = _rate(tp.sum(), cm.sum())
    return out


def instance_metrics(
    records: Sequence[ImageResult], class_names: Sequence[str], iou_thresh: float
) -> Tuple[Dict[str, float], np.ndarray]:
    """
    mIoU, accuracy, precision/recall/F1 and counts from the per-image results.

    Args:
        records: per-image results.
        class_names: K names.
        iou_thresh: IoU a matched pair needs to be a hit.

    Returns:
        (metrics dict in percent plus integer counts, instance confusion ndarray[K + 1, K + 1]).
    """
    k = len(class_names)
    cm = instance_confusion(records, k, iou_thresh)
    gt_cls = np.asarray([c for r in records for c in r.gt_classes], dtype=np.int64)
    gt_iou = np.asarray([v for r in records for v in r.gt_ious], dtype=np.float64)
    tp_k, gt_k, pred_k = np.diag(cm)[:k], cm[:k].sum(1), cm[:, :k].sum(0)
    hits = cm[:k, :k].sum()
    tp, n_gt, n_pred = int(tp_k.sum()), int(gt_k.sum()), int(pred_k.sum())
    out: Dict[str, float] = {
        "mIoU": 100.0 * float(gt_iou.mean()) if len(gt_iou) else float("nan"),
        "accuracy": _rate(tp, hits),
        "precision": _rate(tp, n_pred),
        "recall": _rate(tp, n_gt),
        "F1": _rate(2 * tp, 2 * tp + (n_pred - tp) + (n_gt - tp)),
    }
    for c, name in enumerate(class_names):
        sel = gt_iou[gt_cls == c]
        out[f"mIoU-{name}"] = 100.0 * float(sel.mean()) if len(sel) else float("nan")
        fp_c, fn_c = pred_k[c] - tp_k[c], gt_k[c] - tp_k[c]
        out[f"precision-{name}"] = _rate(tp_k[c], pred_k[c])
        out[f"recall-{name}"] = _rate(tp_k[c], gt_k[c])
        out[f"F1-{name}"] = _rate(2 * tp_k[c], 2 * tp_k[c] + fp_c + fn_c)
    out.update(
        {
            "num_images": len(records),
            "num_gt": n_gt,
            "num_pred": n_pred,
            "num_ignored": int(sum(r.num_ignored for r in records)),
            "num_matched": int(sum(1 for r in records for pc in r.gt_pred_classes if pc >= 0)),
            "hits": int(hits),
            "TP": tp,
            "FP": n_pred - tp,
            "FN": n_gt - tp,
        }
    )
    return out, cm


def pr_curves(
    scores: np.ndarray,
    classes: np.ndarray,
    is_tp: np.ndarray,
    num_gt: np.ndarray,
    class_names: Sequence[str],
) -> Dict[str, Dict[str, object]]:
    """
    Per-class precision-recall curves and AP50 from the score-ranked matching.

    Args:
        scores, classes, is_tp: ndarray[M] over all ranked predictions of the data set.
        num_gt: ndarray[K] of ground-truth instances per class.
        class_names: K names.

    Returns:
        dict name -> {"recall", "precision", "thresholds" (ndarrays, fractions), "AP50"
        (percent, NaN without ground truth), "num_gt"}.
    """
    curves = {}
    for c, name in enumerate(class_names):
        sel = classes == c
        recall, precision, thresholds = precision_recall_curve(
            scores[sel], is_tp[sel], int(num_gt[c])
        )
        ap = 100.0 * interpolated_ap(recall, precision) if num_gt[c] > 0 else float("nan")
        curves[name] = {
            "recall": recall,
            "precision": precision,
            "thresholds": thresholds,
            "AP50": ap,
            "num_gt": int(num_gt[c]),
        }
    return curves


def ap50_metrics(curves: Dict[str, Dict[str, object]]) -> Dict[str, float]:
    """``AP50-<name>`` per class and their mean ``AP50`` over classes with ground truth."""
    out = {f"AP50-{name}": float(c["AP50"]) for name, c in curves.items()}
    values = np.asarray(list(out.values()), dtype=np.float64)
    mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return {"AP50": mean, **out}


def flatten_records(records: List[List[ImageResult]]) -> List[ImageResult]:
    """Concatenate per-rank record lists, ordered by image id where ids compare."""
    flat = [r for part in records for r in part]
    try:
        flat.sort(key=lambda r: r.image_id)
    except TypeError:
        logger.debug("image ids of mixed types; keeping the gathered order")
    return flat
