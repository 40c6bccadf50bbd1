"""
``report.html``: the evaluation report as one page that opens from disk without a network. It
holds report.md's tables and explanations, the confusion matrix and PR curve plots, and every
evaluated image, browsable: the ground truth beside the prediction, per-image metrics, filters by
class and by what went wrong, sorted worst first, with keyboard navigation.

Layout on disk (next to report.md)::

    report.html              page, styles, script and per-image data inline
    report_files/00000.jpg   per image: the photo (longest side 480 px),
    report_files/00000_truth.png, 00000_pred.png   and its two transparent mask overlays

The pictures load lazily, so a 1,000-image split opens as fast as a small one
(``tools/benchmark.py report`` measures it). :func:`trashpole.evaluation.write_report` calls
:func:`write_html_report` when the evaluator kept every image's predictions
(``TRASHPOLE.EVAL.HTML_REPORT``).
"""

import html
import json
import logging
import os
import shutil
from importlib import resources
from typing import Any, Dict, List, Optional, Sequence, Tuple

from detectron2.data import MetadataCatalog

from trashpole.visualization import class_colors
from trashpole.visualization.panels import (
    CROWD_COLOR,
    OUTCOME_COLORS,
    draw_overlay,
    panel_size,
    read_photo,
    write_image_files,
)

from .detail import EvaluationDetail, GalleryItem, worst_first_key
from .evaluator import TASK
from .markdown_html import markdown_to_html
from .matching import ImageResult, segmentation_to_rle

logger = logging.getLogger(__name__)

FILES_DIR = "report_files"  # sibling folder of report.html with the pictures
# Problem kinds of the page's filter: key in the page data -> what the filter shows
PROBLEMS = {
    "missed": "missed object (no prediction matched it)",
    "false": "false detection (a prediction matched to no object)",
    "wrong": "wrong class (matched at or above the IoU threshold, to another class)",
    "lowiou": "low IoU (matched, IoU below the threshold)",
}
_OUTCOME_PROBLEM = {"missed": "missed", "wrong class": "wrong", "low IoU": "lowiou"}


def gt_outcome(iou: float, gt_class: int, pred_class: int, iou_thresh: float) -> str:
    """
    What became of one ground-truth instance, from the evaluator's matching.

    Args:
        iou: IoU with the matched prediction, as a fraction (0 when unmatched).
        gt_class: its class.
        pred_class: class of the matched prediction, -1 when unmatched.
        iou_thresh: IoU a matched pair needs to be a hit.

    Returns:
        "missed" (no prediction matched it), "low IoU" (matched below ``iou_thresh``), "wrong
        class" (matched at or above it, other class) or "hit".
    """
    if pred_class < 0:
        return "missed"
    if iou < iou_thresh:
        return "low IoU"
    return "wrong class" if pred_class != gt_class else "hit"


def image_entry(
    result: ImageResult, iou_thresh: float, prediction: Optional[GalleryItem]
) -> Dict[str, Any]:
    """
    The page's data for one image: per-image metrics (as in per_image.json), each ground-truth
    instance with its outcome, the predictions shown, and the problems the filters look for.

    Args:
        result: the evaluator's record of the image.
        iou_thresh: the evaluator's IoU threshold.
        prediction: its kept predictions (None: none kept).

    Returns:
        JSON-friendly dict; ``problems`` is a sorted list of unique [kind, class] pairs with kind
        a key of :data:`PROBLEMS` (a wrong class names both the true and the predicted class),
        ``classes`` every class in the truth or the counted predictions.
    """
    d = result.to_dict(iou_thresh)
    gt, problems = [], set()
    for cls, iou, pred_cls in zip(result.gt_classes, result.gt_ious, result.gt_pred_classes):
        outcome = gt_outcome(iou, cls, pred_cls, iou_thresh)
        gt.append([int(cls), round(100.0 * iou, 1), int(pred_cls), outcome])
        if outcome != "hit":
            problems.add((_OUTCOME_PROBLEM[outcome], int(cls)))
        if outcome == "wrong class":
            problems.add(("wrong", int(pred_cls)))
    problems |= {("false", int(c)) for c in result.false_classes}
    preds = []
    if prediction is not None:
        preds = sorted(
            ([int(c), round(float(s), 3)] for c, s in zip(prediction.classes, prediction.scores)),
            key=lambda p: -p[1],
        )
    classes = set(result.gt_classes) | set(result.false_classes)
    classes |= {c for c in result.gt_pred_classes if c >= 0}
    return {
        "id": str(result.image_id),
        "name": os.path.basename(result.file_name),
        "path": result.file_name,
        "miou": None if d["mIoU"] is None else round(d["mIoU"], 2),
        **{k: d[k] for k in ("TP", "FP", "FN", "num_gt", "num_pred", "num_ignored", "num_crowd")},
        "gt": gt,
        "false": [int(c) for c in result.false_classes],
        "pred": preds,
        "problems": sorted([k, c] for k, c in problems),
        "classes": sorted(int(c) for c in classes),
    }


