"""Inference from a trained run: detectron2's DefaultPredictor with the run's class names."""

import glob
import logging
import os
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata
from detectron2.engine import DefaultPredictor
from detectron2.utils.visualizer import ColorMode, Visualizer

from trashpole.config import load_config
from trashpole.errors import MissingFileError, UserError
from trashpole.images import UnreadableImage, read_bgr
from trashpole.jsonio import write_json
from trashpole.speed import (
    apply_inference_options,
    inference_autocast,
    set_test_size,
    to_fp32,
)
from trashpole.visualization import class_colors

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def resolve_run(run_or_config: str, weights: Optional[str] = None) -> Tuple[str, str]:
    """
    Find the config and weights of a run.

    Args:
        run_or_config: a run folder (holding config.yaml) or a config file.
        weights: a checkpoint; default: the run's model_final.pth (else model_best.pth).

    Returns:
        (config file, weights file)
    """
    if os.path.isdir(run_or_config):
        config = os.path.join(run_or_config, "config.yaml")
        folder = run_or_config
    else:
        config = run_or_config
        folder = os.path.dirname(run_or_config)
    if not os.path.isfile(config):
        raise MissingFileError(
            f"{config} does not exist: give a run folder (the OUTPUT_DIR of a training, holding "
            "config.yaml) or its config.yaml"
        )
    if weights is None:
        candidates = [os.path.join(folder, n) for n in ("model_final.pth", "model_best.pth")]
        weights = next((c for c in candidates if os.path.isfile(c)), None)
        if weights is None:
            raise MissingFileError(
                f"no model_final.pth or model_best.pth in {folder!r}: pass the weights explicitly"
            )
    elif "://" not in weights and not os.path.isfile(weights):
        raise MissingFileError(f"weights {weights!r} do not exist; give a checkpoint file (.pth)")
    return config, weights


