"""The cost of sliced inference (docs/slicing.md): images per second of one high-resolution photo
predicted whole and sliced, against the time of one slice alone.

The model is the CPU recipe's R18-FPN (test size 384 px) with random weights (ImageNet
normalization), on the default backend (OpenVINO on a CPU), keeping its 20 best detections of
each pass at any score (``DETECTIONS`` a pass: work for the merge, as a trained model's
detections would be), on one synthetic street scene with far objects
(:func:`synthetic.render.render_scene`, ``far_objects=True``). Rows, timed in
turn round after round, each after one untimed call:

- ``whole image``: slicing off, the photo resized to the test size (one pass);
- ``one slice``: slicing off on one slice-sized crop (384 x 384 px: runs at scale 1);
- ``sliced, batch B``: slicing on (``SLICE.SIZE`` = the test size, overlap 0.2, plus the whole
  image), ``B`` slices per call of the backend.

The cost bound of issue 24: a sliced photo costs no more than its passes done one by one,
``slices x one slice + whole image`` (``bound_s``); ``cost_vs_bound`` is the sliced time over
that bound (1 or less: batching and merging cost nothing extra), ``cost_vs_slices`` the sliced
time over ``slices x one slice`` alone. After the timed rounds, each sliced row runs ``rounds``
more calls with :class:`trashpole.predict.stages.Laps` to say where its time goes
(``steps_s``, mean seconds a call: the passes, cutting their masks into pieces, the merge, the
result's full-size masks).
"""

import logging
import os
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.modeling import build_model

from benchmarks.measure import CPU_CONFIG, imagenet_norm_opts, measuring, use_threads, write_result
from synthetic import CLASS_NAMES
from trashpole.config import load_config
from trashpole.predict import load_predictor
from trashpole.predict.slicing import slice_grid, slice_opts
from trashpole.predict.stages import Laps

logger = logging.getLogger(__name__)

