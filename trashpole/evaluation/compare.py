"""
Side-by-side comparison of finished runs: reads each run's ``eval/<split>/metrics.json`` (written
by :func:`trashpole.evaluation.write_report`) and, when present, the training log
``metrics.json`` (detectron2's JSON lines), and makes a table and a grouped bar plot.
"""

import json
import logging
import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from trashpole.errors import MissingFileError, UserError
from trashpole.evaluation.evaluate import EVAL_FOLDER, eval_dir
from trashpole.visualization.charts import number_text

logger = logging.getLogger(__name__)

# (task, key) pairs shown by default; keys of the results dict in eval/metrics.json.
DEFAULT_METRICS: Tuple[Tuple[str, str], ...] = (
    ("segm", "AP"),
    ("segm", "AP50"),
    ("segm", "APs"),  # small objects: what sliced inference is for
    ("bbox", "AP"),
    ("trashpole", "mIoU"),
    ("trashpole", "accuracy"),
    ("trashpole", "F1"),
    ("trashpole", "pixel_mIoU"),
)


def _training_summary(path: str, metrics: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    """Iterations, last total_loss and the best value of each metric seen during training."""
    summary: Dict[str, Any] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(
                    f"{path}: line {n} is not JSON ({e}); expected detectron2's JSONWriter "
                    "log, one JSON object per line"
                ) from None
            if "iteration" in entry:
                summary["iterations"] = max(summary.get("iterations", 0), entry["iteration"] + 1)
            if "total_loss" in entry:
                summary["last total_loss"] = entry["total_loss"]
            for task, key in metrics:
                value = entry.get(f"{task}/{key}")
                if isinstance(value, (int, float)) and np.isfinite(value):
                    best = summary.get(f"best {task}/{key}")
                    summary[f"best {task}/{key}"] = value if best is None else max(best, value)
    return summary


def load_run(
    run_dir: str, metrics: Sequence[Tuple[str, str]] = DEFAULT_METRICS, split: str = "valid"
) -> Dict[str, Any]:
    """
    Read one run's evaluation (and training log when present).

    Args:
        run_dir: a run's output folder.
        metrics: (task, key) pairs to pick.
        split: the evaluated split: ``valid`` (written at the end of training) or another one
            written by ``--eval-only --eval-split``; its report is in ``eval/<split>/``.

    Returns:
        dict with ``name`` (folder name), ``path``, ``values`` ({"task/key": value or None}),
        ``eval`` (the whole eval/metrics.json) and ``train`` (summary dict, empty without log).
    """
    eval_path = os.path.join(eval_dir(run_dir, split), "metrics.json")
    if not os.path.isfile(eval_path):
        raise MissingFileError(
            f"{eval_path} does not exist; evaluate the {split} split of the run first "
            f"(tools/train_net.py --eval-only --eval-split {split} writes it)"
        )
    with open(eval_path) as f:
        evaluation = json.load(f)
    if "results" not in evaluation:
        raise UserError(
            f"{eval_path}: has no 'results'; it was not written by write_report (evaluate the run "
            "with tools/train_net.py --eval-only)"
        )
    results = evaluation["results"]
    values = {f"{t}/{k}": results.get(t, {}).get(k) for t, k in metrics}
    train_log = os.path.join(run_dir, "metrics.json")
    train = _training_summary(train_log, metrics) if os.path.isfile(train_log) else {}
    name = os.path.basename(os.path.normpath(run_dir))
    return {"name": name, "path": run_dir, "values": values, "eval": evaluation, "train": train}


def compare_runs(
    run_dirs: Sequence[str],
    metrics: Sequence[Tuple[str, str]] = DEFAULT_METRICS,
    split: str = "valid",
) -> List[Dict[str, Any]]:
    """
    Load several runs; names are made unique (the path replaces a repeated folder name).

    Args:
        run_dirs: run folders.
        metrics: (task, key) pairs to pick.
        split: the evaluated split to compare.

    Returns:
        list of :func:`load_run` dicts, in the given order.
    """
    runs = [load_run(d, metrics, split) for d in run_dirs]
    names = [r["name"] for r in runs]
    for r in runs:
        if names.count(r["name"]) > 1:
            r["name"] = os.path.normpath(r["path"])
    return runs


def format_table(runs: List[Dict[str, Any]]) -> str:
    """
    Plain-text table, one row per metric (evaluation first, then training log), one column per
    run.

    Args:
        runs: from :func:`compare_runs`.

    Returns:
        the table as a string.
    """
    keys = list(runs[0]["values"]) if runs else []
    train_keys = sorted({k for r in runs for k in r["train"]})
    rows = [[k] + [number_text(r["values"].get(k)) for r in runs] for k in keys]
    rows += [[f"train: {k}"] + [number_text(r["train"].get(k)) for r in runs] for k in train_keys]
    header = ["metric"] + [r["name"] for r in runs]
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def headline(run_dir: str) -> str:
    """
    A few lines for the end of a job: where the run's files are and its main numbers, from each
    evaluation report found in the run (``eval/test`` first, then ``eval/valid``, then others).
    """
    if not os.path.isdir(run_dir):
        raise MissingFileError(
            f"run folder {run_dir!r} does not exist; give the OUTPUT_DIR of a training"
        )
    lines = [f"Run folder: {run_dir}"]
    for rel in ("model_final.pth", "model_best.pth", "results.csv", "curves.png", "predictions"):
        if os.path.exists(os.path.join(run_dir, rel)):
            lines.append(f"  {rel:16s} {os.path.join(run_dir, rel)}")
    folder = os.path.join(run_dir, EVAL_FOLDER)
    found = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    order = [s for s in ("test", "valid") if s in found] + [
        s for s in found if s not in ("test", "valid")
    ]
    for split in order:
        if not os.path.isfile(os.path.join(eval_dir(run_dir, split), "metrics.json")):
            continue
        run = load_run(run_dir, split=split)
        report = os.path.join(eval_dir(run_dir, split), "report.md")
        lines.append(f"{run['eval'].get('dataset', split)} ({report}):")
        lines.append("  " + ", ".join(f"{k} {number_text(v)}" for k, v in run["values"].items()))
    return "\n".join(lines)
