"""Predict on images, folders, globs and videos: overlays, one JSON per image, predictions.json,
COCO results and the positions of photos with GPS."""

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np
from detectron2.structures import Instances
from tqdm import tqdm

from trashpole.images import UnreadableImage, read_bgr
from trashpole.jsonio import write_json
from trashpole.predict.coco import (
    coco_image_id,
    instances_to_records,
    read_coco_ids,
    records_to_coco,
)
from trashpole.predict.inputs import find_inputs, iter_video_frames
from trashpole.predict.outputs import GeoCollector
from trashpole.predict.pipeline import in_order, pipelined
from trashpole.predict.predictor import TrashPolePredictor
from trashpole.predict.video import OverlayVideo, predicted_frames
from trashpole.visualization.overlays import draw_predictions

logger = logging.getLogger(__name__)


def predict_paths(
    predictor: TrashPolePredictor,
    spec: str,
    output_dir: str,
    save_overlays: bool = True,
    coco_json: Optional[str] = None,
    coco_images: Optional[str] = None,
) -> Dict[str, float]:
    """
    Run ``predictor`` on the images and videos of ``spec`` (file, folder or glob) and write into
    ``output_dir``: one overlay JPEG and one JSON per image, an overlaid copy of each video with a
    JSON of its per-frame detections, ``predictions.json`` with all image results, and
    ``detections.geojson`` (+ ``positions.png``) at each photo's GPS EXIF position
    (:mod:`trashpole.predict.outputs`). Shows a progress bar (images/s) and logs the rate.

    Images are read as training reads them (:func:`trashpole.images.read_bgr`): an unusable one
    (empty, truncated, not an image, too large) is skipped, one needing a conversion (16-bit,
    CMYK) used; both are logged and listed in ``predictions.json`` (``skipped``, ``converted``).

    Args:
        predictor: from :func:`load_predictor`.
        spec: an image, a video, a folder or a glob.
        output_dir: created if needed.
        save_overlays: also write the overlay images.
        coco_json: if set, also write all image predictions to this file as one COCO results
            list (``image_id``, ``category_id``, ``bbox`` XYWH, ``score``, RLE ``segmentation``).
        coco_images: a COCO JSON (e.g. a split's ``_annotations.coco.json``) whose image ids
            (matched by file name) and category ids (matched by class name) ``coco_json`` uses;
            without it images are numbered 0, 1, ... in sorted order and classes get their
            contiguous id + 1 (Roboflow's numbering, where 0 is the superclass).

    Returns:
        counts: images (predicted), skipped, converted, videos, frames, detections;
        ``images_per_s`` (images over the wall time of the image loop, reading and writing
        included); with images, the GPS counts ``images_with_gps``, ``images_without_gps``,
        ``gps_problems`` (malformed tags).
    """
    images, videos = find_inputs(spec)
    os.makedirs(output_dir, exist_ok=True)
    names = predictor.class_names
    found = _ImageResults(*_coco_numbering(names, images, coco_images), coco_images, coco_json)
    counts: Dict[str, float] = {"images": 0, "videos": 0, "frames": 0, "detections": 0}
    start = time.perf_counter()
    for path, image, instances in _usable_images(predictor, images, found):
        records = instances_to_records(instances, names)
        found.add(path, records)
        _save_image(path, image, instances, records, predictor.metadata, output_dir, save_overlays)
        counts["images"] += 1
        counts["detections"] += len(records)
    counts.update(skipped=len(found.skipped), converted=len(found.converted))
    if images:
        counts["images_per_s"] = _log_rate(counts["images"], time.perf_counter() - start)
        _log_skipped(found.skipped, found.converted, len(images))
        counts.update(_write_image_summary(found, names, output_dir))
    if coco_json:
        found.write_coco()
    for path in videos:
        counts["frames"] += _predict_video(predictor, path, output_dir)
        counts["videos"] += 1
    return counts


@dataclass
class _ImageResults:
    """What the image loop gathers: records per image (for ``predictions.json``), COCO results
    (when ``coco_json`` is set, numbered by ``image_ids`` and ``category_ids`` from
    ``coco_images``), the skipped and converted files, and the GPS positions."""

    image_ids: Dict[str, int]
    category_ids: List[int]
    coco_images: Optional[str]
    coco_json: Optional[str]
    records: Dict[str, List[Dict]] = field(default_factory=dict)
    coco: List[Dict] = field(default_factory=list)
    skipped: List[Dict] = field(default_factory=list)
    converted: List[Dict] = field(default_factory=list)
    geo: GeoCollector = field(default_factory=GeoCollector)

    def add(self, path: str, records: List[Dict]) -> None:
        """Take one predicted image's records."""
        self.records[path] = records
        self.geo.add(path, records)
        if self.coco_json:
            image_id = coco_image_id(self.image_ids, path, self.coco_images)
            self.coco += records_to_coco(records, image_id, self.category_ids)

    def write_coco(self) -> None:
        """Write the COCO results to ``coco_json``."""
        os.makedirs(os.path.dirname(os.path.abspath(self.coco_json)), exist_ok=True)
        _write_json(self.coco, self.coco_json)
        logger.info(f"COCO results of {len(self.records)} images: {self.coco_json}")


