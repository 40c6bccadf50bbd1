"""
Train-time augmentations of ``TRASHPOLE.AUG``, each switchable: large-scale jitter, a random crop
at native resolution (the scale that sliced prediction sees), photometric jitter and copy-paste
of instances between images.

detectron2's crop transforms clip polygons with shapely, which trashpole does not install; crops
here clip with :func:`clip_polygon` (Sutherland-Hodgman against the window), so polygon masks stay
polygons and stay exact. Copy-paste never lets a pasted instance cover a pixel of another
instance, so every polygon stays exact there too (no polygon differences are needed).

With every ``TRASHPOLE.AUG`` switch off, :func:`build_train_mapper` is detectron2's
``DatasetMapper``, unchanged.
"""

import copy
import logging
import statistics
from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from fvcore.transforms.transform import CropTransform, PadTransform

from .copy_paste import clip_annotation, copy_paste, is_empty
from .polygons import clip_polygon, polygon_area

logger = logging.getLogger(__name__)

# Grey (BGR or RGB alike) of the padding that large-scale jitter adds around a small image.
PAD_VALUE = 114


class PolygonCropTransform(CropTransform):
    """fvcore's crop, with polygons clipped by :func:`clip_polygon` (no shapely)."""

    def apply_polygons(self, polygons: list) -> list:
        shifted = [np.asarray(p, dtype=np.float64) - (self.x0, self.y0) for p in polygons]
        clipped = [clip_polygon(p, self.w, self.h) for p in shifted]
        return [p for p in clipped if len(p) >= 3 and polygon_area(p) > 0]


