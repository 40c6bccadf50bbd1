"""
Reading one image file for prediction, the way detectron2's ``read_image`` reads training and
evaluation images (PIL, EXIF orientation applied), with a clear answer for the files that
reader gets wrong or fails on:

- an empty (0-byte), truncated or otherwise undecodable file, and an image over PIL's
  decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``): :class:`UnreadableImage`, with
  the reason, so that the caller skips it and lists it;
- a 16-bit grayscale image (PNG ``I;16``): scaled to 8 bits (detectron2's conversion to RGB
  would clip every value above 255 to white) and used, with a note;
- a CMYK image (JPEG from print workflows): converted to RGB and used, with a note.

A caller that only needs a small picture (a report's thumbnail) can ask for a JPEG to be decoded
at 1/2, 1/4 or 1/8 of its size, which libjpeg does several times faster than the whole.

Data splits follow the same policy where they can (``trashpole.data.validation``): there
detectron2 reads the pixels, so a 16-bit image is skipped and reported rather than clipped.
"""

import os
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL modes of 16-bit grayscale pixels ("I" is what older Pillow versions give a 16-bit PNG).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# PIL modes whose values detectron2's read_image clips to 0-255 when it converts to RGB.
HIGH_BIT_DEPTH_MODES = SIXTEEN_BIT_MODES + ("F",)
EXIF_ORIENTATION = 0x0112  # the EXIF tag of the orientation (274)
# orientations that turn the stored picture a quarter turn, so that its width becomes the height
QUARTER_TURNS = (5, 6, 7, 8)


class UnreadableImage(Exception):
    """An image file that cannot be used; the message says why."""


def read_bgr(
    path: str, at_least: Optional[Tuple[int, int]] = None
) -> Tuple[np.ndarray, Optional[str]]:
    """
    Read an image file as the model's input.

    Args:
        path: the file.
        at_least: (height, width) the picture must still cover, after the EXIF orientation,
            when a smaller one will do: a JPEG is then decoded at the smallest of 1/8, 1/4 and
            1/2 of its size that is at least that large (libjpeg's scaled decoding). None: the
            full size, always.

    Returns:
        (ndarray[H, W, 3] of uint8 in BGR order after the EXIF orientation, a note on what was
        converted or None).

    Raises:
        UnreadableImage: the file is empty, not an image, truncated, too large for PIL, or has
            pixels that cannot be turned into 8-bit colour.
    """
    if os.path.getsize(path) == 0:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            if at_least is not None:
                _decode_smaller(image, at_least)
            image.load()  # decode now: a truncated file fails here
            image = ImageOps.exif_transpose(image)
            rgb, note = _to_rgb(image)
    except Image.DecompressionBombError as e:
        raise UnreadableImage(
            f"too large: {e} Resize it, or raise PIL.Image.MAX_IMAGE_PIXELS if it is trusted"
        ) from None
    except UnidentifiedImageError:
        raise UnreadableImage("not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UnreadableImage(f"truncated or corrupt ({type(e).__name__}: {e})") from None
    return np.ascontiguousarray(rgb[:, :, ::-1]), note


def _decode_smaller(image: Image.Image, at_least: Tuple[int, int]) -> None:
    """Let PIL decode ``image`` (opened, not loaded) at a reduced scale that still covers
    ``at_least`` (height, width) once the EXIF orientation is applied; a no-op for formats
    without scaled decoding."""
    height, width = (max(1, int(v)) for v in at_least)
    if image.getexif().get(EXIF_ORIENTATION) in QUARTER_TURNS:
        height, width = width, height  # the stored picture is turned a quarter
    image.draft(image.mode, (width, height))


def _to_rgb(image: Image.Image) -> Tuple[np.ndarray, Optional[str]]:
    """ndarray[H, W, 3] of uint8 RGB, and a note when the pixels needed more than detectron2's
    plain conversion."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise UnreadableImage(f"{image.mode} pixels outside 0-65535; save it as 8-bit")
        gray = (values >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), "16-bit grayscale, scaled to 8 bits"
    if image.mode == "F":
        raise UnreadableImage("floating-point pixels; save it as an 8-bit image")
    note = "CMYK, converted to RGB" if image.mode == "CMYK" else None
    return np.asarray(image.convert("RGB")), note
