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
"""

import difflib
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from detectron2.structures import BoxMode
from PIL import Image

from trashpole.data.geometry import (
    EXIF_TRANSPOSE,
    exif_transform_mask,
    exif_transform_points,
    polygon_area,
    segmentation_box,
)
from trashpole.errors import UserError
from trashpole.images import HIGH_BIT_DEPTH_MODES

logger = logging.getLogger(__name__)

# What happens to a record with a problem. Everything but NOTED makes strict loading fail.
SKIP_IMAGE = "skipped image"
DROP_ANNOTATION = "dropped annotation"
DROP_POLYGON = "dropped polygon"
FIXED = "fixed"
KEPT = "kept"
NOTED = "noted"

# kind -> (action, how to fix it in the export)
PROBLEM_KINDS: Dict[str, Tuple[str, str]] = {
    "image_record_invalid": (SKIP_IMAGE, "give every image an id, a file_name and width/height"),
    "image_path_outside": (SKIP_IMAGE, "file_name must be a relative path inside the split folder"),
    "image_missing": (SKIP_IMAGE, "put the image beside the JSON or remove its record"),
    "image_unreadable": (SKIP_IMAGE, "replace the file (it is not a complete image)"),
    "image_too_large": (
        SKIP_IMAGE,
        "resize it below PIL's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS), or raise "
        "the limit if the file is trusted",
    ),
    "image_bit_depth": (
        SKIP_IMAGE,
        "save it as an 8-bit image (detectron2 reads 16-bit and float pixels clipped to 0-255)",
    ),
    "image_size_mismatch": (SKIP_IMAGE, "fix width/height in the JSON or re-export the split"),
    "duplicate_image_id": (SKIP_IMAGE, "give every image its own id"),
    "annotation_record_invalid": (DROP_ANNOTATION, "every annotation needs image_id and category"),
    "duplicate_annotation": (DROP_ANNOTATION, "remove the repeated annotation"),
    "unknown_image": (DROP_ANNOTATION, "annotations must refer to an image of the same JSON"),
    "unknown_category": (DROP_ANNOTATION, "annotations must refer to a listed category"),
    "segmentation_missing": (
        DROP_ANNOTATION,
        "draw a polygon (Mask R-CNN needs masks), or train boxes only with MODEL.MASK_ON False",
    ),
    "bbox_missing": (DROP_ANNOTATION, "a box-only annotation needs bbox [x, y, width, height]"),
    "segmentation_invalid": (DROP_ANNOTATION, "use polygons [[x1, y1, x2, y2, ...]] or COCO RLE"),
    "segmentation_empty": (DROP_ANNOTATION, "redraw the mask (nothing usable was left)"),
    "rle_invalid": (DROP_ANNOTATION, "re-export the mask; its RLE does not fit the image"),
    "bbox_outside": (DROP_ANNOTATION, "redraw the object inside the image"),
    "polygon_degenerate": (DROP_POLYGON, "a polygon needs at least 3 points and a non-zero area"),
    "polygon_outside": (DROP_POLYGON, "redraw the polygon inside the image"),
    "bbox_invalid": (FIXED, "boxes are [x, y, width, height] with width, height > 0"),
    "bbox_clipped": (FIXED, "keep boxes inside the image"),
    "segmentation_flat": (FIXED, "segmentation is a list of polygons: [[x1, y1, ...]]"),
    "duplicate_annotation_id": (KEPT, "give every annotation its own id"),
    "image_size_filled": (NOTED, "width/height were read from the image file"),
    "image_converted": (NOTED, "nothing to do; saving it as RGB avoids the conversion"),
    "exif_raw_frame": (NOTED, "annotations were rotated to the EXIF orientation"),
    "exif_ambiguous": (NOTED, "check that the masks line up (visualize_data.py)"),
    "category_not_a_class": (NOTED, "the category has no annotations and is not a class"),
}

# What to do about annotations without a mask (Roboflow "Object Detection" exports).
BOX_ONLY_HINT = (
    "Mask R-CNN learns masks from polygons: export the data set from Roboflow with polygons "
    "(an Instance Segmentation project), or train a box-only detector with MODEL.MASK_ON False"
)
# Boxes that stick out of the image by at most this many pixels are rounding, clipped silently.
BOX_TOLERANCE = 1.0
# Files up to this size are fully decoded when checked (cheap); larger ones only when their
# last bytes do not look like the end of a JPEG/PNG.
FULL_DECODE_BYTES = 32 * 1024
_EXIF_ORIENTATION_TAG = 274


class DatasetError(UserError):
    """An export that cannot be used as it is; the message names the file, the record and the fix."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an annotation file.

    Attributes:
        kind: a key of :data:`PROBLEM_KINDS`.
        record: the record, e.g. ``"annotation 17"`` or ``"image 3 (a.jpg)"``.
        message: the full sentence, starting with the file, e.g. ``"valid/_annotations.coco.json:
            annotation 17 refers to category 5, which is not in categories [0, 1, 2]"``.
    """

    kind: str
    record: str
    message: str

    @property
    def action(self) -> str:
        return PROBLEM_KINDS[self.kind][0]


@dataclass
class ValidationReport:
    """The problems found in one annotation file and what was kept.

    Attributes:
        source: short name of the file, e.g. ``"valid/_annotations.coco.json"``.
        problems: every problem, in file order.
        stats: ``images_in``, ``images_out``, ``annotations_in``, ``annotations_out`` and
            ``annotations_of_skipped_images`` (dropped together with their image).
    """

    source: str
    problems: List[Problem] = field(default_factory=list)
    stats: Dict[str, int] = field(default_factory=Counter)

    def add(self, kind: str, record: str, detail: str) -> None:
        """Record a problem of ``kind`` (a key of :data:`PROBLEM_KINDS`) for ``record``."""
        if kind not in PROBLEM_KINDS:
            raise KeyError(f"unknown problem kind {kind!r}")
        self.problems.append(Problem(kind, record, f"{self.source}: {record} {detail}"))

    def counts(self) -> Dict[str, int]:
        """Number of problems per kind, in :data:`PROBLEM_KINDS` order."""
        counter = Counter(p.kind for p in self.problems)
        return {kind: counter[kind] for kind in PROBLEM_KINDS if counter[kind]}

    @property
    def blocking(self) -> List[Problem]:
        """The problems that make strict loading fail (all but the NOTED ones)."""
        return [p for p in self.problems if p.action != NOTED]

    def summary(self) -> str:
        """One line: what was kept and the problem counts grouped by what was done."""
        by_action: Dict[str, List[str]] = {}
        for kind, n in self.counts().items():
            by_action.setdefault(PROBLEM_KINDS[kind][0], []).append(f"{kind}: {n}")
        parts = [f"{action} ({', '.join(kinds)})" for action, kinds in by_action.items()]
        s = self.stats
        text = (
            f"{self.source}: kept {s['images_out']}/{s['images_in']} images and "
            f"{s['annotations_out']}/{s['annotations_in']} annotations"
        )
        if parts:
            text += "; " + "; ".join(parts)
        if s["annotations_of_skipped_images"]:
            text += f"; {s['annotations_of_skipped_images']} annotations went with skipped images"
        box_only = self.counts().get("segmentation_missing", 0)
        if box_only:
            text += (
                f". {box_only} of {s['annotations_in']} annotations are boxes without a mask "
                f"({BOX_ONLY_HINT})"
            )
        return text

    def log(self, strict_hint: bool = True, max_details: int = 20) -> None:
        """Log the summary (WARNING if anything was skipped, dropped or fixed), then the details:
        the first ``max_details`` at INFO, the rest at DEBUG."""
        if self.blocking:
            hint = " Details at INFO level." if max_details else ""
            if strict_hint:
                hint += " Pass strict=True (TRASHPOLE.STRICT_DATA) to stop on these instead."
            logger.warning(self.summary() + "." + hint)
        else:
            logger.info(self.summary())
        for i, problem in enumerate(self.problems):
            fix = PROBLEM_KINDS[problem.kind][1]
            level = logging.INFO if i < max_details else logging.DEBUG
            logger.log(level, f"{problem.message} [{problem.action}; fix: {fix}]")

    def error(self, max_listed: int = 50) -> DatasetError:
        """A :class:`DatasetError` listing the blocking problems (at most ``max_listed``)."""
        blocking = self.blocking
        lines = [f"{self.source}: {len(blocking)} problems (strict mode):"]
        lines += [f"  {p.message}" for p in blocking[:max_listed]]
        if len(blocking) > max_listed:
            lines.append(f"  ... and {len(blocking) - max_listed} more")
        lines.append("Fix the export, or load without strict to skip these records with a count.")
        return DatasetError("\n".join(lines))

    def to_dict(self, max_details: int = 100) -> Dict[str, Any]:
        """JSON-ready form: stats, counts per kind and the first ``max_details`` messages."""
        return {
            "source": self.source,
            "stats": dict(self.stats),
            "problems": self.counts(),
            "details": [p.message for p in self.problems[:max_details]],
        }


@dataclass(frozen=True)
class CategoryInfo:
    """The categories of one annotation file.

    Attributes:
        classes: ``(dataset id, name)`` of the real classes, sorted by id.
        dropped: the superclass entries that are not classes (Roboflow's id-0 entry).
        used: annotations per category id (any id found in the annotations, listed or not).
    """

    classes: List[Tuple[int, str]]
    dropped: List[dict]
    used: Dict[Any, int]

    @property
    def names(self) -> List[str]:
        return [name for _, name in self.classes]

    @property
    def ids(self) -> List[int]:
        return [cid for cid, _ in self.classes] + [c["id"] for c in self.dropped]


@dataclass(frozen=True)
class ImageHeader:
    """What an image file says about itself without decoding the pixels (unless cheap).

    Attributes:
        width, height: size of the stored pixels (before EXIF orientation).
        orientation: EXIF orientation 1..8 (1: none), as detectron2's ``read_image`` applies it.
        mode: PIL's pixel mode ("RGB", "L", "CMYK", "I;16"...).
    """

    width: int
    height: int
    orientation: int
    mode: str = "RGB"

    @property
    def oriented_size(self) -> Tuple[int, int]:
        """(width, height) after the EXIF orientation: the size ``read_image`` returns."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


@dataclass
class _Entry:
    """An image record being built, and the frame its JSON coordinates refer to."""

    record: dict
    exif: Optional[Tuple[int, int, int]] = None  # (orientation, raw width, raw height)

    @property
    def json_size(self) -> Tuple[int, int]:
        """(width, height) of the image the JSON coordinates were drawn on."""
        if self.exif:
            return self.exif[1], self.exif[2]
        return self.record["width"], self.record["height"]


def display_name(json_file: str) -> str:
    """``/data/x/valid/_annotations.coco.json`` -> ``valid/_annotations.coco.json``."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(json_file)))
    return f"{parent}/{os.path.basename(json_file)}"


def read_json(json_file: str) -> dict:
    """Read an annotation file and check its top-level shape.

    Returns:
        the parsed JSON, with ``images``, ``annotations`` and ``categories`` lists.

    Raises:
        DatasetError: the file is missing, is not JSON or lacks one of the three lists.
    """
    source = display_name(json_file)
    if not os.path.isfile(json_file):
        raise DatasetError(f"{json_file}: annotation file not found; check the dataset root")
    try:
        with open(json_file, "r", encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{source}: not valid JSON ({e}); re-export the data set") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{source}: expected a COCO JSON object, found {type(data).__name__}")
    data.setdefault("annotations", [])
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{source}: the COCO key {key!r} must be a list; re-export the data")
    return data


def category_info(data: dict, source: str) -> CategoryInfo:
    """Find the real classes of a parsed annotation file.

    Roboflow puts a dataset-level entry in front of the classes (``id`` 0, ``supercategory``
    ``"none"``, the other categories name it as their supercategory) that no annotation uses; it
    is not a class. A category that annotations use is always a class.

    Args:
        data: output of :func:`read_json`.
        source: file name for messages.

    Returns:
        CategoryInfo, classes sorted by id.

    Raises:
        DatasetError: malformed or duplicate categories, two classes with the same name, or none.
    """
    used = Counter(
        a.get("category_id")
        for a in data["annotations"]
        if isinstance(a, dict) and _is_id(a.get("category_id"))
    )
    categories = data["categories"]
    for c in categories:
        if not (isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)):
            raise DatasetError(f"{source}: category {c!r} needs an integer 'id' and a 'name'")
    ids = Counter(c["id"] for c in categories)
    if any(n > 1 for n in ids.values()):
        dup = sorted(i for i, n in ids.items() if n > 1)
        raise DatasetError(f"{source}: category ids {dup} are listed more than once")
    parents = {c.get("supercategory") for c in categories}
    dropped = [c for c in categories if _is_superclass(c, used, parents)]
    classes = sorted((c["id"], c["name"].strip()) for c in categories if c not in dropped)
    names = Counter(name for _, name in classes)
    for name, n in names.items():
        if n > 1:
            same = [cid for cid, nm in classes if nm == name]
            raise DatasetError(
                f"{source}: categories {same} are all named {name!r}; merge them into one class "
                "(Roboflow: Health Check > Class Balance > Modify Classes) and re-export"
            )
    if not classes:
        raise DatasetError(f"{source}: no categories besides the superclass; nothing to learn")
    return CategoryInfo(classes=classes, dropped=dropped, used=dict(used))


def _is_superclass(category: dict, used: Dict[Any, int], parents: set) -> bool:
    if used.get(category["id"]) or str(category.get("supercategory", "")).lower() != "none":
        return False
    return category["id"] == 0 or category["name"] in parents


def category_mapping(
    info: CategoryInfo, class_names: Sequence[str], source: str, report: Optional[ValidationReport]
) -> Dict[int, int]:
    """Map this file's category ids to contiguous class ids by NAME.

    Args:
        info: this file's categories.
        class_names: the classes of the data set (usually the train split's), in contiguous order.
        source: file name for messages.
        report: where unused categories that are not classes get noted (None: not noted).

    Returns:
        {dataset category id: contiguous id} for the categories that are classes.

    Raises:
        DatasetError: annotations use a category whose name is not in ``class_names``.
    """
    index = {name: i for i, name in enumerate(class_names)}
    mapping = {}
    for cid, name in info.classes:
        if name in index:
            mapping[cid] = index[name]
        elif info.used.get(cid):
            close = difflib.get_close_matches(name, list(class_names), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DatasetError(
                f"{source}: category {cid} {name!r}{hint} is used by {info.used[cid]} annotations "
                f"but is not one of the classes {list(class_names)} (taken from the train split); "
                "rename it in the export or add the class to the train split"
            )
        elif report is not None:
            report.add("category_not_a_class", f"category {cid}", f"{name!r} is ignored")
    return mapping


def read_image_header(path: str) -> ImageHeader:
    """Read an image's size and EXIF orientation, and make sure the file is complete.

    The pixels are decoded only when that is cheap (small files) or when the file's last bytes do
    not look like the end of a JPEG or PNG, so checking thousands of images stays fast.

    Raises:
        Exception: whatever PIL raises for a file that is not a complete image.
    """
    with Image.open(path) as im:
        header = ImageHeader(im.width, im.height, _exif_orientation(im), im.mode)
        if os.path.getsize(path) <= FULL_DECODE_BYTES or not _has_end_marker(path, im.format):
            im.load()
    return header


def _exif_orientation(im: Image.Image) -> int:
    try:
        # PngImageFile.getexif decodes the whole image to find a late eXIf chunk; the base method
        # reads the chunks seen so far, which is where PNG writers put it.
        exif = Image.Image.getexif(im) if im.format == "PNG" else im.getexif()
        value = exif.get(_EXIF_ORIENTATION_TAG)
    except Exception:  # detectron2's read_image treats unreadable EXIF as no EXIF too
        return 1
    return value if value in EXIF_TRANSPOSE else 1


def _has_end_marker(path: str, image_format: Optional[str]) -> bool:
    marker = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND"}.get(image_format or "")
    if marker is None:
        return False
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 1024))
        return marker in f.read()


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
    entries, known_ids = _load_images(data["images"], root, report, check_images)
    _load_annotations(data["annotations"], entries, known_ids, id_map, info.ids, report, masks)
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


# ---------------------------------------------------------------------------------------------
# images


def _load_images(
    images: List[Any], root: str, report: ValidationReport, check_images: bool
) -> Tuple[Dict[Any, _Entry], set]:
    """Check the image records. Returns ({image id: entry} of usable images, every listed id)."""
    ids = Counter(
        img.get("id") for img in images if isinstance(img, dict) and _is_id(img.get("id"))
    )
    files: Dict[Any, set] = {}
    for img in images:
        if isinstance(img, dict) and _is_id(img.get("id")) and ids[img["id"]] > 1:
            files.setdefault(img.get("id"), set()).add(img.get("file_name"))
    entries: Dict[Any, _Entry] = {}
    for index, img in enumerate(images):
        image_id = img.get("id") if isinstance(img, dict) and _is_id(img.get("id")) else None
        label = f"image {image_id} ({img.get('file_name')})" if image_id is not None else None
        if image_id in files:
            if len(files[image_id]) > 1:
                report.add("duplicate_image_id", label, _dup_image_text(image_id, files))
                continue
            if image_id in entries:  # the same record repeated: keep the first
                report.add("duplicate_image_id", label, "is listed twice; the repeat is skipped")
                continue
        entry = _image_entry(img, index, root, report, check_images)
        if entry is not None:
            entries[image_id] = entry
    return entries, set(ids)


def _dup_image_text(image_id: Any, files: Dict[Any, set]) -> str:
    names = sorted(str(f) for f in files[image_id])
    return f"shares its id with {names}; their annotations cannot be told apart, all are skipped"


def _image_entry(
    img: Any, index: int, root: str, report: ValidationReport, check_images: bool
) -> Optional[_Entry]:
    """Check one image record; returns None (and reports why) if it cannot be used."""
    if not isinstance(img, dict) or not _is_id(img.get("id")):
        report.add("image_record_invalid", f"image at index {index}", "has no integer/str 'id'")
        return None
    file_name = img.get("file_name")
    label = f"image {img['id']} ({file_name})"
    if not isinstance(file_name, str) or not file_name.strip():
        report.add("image_record_invalid", label, "has no 'file_name'")
        return None
    size = _json_size(img)
    if size is False:
        text = f"has width {img.get('width')!r} / height {img.get('height')!r}; need positive ints"
        report.add("image_record_invalid", label, text)
        return None
    path = _inside(root, file_name)
    if path is None:
        report.add("image_path_outside", label, f"points outside the split folder {root}")
        return None
    record = {"file_name": path, "height": 0, "width": 0, "image_id": img["id"], "annotations": []}
    entry = _Entry(record)
    if not check_images:
        if size is None:
            report.add("image_record_invalid", label, "has no width/height")
            return None
        record["width"], record["height"] = size
        return entry
    return _check_image_file(entry, size, label, report)


def _json_size(img: dict):
    """(width, height) from the record; None if both are absent; False if malformed."""
    w, h = img.get("width"), img.get("height")
    if w is None and h is None:
        return None
    if not (_is_int(w) or _is_integral(w)) or not (_is_int(h) or _is_integral(h)):
        return False
    w, h = int(w), int(h)
    return (w, h) if w > 0 and h > 0 else False


def _inside(root: str, file_name: str) -> Optional[str]:
    """Absolute path of ``file_name`` under ``root``; None if it is absolute or climbs out."""
    parts = file_name.replace("\\", "/").split("/")
    if os.path.isabs(file_name) or file_name[1:3] in (":\\", ":/") or ".." in parts:
        return None
    return os.path.join(root, file_name)


def _check_image_file(
    entry: _Entry, size: Optional[Tuple[int, int]], label: str, report: ValidationReport
) -> Optional[_Entry]:
    """Open the image header and settle width/height and the EXIF frame of the annotations."""
    path = entry.record["file_name"]
    if not os.path.isfile(path):
        report.add("image_missing", label, f"is not on disk at {path}")
        return None
    if os.path.getsize(path) == 0:
        report.add("image_unreadable", label, "is an empty file (0 bytes)")
        return None
    try:
        header = read_image_header(path)
    except Image.DecompressionBombError as e:
        report.add("image_too_large", label, f"is too large for PIL: {e}")
        return None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError
        report.add("image_unreadable", label, f"cannot be read: {type(e).__name__}: {e}")
        return None
    if header.mode in HIGH_BIT_DEPTH_MODES:
        text = f"has {header.mode} pixels (16-bit or float), which detectron2 would clip to 0-255"
        report.add("image_bit_depth", label, text)
        return None
    if header.mode == "CMYK":
        report.add("image_converted", label, "is CMYK; detectron2 reads it converted to RGB")
    oriented = header.oriented_size
    raw = (header.width, header.height)
    if size is None:
        report.add("image_size_filled", label, f"has no width/height; using the file's {oriented}")
        size = oriented
    if size == oriented:
        if header.orientation != 1 and oriented == raw:
            text = (
                f"has EXIF orientation {header.orientation} and a size that fits both the raw "
                "and the rotated image; its annotations are taken to refer to the rotated image "
                "(what detectron2 reads)"
            )
            report.add("exif_ambiguous", label, text)
    elif size == raw:
        text = (
            f"has EXIF orientation {header.orientation}; the JSON size {size} is the un-rotated "
            f"size, so its annotations were rotated to the {oriented} image detectron2 reads"
        )
        report.add("exif_raw_frame", label, text)
        entry.exif = (header.orientation, header.width, header.height)
    else:
        text = f"is {oriented[0]}x{oriented[1]} on disk but {size[0]}x{size[1]} in the JSON"
        report.add("image_size_mismatch", label, text)
        return None
    entry.record["width"], entry.record["height"] = oriented
    return entry


# ---------------------------------------------------------------------------------------------
# annotations


def _load_annotations(
    annotations: List[Any],
    entries: Dict[Any, _Entry],
    known_images: set,
    id_map: Dict[int, int],
    category_ids: List[int],
    report: ValidationReport,
    masks: bool = True,
) -> None:
    """Check every annotation and append the usable ones to their image's record."""
    seen: Dict[Any, Any] = {}
    listed = sorted(category_ids)
    for index, ann in enumerate(annotations):
        aid = ann.get("id") if isinstance(ann, dict) and _is_id(ann.get("id")) else None
        label = f"annotation {aid}" if aid is not None else f"annotation at index {index}"
        if not isinstance(ann, dict) or not (_is_id(ann.get("image_id")) and "category_id" in ann):
            report.add("annotation_record_invalid", label, "has no image_id or category_id")
            continue
        if aid is not None:
            if aid in seen:
                if seen[aid] == ann:
                    report.add("duplicate_annotation", label, "is listed twice; repeat dropped")
                    continue
                report.add("duplicate_annotation_id", label, "id is used by another annotation")
            else:
                seen[aid] = ann
        image_id, cid = ann["image_id"], ann["category_id"]
        if image_id not in known_images:
            report.add("unknown_image", label, f"refers to image {image_id}, which is not listed")
            continue
        if not _is_int(cid) or cid not in id_map:
            text = f"refers to category {cid}, which is not in categories {listed}"
            report.add("unknown_category", label, text)
            continue
        entry = entries.get(image_id)
        if entry is None:
            report.stats["annotations_of_skipped_images"] += 1
            continue
        obj = _convert_annotation(ann, entry, label, report, masks)
        if obj is not None:
            obj["category_id"] = id_map[cid]
            entry.record["annotations"].append(obj)


def _convert_annotation(
    ann: dict, entry: _Entry, label: str, report: ValidationReport, masks: bool = True
) -> Optional[dict]:
    """Segmentation and box of one annotation in the image's (EXIF-applied) frame, or None.

    With ``masks=False`` an annotation without a mask becomes a box-only record.
    """
    if not masks and _segmentation_is_missing(ann.get("segmentation")):
        if _parse_box(ann.get("bbox")) is None:
            text = f"has no segmentation and an unusable bbox {ann.get('bbox')!r}"
            report.add("bbox_missing", label, text)
            return None
        bbox = _convert_bbox(ann.get("bbox"), None, entry, label, report)
        if bbox is None:
            return None
        return {
            "bbox": bbox,
            "bbox_mode": BoxMode.XYWH_ABS,
            "iscrowd": 1 if ann.get("iscrowd") else 0,
        }
    segm = _convert_segmentation(ann.get("segmentation"), entry, label, report)
    if segm is None:
        return None
    bbox = _convert_bbox(ann.get("bbox"), segm, entry, label, report)
    if bbox is None:
        return None
    iscrowd = 1 if ann.get("iscrowd") else 0
    return {"bbox": bbox, "bbox_mode": BoxMode.XYWH_ABS, "segmentation": segm, "iscrowd": iscrowd}


def _segmentation_is_missing(segm: Any) -> bool:
    """No mask at all: absent, ``[]``, ``{}`` or ``[[]]`` (what box-only exports write)."""
    if segm is None or (isinstance(segm, (list, dict)) and len(segm) == 0):
        return True
    return isinstance(segm, list) and all(isinstance(p, list) and not p for p in segm)


def _convert_segmentation(segm: Any, entry: _Entry, label: str, report: ValidationReport):
    if _segmentation_is_missing(segm):
        report.add("segmentation_missing", label, "has no segmentation (box only)")
        return None
    if isinstance(segm, dict):
        return _convert_rle(segm, entry, label, report)
    if not isinstance(segm, list):
        report.add("segmentation_invalid", label, f"has a segmentation of type {type(segm)}")
        return None
    if all(_is_number(v) for v in segm):
        report.add("segmentation_flat", label, "has a flat polygon; it was wrapped in a list")
        segm = [segm]
    polygons = []
    for k, poly in enumerate(segm):
        checked = _check_polygon(poly, entry, f"{label} polygon {k}", report)
        if checked is not None:
            polygons.append(checked)
    if not polygons:
        report.add("segmentation_empty", label, "has no usable polygon left")
        return None
    return polygons


def _check_polygon(poly: Any, entry: _Entry, label: str, report: ValidationReport):
    """One polygon as a flat list [x1, y1, ...] in the read_image frame, or None."""
    try:
        pts = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        pts = None
    if pts is None or pts.ndim != 1 or len(pts) % 2 or not np.isfinite(pts).all():
        report.add("polygon_degenerate", label, "is not a flat list of numbers [x1, y1, ...]")
        return None
    if len(pts) < 6:
        report.add("polygon_degenerate", label, f"has {len(pts) // 2} points; needs at least 3")
        return None
    xy = pts.reshape(-1, 2)
    if entry.exif:
        xy = exif_transform_points(xy, *entry.exif)
    if polygon_area(xy) <= 1e-6:
        report.add("polygon_degenerate", label, "has zero area")
        return None
    w, h = entry.record["width"], entry.record["height"]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    if hi[0] <= 0 or hi[1] <= 0 or lo[0] >= w or lo[1] >= h:
        report.add("polygon_outside", label, f"lies outside the {w}x{h} image")
        return None
    return xy.ravel().tolist() if entry.exif else list(poly)


def _convert_rle(segm: dict, entry: _Entry, label: str, report: ValidationReport):
    """A compressed RLE dict (``counts`` as str) in the read_image frame, or None."""
    jw, jh = entry.json_size
    size, counts = segm.get("size"), segm.get("counts")
    if not isinstance(size, (list, tuple)) or [int(v) for v in size if _is_number(v)] != [jh, jw]:
        text = f"has RLE size {size!r}; the image is [height, width] = [{jh}, {jw}]"
        report.add("rle_invalid", label, text)
        return None
    try:
        if isinstance(counts, list):
            if not all(_is_int(c) and c >= 0 for c in counts) or sum(counts) != jh * jw:
                raise ValueError(f"uncompressed counts must be {jh * jw} pixels in total")
            rle = mask_util.frPyObjects({"size": [jh, jw], "counts": counts}, jh, jw)
        elif isinstance(counts, (str, bytes)):
            raw = counts.encode("ascii") if isinstance(counts, str) else counts
            rle = {"size": [jh, jw], "counts": raw}
        else:
            raise ValueError(f"counts of type {type(counts).__name__}")
        area = int(mask_util.area(rle))
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        report.add("rle_invalid", label, f"has an unreadable RLE: {e}")
        return None
    if not 0 < area <= jh * jw:
        report.add("segmentation_empty", label, f"has an RLE mask of {area} pixels")
        return None
    if entry.exif:
        mask = exif_transform_mask(mask_util.decode(rle), entry.exif[0])
        rle = mask_util.encode(np.asfortranarray(mask))
    counts = rle["counts"]
    return {
        "size": list(rle["size"]),
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def _convert_bbox(box: Any, segm: Any, entry: _Entry, label: str, report: ValidationReport):
    """The box [x, y, w, h] clipped to the image, or None if nothing is left."""
    xyxy = _parse_box(box)
    if xyxy is not None and entry.exif:
        corners = np.array([xyxy[:2], xyxy[2:]])
        pts = exif_transform_points(corners, *entry.exif)
        xyxy = pts.min(axis=0).tolist() + pts.max(axis=0).tolist()
    if xyxy is None:
        xyxy = segmentation_box(segm).tolist()
        report.add("bbox_invalid", label, f"has bbox {box!r}; rebuilt from the segmentation")
    w, h = entry.record["width"], entry.record["height"]
    # plain floats: this runs for every annotation and numpy's per-call cost dominates here
    x0, y0 = min(max(xyxy[0], 0.0), w), min(max(xyxy[1], 0.0), h)
    x1, y1 = min(max(xyxy[2], 0.0), w), min(max(xyxy[3], 0.0), h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        report.add("bbox_outside", label, f"has bbox {box!r} outside the {w}x{h} image")
        return None
    if max(abs(a - b) for a, b in zip((x0, y0, x1, y1), xyxy)) > BOX_TOLERANCE:
        report.add("bbox_clipped", label, f"has bbox {box!r} beyond the {w}x{h} image; clipped")
    return [x0, y0, x1 - x0, y1 - y0]


def _parse_box(box: Any) -> Optional[List[float]]:
    """[x0, y0, x1, y1] from a COCO [x, y, w, h], or None if malformed or empty."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
        return None
    x, y, w, h = (float(v) for v in box)
    if not (math.isfinite(x + y + w + h) and w > 0 and h > 0):
        return None
    return [x, y, x + w, y + h]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_integral(v: Any) -> bool:
    return isinstance(v, float) and v.is_integer()


def _is_id(v: Any) -> bool:
    return _is_int(v) or (isinstance(v, str) and bool(v))


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