class RandomWindow(T.Augmentation):
    """A random (height, width) window of the image: cropped where the image is larger, padded
    (right and bottom, :data:`PAD_VALUE`) where it is smaller."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.height, self.width = int(height), int(width)

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        ch, cw = min(h, self.height), min(w, self.width)
        y0 = np.random.randint(h - ch + 1)
        x0 = np.random.randint(w - cw + 1)
        crop = PolygonCropTransform(x0, y0, cw, ch, orig_w=w, orig_h=h)
        pad = PadTransform(0, 0, self.width - cw, self.height - ch, cw, ch, PAD_VALUE, 0)
        return T.TransformList([crop, pad])


class ChooseOne(T.Augmentation):
    """Run ``first`` with probability ``prob``, else ``second`` (two augmentation lists)."""

    def __init__(self, first: Sequence[T.Augmentation], second: Sequence[T.Augmentation], prob):
        super().__init__()
        self.first, self.second = T.AugmentationList(first), T.AugmentationList(second)
        self.prob = float(prob)

    def __call__(self, aug_input) -> T.Transform:
        return (self.first if np.random.rand() < self.prob else self.second)(aug_input)


def train_window_size(cfg: CfgNode) -> int:
    """Side (pixels) of large-scale jitter's output and of the native crop:
    ``TRASHPOLE.AUG.WINDOW_SIZE``, else the largest ``INPUT.MIN_SIZE_TRAIN``."""
    return int(cfg.TRASHPOLE.AUG.WINDOW_SIZE or max(cfg.INPUT.MIN_SIZE_TRAIN))


def nominal_train_size(cfg: CfgNode) -> float:
    """The training size (pixels) in the middle of its range: the LSJ square's side at the mean
    of ``LSJ_SCALE``, else the median ``INPUT.MIN_SIZE_TRAIN`` (the shorter image side)."""
    if cfg.TRASHPOLE.AUG.LSJ:
        return train_window_size(cfg) * float(np.mean(cfg.TRASHPOLE.AUG.LSJ_SCALE))
    return float(statistics.median(cfg.INPUT.MIN_SIZE_TRAIN))


def train_scale_fn(cfg: CfgNode) -> Callable[[int, int], float]:
    """
    The nominal factor by which training resizes an image (:func:`nominal_train_size`; the
    longer side fits the LSJ square, else the shorter side is resized under
    ``INPUT.MAX_SIZE_TRAIN``), as a function of the image's (height, width). Used for anchors and
    object widths "at the training size".
    """
    if cfg.TRASHPOLE.AUG.LSJ:
        side = nominal_train_size(cfg)
        return lambda h, w: side / max(h, w)
    short = nominal_train_size(cfg)
    longest = cfg.INPUT.MAX_SIZE_TRAIN
    return lambda h, w: min(short / min(h, w), longest / max(h, w))


def build_train_augmentations(cfg: CfgNode) -> List[T.Augmentation]:
    """
    The train augmentations of ``cfg``: resize (detectron2's ``ResizeShortestEdge``, or
    large-scale jitter), or with ``NATIVE_CROP_PROB`` a window at native resolution instead; then
    detectron2's flip; then photometric jitter.

    Returns:
        list of detectron2 augmentations.
    """
    aug = cfg.TRASHPOLE.AUG
    resize, *flip = utils.build_augmentation(cfg, is_train=True)
    side = train_window_size(cfg)
    if aug.LSJ:
        low, high = aug.LSJ_SCALE
        resize = [T.ResizeScale(low, high, side, side), RandomWindow(side, side)]
    else:
        resize = [resize]
    geometric = resize
    if aug.NATIVE_CROP_PROB > 0:
        geometric = [ChooseOne([RandomWindow(side, side)], resize, aug.NATIVE_CROP_PROB)]
    photometric = []
    if aug.PHOTOMETRIC > 0:
        s = aug.PHOTOMETRIC
        # detectron2's saturation weighs channels as RGB; on BGR it still blends with a grey
        photometric = [
            T.RandomBrightness(1 - s, 1 + s),
            T.RandomContrast(1 - s, 1 + s),
            T.RandomSaturation(1 - s, 1 + s),
        ]
    return geometric + flip + photometric


def uses_trashpole_augmentations(cfg: CfgNode) -> bool:
    """Whether any ``TRASHPOLE.AUG`` switch is on."""
    aug = cfg.TRASHPOLE.AUG
    return bool(
        aug.LSJ or aug.NATIVE_CROP_PROB > 0 or aug.PHOTOMETRIC > 0 or aug.COPY_PASTE_PROB > 0
    )


def build_train_mapper(cfg: CfgNode, dataset_dicts: Sequence[dict] = ()):
    """
    The mapper of the train loader: detectron2's ``DatasetMapper`` when no ``TRASHPOLE.AUG``
    switch is on, else :class:`TrainMapper`.

    Args:
        cfg: a trashpole config.
        dataset_dicts: the train records (copy-paste draws its donors from them).
    """
    if not uses_trashpole_augmentations(cfg):
        return DatasetMapper(cfg, is_train=True)
    return TrainMapper(cfg, dataset_dicts)


class TrainMapper:
    """
    A train-time dataset mapper like detectron2's ``DatasetMapper`` (image, then ``Instances``
    with boxes, classes and masks), with :func:`build_train_augmentations` and copy-paste
    (``TRASHPOLE.AUG.COPY_PASTE_PROB``). After a crop or a paste, boxes are recomputed from the
    masks and instances left without mask are dropped. Keypoints, proposals and semantic
    segmentation are not handled (trashpole has none).
    """

    def __init__(self, cfg: CfgNode, dataset_dicts: Sequence[dict] = ()):
        """
        Args:
            cfg: a trashpole config.
            dataset_dicts: the train records, donors of copy-paste (required when it is on).
        """
        aug = cfg.TRASHPOLE.AUG
        self.augmentations = T.AugmentationList(build_train_augmentations(cfg))
        self.image_format = cfg.INPUT.FORMAT
        self.mask_on = cfg.MODEL.MASK_ON
        self.mask_format = cfg.INPUT.MASK_FORMAT
        self.crops = bool(aug.LSJ or aug.NATIVE_CROP_PROB > 0)
        self.paste_prob = float(aug.COPY_PASTE_PROB)
        self.donors = list(dataset_dicts) if self.paste_prob > 0 else []
        if self.paste_prob > 0 and not self.mask_on:
            raise ValueError("TRASHPOLE.AUG.COPY_PASTE_PROB needs masks (MODEL.MASK_ON True)")
        if self.paste_prob > 0 and not self.donors:
            raise ValueError("TRASHPOLE.AUG.COPY_PASTE_PROB > 0 needs the train records")
        logger.info(f"Train augmentations: {self.augmentations}; copy-paste {self.paste_prob}")

    def _augment(self, record: dict) -> Tuple[np.ndarray, List[dict]]:
        """The augmented image, ndarray[H, W, C], and its transformed non-crowd annotations."""
        image = utils.read_image(record["file_name"], format=self.image_format)
        utils.check_image_size(record, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        annotations = []
        for a in record.get("annotations", []):
            if a.get("iscrowd", 0):
                continue
            a = copy.deepcopy(a)
            if not self.mask_on:
                a.pop("segmentation", None)
            annotations.append(utils.transform_instance_annotations(a, transforms, image.shape[:2]))
        return image, annotations

    def __call__(self, record: dict) -> dict:
        """
        Args:
            record: a detectron2 dataset dict.

        Returns:
            a copy with ``image`` (Tensor[C, H, W] of uint8) and ``instances``.
        """
        record = copy.deepcopy(record)
        image, annotations = self._augment(record)
        recompute = self.crops
        if self.donors and np.random.rand() < self.paste_prob:
            donor = self.donors[np.random.randint(len(self.donors))]
            donor_image, donor_annotations = self._augment(donor)
            rng = np.random.RandomState(np.random.randint(2**31))
            image, annotations, _ = copy_paste(
                image, annotations, donor_image, donor_annotations, rng
            )
            recompute = True
        h, w = image.shape[:2]
        if recompute and self.mask_on:
            annotations = [clip_annotation(a, h, w) for a in annotations]
            annotations = [a for a in annotations if not is_empty(a)]
        instances = utils.annotations_to_instances(annotations, (h, w), self.mask_format)
        record["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        record["instances"] = utils.filter_empty_instances(instances)
        record.pop("annotations", None)
        return record
