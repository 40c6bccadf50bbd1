"""Inference from a trained run: detectron2's DefaultPredictor with the run's class names."""

import glob
import logging
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata
from detectron2.engine import DefaultPredictor
from detectron2.utils.visualizer import ColorMode, Visualizer

from trashpole.config import load_config

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
        raise FileNotFoundError(f"{config} does not exist: give a run folder or its config.yaml")
    if weights is None:
        candidates = [os.path.join(folder, n) for n in ("model_final.pth", "model_best.pth")]
        weights = next((c for c in candidates if os.path.isfile(c)), None)
        if weights is None:
            raise FileNotFoundError(
                f"no model_final.pth or model_best.pth in {folder!r}: pass the weights explicitly"
            )
    return config, weights


class TrashPolePredictor(DefaultPredictor):
    """
    detectron2's ``DefaultPredictor`` whose ``metadata`` carries the class names of the run
    (``TRASHPOLE.CLASS_NAMES`` in its config.yaml), so that nothing needs to be registered at
    inference time, plus :meth:`predict_batch` for many images.
    """

    def __init__(self, cfg: CfgNode):
        super().__init__(cfg)
        names = list(cfg.TRASHPOLE.CLASS_NAMES) or [
            f"class_{i}" for i in range(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
        ]
        self.metadata = Metadata(name="trashpole_predictor", thing_classes=names)

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
                inputs = [self._prepare(img) for img in images[start : start + batch_size]]
                outputs.extend(self.model(inputs))
        return outputs

    def _prepare(self, original_image: np.ndarray) -> Dict:
        if self.input_format == "RGB":
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        image = self.aug.get_transform(original_image).apply_image(original_image)
        image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
        return {"image": image, "height": height, "width": width}


def load_predictor(
    run_or_config: str,
    weights: Optional[str] = None,
    score_thresh: Optional[float] = None,
    device: str = "cpu",
    opts: Optional[Sequence[str]] = None,
) -> TrashPolePredictor:
    """
    Build a predictor from a trained run.

    Args:
        run_or_config: the run folder or its ``config.yaml``.
        weights: checkpoint file (default: the run's model_final.pth).
        score_thresh: keep detections scoring at least this (default: the config's
            ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``).
        device: "cpu" or "cuda".
        opts: more KEY VALUE config overrides.

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
        raise FileNotFoundError(
            f"no image ({', '.join(IMAGE_EXTENSIONS)}) or video ({', '.join(VIDEO_EXTENSIONS)}) "
            f"found at {spec!r}"
        )
    return images, videos


def iter_video_frames(path: str) -> Iterator[Tuple[int, np.ndarray, float]]:
    """Yield (index, BGR frame, fps) of a video file."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise IOError(f"cannot open video {path!r}")
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
    predictor: TrashPolePredictor, spec: str, output_dir: str, save_overlays: bool = True
) -> Dict[str, int]:
    """
    Run ``predictor`` on the images and videos of ``spec`` (file, folder or glob) and write into
    ``output_dir``: one overlay JPEG and one JSON per image, an overlaid copy of each video with a
    JSON of its per-frame detections, and ``predictions.json`` with all image results. Shows a
    progress bar with images per second.

    Returns:
        counts: images, videos, frames, detections.
    """
    import cv2
    from tqdm import tqdm

    images, videos = find_inputs(spec)
    os.makedirs(output_dir, exist_ok=True)
    names = predictor.class_names
    counts = {"images": 0, "videos": 0, "frames": 0, "detections": 0}
    everything = {}
    for path in tqdm(images, desc="images", unit="img", dynamic_ncols=True):
        image = cv2.imread(path)
        if image is None:
            logger.warning(f"{path}: not a readable image, skipped")
            continue
        instances = predictor(image)["instances"].to("cpu")
        stem = os.path.splitext(os.path.basename(path))[0]
        records = instances_to_records(instances, names)
        everything[path] = records
        _write_json({"file_name": path, "predictions": records}, f"{output_dir}/{stem}.json")
        if save_overlays:
            cv2.imwrite(
                f"{output_dir}/{stem}.jpg", draw_predictions(image, instances, predictor.metadata)
            )
        counts["images"] += 1
        counts["detections"] += len(records)
    if images:
        _write_json({"classes": names, "images": everything}, f"{output_dir}/predictions.json")
    for path in videos:
        counts["frames"] += _predict_video(predictor, path, output_dir)
        counts["videos"] += 1
    return counts


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
    import json

    with open(path, "w") as f:
        json.dump(obj, f)
