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
    tools/benchmark.py all --quick          # everything shrunk to a smoke test (~1 min)
    tools/benchmark.py accuracy --run output/demo   # AP and speed of each speed option
    tools/benchmark.py accuracy --run RUN_A RUN_B   # ... over two trained seeds

Time on an idle machine: the tables print the load average before and after each run.
"""

import argparse
import logging
import os
import sys

from detectron2.utils.logger import setup_logger

from trashpole.cli import add_checkout_to_path, add_debug_flag, run_tool
from trashpole.jsonio import write_json

add_checkout_to_path(__file__)  # the suites in benchmarks/ are not installed with trashpole
from benchmarks import SUITES  # noqa: E402

logger = logging.getLogger("trashpole.benchmark")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "suite",
        nargs="?",
        default="all",
        choices=SUITES + ("accuracy", "slicing", "all"),
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
        help="trained run(s) (accuracy; several: the same recipe trained with other seeds)",
    )
    p.add_argument("--split", default="test", help="split to evaluate (accuracy)")
    p.add_argument("--dataset-root", default="", help="export (accuracy; default: the run's)")
    add_debug_flag(p)
    return p.parse_args(argv)


def run_suite(name: str, args) -> dict:
    """Run one benchmark module with the command line's settings; returns its result."""
    if name in ("inference", "training"):
        # each suite loads only what it measures (the peer's model code, Chromium...)
        from benchmarks import inference, measure, training

        module = inference if name == "inference" else training
        kwargs = dict(module.QUICK) if args.quick else {}
        kwargs.update({k: v for k, v in (("size", args.size), ("repeats", args.repeats)) if v})
        result = module.run(args.output, threads=args.threads, **kwargs)
        print(measure.format_table(result))
        return result
    if name in ("profile", "profile-training", "profile-openvino"):
        from benchmarks import profile, profile_openvino, profile_training  # (see above)

        module = {"profile": profile, "profile-training": profile_training}.get(
            name, profile_openvino
        )
        kwargs = dict(module.QUICK) if args.quick else {}
        kwargs.update({"size": args.size} if args.size else {})
        result = module.run(args.output, threads=args.threads, **kwargs)
        print(module.format_table(result))
        return result
    if name == "accuracy":
        from benchmarks import accuracy  # (one suite at a time, see above)

        result = accuracy.run_accuracy(args.run, args.output, args.split, args.dataset_root)
        print(accuracy.format_accuracy_table(result))
        return result
    if name == "report":
        from benchmarks import report  # (one suite at a time, see above)

        kwargs = dict(report.QUICK) if args.quick else {}
        kwargs.update(
            {k: v for k, v in (("num_images", args.num_images), ("repeats", args.repeats)) if v}
        )
        result = report.run(args.output, **kwargs)
        print(report.format_table(result))
        return result
    if name == "tracking":
        from benchmarks import tracking  # (one suite at a time, see above)

        kwargs = dict(tracking.QUICK) if args.quick else {}
        kwargs.update({k: v for k, v in (("size", args.size), ("frames", args.repeats)) if v})
        result = tracking.run(args.output, threads=args.threads, **kwargs)
        print(tracking.format_table(result))
        return result
    if name == "folder":
        from benchmarks import folder  # (one suite at a time, see above)

        kwargs = dict(folder.QUICK) if args.quick else {}
        kwargs.update({k: v for k, v in (("size", args.size), ("rounds", args.repeats)) if v})
        if args.num_images:
            kwargs["num_images"] = args.num_images
        result = folder.run(args.output, threads=args.threads, **kwargs)
        print(folder.format_table(result))
        return result
    if name == "slicing":
        from benchmarks import slicing  # (one suite at a time, see above)

        kwargs = dict(slicing.QUICK) if args.quick else {}
        kwargs.update({"rounds": args.repeats} if args.repeats else {})
        result = slicing.run(args.output, threads=args.threads, **kwargs)
        print(slicing.format_table(result))
        return result
    if name == "data":
        from benchmarks import data  # (one suite at a time, see above)

        num = args.num_images or (200 if args.quick else 10000)
        result = data.run(os.path.join(args.output, "data"), num_images=num)
    else:
        from benchmarks import evaluation  # (one suite at a time, see above)

        kwargs = dict(num_images=5, size=(256, 256), instances=10) if args.quick else {}
        if args.num_images:
            kwargs["num_images"] = args.num_images
        result = evaluation.run(out_dir=args.output, **kwargs)
        result = {k: v for k, v in result.items() if k != "results"}
    print("\n".join(f"{name} {k}: {v}" for k, v in result.items()))
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_logger(name="trashpole")
    suites = SUITES if args.suite == "all" else (args.suite,)
    results = {name: run_suite(name, args) for name in suites}
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "benchmark.json")
    write_json(results, path)
    logger.info(f"wrote {path}")
    return results


if __name__ == "__main__":
    sys.exit(run_tool(main))
