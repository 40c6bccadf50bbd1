"""What can be wrong with a record of an export, what is done about it, the report that counts it,
and reading the JSON file itself."""

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from trashpole.errors import UserError

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


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_integral(v: Any) -> bool:
    return isinstance(v, float) and v.is_integer()


def is_id(v: Any) -> bool:
    return is_int(v) or (isinstance(v, str) and bool(v))
