"""Image records and files: ids, paths inside the split folder, headers read without decoding, EXIF
orientation, truncated, oversized and high-bit-depth files."""

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from PIL import Image

from trashpole.data.geometry import (
    EXIF_TRANSPOSE,
)
from trashpole.data.validation.problems import ValidationReport, is_id, is_int, is_integral
from trashpole.images import HIGH_BIT_DEPTH_MODES

# Files up to this size are fully decoded when checked (cheap); larger ones only when their
# last bytes do not look like the end of a JPEG/PNG.
FULL_DECODE_BYTES = 32 * 1024
_EXIF_ORIENTATION_TAG = 274


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
class Entry:
    """An image record being built, and the frame its JSON coordinates refer to."""

    record: dict
    exif: Optional[Tuple[int, int, int]] = None  # (orientation, raw width, raw height)

    @property
    def json_size(self) -> Tuple[int, int]:
        """(width, height) of the image the JSON coordinates were drawn on."""
        if self.exif:
            return self.exif[1], self.exif[2]
        return self.record["width"], self.record["height"]


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


# ---------------------------------------------------------------------------------------------
# images


def load_images(
    images: List[Any], root: str, report: ValidationReport, check_images: bool
) -> Tuple[Dict[Any, Entry], set]:
    """Check the image records. Returns ({image id: entry} of usable images, every listed id)."""
    ids = Counter(img.get("id") for img in images if isinstance(img, dict) and is_id(img.get("id")))
    files: Dict[Any, set] = {}
    for img in images:
        if isinstance(img, dict) and is_id(img.get("id")) and ids[img["id"]] > 1:
            files.setdefault(img.get("id"), set()).add(img.get("file_name"))
    entries: Dict[Any, Entry] = {}
    for index, img in enumerate(images):
        image_id = img.get("id") if isinstance(img, dict) and is_id(img.get("id")) else None
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
) -> Optional[Entry]:
    """Check one image record; returns None (and reports why) if it cannot be used."""
    if not isinstance(img, dict) or not is_id(img.get("id")):
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
    entry = Entry(record)
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
    if not (is_int(w) or is_integral(w)) or not (is_int(h) or is_integral(h)):
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
    entry: Entry, size: Optional[Tuple[int, int]], label: str, report: ValidationReport
) -> Optional[Entry]:
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