def worst_first(records: Sequence[ImageResult]) -> List[int]:
    """Indices of ``records`` in the galleries' order: lowest per-image mean IoU first, more
    false detections first among equals, then by image id."""
    return sorted(
        range(len(records)),
        key=lambda k: worst_first_key(
            records[k].rank_key(), len(records[k].false_classes), records[k].image_id
        ),
    )


def _class_colors(detail: EvaluationDetail) -> List[Sequence[int]]:
    meta = MetadataCatalog.get(detail.dataset_name)
    n = len(detail.class_names)
    return list(meta.get("thing_colors") or class_colors(n))


def _truth_layers(record: dict, gt: List[list], names: Sequence[str], colors) -> tuple:
    """
    (rles, fill colors, labels, label colors) of an image's ground truth: each object in its
    class color, labeled with its number in the page's list and its outcome in the outcome's
    color; crowd regions in gray.
    """
    height, width = int(record["height"]), int(record["width"])
    layers: tuple = ([], [], [], [])
    outcomes = iter(gt)
    for k, anno in enumerate(record.get("annotations", [])):
        where = f"{record['file_name']} annotation {k}"
        rle = segmentation_to_rle(anno["segmentation"], height, width, where)
        if anno.get("iscrowd", 0):
            layer = (rle, CROWD_COLOR, "crowd", CROWD_COLOR)
        else:
            cls, iou, pred_cls, outcome = next(outcomes)
            number = len(layers[0]) + 1 - layers[2].count("crowd")
            text = {
                "hit": f"{number} hit {iou:.0f}",
                "low IoU": f"{number} IoU {iou:.0f}",
                "wrong class": f"{number} as {names[pred_cls]}",
                "missed": f"{number} missed",
            }[outcome]
            layer = (rle, colors[cls], text, OUTCOME_COLORS[outcome])
        for values, value in zip(layers, layer):
            values.append(value)
    return layers


def _draw_image(
    detail: EvaluationDetail,
    record: dict,
    gt: List[list],
    prediction: Optional[GalleryItem],
    colors: Sequence[Sequence[int]],
    prefix: str,
) -> Tuple[int, int]:
    """
    Write the photo and both overlays of one image (see :mod:`trashpole.visualization.panels`).

    Args:
        detail: the evaluation (class names).
        record: the image's data set dict (ground truth).
        gt: its ground-truth instances as in :func:`image_entry` ([class, IoU, predicted
            class, outcome], non-crowd annotations in order).
        prediction: its kept predictions, or None.
        colors: RGB color per class.
        prefix: path of the pictures without extension.

    Returns:
        (height, width) of the pictures.
    """
    height, width = int(record["height"]), int(record["width"])
    size = panel_size(height, width)
    names = detail.class_names
    truth = draw_overlay(size, *_truth_layers(record, gt, names, colors))
    # predictions drawn lowest score first, so that the best ones end on top
    pred = prediction or GalleryItem(None, 0.0, 0, [], [], [])
    order = sorted(range(len(pred.rles)), key=lambda k: pred.scores[k])
    pred_colors = [colors[pred.classes[k]] for k in order]
    overlay = draw_overlay(
        size,
        [pred.rles[k] for k in order],
        pred_colors,
        [f"{names[pred.classes[k]]} {100 * pred.scores[k]:.0f}" for k in order],
        pred_colors,
    )
    photo = read_photo(record["file_name"], size)
    write_image_files(prefix, photo, truth, overlay)
    return size


