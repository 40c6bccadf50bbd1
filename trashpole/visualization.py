"""The one class palette of every picture trashpole draws, and the plots of a training run.

Every drawing takes its class colours from :data:`CLASS_COLORS`: the data overlays and
``labels.png`` (through the ``thing_colors`` that registration puts in the metadata), the
prediction overlays, the galleries of ``report.md`` and the pictures of ``report.html``, so a
class has one colour everywhere. Plots use matplotlib's object API (``Figure``), so importing this
module chooses no backend for the user's process.
"""

import logging
from typing import Dict, List, Sequence, Tuple

from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

# Class colours (RGB, 0-255) by contiguous class id, cycling: Okabe and Ito's palette, which stays
# distinct for the common kinds of colour blindness.
CLASS_COLORS: List[Tuple[int, int, int]] = [
    (230, 159, 0),
    (0, 114, 178),
    (0, 158, 115),
    (204, 121, 167),
    (213, 94, 0),
]


def class_colors(num_classes: int) -> List[Tuple[int, int, int]]:
    """The RGB colour of each of ``num_classes`` classes, by contiguous id."""
    return [CLASS_COLORS[k % len(CLASS_COLORS)] for k in range(num_classes)]


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
