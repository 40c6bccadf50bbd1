"""
Prediction from a trained run, and from detections to an inventory.

- :mod:`.predictor`: :func:`load_predictor` and :class:`TrashPolePredictor` (detectron2's
  ``DefaultPredictor`` with the run's class names, on the run's backend: :mod:`trashpole.run`);
- :mod:`.stages`: Mask R-CNN split into three networks with detectron2's code between them;
- :mod:`.openvino`: the OpenVINO backend (conversion, cache, precision), :mod:`.quantize` its
  int8;
- :mod:`.pipeline`: folders and videos read, predicted and drawn at once, in order;
- :mod:`.video`: the frame loop of videos and sequences (frames predicted ahead, an MP4 of
  overlays);
- :mod:`.slicing`, :mod:`.merge`, :mod:`.sliced_model`: sliced inference of large photos;
- :mod:`.inputs`: files, folders, globs and videos to predict on;
- :mod:`.run`: :func:`predict_paths`, what ``tools/predict.py`` runs;
- :mod:`.coco`: predictions as JSON records and COCO results;
- :mod:`.draw`: overlays of predictions and tracks, the map of positions;

- :mod:`.track`: :func:`track_predictions` (a stream of per-frame predictions -> tracks and
  counts), :class:`InstanceTracker`;
- :mod:`.truth`: :func:`match_to_truth` and :func:`count_id_switches`, predictions against
  known objects;
- :mod:`.geo`: :func:`read_gps`, a photo's EXIF position;
- :mod:`.outputs`: ``detections.geojson``, ``tracks.csv``, ``summary.json``;
- :mod:`.sequence`: ``track_paths``, what ``tools/predict.py --track`` runs.

A panned and zoomed synthetic scene with known identities, to score the tracker, is a measuring
tool outside the package: ``benchmarks/synthetic_video.py`` (``tools/synthetic_video.py``).
"""

from trashpole.predict.geo import GpsFix, read_gps
from trashpole.predict.inputs import find_inputs
from trashpole.predict.predictor import TrashPolePredictor, load_predictor, resolve_run
from trashpole.predict.run import predict_paths
from trashpole.predict.sequence import track_paths
from trashpole.predict.track import (
    InstanceTracker,
    Track,
    TrackingResult,
    count_objects,
    is_counted,
    track_predictions,
)
from trashpole.predict.truth import count_id_switches, match_to_truth

__all__ = [
    "GpsFix",
    "TrashPolePredictor",
    "load_predictor",
    "predict_paths",
    "resolve_run",
    "InstanceTracker",
    "Track",
    "TrackingResult",
    "count_id_switches",
    "count_objects",
    "find_inputs",
    "is_counted",
    "match_to_truth",
    "read_gps",
    "track_paths",
    "track_predictions",
]
