"""
A video with known identities: one synthetic street or campus scene
(:func:`synthetic.render_scene`) filmed by a camera that pans across it and
zooms in, so that every pole and trash can is the same object from frame to frame and its
visible mask and box are known in each frame. Also: scoring a tracker's output against it.

A measuring tool, kept in the checkout's ``benchmarks/`` (not installed with trashpole); the
tests and the tracking benchmark film their clips with it. ``tools/synthetic_video.py`` renders a
clip (frames as PNG, an MP4 and the truth), then tracks it with a trained run and scores the
tracking; ``--picture`` saves one tracked frame::

    tools/synthetic_video.py --out output/track_demo --run output/demo \\
        --picture docs/images/tracked_frame.png

With ``--oracle`` instead of ``--run`` the true boxes are tracked (the tracker alone).
"""

import argparse
import json
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.structures import Boxes, Instances

from synthetic import CLASS_NAMES, render_scene
from trashpole.images import read_bgr
from trashpole.jsonio import dumps
from trashpole.predict.track import track_predictions
from trashpole.predict.truth import count_id_switches, match_to_truth
from trashpole.visualization.overlays import draw_tracked

logger = logging.getLogger(__name__)


@dataclass
class SyntheticVideo:
    """
    Frames of a panned and zoomed scene and what is in each.

    Attributes:
        frames: uint8 arrays [size, size, 3], BGR.
        truth: per frame, one dict per visible object: ``object`` (its id, fixed for the
            video), ``class_id`` (0 pole, 1 trash can), ``box`` [x0, y0, x1, y1] (pixels, the
            visible mask's extent) and ``mask`` (ndarray[size, size] of bool).
    """

    frames: List[np.ndarray]
    truth: List[List[Dict]]

    def frames_seen(self) -> Dict[int, int]:
        """Frames each object is visible in."""
        seen: Dict[int, int] = {}
        for frame in self.truth:
            for obj in frame:
                seen[obj["object"]] = seen.get(obj["object"], 0) + 1
        return seen

    def object_classes(self) -> Dict[int, int]:
        """Class id of each object seen."""
        return {o["object"]: o["class_id"] for frame in self.truth for o in frame}

    def true_counts(self, min_frames: int = 1) -> Dict[str, int]:
        """Objects per class name visible in at least ``min_frames`` frames."""
        classes, seen = self.object_classes(), self.frames_seen()
        counts = {name: 0 for name in CLASS_NAMES}
        for obj, n in seen.items():
            counts[CLASS_NAMES[classes[obj]]] += int(n >= min_frames)
        return counts


def camera_path(
    scene_size: int, num_frames: int, start_view: float, zoom: float, pan: float
) -> List[Tuple[float, float, float]]:
    """
    The square window of the scene each frame shows: its side shrinks linearly from
    ``start_view * scene_size`` to ``1/zoom`` of that while its left edge moves right by ``pan *
    scene_size``; vertically it keeps 60% of the spare room above it (the ground, where the
    objects stand, fills the lower part of a scene).

    Returns:
        (x0, y0, side) of each frame's window, in scene pixels.
    """
    side0 = start_view * scene_size
    side1 = side0 / zoom
    if not (0 < start_view <= 1 and zoom >= 1 and 0 <= pan <= 1 - side1 / scene_size + 1e-9):
        raise ValueError(
            f"camera path leaves the scene: start_view {start_view} must be in (0, 1], zoom "
            f"{zoom} >= 1 and pan {pan} at most {1 - side1 / scene_size:.3f}"
        )
    path = []
    for k in range(num_frames):
        t = k / max(num_frames - 1, 1)
        side = side0 + (side1 - side0) * t
        path.append((pan * scene_size * t, 0.6 * (scene_size - side), side))
    return path


def pan_zoom_video(
    seed: int = 0,
    num_frames: int = 40,
    size: int = 256,
    scene_scale: float = 2.0,
    start_view: float = 0.8,
    zoom: float = 1.5,
    pan: float = 0.3,
    min_area: Optional[int] = None,
) -> SyntheticVideo:
    """
    Render one scene at ``scene_scale * size`` pixels and film it along :func:`camera_path`.

    Args:
        seed: the scene (``numpy.random.default_rng(seed)``; never an empty one).
        num_frames: frames of the video.
        size: side of a frame, pixels.
        scene_scale: scene side over frame side.
        start_view: share of the scene's width the first frame shows.
        zoom: magnification of the last frame over the first (1: none).
        pan: share of the scene's width the window travels right (0: none). With ``pan=0,
            zoom=1`` every frame is the same.
        min_area: pixels an object must show in a frame to be visible there (default: the
            synthetic data set's rule, 60 px at 640x640 scaled with the area).

    Returns:
        a :class:`SyntheticVideo`.
    """
    scene_size = int(round(size * scene_scale))
    scene, instances = render_scene(np.random.default_rng(seed), size=scene_size, empty_prob=0.0)
    min_area = max(12, round(60 * (size / 640) ** 2)) if min_area is None else min_area
    video = SyntheticVideo([], [])
    for x0, y0, side in camera_path(scene_size, num_frames, start_view, zoom, pan):
        k = size / side
        warp = np.array([[k, 0, -k * x0], [0, k, -k * y0]], dtype=np.float64)
        frame = cv2.warpAffine(scene, warp, (size, size), flags=cv2.INTER_LINEAR)
        video.frames.append(frame)
        objects = []
        for index, inst in enumerate(instances):
            mask = cv2.warpAffine(inst["mask"].astype(np.uint8) * 255, warp, (size, size)) >= 128
            if int(mask.sum()) < min_area:
                continue
            ys, xs = np.nonzero(mask)
            box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            objects.append(
                {"object": index, "class_id": inst["category_id"] - 1, "box": box, "mask": mask}
            )
        video.truth.append(objects)
    return video


