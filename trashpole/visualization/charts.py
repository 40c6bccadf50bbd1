"""
The charts (matplotlib, no photos): a run's training curves, a comparison of runs, the label
statistics of a data set (``labels.png``), the evaluation's confusion matrix and PR curves, and
the positions of an inventory.

Each uses matplotlib's object API (``Figure``), so importing this module chooses no backend for
the user's process and leaves pyplot's figure list alone.
"""

import logging
import math
import os
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .palette import class_colors

logger = logging.getLogger(__name__)


def number_text(value: Any) -> str:
    """A table or chart cell: ints as they are, other numbers with 2 decimals, ``n/a`` for
    None, NaN and infinities."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.2f}"


# (title, [(column of results.csv, legend)], y-label)
_PANELS = [
    ("Loss", [("train_loss", "train"), ("val_loss", "validation")], "loss"),
    ("Mask AP", [("segm_AP", "AP"), ("segm_AP50", "AP50")], "AP (%)"),
    ("Box AP", [("bbox_AP", "AP"), ("bbox_AP50", "AP50")], "AP (%)"),
    ("Mean IoU", [("mIoU", "mean IoU")], "%"),
    ("Classification accuracy", [("accuracy", "accuracy")], "%"),
    ("Learning rate", [("lr", "lr")], "lr"),
]


def plot_training_curves(rows: Sequence[Dict[str, float]], path: str) -> None:
    """
    Draw the training curves of a run against epoch into one PNG.

    Args:
        rows: one dict per evaluation with ``epoch`` and the columns of ``results.csv``.
        path: output PNG.
    """
    fig = Figure(figsize=(15, 8))
    axes = fig.subplots(2, 3)
    for ax, (title, series, ylabel) in zip(axes.flat, _PANELS):
        for col, label in series:
            pts = [(r["epoch"], r[col]) for r in rows if col in r]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if title == "Learning rate":
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle("trashpole training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_comparison(runs: List[Dict[str, Any]], path: str, title: Optional[str] = None) -> None:
    """
    Grouped bar plot: one group per metric, one bar per run (missing values are left out).

    Args:
        runs: from :func:`compare_runs`.
        path: output PNG.
        title: figure title.
    """
    keys = list(runs[0]["values"]) if runs else []
    width = 0.8 / max(len(runs), 1)
    fig = Figure(figsize=(max(6, 1.3 * len(keys) + 2), 4.5))
    ax = fig.subplots()
    x = np.arange(len(keys))
    for i, run in enumerate(runs):
        values = [run["values"].get(k) for k in keys]
        heights = [v if isinstance(v, (int, float)) and np.isfinite(v) else 0.0 for v in values]
        bars = ax.bar(x + (i - (len(runs) - 1) / 2) * width, heights, width, label=run["name"])
        for bar, v in zip(bars, values):
            ax.annotate(
                number_text(v),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(x, keys, rotation=25, ha="right")
    ax.set_ylabel("percent")
    ax.set_ylim(0, 105)
    ax.set_title(title or "Evaluation of runs")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


def plot_labels(
    instances: Dict[str, np.ndarray],
    classes: List[str],
    path: str,
    colors: Optional[List[Tuple[int, int, int]]] = None,
) -> None:
    """Draw the label plots into ``path`` (PNG): instances per class and split, box centres,
    box width/height, and mask sizes against COCO's small/medium/large limits.

    Args:
        instances: {split: ndarray[N, 7]} as made by :func:`trashpole.data.summary.summarize_dataset`'s rows.
        classes: class names by contiguous id.
        path: output file.
        colors: RGB 0..255 per class (None: matplotlib's cycle).
    """
    # A bare Figure (no pyplot) leaves matplotlib's global backend and figure list alone.

    rows = np.concatenate(list(instances.values())) if instances else np.zeros((0, 7))
    rows = rows[rows[:, 6] == 0]
    cmap = colormaps["tab10"]
    palette = [
        np.asarray(colors[i]) / 255.0 if colors and i < len(colors) else cmap(i % 10)
        for i in range(len(classes))
    ]
    fig = Figure(figsize=(11, 9))
    axes = fig.subplots(2, 2)
    _plot_class_counts(axes[0, 0], instances, classes)
    _plot_centres(fig, axes[0, 1], rows)
    _plot_box_shapes(axes[1, 0], rows, classes, palette)
    _plot_sizes(axes[1, 1], rows, classes, palette)
    fig.suptitle(f"Labels of {', '.join(instances)} ({len(rows)} instances, crowd excluded)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_class_counts(ax, instances: Dict[str, np.ndarray], classes: List[str]) -> None:
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(instances))
    for i, (name, rows) in enumerate(instances.items()):
        solid = rows[rows[:, 6] == 0]
        counts = [int((solid[:, 0] == c).sum()) for c in range(len(classes))]
        bars = ax.bar(x + i * width, counts, width, label=name)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x + width * (len(instances) - 1) / 2, classes)
    ax.set_ylabel("instances")
    ax.set_title("Instances per class")
    ax.legend(fontsize=8)


def _plot_centres(fig, ax, rows: np.ndarray) -> None:
    _, _, _, image = ax.hist2d(
        rows[:, 2], rows[:, 3], bins=25, range=[[0, 1], [0, 1]], cmap="Blues"
    )
    fig.colorbar(image, ax=ax, label="instances")
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)  # image coordinates: y grows downwards
    ax.set_xlabel("box centre x / image width")
    ax.set_ylabel("box centre y / image height")
    ax.set_title("Box centres")


def _plot_box_shapes(ax, rows: np.ndarray, classes: List[str], palette) -> None:
    for c, cname in enumerate(classes):
        mine = rows[rows[:, 0] == c]
        ax.scatter(mine[:, 4], mine[:, 5], s=6, alpha=0.5, color=palette[c], label=cname)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("box width / image width")
    ax.set_ylabel("box height / image height")
    ax.set_title("Box shapes")
    ax.legend(fontsize=8, markerscale=2)


def _plot_sizes(ax, rows: np.ndarray, classes: List[str], palette) -> None:
    sides = np.sqrt(np.maximum(rows[:, 1], 1.0))
    top = max(2048.0, float(sides.max()) if len(sides) else 0.0)
    bins = np.geomspace(1, top, 40)
    data = [sides[rows[:, 0] == c] for c in range(len(classes))]
    ax.hist(data, bins=bins, stacked=True, color=palette, label=classes)
    ax.set_xscale("log")
    for limit in (32, 96):
        ax.axvline(limit, color="k", linestyle="--", linewidth=1)
    for name, lo, hi in (("small", 1, 32), ("medium", 32, 96), ("large", 96, top)):
        ax.text(np.sqrt(lo * hi), ax.get_ylim()[1] * 0.97, name, fontsize=9, ha="center", va="top")
    ax.set_xlabel("sqrt(mask area) in pixels")
    ax.set_ylabel("instances")
    ax.set_title("Object sizes (COCO limits 32, 96)")
    ax.legend(fontsize=8)


def plot_confusion_matrix(cm: np.ndarray, labels: Sequence[str], path: str) -> None:
    """
    Save the instance confusion matrix as a PNG, colored by row share, annotated with counts.

    Args:
        cm: ndarray[L, L] of counts, rows true, columns predicted.
        labels: L names.
        path: output file.
    """
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(1.4 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if share[i, j] > 0.6 else "black"
            text = f"{cm[i, j]}\n{100 * share[i, j]:.0f}%" if cm[i].sum() else str(cm[i, j])
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=10)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Instance confusion (count, share of row)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_pr_curves(
    detail, path: str, coco_precision: Optional[Dict] = None, iou: float = 0.5
) -> None:
    """
    Save per-class mask precision-recall curves as a PNG.

    Args:
        detail: a :class:`trashpole.evaluation.EvaluationDetail` (uses ``pr_curves``,
            ``class_names``, ``score_thresh``).
        path: output file.
        coco_precision: optional name -> ndarray[101] from
            :func:`trashpole.evaluation.report.coco_pr_curves`, drawn dashed.
        iou: the mask IoU the curves were computed at, for the titles.
    """
    names = detail.class_names
    fig = Figure(figsize=(4.5 * len(names), 4.2))
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names):
        curve = detail.pr_curves[name]
        recall, precision, thresholds = curve["recall"], curve["precision"], curve["thresholds"]
        if curve["num_gt"] and len(recall):
            # Start the curve at recall 0, as COCO's interpolation does.
            ax.step(
                np.r_[0.0, recall],
                np.r_[precision[0], precision],
                where="post",
                label=f"ours, AP50 {number_text(curve['AP50'])}",
            )
            at = np.flatnonzero(thresholds >= detail.score_thresh)
            if len(at):
                ax.plot(
                    recall[at[-1]],
                    precision[at[-1]],
                    "o",
                    color="C3",
                    label=f"operating point (score >= {detail.score_thresh:g})",
                )
        if coco_precision is not None and name in coco_precision:
            p = coco_precision[name]
            ok = p > -1
            coco_ap = 100 * p[ok].mean() if ok.any() else float("nan")
            ax.plot(
                np.linspace(0, 1, 101)[ok],
                p[ok],
                "--",
                color="C2",
                label=f"COCO segm, AP50 {number_text(coco_ap)}",
            )
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{name} ({curve['num_gt']} objects), mask IoU >= {iou:g}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no objects or predictions", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_positions(
    points: Sequence[Tuple[str, float, float]], path: str, class_names: Sequence[str] = ()
) -> None:
    """
    A scatter plot of positions, one colour per class, longitude across and latitude up (with
    the axes in proportion at that latitude).

    Args:
        points: (class name, longitude, latitude) in degrees.
        path: output PNG.
        class_names: the model's classes in id order, which pick each class's colour from
            the palette of every picture (trashpole.visualization); others follow them.
    """
    by_class = defaultdict(list)
    for name, lon, lat in points:
        by_class[name].append((lon, lat))
    order = list(class_names) + sorted(n for n in by_class if n not in class_names)
    colors = class_colors(len(order))
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    for name, xy in sorted(by_class.items()):
        lon, lat = np.array(xy).T
        color = tuple(c / 255 for c in colors[order.index(name)])
        ax.scatter(lon, lat, s=36, alpha=0.7, color=color, label=f"{name} ({len(xy)})")
    mean_lat = float(np.mean([p[2] for p in points]))
    # a degree of longitude is cos(latitude) of a degree of latitude on the ground
    ax.set_aspect(1 / max(math.cos(math.radians(mean_lat)), 1e-3), adjustable="datalim")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_xlabel("longitude (degrees east)")
    ax.set_ylabel("latitude (degrees north)")
    ax.set_title("Detections by class at their photo's GPS position")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    logger.info(f"Plotted {len(points)} positions: {path}")
