#!/usr/bin/env python
"""
Milliseconds of torchvision's CPU NMS on fixed generated boxes, for comparing torchvision builds:
run it with each venv's Python and compare the JSON files.

    .venv/bin/python tools/time_nms.py --output docs/benchmarks/nms_new_stack.json
    /tmp/old696/.venv/bin/python tools/time_nms.py --output docs/benchmarks/nms_old_stack.json

It imports only torch and torchvision (not trashpole), so that any venv can run it, an old
checkout's included. Cases:

- ``single N``: one ``torchvision.ops.nms`` call on N boxes scattered over a 384 px image (most
  survive at IoU 0.7, so the kernel compares nearly every pair: its cost per pair);
- ``rpn``: ``torchvision.ops.batched_nms`` over 5 levels of 2000, 2000, 1728, 432 and 108 boxes,
  the sizes of the call the demo recipe makes once per image per iteration (detectron2's RPN at
  384 px in training, ``PRE_NMS_TOPK_TRAIN`` 2000 per level). Scattered boxes mostly survive;
  of real proposals about half do, so the real call costs less than this case.
"""

import argparse
import json
import logging
import platform
import statistics
import time

import torch
import torchvision
from torchvision.ops import batched_nms, nms

logger = logging.getLogger("time_nms")

RPN_LEVELS = (2000, 2000, 1728, 432, 108)


def scattered_boxes(n: int, size: float = 384.0, seed: int = 0):
    """(boxes [n, 4] XYXY, scores [n]) of ``n`` boxes 4-104 px wide at random places."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * 100 + 4
    return torch.cat([xy, xy + wh], dim=1), torch.rand(n, generator=g)


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run(sizes=(500, 2000), repeats: int = 20, threshold: float = 0.7) -> dict:
    """Time each case; returns the versions, the CPU and ``cases``: name -> ms, kept."""
    cases = {}
    for n in sizes:
        boxes, scores = scattered_boxes(n)
        kept = len(nms(boxes, scores, threshold))
        ms = median_ms(lambda: nms(boxes, scores, threshold), repeats)
        cases[f"single {n}"] = {"boxes": n, "kept": kept, "ms": ms}
    boxes, scores = scattered_boxes(sum(RPN_LEVELS), seed=1)
    levels = torch.cat([torch.full((n,), i) for i, n in enumerate(RPN_LEVELS)])
    kept = len(batched_nms(boxes, scores, levels, threshold))
    ms = median_ms(lambda: batched_nms(boxes, scores, levels, threshold), repeats)
    cases["rpn"] = {"boxes": sum(RPN_LEVELS), "levels": list(RPN_LEVELS), "kept": kept, "ms": ms}
    return {
        "benchmark": "nms",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "iou_threshold": threshold,
        "cases": cases,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--output", default="", help="JSON result (none written if empty)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per case (median)")
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000], help="single-call sizes")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run(tuple(args.sizes), args.repeats)
    for name, case in result["cases"].items():
        logger.info(f"{name:<12} {case['ms']:8.2f} ms  ({case['kept']} of {case['boxes']} kept)")
    logger.info(
        f"torch {result['torch']}, torchvision {result['torchvision']}, {result['cpu_model']}"
    )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
        logger.info(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
