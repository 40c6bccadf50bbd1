"""The export on disk in Roboflow's COCO layout, and the command line."""

import argparse
import datetime
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from synthetic.polygons import instance_to_annotation
from synthetic.render import draw_scene, scaled_min_area
from synthetic.scene import CATEGORIES, CLASS_NAMES, EMPTY_PROB
from trashpole.data.register import ANNOTATION_FILE, SPLIT_FOLDERS
from trashpole.jsonio import write_json

logger = logging.getLogger(__name__)

SPLITS = tuple(SPLIT_FOLDERS)  # the canonical split names are the folders Roboflow writes


def _split_counts(num_images: int, fractions: Sequence[float]) -> Dict[str, int]:
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split_fractions must be three non-negative numbers for {SPLITS} that sum to 1, "
            f"got {tuple(fractions)}"
        )
    counts = {
        "train": int(round(num_images * fractions[0])),
        "valid": int(round(num_images * fractions[1])),
    }
    counts["test"] = num_images - counts["train"] - counts["valid"]
    for split, frac in zip(SPLITS, fractions):
        if frac > 0 and counts[split] <= 0:
            raise ValueError(
                f"num_images={num_images} leaves no image for the {split!r} split "
                f"({frac:.0%}); ask for more images"
            )
    return counts


def _is_export_entry(root: str, name: str) -> bool:
    path = os.path.join(root, name)
    if os.path.isfile(path):
        return name.startswith("README") and name.endswith(".txt")
    if name not in SPLITS or not os.path.isdir(path):
        return False
    for entry in os.listdir(path):
        if entry != ANNOTATION_FILE and not entry.lower().endswith((".jpg", ".jpeg", ".png")):
            return False
    return True


