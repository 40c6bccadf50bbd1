"""
Time and memory of :class:`trashpole.evaluation.TrashPoleEvaluator` on a synthetic data set of
large images with many instances (random rectangles, predictions jittered from the truth), to
check that its state stays small: what it keeps per image must not grow with the image size.
"""

import logging
import pickle
import resource
import time
import tracemalloc
import uuid
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode, Instances

from benchmarks.measure import write_result
from synthetic import CLASS_NAMES
from trashpole.evaluation import TrashPoleEvaluator

logger = logging.getLogger(__name__)

NAME = "evaluation"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"num_images": 5, "size": (256, 256), "instances": 10}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"num_images": "num_images"}


def _random_boxes(rng: np.random.Generator, n: int, height: int, width: int) -> np.ndarray:
    """ndarray[n, 4] of int XYXY boxes, 8 to 1/4 of the image side."""
    w = rng.integers(8, max(9, width // 4), n)
    h = rng.integers(8, max(9, height // 4), n)
    x0 = rng.integers(0, width - w)
    y0 = rng.integers(0, height - h)
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1)


def _record(image_id: int, boxes: np.ndarray, classes: np.ndarray, size: Tuple[int, int]) -> dict:
    annotations = [
        {
            "bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": int(c),
            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
            "iscrowd": 0,
        }
        for (x0, y0, x1, y1), c in zip(boxes.tolist(), classes.tolist())
    ]
    return {
        "file_name": f"synthetic_{image_id:06d}.jpg",
        "image_id": image_id,
        "height": size[0],
        "width": size[1],
        "annotations": annotations,
    }


def _make_dataset(num_images: int, size: Tuple[int, int], instances: int, seed: int):
    rng = np.random.default_rng(seed)
    records: List[dict] = []
    for i in range(num_images):
        boxes = _random_boxes(rng, instances, *size)
        records.append(_record(i, boxes, rng.integers(0, 2, instances), size))
    return records


def _prediction(record: dict, rng: np.random.Generator) -> Instances:
    """Jittered copies of ~80% of the truth plus a few false detections, as full-size masks."""
    height, width = record["height"], record["width"]
    gt = [a for a in record["annotations"] if rng.random() < 0.8]
    boxes = [
        np.asarray(a["bbox"][:2] + [a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]])
        + rng.integers(-4, 5, 4)
        for a in gt
    ]
    boxes += list(_random_boxes(rng, max(1, len(gt) // 10), height, width))
    masks = torch.zeros((len(boxes), height, width), dtype=torch.bool)
    for k, (x0, y0, x1, y1) in enumerate(np.clip(np.asarray(boxes), 0, [width, height] * 2)):
        masks[k, y0:y1, x0:x1] = True
    classes = [a["category_id"] for a in gt] + list(rng.integers(0, 2, len(boxes) - len(gt)))
    return Instances(
        (height, width),
        pred_masks=masks,
        scores=torch.as_tensor(rng.uniform(0.3, 1.0, len(boxes)), dtype=torch.float32),
        pred_classes=torch.as_tensor(classes, dtype=torch.int64),
    )


def run(out_dir: Optional[str] = None, **kwargs: Any) -> Dict[str, Any]:
    """
    :func:`measure_evaluator` without the metrics it computed, written to
    ``evaluation_benchmark.json`` in ``out_dir`` if set; ``kwargs`` go to
    :func:`measure_evaluator`.
    """
    report = measure_evaluator(**kwargs)
    result = {k: v for k, v in report.items() if k != "results"}
    if out_dir:
        write_result(result, out_dir, "evaluation_benchmark.json")
    logger.info(
        "evaluator on %d images of %dx%d with %d instances: %.1f ms/image, state %.2f MB, "
        "traced peak %.1f MB (the full masks would be %.0f MB)",
        result["num_images"],
        result["size"][1],
        result["size"][0],
        result["instances"],
        result["process_ms_per_image"],
        result["state_mb"],
        result["traced_peak_mb"],
        result["full_masks_mb"],
    )
    return result


def format_table(result: Dict[str, Any]) -> str:
    """One line per number of the result."""
    return "\n".join(f"{NAME} {k}: {v}" for k, v in result.items())


def measure_evaluator(
    num_images: int = 1000,
    size: Tuple[int, int] = (1080, 1920),
    instances: int = 50,
    seed: int = 0,
) -> Dict[str, Any]:
    """
    Evaluate synthetic predictions on a throw-away registered data set and measure the cost.

    Args:
        num_images: images to evaluate (try 5-20 first; 1000 takes a few minutes).
        size: (height, width) of every image.
        instances: ground-truth instances per image.
        seed: random seed.

    Returns:
        dict: ``process_s`` and ``evaluate_s`` (seconds), ``process_ms_per_image``,
        ``traced_peak_mb`` (tracemalloc peak during process+evaluate: Python and numpy
        allocations, not torch's), ``retained_mb`` (traced memory still held after ``process``
        of all images: the evaluator's state), ``state_mb`` (pickled size of what ``evaluate``
        gathers), ``maxrss_delta_mb`` (growth of the process's peak resident memory, 0 if an
        earlier peak was higher), and the ``results`` dict.
    """
    name = f"trashpole_benchmark_eval_{uuid.uuid4().hex[:8]}"
    records = _make_dataset(num_images, size, instances, seed)
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).thing_classes = list(CLASS_NAMES)
    rng = np.random.default_rng(seed + 1)
    try:
        m = _measure(TrashPoleEvaluator(name, distributed=False), records, rng)
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    report = {
        "num_images": num_images,
        "size": list(size),
        "instances": instances,
        "process_s": m["process_s"],
        "process_ms_per_image": 1000.0 * m["process_s"] / max(num_images, 1),
        "evaluate_s": m["evaluate_s"],
        "traced_peak_mb": m["peak"] / 2**20,
        "retained_mb": m["retained"] / 2**20,
        "state_mb": m["state_bytes"] / 2**20,
        "maxrss_delta_mb": m["maxrss_delta_kib"] / 1024.0,  # ru_maxrss is in KiB on Linux
        "full_masks_mb": num_images * instances * size[0] * size[1] / 2**20,
        "results": m["results"],
    }
    return report


def _measure(
    evaluator: TrashPoleEvaluator, records: List[Dict], rng: np.random.Generator
) -> Dict[str, Any]:
    """
    Run ``evaluator`` on a synthetic prediction of every record, then evaluate, under
    tracemalloc.

    Returns:
        ``process_s`` and ``evaluate_s`` (seconds), ``retained`` and ``peak`` (traced bytes
        after ``process``, and at most), ``state_bytes`` (pickled state), ``maxrss_delta_kib``
        and ``results``.
    """
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    process_s = 0.0
    for record in records:
        inputs = [{k: record[k] for k in ("image_id", "file_name", "height", "width")}]
        outputs = [{"instances": _prediction(record, rng)}]
        t0 = time.perf_counter()
        evaluator.process(inputs, outputs)
        process_s += time.perf_counter() - t0
        del outputs
    retained = tracemalloc.get_traced_memory()[0] - base
    t0 = time.perf_counter()
    results = evaluator.evaluate()
    evaluate_s = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    state_bytes = len(pickle.dumps(evaluator._state()))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "process_s": process_s,
        "evaluate_s": evaluate_s,
        "retained": retained,
        "peak": peak,
        "state_bytes": state_bytes,
        "maxrss_delta_kib": rss1 - rss0,
        "results": results,
    }
