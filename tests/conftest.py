"""Shared test helpers: a tiny Roboflow-style COCO export written into tmp_path, and catalog
clean-up.

``write_tiny_export`` and the JSON helpers are plain functions (``from conftest import ...``);
``tiny_export`` and ``clean_catalogs`` are fixtures.
"""

import json
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import pytest
from PIL import Image

from synthetic import CLASS_NAMES

ANNOTATION_FILE = "_annotations.coco.json"
# the tiny export's classes are the synthetic data set's, so that every test names the same two
CLASSES = tuple(CLASS_NAMES)
BACKGROUND = (40, 40, 40)
# fill colour of each class's objects, by class index
CLASS_COLORS = [(230, 230, 230), (30, 180, 60), (200, 40, 40), (40, 80, 220)]


def object_box(class_index: int, num_classes: int, image_index: int, size: int) -> List[int]:
    """Pixel box [x0, y0, x1, y1] of the one object of a class in a tiny image.

    Each class gets a vertical slot of the image; odd classes are shorter; the object moves
    right by ``image_index % 3`` pixels so that the images differ.
    """
    shift = image_index % 3
    x0 = round(size * (class_index + 0.2) / num_classes) + shift
    x1 = round(size * (class_index + 0.8) / num_classes) + shift
    y0 = round(size * (0.1 + 0.3 * (class_index % 2)))
    y1 = round(size * 0.9)
    return [x0, y0, x1, y1]


def write_tiny_export(
    root: Union[str, Path],
    splits: Sequence[str] = ("train", "valid", "test"),
    num_images: int = 3,
    size: int = 64,
    classes: Sequence[str] = CLASSES,
    superclass: Optional[str] = "trash-poles",
    image_ext: str = "jpg",
    empty_images: int = 0,
) -> Path:
    """Write a Roboflow-style COCO export: ``root/<split>/_annotations.coco.json`` + images.

    Every image is ``size`` x ``size`` with a dark background and one filled rectangle per class
    (:func:`object_box`, colour :data:`CLASS_COLORS`), annotated with an exact rectangle polygon.
    Categories follow Roboflow: id 0 is the superclass (``supercategory: "none"``, unused) and
    the classes are ids 1..K; with ``superclass=None`` there is no id-0 entry.

    Args:
        root: export folder (created).
        splits: split folder names to write (e.g. ``("train", "val")``).
        num_images: annotated images per split.
        size: image side in pixels.
        classes: class names.
        superclass: name of the id-0 entry, or None for none.
        image_ext: ``"jpg"`` or ``"png"``.
        empty_images: extra images per split without any annotation (listed after the others).

    Returns:
        ``Path(root)``.
    """
    root = Path(root)
    for split in splits:
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(num_images + empty_images):
            file_name = f"{split}_{i:03d}.{image_ext}"
            pixels = np.full((size, size, 3), BACKGROUND, dtype=np.uint8)
            for k in range(len(classes) if i < num_images else 0):
                x0, y0, x1, y1 = object_box(k, len(classes), i, size)
                pixels[y0:y1, x0:x1] = CLASS_COLORS[k % len(CLASS_COLORS)]
                annotations.append(
                    _rectangle_annotation(len(annotations), i, k + 1, x0, y0, x1, y1)
                )
            Image.fromarray(pixels).save(folder / file_name, quality=95)
            images.append(
                {"id": i, "license": 1, "file_name": file_name, "height": size, "width": size}
            )
        save_json(folder / ANNOTATION_FILE, _export_json(images, annotations, classes, superclass))
    return root


def _rectangle_annotation(ann_id, image_id, category_id, x0, y0, x1, y1) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "area": (x1 - x0) * (y1 - y0),
        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
        "iscrowd": 0,
    }


def _export_json(images, annotations, classes, superclass) -> dict:
    categories = [
        {"id": k + 1, "name": name, "supercategory": superclass or "none"}
        for k, name in enumerate(classes)
    ]
    if superclass is not None:
        categories.insert(0, {"id": 0, "name": superclass, "supercategory": "none"})
    return {
        "info": {"description": "tiny test export"},
        "licenses": [{"id": 1, "name": "CC BY 4.0"}],
        "categories": categories,
        "images": images,
        "annotations": annotations,
    }


def load_json(path: Union[str, Path]) -> dict:
    with open(path) as f:
        return json.load(f)


def save_json(path: Union[str, Path], data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f)


def edit_json(path: Union[str, Path], edit: Callable[[dict], None]) -> dict:
    """Load a JSON, let ``edit`` change it in place, save it; returns the edited data."""
    data = load_json(path)
    edit(data)
    save_json(path, data)
    return data


@pytest.fixture
def tiny_export(tmp_path) -> Path:
    """A default export (train/valid/test, 3 images of 64 px each) in ``tmp_path/export``."""
    return write_tiny_export(tmp_path / "export")


@pytest.fixture
def clean_catalogs():
    """Remove every data set registered (and metadata created) during the test."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    datasets, metadata = set(DatasetCatalog.list()), set(MetadataCatalog.list())
    yield
    for name in set(DatasetCatalog.list()) - datasets:
        DatasetCatalog.remove(name)
    for name in set(MetadataCatalog.list()) - metadata:
        MetadataCatalog.remove(name)
