"""Speed and segm AP of each backend and precision on a trained run (``tools/benchmark.py
accuracy``)."""

import contextlib
import logging
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import torch

from benchmarks.describe import describe_model, label, observe_features
from benchmarks.measure import measuring, write_result
from trashpole.config import load_config
from trashpole.engine.derive import derive_from_data
from trashpole.engine.setup import register_datasets
from trashpole.errors import UserError
from trashpole.evaluation.evaluate import evaluate_and_report
from trashpole.run import backend_opts, build_inference_model, resolve_run
from trashpole.speed import fp32_opts, set_test_size, speed_opts

logger = logging.getLogger(__name__)

NAME = "accuracy"
# --quick changes nothing: the runs are given
QUICK: Dict[str, Any] = {}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"run": "run_dirs", "split": "split", "dataset_root": "dataset_root"}


@contextlib.contextmanager
def _nothing() -> Iterator[Dict]:
    yield {}


# ----------------------------------------------------------------------------------------------
# Speed and accuracy of each speed option on a trained run


def default_variants() -> Dict[str, List[str]]:
    """Backends and precisions to compare on a trained run: name -> config overrides (run's config
    first, these after). The first, the baseline of every delta, is the PyTorch backend in fp32
    NCHW (detectron2's model as built); ``size=N`` entries would set the test input size (see
    :func:`set_test_size`)."""

    pt = backend_opts("pytorch")
    ov = backend_opts("openvino")
    return {
        "pytorch fp32": pt + fp32_opts(),
        "pytorch bf16 + channels_last": pt + speed_opts(bf16=True, channels_last=True),
        "openvino f32": ov + speed_opts(bf16=False),
        "openvino bf16": ov + speed_opts(bf16=True),
        "openvino int8": backend_opts("openvino", int8=True) + speed_opts(bf16=True),
    }


class _TimedModel:
    """Runs the wrapped inference model (:func:`trashpole.run.build_inference_model`) and adds
    up its time, after ``warmup`` untimed calls; what
    :func:`detectron2.evaluation.inference_on_dataset` sees as the model."""

    def __init__(self, model, warmup: int = 2):
        self.model, self.warmup = model, warmup
        self.description = model.description
        if hasattr(model, "test_mapper"):  # a sliced model reads its images at their own size
            self.test_mapper = model.test_mapper
        self.seconds, self.images, self.calls = 0.0, 0, 0

    def __call__(self, inputs):
        start = time.perf_counter()
        outputs = self.model(inputs)
        self.calls += 1
        if self.calls > self.warmup:
            self.seconds += time.perf_counter() - start
            self.images += len(inputs)
        return outputs


def evaluate_variant(
    run_dir: str, opts: Sequence[str], split: str = "test", dataset_root: str = ""
) -> Dict[str, Any]:
    """
    COCO bbox/segm AP of a trained run on one split with the given speed options, and the mean
    forward time per image.

    Args:
        run_dir: run folder with ``config.yaml`` and ``model_final.pth``.
        opts: config overrides; ``size=N`` sets the test input size.
        split: train, valid or test.
        dataset_root: the export (default: the run's ``TRASHPOLE.DATASET_ROOT``).

    Returns:
        ``{"bbox/AP", "segm/AP", "segm/AP50", "trashpole/mIoU", "trashpole/F1", "ms_per_image",
        "images", "threads", "label", "setup", "seen"}``: the time leaves out the first two
        images (warm-up), ``images`` counts the timed ones; ``label`` says what ran, read from
        the model (:mod:`benchmarks.describe`).
    """
    config, weights = resolve_run(run_dir)
    sizes = [int(o[5:]) for o in opts if o.startswith("size=")]
    cfg = load_config(config, [o for o in opts if not o.startswith("size=")])
    if sizes:
        set_test_size(cfg, sizes[-1])
    if dataset_root:
        cfg.TRASHPOLE.DATASET_ROOT = dataset_root
    threads = torch.get_num_threads()
    splits = register_datasets(cfg)
    derive_from_data(cfg, splits, training=False)
    if split not in splits:
        raise UserError(
            f"--split {split!r}: {cfg.TRASHPOLE.DATASET_ROOT} has the splits {sorted(splits)}"
        )
    cfg.MODEL.WEIGHTS = weights
    # the model as predict and --eval-only run it (trashpole.run)
    inference = build_inference_model(cfg, weights)
    timed = _TimedModel(inference)
    module = getattr(inference, "model", None)  # the PyTorch backend's detectron2 model
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with observe_features(module) if module is not None else _nothing() as seen:
                results = evaluate_and_report(cfg, timed, splits[split], tmp)
        setup = describe_model(module) if module is not None else {"backend": timed.description}
    finally:
        torch.set_num_threads(threads)  # a "threads" variant must not change the next ones
    return {
        "bbox/AP": results["bbox"]["AP"],
        "segm/AP": results["segm"]["AP"],
        "segm/AP50": results["segm"]["AP50"],
        "trashpole/mIoU": results.get("trashpole", {}).get("mIoU"),
        "trashpole/F1": results.get("trashpole", {}).get("F1"),
        "ms_per_image": 1000 * timed.seconds / max(1, timed.images),
        "images": timed.images,
        "threads": int(cfg.TRASHPOLE.INFERENCE.NUM_THREADS) or threads,
        "label": label(setup, seen) if module is not None else timed.description,
        "setup": setup,
        "seen": dict(seen),
    }