def static_text(name: str) -> str:
    """The text of a file shipped in trashpole/evaluation/static/ (the pages' CSS and JS)."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _tiles(results: Dict[str, Dict[str, float]]) -> str:
    """Headline numbers: (label, value, tooltip)."""
    m = results.get(TASK, {})
    segm = results.get("segm", {})
    items = [
        ("mask AP", segm.get("AP"), "COCO mask AP, IoU 0.50:0.95"),
        ("mask AP50", segm.get("AP50"), "COCO mask AP at IoU 0.5"),
        ("mask APs", segm.get("APs"), "COCO mask AP on small objects (area < 32^2 px)"),
        ("mean IoU", m.get("mIoU"), "mean over objects of the matched mask IoU"),
        ("precision", m.get("precision"), "hits / counted predictions"),
        ("recall", m.get("recall"), "hits / objects"),
        ("F1", m.get("F1"), "harmonic mean of precision and recall"),
        ("accuracy", m.get("accuracy"), "right class among matched pairs above the IoU"),
    ]
    cells = []
    for label, value, tip in items:
        text = "n/a" if value is None or value != value else f"{float(value):.1f}"
        cells.append(
            f'<div class="tile" title="{html.escape(tip)}"><b>{text}</b>'
            f"<span>{html.escape(label)}</span></div>"
        )
    return '<div class="tiles">' + "".join(cells) + "</div>"


def _metrics_section(markdown: str) -> str:
    """report.md without its title and picture list, as HTML, plus the PR curve plot."""
    lines = markdown.splitlines()
    lines = [x for x in lines if not x.startswith("# ")]
    if "## Pictures" in lines:
        lines = lines[: lines.index("## Pictures")]
    body = markdown_to_html("\n".join(lines))
    return (
        body + '\n<h2>Precision-recall curves (mask IoU 0.5)</h2>\n<img src="pr_curves.png" '
        'alt="precision-recall curves" class="plot" loading="lazy">'
    )


def _toolbar(class_names: Sequence[str]) -> str:
    """The image browser's filters (class, problem), sort order and mask switch."""
    filters = "".join(
        f'<option value="{k}">{html.escape(v.split(" (")[0])}</option>' for k, v in PROBLEMS.items()
    )
    classes = "".join(
        f'<option value="{k}">{html.escape(c)}</option>' for k, c in enumerate(class_names)
    )
    return f"""<div class="toolbar">
<label>class <select id="filter-class"><option value="">all classes</option>{classes}</select></label>
<label>problem <select id="filter-problem"><option value="all">all images</option>
<option value="any">any problem</option>{filters}<option value="none">no problem</option>
</select></label>
<label>sort <select id="sort"><option value="worst">worst first</option>
<option value="best">best first</option><option value="name">file name</option></select></label>
<label><input type="checkbox" id="show-masks" checked> masks</label>
<span id="count"></span>
</div>"""


