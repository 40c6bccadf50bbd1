"""
Turn one COCO annotation file (a Roboflow export split) into checked detectron2 dataset dicts.

Every record is checked before training starts, so that a bad record costs seconds, not a crash
at iteration 900. A record that cannot be used is skipped and counted (or, with ``strict``, the
whole list of problems is raised as :class:`DatasetError`); a record that can be repaired without
guessing (a box that sticks out of the image, annotations drawn on the un-rotated pixels of a
photo with an EXIF orientation) is repaired and reported.

The dicts follow detectron2's standard format: ``file_name`` (absolute), ``height``, ``width``,
``image_id``, ``annotations`` = list of ``{bbox (XYWH_ABS), bbox_mode, category_id (contiguous),
segmentation (list of polygons, or a compressed RLE dict with ``counts`` as str), iscrowd}``.
Coordinates always refer to the image as detectron2's ``read_image`` returns it (EXIF applied).

Modules: ``problems`` (problem kinds, the report, reading the JSON), ``categories``, ``images``,
``annotations``, and ``coco`` (:func:`validate_coco_json`, which runs them in order).
"""

from trashpole.data.validation.categories import CategoryInfo, category_info, category_mapping
from trashpole.data.validation.coco import required_mask_format, validate_coco_json
from trashpole.data.validation.problems import (
    PROBLEM_KINDS,
    SKIP_IMAGE,
    DatasetError,
    Problem,
    ValidationReport,
    display_name,
    read_json,
)

__all__ = [
    "PROBLEM_KINDS",
    "SKIP_IMAGE",
    "CategoryInfo",
    "DatasetError",
    "Problem",
    "ValidationReport",
    "category_info",
    "category_mapping",
    "display_name",
    "read_json",
    "required_mask_format",
    "validate_coco_json",
]
