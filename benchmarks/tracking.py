"""
What tracking costs per frame against prediction alone (target: under 5%).

The frames are a synthetic pan-and-zoom video (:func:`benchmarks.synthetic_video.pan_zoom_video`).
Each frame is predicted by the CPU recipe (R18-FPN, 384 px, random weights, ImageNet
normalization, score threshold 0 so that ``detections`` boxes reach the tracker: more than a
trained model finds, the tracker's worst case), then the same detections go through
:meth:`trashpole.predict.InstanceTracker.update`; a second tracker gets the frame's true boxes
(the handful a trained model finds). The three timings alternate frame by frame, so that a
change of load on the machine hits them alike; medians over the frames after a warm-up.
"""

import logging
import statistics
import time
from typing import Any, Dict, List, Tuple

import numpy as np
from detectron2.structures import Instances

from benchmarks.inference import Contender, build_trashpole
from benchmarks.measure import CPU_CONFIG, measuring, use_threads, write_result
from benchmarks.synthetic_video import pan_zoom_video, truth_as_predictions
from synthetic import CLASS_NAMES
from trashpole.predict import InstanceTracker

logger = logging.getLogger(__name__)

NAME = "tracking"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"size": 64, "frames": 3, "warmup": 1, "detections": 5}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "size": "size", "repeats": "frames"}

ROWS = {
    "predict": "TrashPolePredictor(frame): CPU recipe R18-FPN on {backend}, {input} px input, "
    "random weights, score 0: {found:.1f} detections a frame on average (at most {detections})",
    "track model boxes": "InstanceTracker.update(the frame's predicted boxes ({found:.1f}), "
    "classes, scores): detectron2 Hungarian tracker + track records",
    "track true boxes": "InstanceTracker.update(the frame's true boxes, {true_per_frame:.1f} "
    "on average)",
}


def run(
    out_dir: str,
    threads: int = 0,
    size: int = 384,
    frames: int = 30,
    warmup: int = 3,
    detections: int = 100,
    seed: int = 0,
) -> Dict[str, Any]:
    """
    Time prediction and tracking frame by frame.

    Args:
        out_dir: folder for ``tracking_benchmark.json``.
        threads: torch threads (0: torch's default).
        size: side of the video's frames (px); the model sees them at 384 px at most.
        frames: timed frames (after ``warmup`` untimed ones).
        warmup: untimed frames first.
        detections: ``TEST.DETECTIONS_PER_IMAGE`` (all of them reach the tracker at score 0).
        seed: the synthetic scene.

    Returns:
        ``rows`` (label -> ``what`` was timed, ``median_ms``, ``mean_ms``), ``overhead_pct``
        (median of each tracking row over the median of ``predict``, in %), frames, detections
        and the header of :func:`benchmarks.measure.measuring` (threads, load before and after,
        machine).
    """
    use_threads(threads)
    video = pan_zoom_video(seed, warmup + frames, size)
    truth = truth_as_predictions(video)
    contender = Contender("trashpole CPU R18", "trashpole", CPU_CONFIG)
    # the model sees the frames at 384 px at most (the CPU recipe's test size)
    predictor = build_trashpole(contender, min(384, size), proposals=100, detections=detections)
    with measuring(NAME) as result:
        times, found = _time_frames(predictor, video.frames, truth, warmup)
    true_per_frame = statistics.mean(len(t) for t in truth[warmup:])
    words = {"input": min(384, size), "detections": detections, "found": statistics.mean(found)}
    words["backend"] = predictor.backend  # what ran, as built
    words["true_per_frame"] = true_per_frame
    rows = {
        name: {
            "what": ROWS[name].format(**words),
            "median_ms": 1000 * statistics.median(seconds),
            "mean_ms": 1000 * statistics.mean(seconds),
        }
        for name, seconds in times.items()
    }
    predict_ms = rows["predict"]["median_ms"]
    result["rows"] = rows
    result["overhead_pct"] = {
        name: 100 * rows[name]["median_ms"] / predict_ms for name in list(rows)[1:]
    }
    result.update(frames=frames, frame_size=size, detections_per_frame=statistics.mean(found))
    result.update(true_boxes_per_frame=true_per_frame, classes=CLASS_NAMES)
    write_result(result, out_dir, "tracking_benchmark.json")
    return result


def _time_frames(
    predictor, frames: List[np.ndarray], truth: List[Instances], warmup: int
) -> Tuple[Dict[str, List[float]], List[int]]:
    """Predict each frame, then track its predicted boxes and its true boxes (two trackers);
    returns the seconds of each row of :data:`ROWS` per frame and the detections per frame,
    after the ``warmup`` first frames."""
    model_tracker, true_tracker = InstanceTracker(), InstanceTracker()
    times: Dict[str, List[float]] = {name: [] for name in ROWS}
    found = []
    for k, (frame, true_boxes) in enumerate(zip(frames, truth)):
        start = time.perf_counter()
        instances = predictor(frame)["instances"]
        predicted = time.perf_counter()
        model_tracker.update(instances, k)
        tracked = time.perf_counter()
        true_tracker.update(true_boxes, k)
        done = time.perf_counter()
        if k >= warmup:
            times["predict"].append(predicted - start)
            times["track model boxes"].append(tracked - predicted)
            times["track true boxes"].append(done - tracked)
            found.append(len(instances))
    return times, found


def format_table(result: Dict[str, Any]) -> str:
    """The rows of :func:`run` as a text table with the overhead of each tracking row."""
    lines = [f"{'row':<18} {'ms/frame':>9} {'% of predict':>13}  what was timed"]
    for name, row in result["rows"].items():
        pct = result["overhead_pct"].get(name)
        pct = f"{pct:>13.2f}" if pct is not None else f"{'':>13}"
        lines.append(f"{name:<18} {row['median_ms']:>9.2f} {pct}  {row['what']}")
    lines.append(
        f"{result['frames']} frames of {result['frame_size']} px; threads {result['threads']}; "
        f"load {result['load_before']} -> {result['load_after']}"
    )
    return "\n".join(lines)
