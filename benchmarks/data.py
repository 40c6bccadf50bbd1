"""
How long it takes to register and load a large export (10,000 images by default).

The export is generated: one small placeholder JPEG hard-linked under every file name (so that
the file checks run for real without writing 10,000 images) and a Roboflow-style JSON with a few
24-point polygons per image. JSON parsing, validation without file checks and the file checks are
timed separately, then registration and ``DatasetCatalog.get`` as the trainer calls them.
"""

import json
import logging
import math
import os
import shutil
import time
from typing import Any, Dict

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from trashpole.data.register import ANNOTATION_FILE, register_roboflow_splits
from trashpole.data.validation import validate_coco_json
from trashpole.jsonio import write_json

logger = logging.getLogger(__name__)

_NAME = "trashpole_benchmark_data"
NAME = "data"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"num_images": 200}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"num_images": "num_images"}


def write_large_export(
    root: str, num_images: int, size: int = 64, instances_per_image: int = 3
) -> str:
    """Write ``root/train`` with ``num_images`` images; returns the JSON path."""
    folder = os.path.join(root, "train")
    os.makedirs(folder, exist_ok=True)
    placeholder = os.path.join(root, "placeholder.jpg")
    Image.fromarray(np.full((size, size, 3), 90, dtype=np.uint8)).save(placeholder, quality=90)
    images, annotations = [], []
    angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    for i in range(num_images):
        file_name = f"img_{i:06d}_jpg.rf.{i:08x}.jpg"
        _link(placeholder, os.path.join(folder, file_name))
        images.append({"id": i, "file_name": file_name, "height": size, "width": size})
        for k in range(instances_per_image):
            cx, cy, r = size * (0.25 + 0.25 * k), size * 0.5, size * 0.1
            poly = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).ravel()
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": i,
                    "category_id": 1 + k % 2,
                    "bbox": [cx - r, cy - r, 2 * r, 2 * r],
                    "area": math.pi * r * r,
                    "segmentation": [np.round(poly, 2).tolist()],
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": 0, "name": "trash-poles", "supercategory": "none"},
        {"id": 1, "name": "pole", "supercategory": "trash-poles"},
        {"id": 2, "name": "trash-can", "supercategory": "trash-poles"},
    ]
    json_file = os.path.join(folder, ANNOTATION_FILE)
    coco = {"categories": categories, "images": images, "annotations": annotations}
    write_json(coco, json_file, indent=None)
    return json_file


def _link(src: str, dst: str) -> None:
    if os.path.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:  # file systems without hard links
        shutil.copyfile(src, dst)


def run(out_dir: str, num_images: int = 10000) -> Dict[str, Any]:
    """Time registration and loading of a generated export of ``num_images`` images.

    Args:
        out_dir: the export and ``data_benchmark.json`` go to its ``data/`` (created if needed).
        num_images: images in the train split (3 instances each).

    Returns:
        dict of ``num_images``, ``num_annotations``, ``json_mb`` and seconds: ``write_s``,
        ``json_parse_s``, ``validate_json_only_s`` (no file checks), ``file_checks_s`` (the rest
        of a full validation), ``register_s``, ``dataset_get_s`` and ``ms_per_image`` (of
        ``dataset_get_s``).
    """
    out_dir = os.path.join(out_dir, "data")
    root = os.path.join(out_dir, "export")
    result: Dict[str, Any] = {"num_images": num_images}
    start = time.perf_counter()
    json_file = write_large_export(root, num_images)
    result["write_s"] = time.perf_counter() - start
    result["json_mb"] = os.path.getsize(json_file) / 2**20

    start = time.perf_counter()
    with open(json_file) as f:
        result["num_annotations"] = len(json.load(f)["annotations"])
    result["json_parse_s"] = time.perf_counter() - start
    image_root = os.path.dirname(json_file)
    start = time.perf_counter()
    validate_coco_json(json_file, image_root, check_images=False)
    result["validate_json_only_s"] = time.perf_counter() - start
    start = time.perf_counter()
    validate_coco_json(json_file, image_root, check_images=True)
    result["file_checks_s"] = time.perf_counter() - start - result["validate_json_only_s"]

    start = time.perf_counter()
    names = register_roboflow_splits(_NAME, root)
    result["register_s"] = time.perf_counter() - start
    try:
        start = time.perf_counter()
        dicts = DatasetCatalog.get(names["train"])
        result["dataset_get_s"] = time.perf_counter() - start
    finally:
        for name in names.values():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    if len(dicts) != num_images:
        raise RuntimeError(f"loaded {len(dicts)} of {num_images} generated images")
    result["ms_per_image"] = 1000 * result["dataset_get_s"] / num_images
    write_json(result, os.path.join(out_dir, "data_benchmark.json"))
    logger.info("Data loading benchmark: " + ", ".join(f"{k}={_fmt(v)}" for k, v in result.items()))
    return result


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_table(result: Dict[str, Any]) -> str:
    """One line per number of the result."""
    return "\n".join(f"{NAME} {k}: {v}" for k, v in result.items())
