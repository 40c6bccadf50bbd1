"""
Ground-truth overlays of registered data: the image as stored with its masks, boxes and class
names, or the image as the trainer sees it (after ``DatasetMapper`` with the train augmentations).
"""

import logging
import os
import random
from typing import List, Optional, Sequence

import numpy as np
from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from trashpole.config import add_trashpole_config
from trashpole.data.augment import build_train_mapper as build_augmenting_mapper
from trashpole.visualization.overlays import draw_mapped, draw_record

logger = logging.getLogger(__name__)


def build_train_mapper(cfg: Optional[CfgNode] = None, dataset_dicts: Sequence[dict] = ()):
    """The trainer's mapper (:func:`trashpole.data.augment.build_train_mapper`: ResizeShortestEdge
    + RandomFlip from ``cfg.INPUT``, plus the ``TRASHPOLE.AUG`` augmentations that are on).

    Args:
        cfg: a trashpole config; None uses detectron2's defaults with masks on.
        dataset_dicts: the records copy-paste draws its donors from.

    Returns:
        a callable mapping a record to the dict the model trains on.
    """
    if cfg is None:
        cfg = get_cfg()
        add_trashpole_config(cfg)
        cfg.MODEL.MASK_ON = True
    return build_augmenting_mapper(cfg, dataset_dicts)


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
    mapper = build_train_mapper(cfg, dicts) if augmented else None
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