def _coco_numbering(
    names: List[str], images: List[str], coco_images: Optional[str]
) -> Tuple[Dict[str, int], List[int]]:
    """(image id by path or file name, data-set category id of each class) for COCO results:
    those of ``coco_images``, or the images in order and the classes from 1 up."""
    if coco_images:
        return read_coco_ids(coco_images, names)
    return {p: i for i, p in enumerate(images)}, list(range(1, len(names) + 1))


def _usable_images(
    predictor: TrashPolePredictor, images: List[str], found: _ImageResults
) -> Iterator[Tuple[str, np.ndarray, Instances]]:
    """(path, image, instances) of each image that could be read, predicted ahead in threads and
    in order, with a progress bar; a skipped or converted file is logged and listed in
    ``found``."""
    flying, workers = pipelined(predictor, len(images))
    results = in_order(lambda p: _read_and_predict(flying, p), images, workers)
    for path, (image, note, instances) in tqdm(
        results, total=len(images), desc="images", unit="img", dynamic_ncols=True
    ):
        if instances is None:  # unreadable: note says why
            logger.warning(f"{path}: skipped, {note}")
            found.skipped.append({"file_name": path, "reason": note})
            continue
        if note:
            logger.info(f"{path}: {note}")
            found.converted.append({"file_name": path, "note": note})
        yield path, image, instances


def _save_image(
    path: str,
    image: np.ndarray,
    instances: Instances,
    records: List[Dict],
    metadata,
    output_dir: str,
    save_overlays: bool,
) -> None:
    """Write one image's JSON, ``<stem>.json``, and its overlay, ``<stem>.jpg``."""
    stem = os.path.splitext(os.path.basename(path))[0]
    _write_json({"file_name": path, "predictions": records}, f"{output_dir}/{stem}.json")
    if save_overlays:
        cv2.imwrite(f"{output_dir}/{stem}.jpg", draw_predictions(image, instances, metadata))


def _log_rate(images: int, elapsed: float) -> float:
    """Log and return the images per second of the image loop."""
    rate = images / max(elapsed, 1e-9)
    logger.info(f"{images} images in {elapsed:.1f} s: {rate:.2f} images/s")
    return rate


def _write_image_summary(found: _ImageResults, names: List[str], output_dir: str) -> Dict[str, int]:
    """Write ``predictions.json`` and the positions (``detections.geojson``...); returns the GPS
    counts."""
    summary = {"classes": names, "images": found.records}
    summary.update(skipped=found.skipped, converted=found.converted)
    _write_json(summary, f"{output_dir}/predictions.json")
    gps = found.geo.write(output_dir)
    return {k: gps[k] for k in ("images_with_gps", "images_without_gps", "gps_problems")}


def _read_and_predict(predictor: TrashPolePredictor, path: str) -> Tuple:
    """(image, conversion note, instances on the CPU) of an image file; (None, reason, None) for
    one that cannot be used."""
    try:
        image, note = read_bgr(path)
    except UnreadableImage as e:
        return None, str(e), None
    return image, note, predictor(image)["instances"].to("cpu")


def _log_skipped(skipped: List[Dict], converted: List[Dict], total: int) -> None:
    """One summary line of the images that were skipped or converted (all are in the JSON)."""
    for items, what, key in ((skipped, "skipped", "reason"), (converted, "converted", "note")):
        if not items:
            continue
        shown = "; ".join(f"{os.path.basename(i['file_name'])}: {i[key]}" for i in items[:10])
        more = f"; and {len(items) - 10} more" if len(items) > 10 else ""
        level = logging.WARNING if what == "skipped" else logging.INFO
        logger.log(
            level,
            f"{what} {len(items)} of {total} images (listed in predictions.json): {shown}{more}",
        )


def _predict_video(predictor: TrashPolePredictor, path: str, output_dir: str) -> int:
    """Write ``<stem>_pred.mp4`` (the video with the predictions drawn) and ``<stem>_pred.json``
    (each frame's records); returns the frames predicted."""
    stem = os.path.splitext(os.path.basename(path))[0]
    total = int(cv2.VideoCapture(path).get(cv2.CAP_PROP_FRAME_COUNT)) or None
    records = []
    frames = predicted_frames(predictor, iter_video_frames(path), stem, total)
    with OverlayVideo(f"{output_dir}/{stem}_pred.mp4") as video:
        for (index, frame, fps), instances in frames:
            predictions = instances_to_records(instances, predictor.class_names)
            records.append({"frame": index, "predictions": predictions})
            video.write(draw_predictions(frame, instances, predictor.metadata), fps)
    _write_json({"file_name": path, "frames": records}, f"{output_dir}/{stem}_pred.json")
    return len(records)


def _write_json(obj, path: str) -> None:
    write_json(obj, path, indent=None)
