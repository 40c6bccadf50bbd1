"""
Ground-truth overlays of registered data: the image as stored with its masks, boxes and class
names, or the image as the trainer sees it (after ``DatasetMapper`` with the train augmentations).
"""

import logging
import os
import random
from typing import List, Optional

import numpy as np
from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.data.detection_utils import convert_image_to_rgb, read_image
from detectron2.utils.visualizer import Visualizer
from PIL import Image

logger = logging.getLogger(__name__)


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


def build_train_mapper(cfg: Optional[CfgNode] = None) -> DatasetMapper:
    """The train-time ``DatasetMapper`` (ResizeShortestEdge + RandomFlip from ``cfg.INPUT``).

    Args:
        cfg: a trashpole config; None uses detectron2's defaults with masks on.

    Returns:
        DatasetMapper with ``is_train=True``.
    """
    if cfg is None:
        cfg = get_cfg()
        cfg.MODEL.MASK_ON = True
    return DatasetMapper(cfg, is_train=True)


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


def visualize_dataset(
    dataset_name: str,
    output_dir: str,
    num: Optional[int] = 16,
    augmented: bool = False,
    cfg: Optional[CfgNode] = None,
    seed: int = 0,
) -> List[str]:
    """Write ground-truth overlays of a registered data set as JPEG files.

    Args:
        dataset_name: a registered name, e.g. ``"trashpole_train"``.
        output_dir: folder to write into (created if needed).
        num: how many images, drawn at random with ``seed``; None draws all, in order.
        augmented: draw the images as the trainer sees them (see :func:`build_train_mapper`).
        cfg: config for the augmentations (None: detectron2's defaults).
        seed: seed of the sample and of the augmentations.

    Returns:
        paths of the files written.
    """
    dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    rng = random.Random(seed)
    chosen = list(range(len(dicts)))
    if num is not None and num < len(dicts):
        chosen = sorted(rng.sample(chosen, num))
    mapper = build_train_mapper(cfg) if augmented else None
    image_format = cfg.INPUT.FORMAT if cfg is not None else "BGR"
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for index in chosen:
        record = dicts[index]
        if mapper is not None:
            # detectron2's augmentations draw from numpy's and python's global generators.
            np.random.seed(seed + index)
            drawn = draw_mapped(mapper(record), metadata, image_format)
        else:
            drawn = draw_record(record, metadata)
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        suffix = "_augmented" if augmented else ""
        path = os.path.join(output_dir, f"{index:05d}_{stem}{suffix}.jpg")
        Image.fromarray(drawn).save(path, quality=90)
        paths.append(path)
    logger.info(f"Wrote {len(paths)} overlays of {dataset_name} to {output_dir}")
    return paths
