"""
Counting on synthetic clips (issue 22): how far a trained run's counts of distinct objects are
from the truth, with the tracker's settings from the config and with the settings that count best
on *other* clips.

The clips are :func:`benchmarks.synthetic_video.pan_zoom_video` (a scene panned across and zoomed
into, every object's identity known). Seed 0 is the scored clip, the default of
``tools/synthetic_video.py``; seeds 1 to ``clips`` are the tuning clips. Each run predicts every
frame once, at the lowest detection score of :data:`GRID`; the tracker then runs on those
predictions with every setting of the grid. The chosen setting is the one with the least sum of
``|counted - true|`` per class over every run's tuning clips (ties: the least worst clip, then
the first in grid order, which starts from the tracker's settings before counting scores). The
scored clip never takes part in the choice. The truth is the objects visible in at least 2
frames, whatever the setting, so that a setting cannot shrink the truth it is scored against.

    tools/benchmark.py counting --run output/demo --output docs/benchmarks/counting
"""

import itertools
import logging
from typing import Any, Dict, List, Sequence, Tuple

from benchmarks.measure import measuring, write_result
from benchmarks.synthetic_video import pan_zoom_video, score_tracking
from synthetic import CLASS_NAMES
from trashpole.predict.predictor import load_predictor
from trashpole.predict.track import track_predictions
from trashpole.run import open_run

logger = logging.getLogger(__name__)

NAME = "counting"
# arguments of run() for a smoke test (tools/benchmark.py counting --quick)
QUICK = {"clips": 1, "frames": 6, "size": 96}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"run": "run_dirs", "size": "size"}
# frames a true object must be visible in to be expected
TRUE_MIN_FRAMES = 2
# tools/predict.py's default --score: the detections --track sees
PREDICT_SCORE = 0.5
# the settings tried: detection score (the tracker sees detections from it up), count score
# (TRASHPOLE.TRACK.COUNT_SCORE), MIN_FRAMES, MAX_LOST_FRAMES; IOU_THRESH and CONTAIN_THRESH stay
GRID = {
    "detection_score": (0.5, 0.6, 0.7),
    "count_score": (0.0, 0.5, 0.7, 0.8, 0.9),
    "min_frames": (2, 3, 4, 6),
    "max_lost_frames": (3, 5, 8),
}

Clip = Tuple[Any, List]  # (SyntheticVideo, per frame Instances without masks)


def settings_grid() -> List[Dict[str, float]]:
    """Every combination of :data:`GRID` whose count score is 0 (off) or at least its detection
    score, in grid order: the first is the tracker before counting scores (count score 0, 2
    frames, 3 lost frames, detections from 0.5)."""
    combos = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    return [c for c in combos if not c["count_score"] or c["count_score"] >= c["detection_score"]]


def config_setting(cfg) -> Dict[str, float]:
    """The tracker settings a run's config gives ``tools/predict.py --track``, with that tool's
    default detection score (``--score``; the config's own threshold serves evaluation)."""
    track = cfg.TRASHPOLE.TRACK
    return {
        "detection_score": PREDICT_SCORE,
        "count_score": float(track.COUNT_SCORE),
        "min_frames": int(track.MIN_FRAMES),
        "max_lost_frames": int(track.MAX_LOST_FRAMES),
    }


def predict_clips(run_dir: str, seeds: Sequence[int], frames: int, size: int) -> Dict[int, Clip]:
    """Each clip's frames predicted once by the run, at the grid's lowest detection score."""
    predictor = load_predictor(run_dir, score_thresh=min(GRID["detection_score"]))
    clips = {}
    for seed in seeds:
        video = pan_zoom_video(seed, frames, size)
        outputs = []
        for frame in video.frames:
            instances = predictor(frame)["instances"].to("cpu")
            instances.remove("pred_masks")
            outputs.append(instances)
        clips[seed] = (video, outputs)
    return clips


def score_clip(clip: Clip, setting: Dict[str, float], run_cfg) -> Dict[str, Any]:
    """The tracker with ``setting`` on one predicted clip, scored against its truth."""
    video, outputs = clip
    kept = [o[o.scores >= setting["detection_score"]] for o in outputs]
    result = track_predictions(
        kept,
        CLASS_NAMES,
        iou_thresh=run_cfg.IOU_THRESH,
        max_lost_frames=int(setting["max_lost_frames"]),
        min_frames=int(setting["min_frames"]),
        contain_thresh=run_cfg.CONTAIN_THRESH,
        count_score=setting["count_score"],
    )
    boxes = [k.pred_boxes.tensor for k in kept]
    classes = [k.pred_classes.tolist() for k in kept]
    return score_tracking(video, boxes, classes, result.ids, result.counts, TRUE_MIN_FRAMES)