def score_tracking(
    video: SyntheticVideo,
    boxes: Sequence[torch.Tensor],
    classes: Sequence[Sequence[int]],
    ids: Sequence[Sequence[int]],
    counted: Dict[str, int],
    min_frames: int,
    iou_thresh: float = 0.5,
) -> Dict:
    """
    Compare tracks with the truth: detections are matched to true objects frame by frame
    (:func:`trashpole.predict.truth.match_to_truth`, same class, box IoU >= ``iou_thresh``).

    Args:
        video: the truth.
        boxes: per frame, Tensor[N, 4] of XYXY detection boxes.
        classes: per frame, the N class ids.
        ids: per frame, the N track IDs.
        counted: the tracker's counts per class name (its own counting rule:
            :func:`trashpole.predict.track.is_counted`).
        min_frames: frames a true object must be visible in to be expected.
        iou_thresh: least box IoU of a match.

    Returns:
        ``true_objects`` and ``counted_objects`` (per class), ``count_errors`` (counted minus
        true, per class), ``id_switches``, ``fragmented_objects`` (true objects that got more
        than one track ID), ``matched`` and ``true_detections`` (object-frames found, and in
        all).
    """
    matches = []
    matched = 0
    for frame_boxes, frame_classes, frame_ids, truth in zip(boxes, classes, ids, video.truth):
        true_boxes = torch.tensor([o["box"] for o in truth], dtype=torch.float32).reshape(-1, 4)
        pairs = match_to_truth(
            frame_boxes, frame_classes, true_boxes, [o["class_id"] for o in truth], iou_thresh
        )
        matches.append({truth[t]["object"]: int(frame_ids[d]) for d, t in pairs})
        matched += len(pairs)
    switches, ids_by_object = count_id_switches(matches)
    true = video.true_counts(min_frames)
    counted = {name: int(counted.get(name, 0)) for name in CLASS_NAMES}
    return {
        "true_objects": true,
        "counted_objects": counted,
        "count_errors": {name: counted[name] - true[name] for name in CLASS_NAMES},
        "id_switches": switches,
        "fragmented_objects": sum(len(v) > 1 for v in ids_by_object.values()),
        "matched": matched,
        "true_detections": sum(len(frame) for frame in video.truth),
    }


def truth_as_predictions(video: SyntheticVideo) -> List:
    """The true objects of each frame as detectron2 ``Instances`` (boxes, classes, masks as
    Tensor[N, H, W] of bool, score 1), in truth order."""

    frames = []
    for frame, truth in zip(video.frames, video.truth):
        boxes = torch.tensor([o["box"] for o in truth], dtype=torch.float32).reshape(-1, 4)
        inst = Instances(frame.shape[:2], pred_boxes=Boxes(boxes))
        inst.scores = torch.ones(len(truth))
        inst.pred_classes = torch.tensor([o["class_id"] for o in truth], dtype=torch.int64)
        masks = [torch.from_numpy(o["mask"]) for o in truth]
        inst.pred_masks = torch.stack(masks) if masks else torch.zeros(0, *frame.shape[:2]).bool()
        frames.append(inst)
    return frames


def write_video(video: SyntheticVideo, out_dir: str, fps: float = 10.0) -> Tuple[str, str]:
    """
    Write the frames as ``frames/frame_0000.png``... (lossless), as ``clip.mp4``, and the truth
    (objects, classes and boxes per frame) as ``truth.json``.

    Returns:
        (frame folder, mp4 path).
    """
    folder = os.path.join(out_dir, "frames")
    os.makedirs(folder, exist_ok=True)
    for k, frame in enumerate(video.frames):
        cv2.imwrite(os.path.join(folder, f"frame_{k:04d}.png"), frame)
    clip = os.path.join(out_dir, "clip.mp4")
    h, w = video.frames[0].shape[:2]
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in video.frames:
        writer.write(frame)
    writer.release()
    truth = [[{k: o[k] for k in ("object", "class_id", "box")} for o in f] for f in video.truth]
    with open(os.path.join(out_dir, "truth.json"), "w") as f:
        f.write(dumps({"classes": CLASS_NAMES, "frames": truth}, indent=None))
    return folder, clip


