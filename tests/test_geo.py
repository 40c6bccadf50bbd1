"""GPS positions from EXIF written in the test (degrees, minutes, seconds in every hemisphere),
malformed tags, and the GeoJSON features made from them."""

import json

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from trashpole.predict.geo import GPS_IFD, gps_from_tags, read_gps
from trashpole.predict.outputs import GeoCollector, detection_feature

# (latitude ref, (d, m, s), longitude ref, (d, m, s), decimal latitude, decimal longitude),
# worked by hand: d + m / 60 + s / 3600, negative in the south and the west
PLACES = {
    "sydney": ("S", (33, 51, 31.23), "E", (151, 12, 30.5), -33.858675, 151.2084722),
    "new_york": ("N", (40, 41, 21.0), "W", (74, 2, 40.2), 40.6891667, -74.0445),
    "rio": ("S", (22, 57, 6.0), "W", (43, 12, 38.4), -22.9516667, -43.2106667),
    "oslo": ("N", (59, 54, 50.4), "E", (10, 45, 10.8), 59.914, 10.753),
}


def rationals(dms):
    """(d, m, s) as EXIF rationals, seconds in hundredths."""
    d, m, s = dms
    return (IFDRational(d, 1), IFDRational(m, 1), IFDRational(round(s * 100), 100))


def gps_tags(place: str, extra: dict = None) -> dict:
    lat_ref, lat, lon_ref, lon, _, _ = PLACES[place]
    tags = {1: lat_ref, 2: rationals(lat), 3: lon_ref, 4: rationals(lon)}
    tags.update(extra or {})
    return tags


def write_photo(path, gps: dict = None, size: int = 64, seed: int = 0, pixels=None) -> str:
    """A JPEG (or PNG, by the suffix) with the GPS IFD ``gps`` in its EXIF (none if None), of
    ``pixels`` (uint8 [H, W, 3], RGB) or random ones."""
    if pixels is None:
        pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    exif = Image.Exif()
    if gps is not None:
        exif[GPS_IFD] = gps
    Image.fromarray(pixels).save(path, exif=exif)
    return str(path)


@pytest.mark.parametrize("place", sorted(PLACES))
def test_position_of_each_hemisphere(tmp_path, place):
    path = write_photo(tmp_path / f"{place}.jpg", gps_tags(place))
    fix, problems = read_gps(path)
    assert problems == []
    *_, lat, lon = PLACES[place]
    assert (fix.latitude, fix.longitude) == (
        pytest.approx(lat, abs=1e-7),
        pytest.approx(lon, abs=1e-7),
    )
    assert fix.altitude is None and fix.direction is None


def test_altitude_below_sea_level_and_direction(tmp_path):
    extra = {5: b"\x01", 6: IFDRational(125, 10), 16: "M", 17: IFDRational(2705, 10)}
    fix, problems = read_gps(write_photo(tmp_path / "dead_sea.png", gps_tags("oslo", extra)))
    assert problems == []
    assert (fix.altitude, fix.direction, fix.direction_ref) == (-12.5, 270.5, "M")


def test_a_photo_without_gps_has_no_position_and_no_problem(tmp_path):
    assert read_gps(write_photo(tmp_path / "plain.jpg")) == (None, [])


@pytest.mark.parametrize(
    "change, message",
    [
        ({1: None}, "GPSLatitudeRef is None"),
        ({3: "X"}, "GPSLongitudeRef is 'X'"),
        ({2: (IFDRational(33, 0), IFDRational(51, 1), IFDRational(31, 1))}, "zero denominator"),
        ({2: (33.0, 75.0, 0.0)}, "GPSLatitude minutes are 75"),
        ({4: (151.0, 12.0, 60.0)}, "GPSLongitude seconds are 60"),
        ({2: (95.0, 0.0, 0.0)}, "GPSLatitude is 95 degrees, outside [0, 90]"),
        ({4: (200.0, 0.0, 0.0)}, "GPSLongitude is 200 degrees, outside [0, 180]"),
        ({4: None}, "GPSLongitude holds None"),
    ],
)
def test_malformed_position_is_reported_and_skipped(change, message):
    tags = gps_tags("sydney")
    for tag, value in change.items():
        if value is None and tag == 1:
            del tags[tag]
        else:
            tags[tag] = value
    fix, problems = gps_from_tags(tags, "walk/0001.jpg")
    assert fix is None
    assert len(problems) == 1 and message in problems[0]
    assert problems[0].startswith("walk/0001.jpg: ") and "no position" in problems[0]


def test_malformed_altitude_or_direction_drops_only_that_value():
    extra = {6: IFDRational(5, 0), 16: "T", 17: IFDRational(400, 1)}
    fix, problems = gps_from_tags(gps_tags("rio", extra), "a.jpg")
    assert (fix.latitude, fix.longitude) == (
        pytest.approx(-22.9516667, abs=1e-7),
        pytest.approx(-43.2106667, abs=1e-7),
    )
    assert fix.altitude is None and fix.direction is None
    assert len(problems) == 2
    assert "GPSAltitude has a zero denominator" in problems[0]
    assert "GPSImgDirection is 400" in problems[1]


def test_zero_denominator_written_to_a_file_is_reported(tmp_path):
    bad = gps_tags("new_york", {2: (IFDRational(40, 0), IFDRational(41, 1), IFDRational(21, 1))})
    path = write_photo(tmp_path / "bad.jpg", bad)
    fix, problems = read_gps(path)
    assert fix is None and "zero denominator" in problems[0] and "bad.jpg" in problems[0]


def test_feature_is_rfc7946_point_in_lon_lat_order(tmp_path):
    record = {"category": "pole", "score": 0.9, "bbox_xyxy": [1.0, 2.0, 30.0, 60.0]}
    collector = GeoCollector()
    paths = {p: write_photo(tmp_path / f"{p}.jpg", gps_tags(p)) for p in ("rio", "oslo")}
    paths["none"] = write_photo(tmp_path / "none.jpg")
    for k, path in enumerate(paths.values()):
        collector.add(path, [record], track_ids=[k])
    summary = collector.write(str(tmp_path))
    data = json.loads((tmp_path / "detections.geojson").read_text())
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 3
    rio, oslo, none = data["features"]
    assert rio["geometry"] == {"type": "Point", "coordinates": [-43.2106667, -22.9516667]}
    assert oslo["geometry"]["coordinates"] == [10.753, 59.914]
    assert none["geometry"] is None  # located nowhere, still listed
    assert rio["properties"] == {
        "class": "pole",
        "score": 0.9,
        "image": paths["rio"],
        "box": [1.0, 2.0, 30.0, 60.0],
        "track_id": 0,
    }
    assert summary["images_with_gps"] == 2 and summary["images_without_gps"] == 1
    assert (tmp_path / "positions.png").is_file()
    # without a track the property is absent, not null
    assert "track_id" not in detection_feature(record, "x.jpg", None)["properties"]
