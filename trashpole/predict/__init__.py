"""
From detections to an inventory: track IDs across video frames, counts of distinct objects,
and the GPS position of photos.

- :mod:`.track`: :func:`track_predictions` (a stream of per-frame predictions -> tracks and
  counts), :class:`InstanceTracker`, :func:`count_id_switches`;
- :mod:`.geo`: :func:`read_gps`, a photo's EXIF position;
- :mod:`.outputs`: ``detections.geojson``, ``tracks.csv``, ``summary.json``;
- :mod:`.sequence`: ``track_paths``, what ``tools/predict.py --track`` runs;
- :mod:`.synthetic_video`: a panned and zoomed synthetic scene with known identities.
"""

from trashpole.predict.geo import GpsFix, read_gps
from trashpole.predict.track import (
    InstanceTracker,
    Track,
    TrackingResult,
    count_id_switches,
    count_objects,
    match_to_truth,
    track_predictions,
)


def track_paths(*args, **kwargs):
    """Track videos or frame folders; see :func:`trashpole.predict.sequence.track_paths`."""
    # imported on use: trashpole.predictor imports this package for the GeoJSON of photos
    from trashpole.predict.sequence import track_paths as _track_paths

    return _track_paths(*args, **kwargs)


__all__ = [
    "GpsFix",
    "InstanceTracker",
    "Track",
    "TrackingResult",
    "count_id_switches",
    "count_objects",
    "match_to_truth",
    "read_gps",
    "track_paths",
    "track_predictions",
]