class TrashPolePredictor(DefaultPredictor):
    """
    detectron2's ``DefaultPredictor`` whose ``metadata`` carries the class names of the run
    (``TRASHPOLE.CLASS_NAMES`` in its config.yaml), so that nothing needs to be registered at
    inference time, plus :meth:`predict_batch` for many images. The model is prepared by
    :func:`trashpole.speed.apply_inference_options`: ``cfg.TRASHPOLE.INFERENCE`` (bf16,
    channels_last, threads) applies, and norms are folded and convolutions fused; outputs are
    the same fp32 boxes and scores and bool masks as detectron2's.
    """

    def __init__(self, cfg: CfgNode):
        super().__init__(cfg)
        names = list(cfg.TRASHPOLE.CLASS_NAMES) or [
            f"class_{i}" for i in range(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
        ]
        self.metadata = Metadata(
            name="trashpole_predictor", thing_classes=names, thing_colors=class_colors(len(names))
        )
        # the model is ours alone and never trained: norms folded, convs fused, bf16 weights
        apply_inference_options(self.model, self.cfg, inference_only=True)

    def __call__(self, original_image: np.ndarray) -> Dict:
        """
        Run the model on one BGR image.

        Args:
            original_image: uint8 array [H, W, 3] in BGR order.

        Returns:
            ``{"instances": Instances}`` at the image's size: ``pred_boxes`` (Boxes of float32
            XYXY), ``scores`` (Tensor[N] of float32), ``pred_classes`` (Tensor[N] of int64) and
            ``pred_masks`` (Tensor[N, H, W] of bool), whatever the speed options.
        """
        return self.predict_batch([original_image], batch_size=1)[0]

    @property
    def class_names(self) -> List[str]:
        return list(self.metadata.thing_classes)

    def predict_batch(self, images: Sequence[np.ndarray], batch_size: int = 4) -> List[Dict]:
        """
        Run the model on many BGR images, ``batch_size`` at a time.

        Args:
            images: uint8 arrays [H, W, 3] in BGR order (as ``cv2.imread`` gives).
            batch_size: images per forward pass.

        Returns:
            one dict per image with ``instances`` at the image's own size, as ``__call__`` returns.
        """
        outputs: List[Dict] = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                inputs = [self.preprocess(img) for img in images[start : start + batch_size]]
                with inference_autocast(self.cfg):
                    batch = self.model(inputs)
                outputs.extend(to_fp32(batch))
        return outputs

    def preprocess(self, original_image: np.ndarray) -> Dict:
        """
        One BGR image as the model's input: resized by ``INPUT.MIN/MAX_SIZE_TEST``, channels in
        ``INPUT.FORMAT`` order.

        Args:
            original_image: uint8 array [H, W, 3] in BGR order.

        Returns:
            ``{"image": Tensor[3, h, w] of float32, "height": H, "width": W}``.
        """
        if self.input_format == "RGB":
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        image = self.aug.get_transform(original_image).apply_image(original_image)
        image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
        return {"image": image.to(self.cfg.MODEL.DEVICE), "height": height, "width": width}


def load_predictor(
    run_or_config: str,
    weights: Optional[str] = None,
    score_thresh: Optional[float] = None,
    device: str = "cpu",
    opts: Optional[Sequence[str]] = None,
    input_size: Optional[int] = None,
) -> TrashPolePredictor:
    """
    Build a predictor from a trained run.

    Args:
        run_or_config: the run folder or its ``config.yaml``.
        weights: checkpoint file (default: the run's model_final.pth).
        score_thresh: keep detections scoring at least this (default: the config's
            ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``).
        device: "cpu" or "cuda".
        opts: more KEY VALUE config overrides, e.g. the speed options of
            :func:`trashpole.speed.speed_opts` (``TRASHPOLE.INFERENCE.BF16 True``...).
        input_size: shorter side of the images given to the model (default: the config's
            ``INPUT.MIN_SIZE_TEST``); see :func:`trashpole.speed.set_test_size`.

    Returns:
        a :class:`TrashPolePredictor` (a detectron2 ``DefaultPredictor``); ``predictor(bgr_image)``
        returns ``{"instances": Instances}`` with ``pred_masks``, ``pred_boxes``, ``pred_classes``
        and ``scores``; ``predictor.class_names`` names the classes.
    """
    config, weights = resolve_run(run_or_config, weights)
    cfg = load_config(config, opts)
    cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = device
    if score_thresh is not None:
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_thresh
    if input_size:
        set_test_size(cfg, input_size)
    cfg.freeze()
    predictor = TrashPolePredictor(cfg)
    logger.info(f"Loaded {weights} with classes {predictor.class_names}")
    return predictor


def instances_to_records(instances, class_names: Sequence[str]) -> List[Dict]:
    """
    Predictions as JSON-ready dicts: class, score, box [x0, y0, x1, y1] and an RLE mask.

    Args:
        instances: detectron2 Instances on the CPU.
        class_names: names by contiguous class id.
    """
    records = []
    boxes = instances.pred_boxes.tensor.numpy().tolist() if instances.has("pred_boxes") else []
    masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
    for i in range(len(instances)):
        cls = int(instances.pred_classes[i])
        rec = {
            "category_id": cls,
            "category": class_names[cls],
            "score": round(float(instances.scores[i]), 5),
            "bbox_xyxy": [round(v, 2) for v in boxes[i]],
        }
        if masks is not None:
            rle = mask_util.encode(np.asfortranarray(masks[i].astype(np.uint8)))
            rec["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        records.append(rec)
    return records


def draw_predictions(image_bgr: np.ndarray, instances, metadata: Metadata) -> np.ndarray:
    """The image with masks, boxes, class names and scores drawn on it (BGR out)."""
    vis = Visualizer(image_bgr[:, :, ::-1], metadata=metadata, instance_mode=ColorMode.IMAGE)
    return vis.draw_instance_predictions(instances).get_image()[:, :, ::-1]


def find_inputs(spec: str) -> Tuple[List[str], List[str]]:
    """
    Expand an input spec (a file, a folder or a glob) into (images, videos), sorted.
    """
    if os.path.isdir(spec):
        paths = [os.path.join(spec, n) for n in os.listdir(spec)]
    elif os.path.isfile(spec):
        paths = [spec]
    else:
        paths = glob.glob(spec, recursive=True)
    paths = sorted(p for p in paths if os.path.isfile(p))
    images = [p for p in paths if p.lower().endswith(IMAGE_EXTENSIONS)]
    videos = [p for p in paths if p.lower().endswith(VIDEO_EXTENSIONS)]
    if not images and not videos:
        raise MissingFileError(
            f"no image ({', '.join(IMAGE_EXTENSIONS)}) or video ({', '.join(VIDEO_EXTENSIONS)}) "
            f"found at {spec!r}"
        )
    return images, videos


def iter_video_frames(path: str) -> Iterator[Tuple[int, np.ndarray, float]]:
    """Yield (index, BGR frame, fps) of a video file."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise UserError(f"{path}: cannot open the video; check that the file is a complete video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield index, frame, fps
            index += 1
    finally:
        cap.release()


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
    import cv2
    from tqdm import tqdm

    from trashpole.predict.outputs import GeoCollector

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
    for path in tqdm(images, desc="images", unit="img", dynamic_ncols=True):
        try:
            image, note = read_bgr(path)
        except UnreadableImage as e:
            logger.warning(f"{path}: skipped, {e}")
            skipped.append({"file_name": path, "reason": str(e)})
            continue
        if note:
            logger.info(f"{path}: {note}")
            converted.append({"file_name": path, "note": note})
        instances = predictor(image)["instances"].to("cpu")
        stem = os.path.splitext(os.path.basename(path))[0]
        records = instances_to_records(instances, names)
        everything[path] = records
        geo.add(path, records)
        if coco_json:
            coco_results += records_to_coco(
                records, _image_id(image_ids, path, coco_images), category_ids
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


def read_coco_ids(json_file: str, class_names: Sequence[str]) -> Tuple[Dict[str, int], List[int]]:
    """
    Image ids by file name and category ids by class of a COCO JSON.

    Args:
        json_file: a COCO JSON with ``images`` and ``categories``.
        class_names: the model's classes in contiguous-id order.

    Returns:
        (``{file_name: id}`` with both the JSON's ``file_name`` and its base name as keys,
        ``[category id of class 0, of class 1, ...]``)
    """
    import json

    if not os.path.isfile(json_file):
        raise MissingFileError(f"--coco-images {json_file!r} does not exist; give a COCO JSON")
    with open(json_file) as f:
        data = json.load(f)
    image_ids: Dict[str, int] = {}
    for image in data.get("images", []):
        image_ids[image["file_name"]] = image["id"]
        image_ids.setdefault(os.path.basename(image["file_name"]), image["id"])
    by_name = {c["name"]: c["id"] for c in data.get("categories", [])}
    missing = [n for n in class_names if n not in by_name]
    if missing:
        raise UserError(
            f"{json_file}: the model's classes {missing} are not among its categories "
            f"{sorted(by_name)}; give the COCO JSON of the data set the model was trained on"
        )
    return image_ids, [by_name[n] for n in class_names]


def _image_id(image_ids: Dict[str, int], path: str, json_file: Optional[str]) -> int:
    for key in (path, os.path.basename(path)):
        if key in image_ids:
            return image_ids[key]
    raise UserError(
        f"{json_file}: no image named {os.path.basename(path)!r} (from {path}); predict the "
        "images of that JSON's split, or leave out --coco-images to number the images in order"
    )


def records_to_coco(
    records: Sequence[Dict], image_id: int, category_ids: Sequence[int]
) -> List[Dict]:
    """
    One image's records (from :func:`instances_to_records`) as COCO results entries.

    Args:
        records: the image's predictions.
        image_id: the image's id in the COCO JSON.
        category_ids: data-set category id of each contiguous class id.

    Returns:
        list of ``{"image_id", "category_id", "bbox" (XYWH), "score", "segmentation"}``.
    """
    results = []
    for rec in records:
        x0, y0, x1, y1 = rec["bbox_xyxy"]
        entry = {
            "image_id": image_id,
            "category_id": category_ids[rec["category_id"]],
            "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
            "score": rec["score"],
        }
        if "segmentation" in rec:
            entry["segmentation"] = rec["segmentation"]
        results.append(entry)
    return results


def _predict_video(predictor: TrashPolePredictor, path: str, output_dir: str) -> int:
    import cv2
    from tqdm import tqdm

    stem = os.path.splitext(os.path.basename(path))[0]
    total = int(cv2.VideoCapture(path).get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer = None
    frames = []
    for index, frame, fps in tqdm(iter_video_frames(path), total=total, desc=stem, unit="frame"):
        instances = predictor(frame)["instances"].to("cpu")
        frames.append(
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
    _write_json({"file_name": path, "frames": frames}, f"{output_dir}/{stem}_pred.json")
    return len(frames)


def _write_json(obj, path: str) -> None:
    write_json(obj, path, indent=None)
