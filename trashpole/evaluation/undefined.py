"""
Why a number of an evaluation is undefined. An undefined metric is NaN in the results dict and
``null`` in every JSON file; ``report.md`` and ``metrics.json`` (``"undefined"``) give the
reason, e.g. "no predictions with score >= 0.5", so that ``n/a`` is never left unexplained.

Each reason follows from the definition of the metric (:mod:`trashpole.evaluation.metrics` and
detectron2's COCOEvaluator): a metric is NaN exactly when its denominator is empty.
"""

import math
from typing import Any, Dict, Mapping, Optional

# COCO's object sizes, as COCOEvaluator's APs / APm / APl use them (mask or box area, pixels).
_COCO_SIZES = {
    "APs": "small objects (area < 32^2 pixels)",
    "APm": "medium objects (area 32^2 to 96^2 pixels)",
    "APl": "large objects (area > 96^2 pixels)",
}


def is_undefined(value: Any) -> bool:
    """True for None and for a float NaN or infinity."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _coco_reason(key: str, task_results: Mapping[str, Any], coco_score: Optional[float]) -> str:
    headline = [k for k in ("AP", "AP50", "AP75") if k in task_results]
    if headline and all(is_undefined(task_results[k]) for k in headline):
        above = (
            f" with score >= {coco_score:g} (MODEL.ROI_HEADS.SCORE_THRESH_TEST)"
            if coco_score is not None
            else ""
        )
        return f"no detections: the model predicted nothing{above} on this split"
    if key in _COCO_SIZES:
        return f"no ground-truth {_COCO_SIZES[key]} in this split"
    if key.startswith("AP-"):
        return f"no ground-truth {key[3:]} objects in this split"
    return "COCOeval gives no value for it (-1: nothing to average)"


def _trashpole_reason(key: str, m: Mapping[str, Any], score: float, iou: float) -> str:
    base, _, cls = key.partition("-")
    objects = f"{cls} objects" if cls else "objects"
    predictions = f"{cls} predictions" if cls else "predictions"
    if base in ("mIoU", "recall", "AP50"):
        if base == "AP50" and not cls:
            return "no class has ground-truth objects in this split"
        return f"no ground-truth {objects} in this split"
    if base == "precision":
        return f"no {predictions} with score >= {score:g}"
    if base == "F1":
        return f"no ground-truth {objects} and no {predictions} with score >= {score:g}"
    if base == "accuracy":
        if not m.get("num_pred"):
            return f"no hits: no predictions with score >= {score:g}"
        return (
            f"no hits: no prediction with score >= {score:g} overlaps an object with mask "
            f"IoU >= {iou:g}"
        )
    if base == "pixel_IoU":
        return f"no {cls or 'such'} pixels in either the ground truth or the prediction maps"
    if base == "pixel_mIoU":
        return "no pixels of any class in either the ground truth or the prediction maps"
    if base == "pixel_accuracy":
        return "no pixels: no images were evaluated"
    return "nothing to divide by"


def undefined_reasons(
    results: Mapping[str, Mapping[str, Any]],
    coco_score: Optional[float] = None,
    score: float = 0.5,
    iou: float = 0.5,
) -> Dict[str, str]:
    """
    The reason of every undefined number of an evaluation.

    Args:
        results: ``{task: {metric: value}}`` as ``inference_on_dataset`` returns it (``bbox``,
            ``segm`` from COCOEvaluator, ``trashpole`` from TrashPoleEvaluator).
        coco_score: the model's test score threshold (``MODEL.ROI_HEADS.SCORE_THRESH_TEST``),
            down to which COCOEvaluator sees detections; None leaves it out of the reason.
        score: the trashpole evaluator's score threshold.
        iou: the trashpole evaluator's IoU threshold.

    Returns:
        ``{"task/metric": reason}`` for each value that is None, NaN or infinite, in results
        order.
    """
    reasons: Dict[str, str] = {}
    for task, values in results.items():
        if not isinstance(values, Mapping):
            continue
        for key, value in values.items():
            if not is_undefined(value):
                continue
            if task == "trashpole":
                reasons[f"{task}/{key}"] = _trashpole_reason(key, values, score, iou)
            else:
                reasons[f"{task}/{key}"] = _coco_reason(key, values, coco_score)
    return reasons
