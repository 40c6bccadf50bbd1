"""High-resolution synthetic photos with far, small objects (render_scene(far_objects=True,
height=H), python tools/make_synthetic.py --size WxH --far-objects)."""

import json
import os

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util

from synthetic import (
    ANNOTATION_FILE,
    SPLITS,
    instance_to_annotation,
    main,
    make_roboflow_export,
    render_scene,
)

SMALL = 32**2  # COCO's small objects: area under 32^2 px


def _decode(segmentation, height, width):
    rle = mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    return mask_util.decode(rle).astype(bool)


def test_far_objects_are_small_and_their_polygons_exact():
    small = 0
    for seed in (0, 1):
        image, instances = render_scene(
            np.random.default_rng(seed), 1200, far_objects=True, height=900
        )
        assert image.shape == (900, 1200, 3)
        for inst in instances:
            assert inst["mask"].shape == inst["full_mask"].shape == (900, 1200)
            ann = instance_to_annotation(inst["mask"], min_area=60)
            drawn = _decode(ann["segmentation"], 900, 1200)
            iou = (drawn & inst["mask"]).sum() / (drawn | inst["mask"]).sum()
            assert iou >= 0.95, (seed, int(inst["mask"].sum()), iou)
            small += ann["area"] < SMALL
    # 9 objects under 32^2 px: 6 in seed 0 (the smallest 233 px), 3 in seed 1 (the smallest 89)
    assert small >= 6


def test_a_cut_picture_is_rows_of_the_square_one():
    square, full = render_scene(np.random.default_rng(4), 320)
    cut, part = render_scene(np.random.default_rng(4), 320, height=240)
    tops = [t for t in range(320 - 240 + 1) if np.array_equal(square[t : t + 240], cut)]
    assert len(tops) == 1
    rows = slice(tops[0], tops[0] + 240)
    kept = [inst for inst in full if inst["mask"][rows].sum() >= 60 * (320 / 640) ** 2]
    assert len(part) == len(kept) > 0
    for a, b in zip(part, kept):
        assert a["category_id"] == b["category_id"]
        np.testing.assert_array_equal(a["mask"], b["mask"][rows])


def test_high_resolution_export_from_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "hires")
    main(["--out", out, "--num-images", "10", "--seed", "2", "--size", "640x480", "--far-objects"])
    assert "Synthetic Roboflow export" in capsys.readouterr().out
    with open(os.path.join(out, "README.dataset.txt")) as f:
        assert "10 street and campus scenes, 640x480 px, far objects, seed 2." in f.read()
    annotations = 0
    for split in SPLITS:
        with open(os.path.join(out, split, ANNOTATION_FILE)) as f:
            coco = json.load(f)
        for im in coco["images"]:
            assert (im["width"], im["height"]) == (640, 480)
            assert cv2.imread(os.path.join(out, split, im["file_name"])).shape == (480, 640, 3)
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            assert 0 <= x and x + w <= 640 and 0 <= y and y + h <= 480
            annotations += 1
    assert annotations >= 6


def test_bad_sizes(tmp_path, capsys):
    with pytest.raises(ValueError, match="height must be 64 px to the width"):
        make_roboflow_export(str(tmp_path / "x"), 3, image_size=200, height=300)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "y"), "--size", "3200"])
    assert "'3200' is not WxH" in capsys.readouterr().err
