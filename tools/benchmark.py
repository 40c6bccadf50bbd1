#!/usr/bin/env python
"""
Benchmarks on generated inputs; results go to OUTPUT/<suite>_benchmark.json and a table.

    tools/benchmark.py inference            # latency of a 640x640 image vs torchvision
    tools/benchmark.py profile              # where that time goes, by op category
    tools/benchmark.py profile-openvino     # where it goes on OpenVINO, by phase and layer
    tools/benchmark.py profile-training     # where a training iteration's time goes
    tools/benchmark.py training             # s/iteration at batch 2, 640 px, vs torchvision
    tools/benchmark.py data                 # registering and loading a 10,000-image export
    tools/benchmark.py evaluation           # time and memory of the trashpole evaluator
    tools/benchmark.py report               # report.html of 1,000 images: size, load time
    tools/benchmark.py tracking             # ms/frame of tracking vs prediction (30 frames)
    tools/benchmark.py folder               # images/s of tools/predict.py on 50 photos
    tools/benchmark.py slicing              # a 1600x1200 photo whole and sliced (not in all)
    tools/benchmark.py mask-head            # the mask head in a training step (not in all)
    tools/benchmark.py all --quick          # everything shrunk to a smoke test (~1 min)
    tools/benchmark.py accuracy --run output/demo   # AP of each backend and precision
    tools/benchmark.py accuracy --run RUN_A RUN_B   # ... over two trained seeds

Time on an idle machine: the tables print the load average before and after each run.
"""

import argparse
import logging
import os
import sys
from types import ModuleType

from detectron2.utils.logger import setup_logger

from trashpole.cli import add_checkout_to_path, add_debug_flag, run_tool
from trashpole.jsonio import write_json

add_checkout_to_path(__file__)  # the suites in benchmarks/ are not installed with trashpole
from benchmarks import ALL, SUITES, load_suite  # noqa: E402

logger = logging.getLogger("trashpole.benchmark")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "suite",
        nargs="?",
        default="all",
        choices=tuple(SUITES) + ("all",),
        help="which benchmark to run (default: all but accuracy)",
    )
    p.add_argument("--output", default="output/benchmark", help="folder for the JSON results")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke test")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: one per core)")
    p.add_argument(
        "--repeats",
        type=int,
        default=0,
        help="timed rounds (inference, training; tracking: frames)",
    )
    p.add_argument("--size", type=int, default=0, help="image side (inference, training, tracking)")
    p.add_argument("--num-images", type=int, default=0, help="images (data, evaluation, report)")
    p.add_argument(
        "--run",
        nargs="+",
        default=["output/demo"],
        help="trained run(s) (accuracy, counting; several: the same recipe trained with other "
        "seeds)",
    )
    p.add_argument("--split", default="test", help="split to evaluate (accuracy)")
    p.add_argument("--dataset-root", default="", help="export (accuracy; default: the run's)")
    add_debug_flag(p)
    return p.parse_args(argv)


def suite_kwargs(suite: ModuleType, args: argparse.Namespace) -> dict:
    """The keyword arguments of ``suite.run``: its ``QUICK`` ones with ``--quick``, then each
    option the suite takes (``suite.OPTIONS``) that the command line set."""
    kwargs = dict(suite.QUICK) if args.quick else {}
    for option, keyword in suite.OPTIONS.items():
        value = getattr(args, option)
        if value:  # 0 and "" leave the suite's own default
            kwargs[keyword] = value
    return kwargs


def run_suite(name: str, args: argparse.Namespace) -> dict:
    """Run one suite (see benchmarks/__init__.py) with the command line's settings and print its
    table; returns its result."""
    suite = load_suite(name)
    result = suite.run(args.output, **suite_kwargs(suite, args))
    print(suite.format_table(result))
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_logger(name="trashpole")
    suites = ALL if args.suite == "all" else (args.suite,)
    results = {name: run_suite(name, args) for name in suites}
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "benchmark.json")
    write_json(results, path)
    logger.info(f"wrote {path}")
    return results


if __name__ == "__main__":
    sys.exit(run_tool(main))