def _rows_of_run(
    run_dir: str, variants: Dict[str, List[str]], split: str, dataset_root: str
) -> Dict[str, Dict[str, Any]]:
    """:func:`evaluate_variant` of every variant on one run, with the changes against the first."""
    rows: Dict[str, Dict[str, Any]] = {}
    for name, opts in variants.items():
        logger.info(f"{run_dir}: speed option {name!r}: {opts}")
        rows[name] = {"opts": list(opts), **evaluate_variant(run_dir, opts, split, dataset_root)}
        rows[name]["median_s"] = rows[name]["ms_per_image"] / 1000
    base = next(iter(rows.values()))
    for row in rows.values():
        row["delta_segm_AP"] = row["segm/AP"] - base["segm/AP"]
        row["delta_bbox_AP"] = row["bbox/AP"] - base["bbox/AP"]
        row["speedup_vs_default"] = base["ms_per_image"] / row["ms_per_image"]
    return rows


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


# the row values that are averaged over runs
_AVERAGED = (
    "segm/AP",
    "segm/AP50",
    "bbox/AP",
    "delta_segm_AP",
    "delta_bbox_AP",
    "ms_per_image",
    "speedup_vs_default",
)


def _over_runs(per_run: List[Dict[str, Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """One row per variant from the rows of several runs: means of the metrics, time and
    speed-up, every run's AP change, and the change farthest from 0. Set-up and label are the
    first run's (every run builds the same set-up from the same options)."""
    rows = {}
    for name, first in per_run[0].items():
        mine = [run[name] for run in per_run]
        deltas = [r["delta_segm_AP"] for r in mine]
        rows[name] = {
            **{k: first[k] for k in ("opts", "label", "setup", "seen", "threads")},
            **{k: _mean([r[k] for r in mine]) for k in _AVERAGED},
            "images": sum(r["images"] for r in mine),
            "delta_segm_AP_per_run": deltas,
            "delta_segm_AP_farthest": max(deltas, key=abs),
        }
        rows[name]["median_s"] = rows[name]["ms_per_image"] / 1000
    return rows


def run(
    out_dir: Optional[str],
    run_dirs: Union[str, Sequence[str]],
    split: str = "test",
    dataset_root: str = "",
    variants: Optional[Dict[str, List[str]]] = None,
) -> Dict[str, Any]:
    """
    :func:`evaluate_variant` for every speed choice on one or more trained runs (say, the same
    recipe trained with two seeds), with the AP change against the first variant (fp32 in
    :func:`default_variants`) on each run; writes ``accuracy_benchmark.json``.

    Args:
        out_dir: folder for the JSON (none written if None).
        run_dirs: a trained run, or several.
        split: the split to evaluate.
        dataset_root: the export (default: each run's).
        variants: name -> opts; default :func:`default_variants`.

    Returns:
        dict with ``runs`` (the run folders), ``split``, load averages, ``per_run`` (one
        ``{variant: row}`` per run: the metrics of :func:`evaluate_variant` plus ``opts``,
        ``median_s`` (seconds per image), ``delta_segm_AP``, ``delta_bbox_AP`` and
        ``speedup_vs_default``) and ``contenders``: the same rows over the runs (means, with
        ``delta_segm_AP_per_run`` and ``delta_segm_AP_farthest``).
    """
    runs = [run_dirs] if isinstance(run_dirs, str) else list(run_dirs)
    for run_dir in runs:  # a missing run fails now, not after the other runs' sweeps
        resolve_run(run_dir)
    variants = dict(variants or default_variants())
    with measuring(NAME, runs=runs, split=split) as result:
        per_run = [_rows_of_run(run_dir, variants, split, dataset_root) for run_dir in runs]
    result["per_run"] = per_run
    result["contenders"] = _over_runs(per_run)
    if out_dir:
        write_result(result, out_dir, "accuracy_benchmark.json")
    return result


def format_table(result: Dict[str, Any]) -> str:
    """The variants of :func:`run` as a fixed-width text table (means over the runs,
    and each run's segm AP change when there are several)."""
    several = len(result["runs"]) > 1
    header = f"{'speed option':<38} {'ms/img':>7} {'speed-up':>8} {'segm AP':>8} {'dAP':>6}"
    header += f" {'box AP':>7}" + ("  dAP per run" if several else "")
    lines = [header, "-" * len(header)]
    for name, row in result["contenders"].items():
        line = (
            f"{name:<38} {row['ms_per_image']:>7.1f} {row['speedup_vs_default']:>8.2f} "
            f"{row['segm/AP']:>8.2f} {row['delta_segm_AP']:>+6.2f} {row['bbox/AP']:>7.2f}"
        )
        if several:
            line += "  " + " ".join(f"{d:+.2f}" for d in row["delta_segm_AP_per_run"])
        lines.append(line)
    lines.append("what ran:")
    lines += [f"  {name}: {row['label']}" for name, row in result["contenders"].items()]
    what = "means over " + ", ".join(result["runs"]) if several else result["runs"][0]
    lines.append(
        f"{what} on {result['split']}; load {result['load_before']} -> {result['load_after']}"
    )
    return "\n".join(lines)
