"""
``tools/predict.py --track``: run a predictor over videos or an ordered folder of frames, give
every object an ID that persists across frames (:mod:`trashpole.predict.track`) and write the
inventory.

Output folder:

- ``tracks.csv``: one row per track (sequence, ID, class, first and last frame, frames seen,
  best score, the box and frame of that score, whether it is counted, and the GPS position of
  that frame for photos);
- ``summary.json``: distinct objects per class (tracks of at least ``min_frames`` frames), per
  sequence and in all, and the tracker's settings;
- ``<sequence>_tracks.json``: every frame's detections with their ``track_id``;
- overlays with "#ID class score": ``<video>_track.mp4``, or ``<folder>_track/<frame>.jpg``;
- for frames that are photos: ``detections.geojson`` and ``positions.png``
  (:mod:`trashpole.predict.outputs`).
"""

import logging
import os
import re
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from trashpole.images import UnreadableImage, read_bgr
from trashpole.jsonio import write_json
from trashpole.predict.coco import instances_to_records
from trashpole.predict.inputs import find_inputs, iter_video_frames
from trashpole.predict.outputs import (
    SUMMARY_FILE,
    TRACKS_FILE,
    GeoCollector,
    track_rows,
    write_tracks_csv,
)
from trashpole.predict.predictor import TrashPolePredictor
from trashpole.predict.track import TRACKER_NAME, InstanceTracker, count_objects
from trashpole.predict.video import OverlayVideo, predicted_frames
from trashpole.visualization.overlays import draw_tracked

logger = logging.getLogger(__name__)

# (frame index, BGR frame, image path or None, frames per second)
Frame = Tuple[int, np.ndarray, Optional[str], float]


def natural_key(path: str) -> List:
    """Sort key that puts frame_2.jpg before frame_10.jpg."""
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path)]


def track_paths(
    predictor: TrashPolePredictor,
    spec: str,
    output_dir: str,
    min_frames: Optional[int] = None,
    save_overlays: bool = True,
    count_score: Optional[float] = None,
) -> Dict:
    """
    Track the objects of each video in ``spec``, and of its images taken as one sequence of
    frames in natural order (frame_2 before frame_10), and write the inventory.

    Args:
        predictor: from :func:`trashpole.predict.load_predictor`; its config's
            ``TRASHPOLE.TRACK`` sets the tracker.
        spec: a video, a folder of frames (or of videos), or a glob.
        output_dir: created if needed.
        min_frames: frames a track must be detected in to be counted (default:
            ``TRASHPOLE.TRACK.MIN_FRAMES``).
        save_overlays: also write the frames with IDs drawn on them.
        count_score: score one of a track's detections must reach for it to count (default:
            ``TRASHPOLE.TRACK.COUNT_SCORE``; :func:`trashpole.predict.track.is_counted`).

    Returns:
        the content of ``summary.json``: ``objects`` (distinct objects per class),
        ``sequences`` (per sequence: frames, tracks, objects), ``frames``, ``videos``, the
        tracker's settings (``min_frames`` and ``count_score`` included) and, for photos,
        ``gps`` (images with and without a position, malformed tags).
    """
    images, videos = find_inputs(spec)
    os.makedirs(output_dir, exist_ok=True)
    summary = _settings(predictor.cfg.TRASHPOLE.TRACK, min_frames, count_score)
    min_frames, score = summary["min_frames"], summary["count_score"]
    names, rows, all_tracks = predictor.class_names, [], []
    geo = GeoCollector() if images else None
    for name, frames, is_video in _sequences(spec, images, videos):
        tracker = InstanceTracker.from_config(predictor.cfg)
        count, fixes = _track_sequence(
            predictor, tracker, name, frames, output_dir, save_overlays, is_video, geo
        )
        rows += track_rows(name, tracker.tracks, names, min_frames, fixes, score)
        all_tracks += tracker.tracks
        summary["sequences"][name] = {
            "frames": count,
            "tracks": len(tracker.tracks),
            "objects": count_objects(tracker.tracks, min_frames, names, score),
        }
    write_tracks_csv(rows, os.path.join(output_dir, TRACKS_FILE))
    summary["objects"] = count_objects(all_tracks, min_frames, names, score)
    summary["frames"] = sum(s["frames"] for s in summary["sequences"].values())
    summary["videos"] = len(videos)
    if geo is not None:
        located = [(r["class"], r["longitude"], r["latitude"]) for r in rows if r["counted"]]
        summary["gps"] = geo.write(output_dir, [p for p in located if p[1] != ""])
    write_json(summary, os.path.join(output_dir, SUMMARY_FILE))
    logger.info(
        f"{summary['frames']} frames tracked; distinct objects (tracks of at least {min_frames} "
        f"frames, seen once at score >= {score:g}): {summary['objects']}"
    )
    return summary


