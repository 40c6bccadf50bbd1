"""
Files of an inventory: ``detections.geojson`` (one feature per detection, placed where the photo
was taken), ``tracks.csv`` (one row per track) and ``summary.json``.

GeoJSON follows RFC 7946: coordinates are [longitude, latitude] in WGS 84 degrees; a detection in
a photo without a usable GPS position is a feature with ``"geometry": null`` (an "unlocated"
feature, RFC 7946 section 3.2), so every detection is listed and GIS tools still open the file.
"""

import csv
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from trashpole.jsonio import dumps
from trashpole.predict.geo import GpsFix, read_gps
from trashpole.predict.track import Track, is_counted

logger = logging.getLogger(__name__)

GEOJSON_FILE = "detections.geojson"
POSITIONS_PLOT = "positions.png"
TRACKS_FILE = "tracks.csv"
SUMMARY_FILE = "summary.json"
TRACK_COLUMNS = (
    "sequence", "track_id", "class", "first_frame", "last_frame", "frames_seen", "best_score",
    "best_frame", "x0", "y0", "x1", "y1", "counted", "latitude", "longitude",
)  # fmt: skip
# decimal places of degrees in GeoJSON: 1e-7 degrees is about 1 cm
COORDINATE_DECIMALS = 7


class GeoCollector:
    """
    Detections with the positions of their photos, gathered image by image, then written as one
    GeoJSON FeatureCollection and a plot.

    Each image's EXIF is read once; its problems are logged once and kept in ``problems``.
    """

    def __init__(self):
        self.features: List[Dict] = []
        self.problems: List[str] = []
        self._fixes: Dict[str, Optional[GpsFix]] = {}
        self._points: List[Tuple[str, float, float]] = []

    def fix(self, image: str) -> Optional[GpsFix]:
        """The GPS position of ``image`` (read on first use), or None."""
        if image not in self._fixes:
            fix, problems = read_gps(image)
            for problem in problems:
                logger.warning(problem)
            self.problems += problems
            self._fixes[image] = fix
        return self._fixes[image]

    def add(
        self, image: str, records: Sequence[Dict], track_ids: Optional[Sequence[int]] = None
    ) -> Optional[GpsFix]:
        """
        Add one image's detections.

        Args:
            image: the photo's path (as written in the ``image`` property).
            records: its detections, as :func:`trashpole.predict.instances_to_records` gives
                (``category``, ``score``, ``bbox_xyxy``).
            track_ids: the track ID of each record, when tracked.

        Returns:
            the photo's position, or None.
        """
        fix = self.fix(image)
        for k, rec in enumerate(records):
            track_id = None if track_ids is None else int(track_ids[k])
            self.features.append(detection_feature(rec, image, fix, track_id))
            if fix is not None:
                self._points.append((rec["category"], fix.longitude, fix.latitude))
        return fix

    def summary(self) -> Dict[str, int]:
        """Images seen, those with and without a position, and malformed GPS tags."""
        located = sum(fix is not None for fix in self._fixes.values())
        return {
            "images": len(self._fixes),
            "images_with_gps": located,
            "images_without_gps": len(self._fixes) - located,
            "gps_problems": len(self.problems),
            "located_detections": len(self._points),
        }

    def write(self, output_dir: str, points: Optional[Sequence[Tuple[str, float, float]]] = None):
        """
        Write ``detections.geojson`` and, when anything has a position, ``positions.png``.

        Args:
            output_dir: existing folder.
            points: (class, longitude, latitude) to plot; default: every located detection.

        Returns:
            :meth:`summary`.
        """
        write_geojson(self.features, os.path.join(output_dir, GEOJSON_FILE))
        points = self._points if points is None else points
        if points:
            from trashpole.visualization.charts import (
                plot_positions,  # matplotlib only when plotting
            )

            plot_positions(points, os.path.join(output_dir, POSITIONS_PLOT))
        summary = self.summary()
        logger.info(
            f"{summary['images']} images: {summary['images_with_gps']} with a GPS position, "
            f"{summary['images_without_gps']} without, {summary['gps_problems']} malformed "
            f"GPS tags; {GEOJSON_FILE} holds {len(self.features)} detections"
        )
        return summary


def detection_feature(
    record: Dict, image: str, fix: Optional[GpsFix], track_id: Optional[int] = None
) -> Dict:
    """
    One detection as a GeoJSON Feature.

    Args:
        record: ``category``, ``score`` and ``bbox_xyxy`` (pixels).
        image: the photo's path.
        fix: the photo's position, or None for ``"geometry": null``.
        track_id: the detection's track ID, if tracked.

    Returns:
        ``{"type": "Feature", "geometry": Point [lon, lat] or None, "properties": {...}}`` with
        properties class, score, image, box and, where known, track_id, altitude_m,
        direction_deg and direction_ref.
    """
    props = {
        "class": record["category"],
        "score": record["score"],
        "image": image,
        "box": record["bbox_xyxy"],
    }
    if track_id is not None:
        props["track_id"] = track_id
    geometry = None
    if fix is not None:
        lon = round(fix.longitude, COORDINATE_DECIMALS)
        lat = round(fix.latitude, COORDINATE_DECIMALS)
        geometry = {"type": "Point", "coordinates": [lon, lat]}
        if fix.altitude is not None:
            props["altitude_m"] = round(fix.altitude, 3)
        if fix.direction is not None:
            props["direction_deg"] = round(fix.direction, 3)
            props["direction_ref"] = fix.direction_ref
    return {"type": "Feature", "geometry": geometry, "properties": props}


def write_geojson(features: Sequence[Dict], path: str) -> None:
    """Write a FeatureCollection (UTF-8, as RFC 7946 asks)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps({"type": "FeatureCollection", "features": list(features)}, indent=None))


def track_rows(
    sequence: str,
    tracks: Sequence[Track],
    class_names: Sequence[str],
    min_frames: int,
    fixes: Optional[Dict[int, GpsFix]] = None,
    count_score: float = 0.0,
) -> List[Dict]:
    """
    The rows of ``tracks.csv`` for one sequence.

    Args:
        sequence: the video's or frame folder's name.
        tracks: its tracks.
        class_names: names by contiguous class id.
        min_frames, count_score: the counting rule (:func:`trashpole.predict.track.is_counted`):
            the tracks it does not count get ``counted`` 0.
        fixes: position of the frame of each track's best score, by frame index (photos).

    Returns:
        one dict per track with the keys of ``TRACK_COLUMNS``.
    """
    rows = []
    for t in tracks:
        fix = (fixes or {}).get(t.best_frame)
        rows.append(
            {
                "sequence": sequence,
                "track_id": t.id,
                "class": class_names[t.class_id],
                "first_frame": t.first_frame,
                "last_frame": t.last_frame,
                "frames_seen": t.frames_seen,
                "best_score": round(t.best_score, 5),
                "best_frame": t.best_frame,
                **dict(zip(("x0", "y0", "x1", "y1"), (round(v, 2) for v in t.best_box))),
                "counted": int(is_counted(t, min_frames, count_score)),
                "latitude": round(fix.latitude, COORDINATE_DECIMALS) if fix else "",
                "longitude": round(fix.longitude, COORDINATE_DECIMALS) if fix else "",
            }
        )
    return rows


def write_tracks_csv(rows: Sequence[Dict], path: str) -> None:
    """Write ``tracks.csv``: a header of ``TRACK_COLUMNS`` and one line per track."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TRACK_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
