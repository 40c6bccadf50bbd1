"""Images per second of ``tools/predict.py`` on a folder: reading, predicting, drawing and
writing each image (:func:`trashpole.predict.predict_paths`), on each backend and with and
without the pipeline (:mod:`trashpole.predict.pipeline`).

The model is the reference recipe's R50-FPN with random weights (ImageNet normalization, so that
it detects something) at the tool's default score threshold 0.5, on generated street photos
(640x640 JPEGs). Contenders run one after the other, round after round, on the same folder;
each predictor is built (and OpenVINO's model converted) before the timing. The first row is the
PyTorch backend with its default switches (bf16 autocast where the CPU has it, channels_last), one
image at a time, the reference of ``speedup_vs_first``."""

import logging
import os
import statistics
import tempfile
from typing import Any, Dict, List, Optional

import cv2
import torch
from detectron2.modeling import build_model

from benchmarks.measure import (
    R50_CONFIG,
    imagenet_norm_opts,
    measuring,
    street_image,
    use_threads,
    write_result,
)
from synthetic import CLASS_NAMES
from trashpole.config import load_config
from trashpole.predict import load_predictor, predict_paths
from trashpole.predict.pipeline import pipelined
from trashpole.run import backend_opts

logger = logging.getLogger(__name__)

NAME = "folder"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"num_images": 3, "size": 96, "rounds": 1}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "size": "size", "repeats": "rounds", "num_images": "num_images"}


def default_contenders() -> Dict[str, List[str]]:
    """name -> config overrides of each row."""
    workers = "TRASHPOLE.INFERENCE.WORKERS"
    return {
        "pytorch, one image at a time": backend_opts("pytorch"),
        "openvino, one image at a time": backend_opts("openvino") + [workers, "1"],
        "openvino, pipeline of 2 on the latency model": backend_opts("openvino")
        + [workers, "2", "TRASHPOLE.INFERENCE.STREAMS", "False"],
        "openvino, pipeline of 2": backend_opts("openvino") + [workers, "2"],
        "openvino int8, pipeline of 2": backend_opts("openvino", int8=True) + [workers, "2"],
    }


def _write_folder(folder: str, num_images: int, size: int) -> None:
    os.makedirs(folder, exist_ok=True)
    for seed in range(num_images):
        cv2.imwrite(os.path.join(folder, f"street_{seed:03d}.jpg"), street_image(size, seed))


def _write_run(folder: str, size: int) -> str:
    """A run folder of the reference R50-FPN with random weights, test size ``size``; its
    train split (for int8 calibration) is 8 other street images."""
    cfg = load_config(
        R50_CONFIG, imagenet_norm_opts() + ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"]
    )
    cfg.INPUT.MIN_SIZE_TEST = cfg.INPUT.MAX_SIZE_TEST = size
    cfg.TRASHPOLE.CLASS_NAMES = list(CLASS_NAMES)
    cfg.TRASHPOLE.DATASET_ROOT = os.path.join(folder, "export")
    train = os.path.join(cfg.TRASHPOLE.DATASET_ROOT, "train")
    os.makedirs(train, exist_ok=True)
    for seed in range(100, 108):
        cv2.imwrite(os.path.join(train, f"street_{seed}.jpg"), street_image(size, seed))
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict()}, os.path.join(folder, "model_final.pth"))
    return folder


def _label(predictor) -> str:
    """What the folder loop runs: the backend its threads call (a copy compiled for streams is
    made here, before the timing) and the images in flight, e.g. ``openvino bf16 on 2 streams,
    2 in flight``."""
    flying, workers = pipelined(predictor)
    return flying.backend + (f", {workers} in flight" if workers > 1 else "")


def run(
    out_dir: Optional[str] = None,
    num_images: int = 50,
    size: int = 640,
    rounds: int = 2,
    threads: int = 0,
    contenders: Optional[Dict[str, List[str]]] = None,
) -> Dict[str, Any]:
    """
    Predict a folder of ``num_images`` generated photos with each contender, ``rounds`` times in
    turn, and write ``folder_benchmark.json``.

    Returns:
        ``num_images``, ``size``, ``rounds``, ``threads``, load averages, ``machine`` and
        ``contenders``: name -> ``label`` (the predictor's backend as built), ``opts``,
        ``images_per_s`` (each round's, from ``predict_paths``), ``median_images_per_s``,
        ``speedup_vs_first`` (against the first row).
    """
    use_threads(threads)
    contenders = contenders or default_contenders()
    settings = dict(num_images=num_images, size=size, rounds=rounds)
    with measuring(NAME, **settings) as result, tempfile.TemporaryDirectory() as tmp:
        images = os.path.join(tmp, "images")
        _write_folder(images, num_images, size)
        run_dir = _write_run(os.path.join(tmp, "run"), size)
        predictors = {
            name: load_predictor(run_dir, score_thresh=0.5, opts=opts)
            for name, opts in contenders.items()
        }
        labels = {name: _label(predictor) for name, predictor in predictors.items()}
        rates: Dict[str, List[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, predictor in predictors.items():
                out = os.path.join(tmp, "out", name.replace(" ", "_").replace(",", ""))
                rates[name].append(predict_paths(predictor, images, out)["images_per_s"])
    rows = {}
    for name, opts in contenders.items():
        median = statistics.median(rates[name])
        rows[name] = {
            "label": labels[name],
            "opts": list(opts),
            "images_per_s": rates[name],
            "median_images_per_s": median,
        }
    first = next(iter(rows.values()))["median_images_per_s"]
    for row in rows.values():
        row["speedup_vs_first"] = row["median_images_per_s"] / first
    result["contenders"] = rows
    if out_dir:
        write_result(result, out_dir, "folder_benchmark.json")
    return result


def format_table(result: Dict[str, Any]) -> str:
    """The rows as a fixed-width table: contender, what ran, images/s, speed-up."""
    header = f"{'contender':<48} {'what ran':<56} {'images/s':>9} {'x first':>8}"
    lines = [header, "-" * len(header)]
    for name, row in result["contenders"].items():
        lines.append(
            f"{name:<48} {row['label']:<56} {row['median_images_per_s']:>9.2f} "
            f"{row['speedup_vs_first']:>8.2f}"
        )
    lines.append(
        f"{result['num_images']} images of {result['size']} px, {result['rounds']} rounds, "
        f"threads {result['threads']}; load {result['load_before']} -> {result['load_after']}"
    )
    return "\n".join(lines)
