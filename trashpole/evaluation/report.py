"""
The evaluation report: ``metrics.json``, ``per_image.json``, ``report.md``,
``confusion_matrix.png``, ``pr_curves.png``, ``gallery_worst.png``, ``gallery_best.png`` and,
when the evaluator kept every image's predictions, ``report.html`` (:mod:`.html_report`).

Call :func:`write_report` on the main process after ``inference_on_dataset`` with the
evaluators of :func:`trashpole.evaluation.build_evaluators`: it reads what they wrote into their
``output_dir`` (``trashpole_results.json`` and COCOEvaluator's ``coco_instances_results.json``).
"""

import contextlib
import io
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.utils import comm
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from trashpole.jsonio import to_jsonable, write_json
from trashpole.visualization.charts import number_text, plot_confusion_matrix, plot_pr_curves
from trashpole.visualization.overlays import plot_gallery

from .detail import EvaluationDetail
from .evaluator import TASK, records_by_image_id
from .html_report import write_html_report
from .matching import AP_IOU
from .metrics import COCO_DESCRIPTIONS, METRIC_DESCRIPTIONS
from .notes import accuracy_note
from .undefined import undefined_reasons

logger = logging.getLogger(__name__)


HOW_TO_READ = """\
## How to read this

All rates are percentages (0-100); `n/a` means undefined (nothing to divide by; the section
*Undefined values* at the end says why for each one, and `metrics.json` has them as `null`). The
trashpole numbers count predictions with score >= {score:g}; a *hit* is a prediction matched to
an object with mask IoU >= {iou:g}.

**Matching.** Each prediction is matched to at most one object and each object to at most one
prediction. Of all such pairings, the one used has the most hits with the right class, then the
most hits of any class, then the largest summed IoU: a wrong-class prediction never takes an
object from a right-class one, and no other pairing would find more objects. Mean IoU, accuracy,
precision, recall, F1, the confusion matrix and our AP50 all use this one matching (AP50 at every
score threshold, so its curve passes through the precision and recall below when the IoU
threshold is 0.5). COCO AP matches greedily in score order instead.

COCO AP and mean IoU answer different questions and can be far apart:
- **COCO AP** ranks *every* detection by score (down to the model's test threshold), needs the
  right class, averages precision over recall levels *and* over IoU thresholds 0.50 to 0.95, and
  is lowered by every false detection, duplicate or badly ranked score. A mask with IoU 0.6 is a
  hit at only 3 of the 10 IoU thresholds (0.50, 0.55, 0.60), so AP stays low when AP50 is fine.
- **mean IoU** looks at each annotated object once, takes the IoU of the one prediction matched
  to it (at score >= {score:g}), lets a wrong-class prediction count when it is the match, and
  is not lowered by false detections. A coarse mask still earns partial credit.

So a model that finds every object with coarse masks, wrong classes or many false alarms can
show mean IoU near 60 and COCO AP near 2. Read them together: low `accuracy` means class
confusion, low `precision` false detections, AP75 far below AP50 loose masks, low `recall`
missed objects. Compare units before comparing numbers: detectron2 reports AP in percent, so an
AP written as 0.021 elsewhere may be a fraction (2.1 %) or a percent (0.021 %).
"""