def total_error(scores: Sequence[Dict]) -> Tuple[int, int]:
    """(sum of |count error| over clips and classes, the worst clip's sum)."""
    per_clip = [sum(abs(v) for v in s["count_errors"].values()) for s in scores]
    return sum(per_clip), max(per_clip, default=0)


def choose_setting(
    predicted: Dict[str, Dict[int, Clip]], track_cfg: Dict[str, Any], tuning: Sequence[int]
) -> Tuple[Tuple[int, int], Dict[str, float]]:
    """
    The grid setting that counts best on the tuning clips of every run.

    Args:
        predicted: run -> seed -> its predicted clip (:func:`predict_clips`).
        track_cfg: run -> its ``TRASHPOLE.TRACK`` (IOU_THRESH and CONTAIN_THRESH are kept).
        tuning: the seeds to choose on.

    Returns:
        ((summed |count error|, worst clip's), the setting): the least error, then the least
        worst clip, then the first in grid order.
    """
    ranked = []
    for setting in settings_grid():
        scores = [
            score_clip(clips[seed], setting, track_cfg[r])
            for r, clips in predicted.items()
            for seed in tuning
        ]
        ranked.append((total_error(scores), setting))
    return min(ranked, key=lambda item: item[0])


def run(
    out_dir: str,
    run_dirs: Sequence[str] = ("output/demo",),
    clips: int = 8,
    frames: int = 40,
    size: int = 320,
) -> Dict[str, Any]:
    """
    Score the runs' counts on the scored clip with the config's settings, with them but no count
    score, and with the setting chosen on the tuning clips; write ``counting_benchmark.json``.

    Returns:
        the header of :func:`benchmarks.measure.measuring`, ``grid``, ``chosen`` (the setting,
        its tuning error and worst clip), and per run ``config``, ``no count score`` and
        ``chosen``: the setting, the scored clip's score (:func:`score_tracking`) and the tuning
        clips' count errors.
    """
    tuning = list(range(1, clips + 1))
    with measuring(NAME, clips=clips, frames=frames, size=size) as result:
        predicted = {r: predict_clips(r, [0] + tuning, frames, size) for r in run_dirs}
        cfgs = {r: open_run(r).cfg for r in run_dirs}
        track_cfg = {r: cfg.TRASHPOLE.TRACK for r, cfg in cfgs.items()}
        (error, worst), chosen = choose_setting(predicted, track_cfg, tuning)
    result["grid"] = {k: list(v) for k, v in GRID.items()}
    result["chosen"] = {"setting": chosen, "tuning_error": error, "worst_tuning_clip": worst}
    result["runs"] = {}
    for r in run_dirs:
        config = config_setting(cfgs[r])
        rows = (("config", config), ("no count score", {**config, "count_score": 0.0}))
        result["runs"][r] = {
            name: {
                "setting": setting,
                "scored_clip": score_clip(predicted[r][0], setting, track_cfg[r]),
                "tuning_count_errors": {
                    seed: score_clip(predicted[r][seed], setting, track_cfg[r])["count_errors"]
                    for seed in tuning
                },
            }
            for name, setting in rows + (("chosen", chosen),)
        }
    write_result(result, out_dir, "counting_benchmark.json")
    return result


def format_table(result: Dict[str, Any]) -> str:
    """Per run and setting: the scored clip's true and counted objects, ID switches, and the
    tuning clips' summed count error."""
    lines = [f"{'run / setting':<40} {'true':>22} {'counted':>22} {'switches':>9} {'tuning':>7}"]
    for run_dir, rows in result["runs"].items():
        for name, row in rows.items():
            scored = row["scored_clip"]
            tuning = sum(abs(v) for e in row["tuning_count_errors"].values() for v in e.values())
            lines.append(
                f"{(run_dir + ' ' + name)[-40:]:<40} {str(scored['true_objects']):>22} "
                f"{str(scored['counted_objects']):>22} {scored['id_switches']:>9} {tuning:>7}"
            )
    lines.append(f"chosen on clips 1-{result['clips']}: {result['chosen']['setting']}")
    return "\n".join(lines)