def _settings(cfg, min_frames: Optional[int], count_score: Optional[float]) -> Dict:
    """The tracker's settings as ``summary.json`` starts: ``TRASHPOLE.TRACK`` (``cfg``), with
    ``min_frames`` and ``count_score`` where given."""
    summary: Dict = {"tracker": TRACKER_NAME, "iou_thresh": cfg.IOU_THRESH}
    summary["max_lost_frames"] = cfg.MAX_LOST_FRAMES
    summary["min_frames"] = cfg.MIN_FRAMES if min_frames is None else min_frames
    summary["count_score"] = float(cfg.COUNT_SCORE if count_score is None else count_score)
    summary["sequences"] = {}
    return summary


def _sequences(
    spec: str, images: List[str], videos: List[str]
) -> List[Tuple[str, Iterator[Frame], bool]]:
    """(name, frames, is it a video) of each sequence: the images as one, named after their
    folder, in natural order; then each video, named after its file."""
    sequences = []
    if images:
        folder = spec if os.path.isdir(spec) else os.path.dirname(images[0])
        name = os.path.basename(os.path.normpath(folder)) or "frames"
        sequences.append((name, _image_frames(sorted(images, key=natural_key)), False))
    sequences += [
        (os.path.splitext(os.path.basename(v))[0], _video_frames(v), True) for v in videos
    ]
    return sequences


def _image_frames(paths: List[str]) -> Iterator[Frame]:

    index = 0
    for path in paths:
        try:  # read as training and predict read (EXIF orientation, 16-bit, CMYK)
            frame, _ = read_bgr(path)
        except UnreadableImage as e:
            logger.warning(f"{path}: {e}, skipped (the frame numbers go on)")
            continue
        yield index, frame, path, 0.0
        index += 1


def _video_frames(path: str) -> Iterator[Frame]:
    for index, frame, fps in iter_video_frames(path):
        yield index, frame, None, fps


def _track_sequence(
    predictor: TrashPolePredictor,
    tracker: InstanceTracker,
    name: str,
    frames: Iterator[Frame],
    output_dir: str,
    save_overlays: bool,
    is_video: bool,
    geo: Optional[GeoCollector],
) -> Tuple[int, Dict]:
    """Predict and track one sequence; returns (frames, {frame index: GPS fix} of photos)."""

    per_frame, fixes = [], {}
    overlay_dir = os.path.join(output_dir, f"{name}_track")
    if save_overlays and not is_video:
        os.makedirs(overlay_dir, exist_ok=True)
    # frames are predicted ahead in threads, tracked here in their order
    with OverlayVideo(os.path.join(output_dir, f"{name}_track.mp4")) as video:
        for (index, frame, path, fps), instances in predicted_frames(predictor, frames, name):
            ids = tracker.update(instances, index)
            records = instances_to_records(instances, predictor.class_names)
            for rec, track_id in zip(records, ids.tolist()):
                rec["track_id"] = track_id
            per_frame.append({"frame": index, "image": path, "predictions": records})
            if geo is not None and path is not None:
                fix = geo.add(path, records, ids.tolist())
                if fix is not None:
                    fixes[index] = fix
            if not save_overlays:
                continue
            overlay = draw_tracked(frame, instances, ids, predictor.class_names)
            if is_video:
                video.write(overlay, fps)
            else:
                stem = os.path.splitext(os.path.basename(path))[0]
                cv2.imwrite(os.path.join(overlay_dir, f"{stem}.jpg"), overlay)
    document = {"sequence": name, "tracker": TRACKER_NAME, "frames": per_frame}
    write_json(document, os.path.join(output_dir, f"{name}_tracks.json"))
    return len(per_frame), fixes