def _tracked_run(args, frames_dir: str) -> Tuple[List, List, List, Dict[str, int], int]:
    """Track the frames with a trained run through tools/predict.py's path; (boxes, classes,
    ids) per frame from its ``frames_tracks.json``, and its counts and ``min_frames``. ``--picture`` redraws one
    tracked frame losslessly as PNG."""
    # the model path only for --run: the synthetic video itself needs no model code
    from trashpole.predict.predictor import load_predictor
    from trashpole.predict.sequence import track_paths

    predictor = load_predictor(args.run, args.weights, score_thresh=args.score)
    out = os.path.join(args.out, "tracked")
    summary = track_paths(predictor, frames_dir, out, min_frames=args.min_frames)
    with open(os.path.join(out, "frames_tracks.json")) as f:
        frames = json.load(f)["frames"]
    boxes = [_records_boxes(fr["predictions"]) for fr in frames]
    classes = [[r["category_id"] for r in fr["predictions"]] for fr in frames]
    ids = [[r["track_id"] for r in fr["predictions"]] for fr in frames]
    if args.picture:
        record = frames[args.picture_frame]
        image, _ = read_bgr(record["image"])
        _save_picture(_draw_records(image, record["predictions"], predictor.class_names), args)
    return boxes, classes, ids, summary["objects"], summary["min_frames"]


def _save_picture(picture: np.ndarray, args) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(args.picture)), exist_ok=True)
    cv2.imwrite(args.picture, picture)
    print(f"frame {args.picture_frame} with its tracks: {args.picture}")


def _records_boxes(records: Sequence[Dict]) -> torch.Tensor:
    return torch.tensor([r["bbox_xyxy"] for r in records], dtype=torch.float32).reshape(-1, 4)


def _draw_records(image: np.ndarray, records: Sequence[Dict], class_names) -> np.ndarray:
    """One frame's tracked records (RLE masks) drawn as ``tools/predict.py --track`` does."""

    inst = Instances(image.shape[:2], pred_boxes=Boxes(_records_boxes(records)))
    inst.scores = torch.tensor([r["score"] for r in records], dtype=torch.float32)
    inst.pred_classes = torch.tensor([r["category_id"] for r in records], dtype=torch.int64)
    rles = [dict(r["segmentation"], counts=r["segmentation"]["counts"].encode()) for r in records]
    masks = [mask_util.decode(rle).astype(bool) for rle in rles]
    inst.pred_masks = (
        torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, *image.shape[:2])
    )
    ids = torch.tensor([r["track_id"] for r in records], dtype=torch.int64)
    return draw_tracked(image, inst, ids, class_names)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="folder for frames/, clip.mp4, truth.json...")
    p.add_argument("--seed", type=int, default=0, help="the scene")
    p.add_argument("--frames", type=int, default=40, help="frames of the video")
    p.add_argument("--size", type=int, default=320, help="frame side, pixels")
    p.add_argument("--zoom", type=float, default=1.5, help="last frame's magnification")
    p.add_argument("--pan", type=float, default=0.3, help="share of the scene panned across")
    p.add_argument("--run", default=None, help="a trained run: track the frames with it")
    p.add_argument("--weights", default=None, help="checkpoint (default: the run's final one)")
    p.add_argument("--oracle", action="store_true", help="track the true boxes instead")
    p.add_argument("--score", type=float, default=0.5, help="least detection score (--run)")
    p.add_argument("--min-frames", type=int, default=2, help="frames a track needs to count")
    p.add_argument("--picture", default=None, help="save one tracked frame as this PNG")
    p.add_argument("--picture-frame", type=int, default=20, help="which frame --picture saves")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    video = pan_zoom_video(args.seed, args.frames, args.size, zoom=args.zoom, pan=args.pan)
    frames_dir, clip = write_video(video, args.out)
    print(f"{len(video.frames)} frames in {frames_dir} and {clip}; truth in truth.json")
    print(
        f"true objects (visible in >= {args.min_frames} frames): {video.true_counts(args.min_frames)}"
    )
    if args.oracle:
        preds = truth_as_predictions(video)
        result = track_predictions(preds, CLASS_NAMES, min_frames=args.min_frames)
        boxes = [p.pred_boxes.tensor for p in preds]
        classes = [p.pred_classes.tolist() for p in preds]
        ids, counted, min_frames = result.ids, result.counts, args.min_frames
        if args.picture:
            k = args.picture_frame
            ids_k = torch.tensor(ids[k], dtype=torch.int64)
            _save_picture(draw_tracked(video.frames[k], preds[k], ids_k, CLASS_NAMES), args)
    elif args.run:
        boxes, classes, ids, counted, min_frames = _tracked_run(args, frames_dir)
    else:
        return {}
    score = score_tracking(video, boxes, classes, ids, counted, min_frames)
    tracked = f"run {args.run} ({args.weights or 'final weights'}, score >= {args.score})"
    score["tracked"] = "true boxes (--oracle)" if args.oracle else tracked
    with open(os.path.join(args.out, "tracking_score.json"), "w") as f:
        f.write(dumps(score, indent=1))
    print(json.dumps(score, indent=1))
    return score


if __name__ == "__main__":
    main()