def _prepare_out_dir(out_dir: str) -> None:
    """Creates ``out_dir`` or empties an earlier export in it; refuses to delete anything else."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"{out_dir}: is a file, not a folder; choose another --out")
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
        return
    for name in sorted(os.listdir(out_dir)):
        if not _is_export_entry(out_dir, name):
            raise FileExistsError(
                f"{out_dir}: holds {name!r}, which is not part of a Roboflow export; "
                "choose an empty or new folder for --out, or remove it"
            )
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _file_name(kind: str, seed: int, index: int) -> str:
    """Roboflow-style file name, e.g. street_0007_jpg.rf.3f9c0a51d2e84b76.jpg; the hex digits
    are a hash of seed and index."""
    digest = hashlib.sha256(f"trashpole-synthetic/{seed}/{index}".encode()).hexdigest()[:16]
    return f"{kind}_{index:04d}_jpg.rf.{digest}.jpg"


def _date_captured(seed: int, index: int) -> str:
    offset = int(hashlib.sha256(f"date/{seed}/{index}".encode()).hexdigest()[:8], 16) % (90 * 86400)
    start = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)
    return (start + datetime.timedelta(seconds=offset)).isoformat()


def _empty_coco(seed: int) -> Dict:
    return {
        "info": {
            "year": "2024",
            "version": "1",
            "description": f"trashpole synthetic street and campus scenes (seed {seed})",
            "contributor": "trashpole",
            "url": "",
            "date_created": "2024-06-01T00:00:00+00:00",
        },
        "licenses": [
            {"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}
        ],
        "categories": [dict(c) for c in CATEGORIES],
        "images": [],
        "annotations": [],
    }


def make_roboflow_export(
    out_dir: str,
    num_images: int = 200,
    seed: int = 0,
    image_size: int = 640,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    height: Optional[int] = None,
    far_objects: bool = False,
) -> Dict[str, int]:
    """Writes a synthetic data set in Roboflow's COCO segmentation export layout.

    ``out_dir/{train,valid,test}/`` each get ``_annotations.coco.json`` and the JPEGs. Image ``i``
    depends only on (seed, i), and the split of every image on the seed, so the same arguments
    give byte-identical files. An earlier export in ``out_dir`` is replaced.

    Args:
        out_dir: destination folder; must be absent, empty or an earlier export.
        num_images: images over all splits.
        seed: non-negative random seed.
        image_size: side of the square images, px; with ``height``, their width.
        split_fractions: shares of (train, valid, test).
        height: cut the images to this many rows (at most ``image_size``; None: square).
        far_objects: high-resolution photos with poles and trash cans far away, a few pixels
            wide (:func:`synthetic.render_scene`). False gives the default data
            set, the same files as without the option.

    Returns:
        Number of images per split, e.g. {"train": 160, "valid": 20, "test": 20}.

    Raises:
        FileExistsError: ``out_dir`` holds something that is not part of an export.
        ValueError: bad arguments (negative seed, splits that get no image, ...).
    """
    _check_arguments(seed, image_size, height)
    counts = _split_counts(num_images, split_fractions)
    _prepare_out_dir(out_dir)
    split_of = _assign_splits(num_images, counts, seed)
    cocos = {s: _empty_coco(seed) for s in SPLITS if counts[s] > 0}
    for s in cocos:
        os.makedirs(os.path.join(out_dir, s))
    scene = _Scene(image_size, height, far_objects)
    for index in range(num_images):
        _add_image(cocos[split_of[index]], out_dir, split_of[index], seed, index, scene)
        if (index + 1) % 50 == 0 or index + 1 == num_images:
            logger.info(
                "synthetic export: %d/%d images written to %s", index + 1, num_images, out_dir
            )
    for s, coco in cocos.items():
        write_json(coco, os.path.join(out_dir, s, ANNOTATION_FILE), indent=None)
    _write_readme(out_dir, num_images, seed, scene)
    return counts


def _check_arguments(seed: int, image_size: int, height: Optional[int]) -> None:
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64 px, got {image_size}")
    if height is not None and not 64 <= height <= image_size:
        raise ValueError(f"height must be 64 px to the width ({image_size}), got {height}")


def _assign_splits(num_images: int, counts: Dict[str, int], seed: int) -> Dict[int, str]:
    """{image index: split}: the images in an order drawn from ``seed``, cut into ``counts``
    images per split (in the order of ``SPLITS``)."""
    order = np.random.default_rng(seed).permutation(num_images)
    bounds = np.cumsum([counts[s] for s in SPLITS])
    return {
        int(index): SPLITS[int(np.searchsorted(bounds, pos, side="right"))]
        for pos, index in enumerate(order)
    }


@dataclass(frozen=True)
class _Scene:
    width: int
    height: Optional[int]  # None: square
    far_objects: bool

    def describe(self) -> str:
        size = f"{self.width}x{self.height or self.width} px"
        return size + (", far objects" if self.far_objects else "")


def _add_image(coco: Dict, out_dir: str, split: str, seed: int, index: int, sc: _Scene) -> None:
    rng = np.random.default_rng([seed, index])
    image, instances, kind = draw_scene(rng, sc.width, EMPTY_PROB, sc.far_objects, sc.height)
    name = _file_name(kind, seed, index)
    quality = int(rng.integers(72, 96))
    path = os.path.join(out_dir, split, name)
    if not cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"{path}: could not write the JPEG")
    image_id = len(coco["images"])
    coco["images"].append(
        {
            "id": image_id,
            "license": 1,
            "file_name": name,
            "height": image.shape[0],
            "width": image.shape[1],
            "date_captured": _date_captured(seed, index),
        }
    )
    for inst in instances:
        ann = instance_to_annotation(inst["mask"], scaled_min_area(sc.width, sc.far_objects))
        if ann is not None:
            ann = {
                "id": len(coco["annotations"]),
                "image_id": image_id,
                "category_id": inst["category_id"],
                **ann,
                "iscrowd": 0,
            }
            coco["annotations"].append(ann)


def _write_readme(out_dir: str, num_images: int, seed: int, sc: _Scene) -> None:
    with open(os.path.join(out_dir, "README.dataset.txt"), "w") as f:
        f.write(
            "trashpole synthetic data set\n"
            f"{num_images} street and campus scenes, {sc.describe()}, seed {seed}.\n"
            "Drawn by trashpole's synthetic generator (synthetic/ in its checkout) as a stand-in\n"
            "for the real campus photos;\n"
            "classes: pole, trash-can (COCO segmentation, Roboflow export layout).\n"
        )


def _class_counts(out_dir: str) -> Dict[str, Dict[str, int]]:
    """Per split: number of images and of instances per class name."""
    names = {c["id"]: c["name"] for c in CATEGORIES}
    table = {}
    for s in SPLITS:
        path = os.path.join(out_dir, s, ANNOTATION_FILE)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            coco = json.load(f)
        row = {"images": len(coco["images"]), **{n: 0 for n in CLASS_NAMES}}
        for ann in coco["annotations"]:
            row[names[ann["category_id"]]] += 1
        table[s] = row
    return table


def _width_height(text: str) -> Tuple[int, int]:
    """``"3200x2400"`` -> (3200, 2400)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WxH, e.g. 3200x2400") from None
    return width, height


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line: ``python tools/make_synthetic.py --out DIR [--num-images N] ...``."""
    parser = argparse.ArgumentParser(
        description="Write the synthetic trashpole data set (Roboflow COCO layout)."
    )
    parser.add_argument(
        "--out", required=True, help="destination folder (absent, empty, or an earlier export)"
    )
    parser.add_argument(
        "--num-images", type=int, default=200, help="images over all splits (80/10/10)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives the same files"
    )
    parser.add_argument("--image-size", type=int, default=640, help="side of the square images, px")
    parser.add_argument(
        "--size",
        type=_width_height,
        help="WxH, e.g. 3200x2400: images W px wide cut to H rows (H <= W); replaces --image-size",
    )
    parser.add_argument(
        "--far-objects",
        action="store_true",
        help="high-resolution photos: more poles and trash cans far away, a few px wide",
    )
    args = parser.parse_args(argv)
    width, height = args.size or (args.image_size, None)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    try:
        make_roboflow_export(
            args.out,
            args.num_images,
            args.seed,
            width,
            height=height,
            far_objects=args.far_objects,
        )
    except (FileExistsError, ValueError) as exc:
        parser.error(str(exc))
    print(f"Synthetic Roboflow export in {os.path.abspath(args.out)}")
    for split, row in _class_counts(args.out).items():
        classes = ", ".join(f"{row[n]} {n}" for n in CLASS_NAMES)
        print(f"  {split:5s}: {row['images']:4d} images, {classes}")
