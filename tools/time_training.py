#!/usr/bin/env python
"""
Seconds per training iteration of the demo recipe, one checkout against another, alternating
rounds on the same machine in one run: what `make demo` training costs before and after a change.

    tools/time_training.py --checkout /tmp/old --checkout . --rounds 2 \\
        --output docs/benchmarks/demo_training_time.json
    tools/time_training.py --checkout . --checkout ". TRASHPOLE.TRAIN.CHANNELS_LAST True"

A checkout may carry config overrides after its path (one argument, split like a shell line):
they go after the recipe's and this tool's own, so one checkout can be timed with and without
an option.

Each checkout trains with its own ``.venv`` (``make venv``) and its own ``tools/train_net.py`` and
recipe, on the same data, with the same seed, for ``--epochs`` epochs without evaluations during
training. A round trains every checkout once, in the given order; rounds alternate so that a
change in the machine's load falls on both. The figure per run is the median of detectron2's
per-iteration ``time`` (the logged 20-iteration medians in ``metrics.json``, first window left
out as warm-up).
"""

import argparse
import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

from trashpole.cli import add_checkout_to_path, add_debug_flag, run_tool
from trashpole.errors import MissingFileError, UserError

add_checkout_to_path(__file__)  # benchmarks/ is not installed with trashpole
from benchmarks.measure import load_average, machine_info, write_result  # noqa: E402

logger = logging.getLogger("trashpole.time_training")

CONFIG = "configs/mask_rcnn_R_18_FPN_cpu_quick.yaml"


def _checkout_info(spec: str) -> Dict[str, Any]:
    """``spec``: a checkout's path, then any config overrides (KEY VALUE pairs)."""
    path, *opts = shlex.split(spec)
    if len(opts) % 2:
        raise UserError(f"--checkout {spec!r}: overrides come in KEY VALUE pairs after the path")
    python = os.path.join(path, ".venv", "bin", "python")
    if not os.path.isfile(python):
        raise MissingFileError(f"{path}: no .venv/bin/python; run 'make venv' in that checkout")
    rev = subprocess.run(
        ["git", "-C", path, "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    return {"path": os.path.abspath(path), "python": python, "commit": rev, "opts": opts}


def _iteration_times(metrics_json: str) -> List[float]:
    """The 20-iteration medians of ``time`` that detectron2 logged, without the first."""
    times = []
    with open(metrics_json) as f:
        for line in f:
            record = json.loads(line)
            if "time" in record:
                times.append(float(record["time"]))
    return times[1:]


def train_once(checkout: Dict[str, Any], data: str, epochs: int, seed: int) -> Dict[str, Any]:
    """Train the demo recipe of ``checkout`` for ``epochs`` epochs; its s/iteration and wall."""
    with tempfile.TemporaryDirectory() as out:
        opts = ["OUTPUT_DIR", out, "SEED", str(seed), "SOLVER.EPOCHS", str(epochs)]
        opts += ["SOLVER.STEP_EPOCHS", f"({epochs},)", "TEST.EVAL_PERIOD_EPOCHS", "0"]
        opts += ["TRASHPOLE.VAL_LOSS", "False"]
        cmd = [checkout["python"], "tools/train_net.py", "--config-file", CONFIG]
        cmd += ["--dataset-root", os.path.abspath(data)] + opts + list(checkout["opts"])
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=checkout["path"], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{checkout['path']}: training failed:\n{proc.stderr[-3000:]}")
        times = _iteration_times(os.path.join(out, "metrics.json"))
    return {"s_per_iter": statistics.median(times), "windows": times, "wall_s": wall}


def _name(info: Dict[str, Any]) -> str:
    opts = " ".join(info["opts"])
    return f"{info['commit']} ({info['path']}{' ' + opts if opts else ''})"


def run(checkouts: Sequence[str], data: str, rounds: int, epochs: int, seed: int) -> Dict[str, Any]:
    infos = [_checkout_info(c) for c in checkouts]
    result: Dict[str, Any] = {
        "benchmark": "demo_training_time",
        "config": CONFIG,
        "data": os.path.abspath(data),
        "epochs": epochs,
        "seed": seed,
        "machine": machine_info(),
        "load_before": load_average(),
        "checkouts": infos,
        "rounds": [],
    }
    for r in range(rounds):
        row = []
        for info in infos:
            logger.info(f"round {r + 1}/{rounds}: {_name(info)}")
            row.append(train_once(info, data, epochs, seed))
            logger.info(f"  {row[-1]['s_per_iter']:.3f} s/iter, {row[-1]['wall_s']:.0f} s")
        result["rounds"].append(row)
    result["load_after"] = load_average()
    medians = [
        statistics.median(rnd[k]["s_per_iter"] for rnd in result["rounds"])
        for k in range(len(infos))
    ]
    result["median_s_per_iter"] = medians
    result["speedup_vs_first"] = [medians[0] / m for m in medians]
    return result


def main(argv=None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--checkout",
        action="append",
        required=True,
        help="a checkout's path, optionally followed by config overrides (repeat; first is the "
        "baseline)",
    )
    p.add_argument("--data", default="datasets/trashpole", help="the export to train on")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    p.add_argument("--epochs", type=int, default=2, help="epochs per training")
    p.add_argument("--seed", type=int, default=0, help="SEED of every training")
    p.add_argument(
        "--output", default="output/benchmark/demo_training_time.json", help="JSON result"
    )
    add_debug_flag(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not os.path.isdir(args.data):
        raise MissingFileError(f"{args.data} does not exist: make the demo data first (make data)")
    result = run(args.checkout, args.data, args.rounds, args.epochs, args.seed)
    folder, name = os.path.split(os.path.abspath(args.output))
    write_result(result, folder, name)
    for info, m, s in zip(
        result["checkouts"], result["median_s_per_iter"], result["speedup_vs_first"]
    ):
        print(f"{m:.3f} s/iter  {s:.2f}x  {_name(info)}")
    print(f"load {result['load_before']} -> {result['load_after']}; written {args.output}")
    return result


if __name__ == "__main__":
    sys.exit(run_tool(main))