def _table(header: Sequence[str], rows: List[Sequence[Any]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append(
            "| " + " | ".join(v if isinstance(v, str) else number_text(v) for v in row) + " |"
        )
    return lines


def _coco_section(results: Dict[str, Dict[str, float]], class_names: Sequence[str]) -> List[str]:
    tasks = [t for t in ("bbox", "segm") if t in results]
    if not tasks:
        return ["## COCO metrics", "", "No COCO results were given (COCOEvaluator not run).", ""]
    rows = [
        [name] + [results[t].get(name) for t in tasks] + [desc]
        for name, desc in COCO_DESCRIPTIONS.items()
    ]
    rows += [
        [f"AP-{c}"] + [results[t].get(f"AP-{c}") for t in tasks] + [f"COCO AP of class {c}"]
        for c in class_names
    ]
    lines = ["## COCO metrics (detectron2 COCOEvaluator)", ""]
    return lines + _table(["metric"] + tasks + ["meaning"], rows) + [""]


def _instance_section(m: Dict[str, float], class_names: Sequence[str], iou: float) -> List[str]:
    rows = []
    for key in ("mIoU", "precision", "recall", "F1", "AP50"):
        rows.append([key, m.get(key)] + [m.get(f"{key}-{c}") for c in class_names])
        rows[-1].append(METRIC_DESCRIPTIONS[key])
    rows.append(["accuracy", m.get("accuracy")] + ["-"] * len(class_names))
    rows[-1].append(METRIC_DESCRIPTIONS["accuracy"])
    counts = ", ".join(
        f"{k} {number_text(m.get(k))}"
        for k in ("num_gt", "num_pred", "num_matched", "hits", "TP", "FP", "FN", "num_ignored")
    )
    lines = [f"## Instance metrics (hit: mask IoU >= {iou:g})", ""]
    lines += _table(["metric", "all"] + list(class_names) + ["meaning"], rows)
    lines += ["", f"Counts: {counts} (ignored: predictions mostly inside crowd regions).", ""]
    return lines


def _confusion_section(cm: np.ndarray, labels: Sequence[str]) -> List[str]:
    rows = [[f"true {labels[i]}"] + [int(v) for v in cm[i]] for i in range(len(labels))]
    lines = ["## Confusion matrix (instances)", ""]
    lines += _table(["", *[f"pred {lb}" for lb in labels]], rows)
    lines += [
        "",
        "Rows: true label, columns: predicted label. The background column counts missed "
        "objects, the background row false detections (a match below the IoU threshold counts "
        "as both). ![confusion matrix](confusion_matrix.png)",
        "",
    ]
    return lines


def _pixel_section(m: Dict[str, float], class_names: Sequence[str]) -> List[str]:
    rows = [
        [f"pixel_IoU-{c}", m.get(f"pixel_IoU-{c}"), f"pixel IoU of {c}"]
        for c in list(class_names) + ["background"]
    ]
    rows += [[k, m.get(k), METRIC_DESCRIPTIONS[k]] for k in ("pixel_mIoU", "pixel_accuracy")]
    lines = ["## Pixel metrics (semantic view)", ""]
    lines += _table(["metric", "value", "meaning"], rows)
    lines += [
        "",
        "Instances are painted into a class map per image (higher score on top), truth and "
        "prediction, and compared pixel by pixel.",
        "",
    ]
    return lines


def _markdown(
    results: Dict[str, Dict[str, float]], detail: EvaluationDetail, pictures: List[str]
) -> str:
    m = results[TASK]
    names = detail.class_names
    lines = [
        f"# Evaluation report: {detail.dataset_name}",
        "",
        f"{number_text(m['num_images'])} images, {number_text(m['num_gt'])} objects, "
        f"{number_text(m['num_pred'])} predictions with score >= {detail.score_thresh:g}. "
        "All numbers are in `metrics.json`, per-image ones in `per_image.json`.",
        "",
        HOW_TO_READ.format(score=detail.score_thresh, iou=detail.iou_thresh),
    ]
    lines += _coco_section(results, names)
    lines += _instance_section(m, names, detail.iou_thresh)
    note = accuracy_note(m)
    lines += [note, ""] if note else []
    lines += _confusion_section(detail.confusion_matrix, names + ["background"])
    lines += _pixel_section(m, names)
    lines += ["## Pictures", ""] + [f"- [{p}]({p})" for p in pictures] + [""]
    lines += _undefined_section(_undefined(results, detail))
    return "\n".join(lines)


def _undefined(results: Dict[str, Dict[str, Any]], detail: EvaluationDetail) -> Dict:
    return undefined_reasons(results, score=detail.score_thresh, iou=detail.iou_thresh)


def _undefined_section(reasons: Dict[str, str]) -> List[str]:
    if not reasons:
        return []
    lines = ["## Undefined values", "", "Shown as `n/a` above and `null` in `metrics.json`:", ""]
    lines += [f"- `{key}`: {reason}" for key, reason in reasons.items()]
    return lines + [""]


def coco_pr_curves(
    dataset_name: str, results_json: str, class_names: Sequence[str]
) -> Dict[str, np.ndarray]:
    """
    Mask precision at IoU 0.5 over COCO's 101 recall levels, per class, from pycocotools.

    Args:
        dataset_name: registered data set whose metadata has ``json_file``.
        results_json: COCO results file (``coco_instances_results.json`` of COCOEvaluator).
        class_names: K names, contiguous order.

    Returns:
        dict name -> ndarray[101] of precision (-1 where COCO has none).
    """

    meta = MetadataCatalog.get(dataset_name)
    with open(results_json) as f:
        detections = json.load(f)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(meta.json_file)
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(detections), "segm")
        coco_eval.evaluate()
        coco_eval.accumulate()
    to_contiguous = meta.get("thing_dataset_id_to_contiguous_id") or {
        cid: k for k, cid in enumerate(sorted(coco_gt.getCatIds()))
    }
    to_dataset = {v: k for k, v in to_contiguous.items()}
    cat_ids = list(coco_eval.params.catIds)
    return {
        name: coco_eval.eval["precision"][0, :, cat_ids.index(to_dataset[c]), 0, -1]
        for c, name in enumerate(class_names)
    }


def _metrics_json(results: Dict[str, Any], detail: EvaluationDetail) -> Dict[str, Any]:
    summary = detail.summary()
    summary["results"] = results
    summary["pr_curves"] = {
        name: {"AP50": c["AP50"], "num_gt": c["num_gt"], "num_predictions": len(c["recall"])}
        for name, c in detail.pr_curves.items()
    }
    summary["undefined"] = _undefined(results, detail)
    summary["definitions"] = {
        "units": "rates in percent (0-100), counts as integers, null where undefined",
        **METRIC_DESCRIPTIONS,
        **{f"COCO {k}": v for k, v in COCO_DESCRIPTIONS.items()},
    }
    return to_jsonable(summary)


def _coco_precision(detail: EvaluationDetail, results_json: str) -> Optional[Dict]:
    """COCO's curves for the PR plot, when COCOEvaluator wrote its detections file."""
    if not os.path.isfile(results_json):
        logger.info("no COCO detections file (%s); PR plot shows ours only", results_json)
        return None
    try:
        return coco_pr_curves(detail.dataset_name, results_json, detail.class_names)
    except Exception as e:  # the plot is a cross-check; the report must still be written
        logger.warning("COCO PR curves unavailable (%s); PR plot shows ours only", e)
        return None


def write_report(
    results: Dict[str, Dict[str, float]],
    evaluation_dir: str,
    output_dir: str,
) -> None:
    """
    Write the evaluation report into ``output_dir`` from what the evaluators wrote into
    ``evaluation_dir``. Does nothing on a process other than the main one.

    Args:
        results: the dict returned by ``inference_on_dataset`` (``bbox``/``segm`` from COCO and
            ``trashpole``); the trashpole part is taken from the detail file when missing.
        evaluation_dir: the evaluators' ``output_dir``: TrashPoleEvaluator's
            ``trashpole_results.json`` (required) and, when there, COCOEvaluator's
            ``coco_instances_results.json``, whose mask precision at IoU 0.5 is drawn in
            ``pr_curves.png`` for comparison.
        output_dir: folder for the files (created).

    ``report.html`` (every image browsable) is written too when the evaluator kept every
    image's predictions (``keep_predictions=True``, as :func:`build_evaluators` sets from
    ``TRASHPOLE.EVAL.HTML_REPORT``).
    """
    if not comm.is_main_process():
        return
    detail = EvaluationDetail.load(evaluation_dir)
    ground_truth = records_by_image_id(detail.dataset_name)
    results = dict(results)
    results.setdefault(TASK, detail.metrics)
    os.makedirs(output_dir, exist_ok=True)
    write_json(_metrics_json(results, detail), os.path.join(output_dir, "metrics.json"))
    records = [r.to_dict(detail.iou_thresh) for r in detail.records]
    write_json(records, os.path.join(output_dir, "per_image.json"), indent=1)

    plot_confusion_matrix(
        detail.confusion_matrix, detail.labels, os.path.join(output_dir, "confusion_matrix.png")
    )
    coco_json = os.path.join(evaluation_dir, "coco_instances_results.json")
    coco_precision = _coco_precision(detail, coco_json)
    plot_pr_curves(detail, os.path.join(output_dir, "pr_curves.png"), coco_precision, AP_IOU)
    for which in ("worst", "best"):
        plot_gallery(
            detail,
            ground_truth,
            detail.gallery[which],
            f"{which} images by per-image mean IoU (truth left, prediction right)",
            os.path.join(output_dir, f"gallery_{which}.png"),
        )
    pictures = ["confusion_matrix.png", "pr_curves.png", "gallery_worst.png", "gallery_best.png"]
    html = detail.predictions is not None
    markdown = _markdown(results, detail, pictures + (["report.html"] if html else []))
    with open(os.path.join(output_dir, "report.md"), "w") as f:
        f.write(markdown)
    if html:
        write_html_report(results, detail, ground_truth, output_dir, markdown)
    logger.info("wrote the evaluation report to %s", output_dir)
