"""Plots of a training run."""

import logging
from typing import Dict, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

logger = logging.getLogger(__name__)

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
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
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
    plt.close(fig)
