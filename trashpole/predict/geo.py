"""
Where a photo was taken: the GPS block of its EXIF (phones and action cameras write it).

EXIF stores latitude and longitude as three unsigned rationals (degrees, minutes, seconds) and
the hemisphere in a separate reference tag ("N"/"S", "E"/"W"); altitude as one rational in
metres with a reference byte (0 above sea level, 1 below); the direction the camera looked as
degrees (0 to 360) from true ("T") or magnetic ("M") north. A malformed tag (a missing
reference, a zero denominator, minutes past 60, a latitude past 90...) is reported and the value
it belongs to is left out; nothing here raises on a bad file.
"""

import logging
import math
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from PIL import Image

logger = logging.getLogger(__name__)

GPS_IFD = 0x8825
# tags of the GPS IFD (EXIF 2.3, table 15)
LATITUDE_REF, LATITUDE, LONGITUDE_REF, LONGITUDE = 1, 2, 3, 4
ALTITUDE_REF, ALTITUDE, DIRECTION_REF, DIRECTION = 5, 6, 16, 17


@dataclass(frozen=True)
class GpsFix:
    """
    A photo's position.

    Attributes:
        latitude: degrees, north positive (WGS 84).
        longitude: degrees, east positive.
        altitude: metres above sea level (negative below), or None.
        direction: degrees clockwise from north the camera faced, or None.
        direction_ref: "T" (true north) or "M" (magnetic north) with ``direction``, else None.
    """

    latitude: float
    longitude: float
    altitude: Optional[float] = None
    direction: Optional[float] = None
    direction_ref: Optional[str] = None


class GpsError(ValueError):
    """A malformed GPS tag."""


def read_gps(path: str) -> Tuple[Optional[GpsFix], List[str]]:
    """
    The GPS position in a photo's EXIF.

    Args:
        path: an image file (JPEG, PNG, TIFF, WebP with EXIF).

    Returns:
        (fix, problems): ``fix`` is None when the photo has no usable position; ``problems``
        lists what was malformed, each naming the file, the tag and the value. A photo without
        any GPS tag gives (None, []).
    """
    try:
        with Image.open(path) as im:
            # PngImageFile.getexif decodes the whole image to find a late eXIf chunk
            exif = Image.Image.getexif(im) if im.format == "PNG" else im.getexif()
            tags = dict(exif.get_ifd(GPS_IFD))
    except Exception as e:  # an unreadable EXIF block is no position, not a failed prediction
        return None, [f"{path}: EXIF could not be read ({e}); no position"]
    return gps_from_tags(tags, path)


def gps_from_tags(tags: dict, source: str = "image") -> Tuple[Optional[GpsFix], List[str]]:
    """
    A position from the tags of a GPS IFD (``{tag number: value}``, as PIL reads them).

    Args:
        tags: the GPS IFD.
        source: the file, for the messages.

    Returns:
        (fix or None, problems); see :func:`read_gps`.
    """
    if LATITUDE not in tags and LONGITUDE not in tags:
        return None, []
    problems: List[str] = []
    try:
        lat = _coordinate(tags, LATITUDE, LATITUDE_REF, "NS", 90.0, "GPSLatitude")
        lon = _coordinate(tags, LONGITUDE, LONGITUDE_REF, "EW", 180.0, "GPSLongitude")
    except GpsError as e:
        return None, [f"{source}: {e}; the photo has no position"]
    altitude = _optional(tags, problems, source, _altitude)
    direction = _optional(tags, problems, source, _direction)
    ref = direction[1] if direction else None
    return GpsFix(lat, lon, altitude, direction[0] if direction else None, ref), problems


def _optional(tags: dict, problems: List[str], source: str, read) -> Any:
    try:
        return read(tags)
    except GpsError as e:
        problems.append(f"{source}: {e}; left out")
        return None


def _coordinate(tags: dict, tag: int, ref_tag: int, hemispheres: str, limit: float, name: str):
    if tag not in tags:
        raise GpsError(f"{name} is missing")
    ref = _text(tags.get(ref_tag))
    if ref not in hemispheres:
        raise GpsError(
            f"{name}Ref is {tags.get(ref_tag)!r}, not one of {list(hemispheres)} (the hemisphere)"
        )
    parts = _rationals(tags[tag], name)
    if not 1 <= len(parts) <= 3:
        raise GpsError(f"{name} has {len(parts)} values, not degrees, minutes, seconds")
    for part, what in zip(parts[1:], ("minutes", "seconds")):
        if not 0 <= part < 60:
            raise GpsError(f"{name} {what} are {part:g}, outside [0, 60)")
    value = sum(p / 60**k for k, p in enumerate(parts))
    if not 0 <= value <= limit:
        raise GpsError(f"{name} is {value:g} degrees, outside [0, {limit:g}]")
    return -value if ref == hemispheres[1] else value


def _altitude(tags: dict) -> Optional[float]:
    if ALTITUDE not in tags:
        return None
    value = _single(tags[ALTITUDE], "GPSAltitude")
    ref = tags.get(ALTITUDE_REF, 0)
    ref = ref[0] if isinstance(ref, (bytes, tuple)) and len(ref) else ref
    if ref not in (0, 1):
        raise GpsError(f"GPSAltitudeRef is {tags.get(ALTITUDE_REF)!r}, not 0 (above) or 1 (below)")
    return -value if ref == 1 else value


def _direction(tags: dict) -> Optional[Tuple[float, str]]:
    if DIRECTION not in tags:
        return None
    value = _single(tags[DIRECTION], "GPSImgDirection")
    if value > 360:
        raise GpsError(f"GPSImgDirection is {tags[DIRECTION]!r}, outside [0, 360] degrees")
    ref = _text(tags.get(DIRECTION_REF))
    if ref not in ("T", "M"):
        raise GpsError(
            f"GPSImgDirectionRef is {tags.get(DIRECTION_REF)!r}, not 'T' (true) or 'M' (magnetic)"
        )
    return value % 360.0, ref


def _single(value: Any, name: str) -> float:
    numbers = _rationals(value, name)
    if len(numbers) != 1:
        raise GpsError(f"{name} is {value!r}, not one number")
    return numbers[0]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip("\x00 ").upper() if isinstance(value, str) and value.strip("\x00 ") else "?"


def _rationals(value: Any, name: str) -> List[float]:
    """The numbers of a rational tag (PIL's IFDRational, floats or (num, den) pairs)."""
    values: Sequence[Any] = value if isinstance(value, (tuple, list)) else (value,)
    numbers = []
    for v in values:
        if isinstance(v, tuple) and len(v) == 2:
            num, den = v
        else:
            num, den = getattr(v, "numerator", v), getattr(v, "denominator", 1)
        try:
            num, den = float(num), float(den)
        except (TypeError, ValueError):
            raise GpsError(f"{name} holds {v!r}, not a number") from None
        if den == 0:
            raise GpsError(f"{name} has a zero denominator ({num:g}/0)")
        number = num / den
        if not math.isfinite(number) or number < 0:
            raise GpsError(f"{name} holds {number:g}, not a finite unsigned number")
        numbers.append(number)
    return numbers
