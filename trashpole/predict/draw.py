"""Pictures of an inventory: frames with track IDs drawn on them, and a map of positions."""

import logging
import math
from collections import defaultdict
from typing import Sequence, Tuple

import numpy as np
import torch
from detectron2.data import Metadata
from detectron2.utils.colormap import colormap
from detectron2.utils.visualizer import ColorMode, Visualizer
from matplotlib.figure import Figure

from trashpole.visualization import class_colors

logger = logging.getLogger(__name__)

_PALETTE = colormap(rgb=True, maximum=1)


def track_color(track_id: int) -> np.ndarray:
    """The colour of a track (RGB in 0-1): fixed for an ID, far apart for neighbouring IDs."""
    return _PALETTE[(int(track_id) * 7) % len(_PALETTE)]


def draw_tracked(
    image_bgr: np.ndarray, instances, ids: torch.Tensor, class_names: Sequence[str]
) -> np.ndarray:
    """
    The frame with each detection's mask, box and a label "#ID class score", one colour per ID.

    Args:
        image_bgr: uint8 [H, W, 3] in BGR order.
        instances: the frame's predictions on the CPU (``pred_boxes``, ``scores``,
            ``pred_classes``, optionally ``pred_masks`` as Tensor[N, H, W] of bool).
        ids: Tensor[N] of int64, the track IDs.
        class_names: names by contiguous class id.

    Returns:
        uint8 [H, W, 3] in BGR order.
    """
    if len(instances) == 0:
        return image_bgr.copy()
    vis = Visualizer(image_bgr[:, :, ::-1], instance_mode=ColorMode.IMAGE)
    labels = [
        f"#{int(i)} {class_names[int(c)]} {float(s):.2f}"
        for i, c, s in zip(ids, instances.pred_classes, instances.scores)
    ]
    masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
    out = vis.overlay_instances(
        boxes=instances.pred_boxes.tensor.numpy(),
        masks=masks,
        labels=labels,
        assigned_colors=[track_color(i) for i in ids.tolist()],
        alpha=0.4,
    )
    return out.get_image()[:, :, ::-1]


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


def draw_predictions(image_bgr: np.ndarray, instances, metadata: Metadata) -> np.ndarray:
    """The image with masks, boxes, class names and scores drawn on it (BGR out)."""
    vis = Visualizer(image_bgr[:, :, ::-1], metadata=metadata, instance_mode=ColorMode.IMAGE)
    return vis.draw_instance_predictions(instances).get_image()[:, :, ::-1]