# detections kept by each pass (TEST.DETECTIONS_PER_IMAGE; the score threshold is 0)
DETECTIONS = 20
NAME = "slicing"
# arguments of run() for a smoke test (tools/benchmark.py slicing --quick)
QUICK = {"width": 512, "height": 384, "rounds": 1, "batches": (4,)}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "repeats": "rounds"}


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A synthetic street photo of ``width`` x ``height`` with far, small objects (BGR)."""
    from synthetic.render import render_scene

    image, _ = render_scene(np.random.default_rng(seed), width, far_objects=True, height=height)
    return image


def _write_run(folder: str) -> str:
    """A run folder of the CPU recipe with random weights (seed 0)."""
    opts = imagenet_norm_opts() + ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"]
    cfg = load_config(CPU_CONFIG, opts)
    cfg.TRASHPOLE.CLASS_NAMES = list(CLASS_NAMES)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict()}, os.path.join(folder, "model_final.pth"))
    return folder


def _contenders(image: np.ndarray, size: int, batches) -> Dict[str, tuple]:
    """name -> (config overrides, image) of each row."""
    off = slice_opts("off") + ["TEST.DETECTIONS_PER_IMAGE", str(DETECTIONS)]
    rows = {"whole image": (off, image), "one slice": (off, image[:size, :size].copy())}
    for batch in batches:
        opts = off + slice_opts("on", 0.2) + ["TRASHPOLE.INFERENCE.SLICE.BATCH", str(batch)]
        rows[f"sliced, batch {batch}"] = (opts, image)
    return rows


def _time_rows(predictors, contenders, rounds: int) -> Tuple[Dict[str, List[float]], Dict]:
    """Seconds of each row's prediction, ``rounds`` times in turn, after one untimed call; and
    the detections of that call."""
    detections = {
        name: len(predictors[name](image)["instances"]) for name, (_, image) in contenders.items()
    }
    seconds: Dict[str, List[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (_, image) in contenders.items():
            start = time.perf_counter()
            predictors[name](image)
            seconds[name].append(time.perf_counter() - start)
    return seconds, detections


def _steps(predictor, image: np.ndarray, rounds: int) -> Dict[str, float]:
    """Mean seconds of each step of a sliced prediction over ``rounds`` calls
    (:func:`trashpole.predict.slicing.predict_sliced`'s laps)."""
    laps = Laps()
    predictor.model.laps = laps
    try:
        for _ in range(rounds):
            predictor(image)
    finally:
        predictor.model.laps = None
    return {step: seconds / rounds for step, seconds in laps.seconds.items()}


def summarize(
    seconds: Dict[str, List[float]],
    detections: Dict[str, int],
    labels: Dict[str, str],
    slices: int,
) -> Dict[str, Dict[str, Any]]:
    """
    The rows of the result from their timings.

    Args:
        seconds: row -> seconds of each round; rows ``whole image``, ``one slice`` and the
            sliced ones (names starting with ``sliced``).
        detections: row -> detections of its image.
        labels: row -> what ran (the predictor's backend).
        slices: slices of the sliced photo.

    Returns:
        row -> ``label``, ``seconds``, ``median_s``, ``images_per_s``, ``detections``; the sliced
        rows also ``bound_s`` (``slices x one slice + whole image``, medians), ``cost_vs_bound``
        and ``cost_vs_slices`` (median over ``slices x one slice``).
    """
    rows: Dict[str, Dict[str, Any]] = {}
    for name, times in seconds.items():
        median = statistics.median(times)
        rows[name] = {"label": labels[name], "seconds": list(times), "median_s": median}
        rows[name].update(images_per_s=1.0 / median, detections=detections[name])
    one, whole = rows["one slice"]["median_s"], rows["whole image"]["median_s"]
    for name, row in rows.items():
        if name.startswith("sliced"):
            row["bound_s"] = slices * one + whole
            row["cost_vs_bound"] = row["median_s"] / row["bound_s"]
            row["cost_vs_slices"] = row["median_s"] / (slices * one)
    return rows


def run(
    out_dir: Optional[str] = None,
    width: int = 1600,
    height: int = 1200,
    rounds: int = 3,
    batches=(1, 4),
    threads: int = 0,
) -> Dict[str, Any]:
    """
    Time the rows on one ``width`` x ``height`` scene and write ``slicing_benchmark.json``.

    Returns:
        ``width``, ``height``, ``slice_size``, ``slices``, ``rounds``, ``threads``, load
        averages, ``machine``, ``rows`` (name -> ``label`` (what ran), ``seconds`` (each round),
        ``median_s``, ``images_per_s``, ``detections``) and, per sliced row, ``bound_s``,
        ``cost_vs_bound``, ``cost_vs_slices`` and ``steps_s`` (step -> mean seconds a call).
    """
    use_threads(threads)
    image = scene(width, height)
    settings = dict(width=width, height=height, rounds=rounds)
    with measuring(NAME, **settings) as result, tempfile.TemporaryDirectory() as tmp:
        run_dir = _write_run(os.path.join(tmp, "run"))
        size = int(load_config(os.path.join(run_dir, "config.yaml")).INPUT.MIN_SIZE_TEST)
        contenders = _contenders(image, size, batches)
        predictors = {
            name: load_predictor(run_dir, score_thresh=0.0, opts=opts)
            for name, (opts, _) in contenders.items()
        }
        seconds, detections = _time_rows(predictors, contenders, rounds)
        steps = {
            name: _steps(predictors[name], image, rounds)
            for name in contenders
            if name.startswith("sliced")
        }
    slices = len(slice_grid(height, width, size, 0.2))
    result.update(slice_size=size, slices=slices)
    labels = {name: predictor.backend for name, predictor in predictors.items()}
    rows = summarize(seconds, detections, labels, slices)
    for name, row_steps in steps.items():
        rows[name]["steps_s"] = row_steps
    result["rows"] = rows
    if out_dir:
        write_result(result, out_dir, "slicing_benchmark.json")
    return result


def format_table(result: Dict[str, Any]) -> str:
    """The rows as a fixed-width table: row, what ran, s/image, images/s, cost vs the bound."""
    header = (
        f"{'row':<16} {'s/image':>8} {'images/s':>9} {'vs bound':>9} {'vs slices':>10}  what ran"
    )
    lines = [header, "-" * len(header)]
    for name, row in result["rows"].items():
        bound = f"{row['cost_vs_bound']:.2f}" if "cost_vs_bound" in row else "-"
        vs_slices = f"{row['cost_vs_slices']:.2f}" if "cost_vs_slices" in row else "-"
        lines.append(
            f"{name:<16} {row['median_s']:>8.3f} {row['images_per_s']:>9.2f} {bound:>9} "
            f"{vs_slices:>10}  {row['label']}"
        )
    for name, row in result["rows"].items():
        if row.get("steps_s"):
            steps = ", ".join(f"{step} {1000 * s:.0f} ms" for step, s in row["steps_s"].items())
            lines.append(f"{name}, a call: {steps}")
    lines.append(
        f"a {result['width']}x{result['height']} photo: {result['slices']} slices of "
        f"{result['slice_size']} px + the whole image; {result['rounds']} rounds, threads "
        f"{result['threads']}; load {result['load_before']} -> {result['load_after']}"
    )
    return "\n".join(lines)
