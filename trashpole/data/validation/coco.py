"""One split's COCO JSON read and checked into detectron2 dataset dicts (the entry point)."""

import os
from typing import List, Optional, Sequence, Tuple

from trashpole.data.validation.annotations import load_annotations
from trashpole.data.validation.categories import category_info, category_mapping
from trashpole.data.validation.images import load_images
from trashpole.data.validation.problems import (
    BOX_ONLY_HINT,
    DatasetError,
    ValidationReport,
    display_name,
    read_json,
)


def validate_coco_json(
    json_file: str,
    image_root: str,
    class_names: Optional[Sequence[str]] = None,
    check_images: bool = True,
    masks: bool = True,
) -> Tuple[List[dict], ValidationReport]:
    """Load and check one COCO annotation file into detectron2 dataset dicts.

    Args:
        json_file: path of the annotation file (e.g. ``valid/_annotations.coco.json``).
        image_root: folder that ``file_name`` values are relative to (usually the JSON's folder).
        class_names: classes in contiguous order; None takes this file's classes.
        check_images: open every image (header, EXIF, completeness). False trusts the JSON's
            width/height and skips the file system (used to time JSON work on its own).
        masks: the annotations are for a mask model. True drops annotations without a mask
            (``segmentation_missing``); False keeps them as box-only records (no
            ``segmentation`` key), for ``MODEL.MASK_ON False``.

    Returns:
        (dataset dicts, one per usable image in file order, with images without annotations kept;
        the report of what was skipped, dropped, fixed or noted).

    Raises:
        DatasetError: the file as a whole is unusable (see :func:`read_json`,
            :func:`category_info`, :func:`category_mapping`), or no image / no annotation is left.
    """
    source = display_name(json_file)
    data = read_json(json_file)
    info = category_info(data, source)
    report = ValidationReport(source)
    names = list(class_names) if class_names is not None else info.names
    id_map = category_mapping(info, names, source, report)
    root = os.path.abspath(image_root)
    entries, known_ids = load_images(data["images"], root, report, check_images)
    load_annotations(data["annotations"], entries, known_ids, id_map, info.ids, report, masks)
    dicts = [entry.record for entry in entries.values()]
    report.stats.update(
        images_in=len(data["images"]),
        images_out=len(dicts),
        annotations_in=len(data["annotations"]),
        annotations_out=sum(len(d["annotations"]) for d in dicts),
    )
    _check_something_left(report)
    return dicts, report


def _check_something_left(report: ValidationReport) -> None:
    s = report.stats
    box_only = report.counts().get("segmentation_missing", 0)
    if s["annotations_out"] == 0 and box_only and box_only >= s["annotations_in"] // 2:
        raise DatasetError(
            f"{report.source}: {box_only} of its {s['annotations_in']} annotations are boxes "
            'without a mask ("segmentation": [], as in a Roboflow Object Detection export) and '
            f"nothing else is usable. {BOX_ONLY_HINT}."
        )
    if s["images_out"] == 0 or (s["annotations_in"] > 0 and s["annotations_out"] == 0):
        raise DatasetError(
            f"{report.summary()}. Nothing usable is left; the first problems:\n"
            + "\n".join(p.message for p in report.problems[:10])
        )


def required_mask_format(dicts: List[dict]) -> str:
    """The ``cfg.INPUT.MASK_FORMAT`` these dicts need for training.

    detectron2's ``DatasetMapper`` turns masks into ``PolygonMasks`` by default, which fails on
    RLE masks; crowd annotations are not trained on, so only non-crowd RLE masks count.

    Args:
        dicts: dataset dicts of the train split.

    Returns:
        ``"bitmask"`` if any non-crowd annotation has an RLE mask, else ``"polygon"``.
    """
    for d in dicts:
        for a in d.get("annotations", []):
            if not a.get("iscrowd", 0) and isinstance(a.get("segmentation"), dict):
                return "bitmask"
    return "polygon"
