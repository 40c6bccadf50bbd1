"""
What is in the registered data: images and instances per split and class, instances per image,
object sizes (COCO small / medium / large) and the problems found while loading.

:func:`write_data_summary` writes ``data_summary.json``, a readable ``data_summary.txt`` and
``labels.png`` (class histogram, box-centre heatmap, box width/height scatter, size histogram) and
logs the tables; the trainer calls it at start-up.
"""

import logging
import math
import os
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from tabulate import tabulate

from trashpole.jsonio import write_json
from trashpole.visualization.charts import plot_labels

from .anchors import boxes_at_scale
from .geometry import segmentation_area
from .register import SplitLoader
from .validation import PROBLEM_KINDS, SKIP_IMAGE, ValidationReport

logger = logging.getLogger(__name__)

# COCO's object size limits (mask area in pixels): small < 32^2 <= medium < 96^2 <= large.
SMALL_AREA = 32**2
MEDIUM_AREA = 96**2
SIZE_NAMES = ("small", "medium", "large")
# Skipped or converted images listed by name in data_summary.txt, per split (all in the JSON).
MAX_LISTED = 20


def summarize_dataset(
    dataset_names: Sequence[str], scale_of: Optional[Callable[[int, int], float]] = None
) -> Dict[str, Any]:
    """Count what is in registered data sets.

    Data sets registered by :func:`~trashpole.data.register_roboflow_splits` come with the
    problems found when they were checked (reused if already checked); others are read through
    ``DatasetCatalog.get``.

    Args:
        dataset_names: registered names, e.g. ``["trashpole_train", "trashpole_valid"]``.

    Returns:
        ``{"classes": [...], "splits": {name: {...}}}``; each split has ``images``,
        ``images_without_annotations``, ``instances`` (not crowd), ``crowd_instances``,
        ``instances_per_image`` (mean, median, max), ``object_sizes`` (small/medium/large),
        ``per_class`` ({class: images, instances, small, medium, large}), ``image_sizes``
        ({"WxH": images}), ``problems`` ({kind: count}), ``problem_details``, ``kept``,
        ``skipped_images`` and ``converted_images`` (one message each, naming the file and why);
        with ``scale_of`` also ``object_widths`` (see :func:`width_stats`).

    Args:
        dataset_names: registered names.
        scale_of: (image height, image width) -> the factor training resizes that image by
            (:func:`trashpole.data.augment.train_scale_fn`); None leaves object widths out.
    """
    return _collect(dataset_names, scale_of)[0]


def write_data_summary(
    dataset_names: Sequence[str],
    output_dir: str,
    scale_of: Optional[Callable[[int, int], float]] = None,
) -> Dict[str, Any]:
    """Summarize data sets into ``output_dir`` and log the tables.

    Writes ``data_summary.json`` (the dict returned), ``data_summary.txt`` (the tables) and
    ``labels.png`` (the label plots).

    Args:
        dataset_names: registered names.
        output_dir: folder to write into (created if needed).
        scale_of: as in :func:`summarize_dataset`.

    Returns:
        the summary dict of :func:`summarize_dataset`.
    """
    summary, instances = _collect(dataset_names, scale_of)
    os.makedirs(output_dir, exist_ok=True)
    write_json(summary, os.path.join(output_dir, "data_summary.json"))
    text = format_summary(summary)
    with open(os.path.join(output_dir, "data_summary.txt"), "w") as f:
        f.write(text + "\n")
    colors = getattr(MetadataCatalog.get(dataset_names[0]), "thing_colors", None)
    plot_labels(instances, summary["classes"], os.path.join(output_dir, "labels.png"), colors)
    logger.info(f"Data summary (written to {output_dir}):\n{text}")
    return summary


def _load(name: str) -> Tuple[List[dict], Optional[ValidationReport]]:
    if name not in DatasetCatalog.list():
        raise KeyError(f"data set {name!r} is not registered; registered: {DatasetCatalog.list()}")
    # DatasetCatalog is a dict of the registered functions; ours keep the validation report
    loader = DatasetCatalog[name]
    if isinstance(loader, SplitLoader):
        return loader.load()
    return DatasetCatalog.get(name), None


