"""Predict on images, folders, globs and videos: overlays, one JSON per image, predictions.json,
COCO results and the positions of photos with GPS."""

import logging
import os
import time
from typing import Dict, List, Optional, Tuple

import cv2
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
from trashpole.predict.pipeline import in_order, workers_for
from trashpole.predict.predictor import TrashPolePredictor
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
    ``detections.geojson`` (+ ``positions.png``) placing each detection at its photo's GPS EXIF
    position (:mod:`trashpole.predict.outputs`). Shows a progress bar with images per second and
    logs the overall rate at the end.

    Images are read as training reads them (:func:`trashpole.images.read_bgr`). One that cannot
    be used (empty, truncated, not an image, over PIL's size limit) is skipped, never fatal; one
    that needed a conversion (16-bit grayscale, CMYK) is used. Both are logged and listed in
    ``predictions.json`` (``skipped``: file and reason, ``converted``: file and note).

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
    if coco_images:
        image_ids, category_ids = read_coco_ids(coco_images, names)
    else:
        image_ids = {p: i for i, p in enumerate(images)}
        category_ids = list(range(1, len(names) + 1))
    counts: Dict[str, float] = {"images": 0, "videos": 0, "frames": 0, "detections": 0}
    everything, coco_results, geo = {}, [], GeoCollector()
    skipped, converted = [], []
    start = time.perf_counter()
    workers = workers_for(predictor)
    results = in_order(lambda p: _read_and_predict(predictor, p), images, workers)
    for path, (image, note, instances) in tqdm(
        results, total=len(images), desc="images", unit="img", dynamic_ncols=True
    ):
        if instances is None:  # unreadable: note says why
            logger.warning(f"{path}: skipped, {note}")
            skipped.append({"file_name": path, "reason": note})
            continue
        if note:
            logger.info(f"{path}: {note}")
            converted.append({"file_name": path, "note": note})
        stem = os.path.splitext(os.path.basename(path))[0]
        records = instances_to_records(instances, names)
        everything[path] = records
        geo.add(path, records)
        if coco_json:
            coco_results += records_to_coco(
                records, coco_image_id(image_ids, path, coco_images), category_ids
            )
        _write_json({"file_name": path, "predictions": records}, f"{output_dir}/{stem}.json")
        if save_overlays:
            cv2.imwrite(
                f"{output_dir}/{stem}.jpg", draw_predictions(image, instances, predictor.metadata)
            )
        counts["images"] += 1
        counts["detections"] += len(records)
    counts.update(skipped=len(skipped), converted=len(converted))
    if images:
        elapsed = time.perf_counter() - start
        counts["images_per_s"] = counts["images"] / max(elapsed, 1e-9)
        logger.info(
            f"{counts['images']} images in {elapsed:.1f} s: {counts['images_per_s']:.2f} images/s"
        )
        _log_skipped(skipped, converted, len(images))
        summary = {"classes": names, "images": everything}
        summary.update(skipped=skipped, converted=converted)
        _write_json(summary, f"{output_dir}/predictions.json")
        gps = geo.write(output_dir)
        counts.update(
            {k: gps[k] for k in ("images_with_gps", "images_without_gps", "gps_problems")}
        )
    if coco_json:
        os.makedirs(os.path.dirname(os.path.abspath(coco_json)), exist_ok=True)
        _write_json(coco_results, coco_json)
        logger.info(f"COCO results of {len(everything)} images: {coco_json}")
    for path in videos:
        counts["frames"] += _predict_video(predictor, path, output_dir)
        counts["videos"] += 1
    return counts


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

    stem = os.path.splitext(os.path.basename(path))[0]
    total = int(cv2.VideoCapture(path).get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer = None
    records = []
    frames = in_order(
        lambda f: predictor(f[1])["instances"].to("cpu"),
        iter_video_frames(path),
        workers_for(predictor),
    )
    for (index, frame, fps), instances in tqdm(frames, total=total, desc=stem, unit="frame"):
        records.append(
            {"frame": index, "predictions": instances_to_records(instances, predictor.class_names)}
        )
        overlay = draw_predictions(frame, instances, predictor.metadata)
        if writer is None:
            h, w = overlay.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            writer = cv2.VideoWriter(f"{output_dir}/{stem}_pred.mp4", fourcc, fps, (w, h))
        writer.write(overlay)
    if writer is not None:
        writer.release()
    _write_json({"file_name": path, "frames": records}, f"{output_dir}/{stem}_pred.json")
    return len(records)


def _write_json(obj, path: str) -> None:
    write_json(obj, path, indent=None)