def _page(title: str, summary: str, results, metrics_html: str, data: Dict[str, Any]) -> str:
    # no "<" inside the script element, so that no text of the data can end or escape it
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    legend = " ".join(
        f'<span class="outcome" style="background:rgb{tuple(c)}">{html.escape(o)}</span>'
        for o, c in OUTCOME_COLORS.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
{static_text("report.css")}
</style>
</head>
<body>
<header>
<h1>{html.escape(title)}</h1>
<p class="summary">{summary}</p>
{_tiles(results)}
<nav class="tabs"><a href="#metrics" data-tab="metrics">Metrics</a>
<a href="#images" data-tab="images">Images ({len(data["images"])})</a></nav>
</header>
<main>
<section id="tab-metrics" class="tab">
{metrics_html}
</section>
<section id="tab-images" class="tab" hidden>
{_toolbar(data["classes"])}
<p class="help">Ground truth left, prediction (score &ge; {data["score_thresh"]:g}) right.
Objects: {legend}. Keys: <kbd>j</kbd>/<kbd>&rarr;</kbd> next, <kbd>k</kbd>/<kbd>&larr;</kbd>
previous, <kbd>Enter</kbd> enlarge, <kbd>Esc</kbd> close, <kbd>m</kbd> masks on/off.</p>
<div id="cards"></div>
<noscript>The image browser needs JavaScript; the pictures are in {FILES_DIR}/.</noscript>
</section>
</main>
<div id="viewer" hidden></div>
<script type="application/json" id="report-data">{payload}</script>
<script>
{static_text("report.js")}
</script>
</body>
</html>
"""


def _image_entries(
    detail: EvaluationDetail,
    ground_truth: Dict[Any, dict],
    files: str,
    colors: List[Sequence[int]],
) -> List[Dict[str, Any]]:
    """Draw every image's pictures into ``files`` (emptied first) and return the page's entry of
    each, in the evaluation's order, with its rank from the worst."""
    shutil.rmtree(files, ignore_errors=True)
    os.makedirs(files)
    images = []
    for k, result in enumerate(detail.records):
        prediction = detail.predictions.get(result.image_id)
        entry = image_entry(result, detail.iou_thresh, prediction)
        prefix = os.path.join(files, f"{k:05d}")
        record = ground_truth[result.image_id]
        size = _draw_image(detail, record, entry["gt"], prediction, colors, prefix)
        entry.update(pic=f"{FILES_DIR}/{k:05d}", w=size[1], h=size[0])
        images.append(entry)
    for rank, k in enumerate(worst_first(detail.records)):
        images[k]["rank"] = rank
    return images


def write_html_report(
    results: Dict[str, Dict[str, float]],
    detail: EvaluationDetail,
    ground_truth: Dict[Any, dict],
    output_dir: str,
    markdown: str,
) -> str:
    """
    Write ``report.html`` and its pictures (``report_files/``, replaced) into ``output_dir``.

    Args:
        results: the evaluation results (``trashpole`` and, when run, COCO ``bbox``/``segm``).
        detail: an evaluation that kept every image's predictions (a TrashPoleEvaluator
            built with ``keep_predictions=True``).
        ground_truth: the data set dicts by image id.
        output_dir: the report folder, which already holds report.md and its plots.
        markdown: the text of report.md, whose tables and explanations the page shows.

    Returns:
        the path of report.html.
    """
    if detail.predictions is None:
        raise ValueError(
            "report.html needs every image's predictions: build the TrashPoleEvaluator with "
            "keep_predictions=True (TRASHPOLE.EVAL.HTML_REPORT True)"
        )
    colors = _class_colors(detail)
    images = _image_entries(detail, ground_truth, os.path.join(output_dir, FILES_DIR), colors)
    m = results.get(TASK, {})
    data = {
        "dataset": detail.dataset_name,
        "classes": list(detail.class_names),
        "colors": ["#%02x%02x%02x" % tuple(int(v) for v in c) for c in colors],
        "iou_thresh": detail.iou_thresh,
        "score_thresh": detail.score_thresh,
        "problems": PROBLEMS,
        "images": images,
    }
    summary = (
        f"{len(images)} images, {m.get('num_gt', 0)} objects, {m.get('num_pred', 0)} predictions "
        f"with score &ge; {detail.score_thresh:g}; a hit is a match with mask IoU &ge; "
        f'{detail.iou_thresh:g}. Files: <a href="report.md">report.md</a>, '
        '<a href="metrics.json">metrics.json</a>, <a href="per_image.json">per_image.json</a>.'
    )
    title = f"Evaluation report: {detail.dataset_name}"
    path = os.path.join(output_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(_page(title, summary, results, _metrics_section(markdown), data))
    logger.info("wrote %s (%d images in %s/)", path, len(images), FILES_DIR)
    return path
