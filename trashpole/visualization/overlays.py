"""
Pictures drawn on photos with detectron2's ``Visualizer``: a data set record's annotations, an
image as the trainer sees it, predictions, tracked detections, and the evaluation galleries
(truth beside prediction). report.html's pictures are drawn faster with OpenCV
(:mod:`.panels`).
"""

import logging
import os
from typing import Any, Dict, List, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import Metadata, MetadataCatalog
from detectron2.data.detection_utils import convert_image_to_rgb, read_image
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils.visualizer import ColorMode, Visualizer
from matplotlib.figure import Figure

from trashpole.images import UnreadableImage, read_bgr

from .palette import class_colors, track_color

logger = logging.getLogger(__name__)

GALLERY_WIDTH = 480  # pixels of one gallery panel


def draw_record(record: dict, metadata) -> np.ndarray:
    """Draw one dataset dict's annotations on its image.

    Args:
        record: a detectron2 dataset dict (``file_name`` and ``annotations``).
        metadata: the data set's metadata (``thing_classes``, optional ``thing_colors``).

    Returns:
        ndarray[H, W, 3] of uint8, RGB.
    """
    image = read_image(record["file_name"], format="RGB")
    visualizer = Visualizer(image, metadata=metadata, scale=_scale(image))
    annotations = record.get("annotations", [])
    # Visualizer takes masks from all annotations or from none, so box-only records (loaded for
    # MODEL.MASK_ON False) are drawn in a second pass on the same canvas
    with_mask = [a for a in annotations if "segmentation" in a]
    box_only = [a for a in annotations if "segmentation" not in a]
    drawn = visualizer.draw_dataset_dict({**record, "annotations": with_mask})
    if box_only:
        drawn = visualizer.draw_dataset_dict({**record, "annotations": box_only})
    return drawn.get_image()


def _scale(image: np.ndarray, min_side: int = 512) -> float:
    """Enlarge small images so that labels stay readable."""
    return max(1.0, min_side / max(image.shape[:2]))


def draw_mapped(mapped: dict, metadata, image_format: str) -> np.ndarray:
    """Draw the output of a train ``DatasetMapper``: the augmented image and its instances.

    Args:
        mapped: the mapper's output, with ``image`` (Tensor[C, H, W]) and ``instances``
            (``gt_boxes``, ``gt_classes``, optional ``gt_masks``).
        metadata: the data set's metadata.
        image_format: ``cfg.INPUT.FORMAT`` (e.g. ``"BGR"``).

    Returns:
        ndarray[H, W, 3] of uint8, RGB.
    """
    image = convert_image_to_rgb(mapped["image"].permute(1, 2, 0), image_format)
    visualizer = Visualizer(image, metadata=metadata, scale=_scale(image))
    instances = mapped["instances"]
    names = metadata.get("thing_classes", None)
    classes = instances.gt_classes.tolist()
    labels = [names[c] if names else str(c) for c in classes]
    colors = metadata.get("thing_colors", None)
    drawn = visualizer.overlay_instances(
        boxes=instances.gt_boxes,
        masks=instances.gt_masks if instances.has("gt_masks") else None,
        labels=labels,
        assigned_colors=[np.asarray(colors[c]) / 255.0 for c in classes] if colors else None,
    )
    return drawn.get_image()


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


def draw_predictions(image_bgr: np.ndarray, instances, metadata: Metadata) -> np.ndarray:
    """The image with masks, boxes, class names and scores drawn on it (BGR out)."""
    vis = Visualizer(image_bgr[:, :, ::-1], metadata=metadata, instance_mode=ColorMode.IMAGE)
    return vis.draw_instance_predictions(instances).get_image()[:, :, ::-1]


def _read_rgb(file_name: str, height: int, width: int) -> np.ndarray:
    """The image as the model saw it (EXIF orientation applied, as detectron2's loader and the
    predictor read it), RGB; a gray canvas of ``height`` x ``width`` when it cannot be read."""
    try:
        image, _ = read_bgr(file_name)
    except (OSError, UnreadableImage) as e:
        logger.warning("gallery: cannot read %s (%s); drawing on a gray canvas", file_name, e)
        return np.full((height, width, 3), 128, dtype=np.uint8)
    return np.ascontiguousarray(image[:, :, ::-1])