def _collect(
    dataset_names: Sequence[str], scale_of: Optional[Callable[[int, int], float]] = None
) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """The summary dict and, per split, ndarray[N, 7] of instance rows (see :func:`_rows`)."""
    if not dataset_names:
        raise ValueError("no data set names given to summarize")
    classes = list(MetadataCatalog.get(dataset_names[0]).get("thing_classes", []))
    summary: Dict[str, Any] = {"classes": classes, "splits": {}}
    instances = {}
    for name in dataset_names:
        dicts, report = _load(name)
        rows = _rows(dicts)
        if not classes and len(rows):
            classes = [str(i) for i in range(int(rows[:, 0].max()) + 1)]
            summary["classes"] = classes
        summary["splits"][name] = _split_stats(dicts, rows, classes, report)
        if scale_of is not None:
            summary["splits"][name]["object_widths"] = width_stats(object_widths(dicts, scale_of))
        instances[name] = rows
    return summary, instances


def _rows(dicts: List[dict]) -> np.ndarray:
    """One row per instance: class, mask area, box centre x, y and width, height (all four as
    fractions of the image size), iscrowd. Returns ndarray[N, 7] of float64."""
    rows = []
    for d in dicts:
        w, h = float(d["width"]), float(d["height"])
        for a in d.get("annotations", []):
            x, y, bw, bh = a["bbox"][:4]  # our dicts are XYWH_ABS
            area = segmentation_area(a["segmentation"]) if "segmentation" in a else bw * bh
            rows.append(
                [a["category_id"], area, (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
                + [a.get("iscrowd", 0)]
            )
    return np.asarray(rows, dtype=np.float64).reshape(-1, 7)


def _sizes(areas: np.ndarray) -> Dict[str, int]:
    bins = np.digitize(areas, [SMALL_AREA, MEDIUM_AREA])
    return {name: int((bins == i).sum()) for i, name in enumerate(SIZE_NAMES)}


def _split_stats(
    dicts: List[dict], rows: np.ndarray, classes: List[str], report: Optional[ValidationReport]
) -> Dict[str, Any]:
    crowd = rows[:, 6] > 0
    solid = rows[~crowd]
    per_image = np.array(
        [sum(1 for a in d.get("annotations", []) if not a.get("iscrowd", 0)) for d in dicts]
    )
    per_class = {}
    for c, cname in enumerate(classes):
        mine = solid[solid[:, 0] == c]
        images = sum(
            1 for d in dicts if any(a["category_id"] == c for a in d.get("annotations", []))
        )
        per_class[cname] = {"images": images, "instances": len(mine), **_sizes(mine[:, 1])}
    image_sizes = Counter(f"{d['width']}x{d['height']}" for d in dicts)
    problems = report.problems if report else []
    return {
        "images": len(dicts),
        "images_without_annotations": int(sum(1 for d in dicts if not d.get("annotations"))),
        "instances": int(len(solid)),
        "crowd_instances": int(crowd.sum()),
        "instances_per_image": {
            "mean": float(per_image.mean()) if len(dicts) else 0.0,
            "median": float(np.median(per_image)) if len(dicts) else 0.0,
            "max": int(per_image.max()) if len(dicts) else 0,
        },
        "object_sizes": _sizes(solid[:, 1]),
        "per_class": per_class,
        "image_sizes": dict(image_sizes.most_common(5)),
        "problems": report.counts() if report else {},
        "problem_details": report.to_dict()["details"] if report else [],
        "kept": dict(report.stats) if report else {},
        "skipped_images": [p.message for p in problems if p.action == SKIP_IMAGE],
        "converted_images": [p.message for p in problems if p.kind == "image_converted"],
    }


def format_summary(summary: Dict[str, Any]) -> str:
    """The summary as readable tables (splits, classes per split, problems)."""
    splits = summary["splits"]
    head = ["split", "images", "empty", "instances", "inst/image (mean, max)", "crowd"]
    table = [
        [
            name,
            s["images"],
            s["images_without_annotations"],
            s["instances"],
            f"{s['instances_per_image']['mean']:.2f}, {s['instances_per_image']['max']}",
            s["crowd_instances"],
        ]
        for name, s in splits.items()
    ]
    lines = [tabulate(table, head, tablefmt="pipe"), ""]
    head = ["split", "class", "images", "instances", *SIZE_NAMES]
    table = [
        [name, cname, c["images"], c["instances"], *(c[k] for k in SIZE_NAMES)]
        for name, s in splits.items()
        for cname, c in s["per_class"].items()
    ]
    lines += [tabulate(table, head, tablefmt="pipe"), ""]
    lines.append(f"Object sizes are COCO's: small < {SMALL_AREA} <= medium < {MEDIUM_AREA} px^2.")
    for name, s in splits.items():
        if "object_widths" in s:
            q = s["object_widths"]
            lines.append(
                f"{name}: object width (shorter box side) at the training size: 10th percentile "
                f"{q['p10']:.1f} px, median {q['median']:.1f} px, 90th percentile {q['p90']:.1f} px"
            )
    lines.append("Problems found while loading (see data_summary.json for the details):")
    for name, s in splits.items():
        if not s["problems"]:
            lines.append(f"  {name}: none")
            continue
        text = ", ".join(f"{k}: {n} ({PROBLEM_KINDS[k][0]})" for k, n in s["problems"].items())
        lines.append(f"  {name}: {text}")
        for what in ("skipped_images", "converted_images"):
            messages = s.get(what, [])
            lines += [f"    {what.split('_')[0]}: {m}" for m in messages[:MAX_LISTED]]
            if len(messages) > MAX_LISTED:
                lines.append(f"    ... and {len(messages) - MAX_LISTED} more in data_summary.json")
    return "\n".join(lines)


def object_widths(dicts: Sequence[dict], scale_of: Callable[[int, int], float]) -> np.ndarray:
    """
    The width of every non-crowd object at the training size: the shorter side of its box.

    Args:
        dicts: detectron2 dataset dicts (XYWH_ABS boxes).
        scale_of: (image height, image width) -> the factor training resizes that image by.

    Returns:
        ndarray[N] of pixels.
    """
    return boxes_at_scale(dicts, scale_of, min_side=0.0).min(axis=1)


def width_stats(widths: np.ndarray) -> Dict[str, float]:
    """10th percentile, median and 90th percentile (pixels) of object widths; 0 when empty."""
    if len(widths) == 0:
        return {"p10": 0.0, "median": 0.0, "p90": 0.0}
    p10, median, p90 = np.percentile(widths, [10, 50, 90])
    return {"p10": float(p10), "median": float(median), "p90": float(p90)}


def thin_object_warning(
    widths: np.ndarray, short_size: float, min_width: float, max_share: float
) -> Optional[str]:
    """
    A warning when more than ``max_share`` of the objects are narrower than ``min_width`` pixels
    at the training size, with the training size that keeps all but ``max_share`` of them at
    ``min_width`` or more (rounded up to a multiple of 32).

    Args:
        widths: ndarray[N], object widths at the training size (:func:`object_widths`).
        short_size: the training size (shorter image side, pixels) the widths were measured at.
        min_width: pixels an object should keep.
        max_share: share (0-1) of objects allowed under ``min_width``.

    Returns:
        the message, or None when the objects are wide enough (or there are none).
    """
    if len(widths) == 0 or min_width <= 0:
        return None
    share = float((widths < min_width).mean())
    if share <= max_share:
        return None
    quantile = float(np.quantile(widths, max_share))
    suggested = int(math.ceil(short_size * min_width / max(quantile, 1e-6) / 32) * 32)
    return (
        f"{share:.0%} of the train objects are under {min_width:g} px wide at the training size "
        f"{short_size:g} px ({max_share:.0%} quantile {quantile:.1f} px); a training size of about "
        f"{suggested} px keeps all but {max_share:.0%} of them at {min_width:g} px or more: set "
        f"INPUT.MIN_SIZE_TRAIN, INPUT.MAX_SIZE_TRAIN and INPUT.MIN_SIZE_TEST/MAX_SIZE_TEST to match "
        "(training and prediction slow down with the pixel count)"
    )