def _gallery_metadata(detail) -> Metadata:
    meta = MetadataCatalog.get(detail.dataset_name)
    colors = meta.get("thing_colors") or class_colors(len(detail.class_names))
    return Metadata(thing_classes=list(detail.class_names), thing_colors=list(colors))


def _draw_truth(vis: Visualizer, record: dict, meta: Metadata) -> np.ndarray:
    """Ground truth in exact class colors (draw_dataset_dict would jitter them)."""
    annos = record.get("annotations", [])
    if not annos:
        return vis.output.get_image()
    names = meta.thing_classes
    vis.overlay_instances(
        masks=[a["segmentation"] for a in annos],
        boxes=[BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos],
        labels=[names[a["category_id"]] + (" crowd" if a.get("iscrowd", 0) else "") for a in annos],
        assigned_colors=[
            tuple(c / 255 for c in meta.thing_colors[a["category_id"]]) for a in annos
        ],
        alpha=0.5,
    )
    return vis.output.get_image()


def _draw_pair(record: dict, item, meta: Metadata) -> tuple:
    h, w = int(record["height"]), int(record["width"])
    image = _read_rgb(record["file_name"], h, w)
    scale = min(1.0, GALLERY_WIDTH / max(w, 1))
    gt_panel = _draw_truth(Visualizer(image, meta, scale=scale), record, meta)
    instances = Instances((h, w))
    masks = mask_util.decode(item.rles) if item.rles else np.zeros((h, w, 0), dtype=np.uint8)
    instances.pred_masks = masks.transpose(2, 0, 1).astype(bool)
    boxes = mask_util.toBbox(item.rles) if item.rles else np.zeros((0, 4))
    instances.pred_boxes = Boxes(
        BoxMode.convert(np.asarray(boxes), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    )
    instances.pred_classes = np.asarray(item.classes, dtype=np.int64)
    instances.scores = np.asarray(item.scores, dtype=np.float32)
    pred_vis = Visualizer(image, meta, scale=scale, instance_mode=ColorMode.SEGMENTATION)
    pred_panel = pred_vis.draw_instance_predictions(instances, jittering=False).get_image()
    return gt_panel, pred_panel


def plot_gallery(
    detail,
    ground_truth: Dict[Any, dict],
    items: List,
    title: str,
    path: str,
):
    """
    Save ground truth (left) next to prediction (right) for the given images as one PNG.

    Args:
        detail: the evaluation (per-image records, class names).
        ground_truth: the data set dicts by image id.
        items: gallery images, in display order.
        title: figure title.
        path: output file.
    """
    if not items:
        fig = Figure(figsize=(6, 1.5))
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no images", ha="center", va="center")
        fig.savefig(path, dpi=100)
        return
    meta = _gallery_metadata(detail)
    records = {r.image_id: r for r in detail.records}
    panels = [_draw_pair(ground_truth[item.image_id], item, meta) for item in items]
    aspect = max(p[0].shape[0] / p[0].shape[1] for p in panels)
    fig = Figure(figsize=(10, 5 * aspect * len(items) + 0.8))
    axes = fig.subplots(len(items), 2, squeeze=False)
    for row, (item, (gt_panel, pred_panel)) in enumerate(zip(items, panels)):
        rec = records[item.image_id]
        counts = rec.to_dict(detail.iou_thresh)
        name = os.path.basename(rec.file_name)
        n_gt = counts["num_gt"]
        axes[row, 0].imshow(gt_panel)
        axes[row, 0].set_title(f"truth: {name} ({n_gt} objects)", fontsize=9)
        axes[row, 1].imshow(pred_panel)
        quality = f"image mIoU {100 * item.rank_key:.1f}" if n_gt else "no objects in truth"
        axes[row, 1].set_title(
            f"prediction: {quality}, {len(item.classes)} shown, TP {counts['TP']}, "
            f"FP {counts['FP']}",
            fontsize=9,
        )
        for ax in axes[row]:
            ax.axis("off")
    fig.suptitle(title)
    # leave the top 0.8 inch to the title so that it does not cover the first row's titles
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.8 / fig.get_figheight()))
    fig.savefig(path, dpi=100)
