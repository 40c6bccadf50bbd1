"""Tests for the synthetic Roboflow export (synthetic/, the demo's generator, which stays in the
checkout), on tiny images."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from synthetic import (
    ANNOTATION_FILE,
    CATEGORIES,
    CLASS_NAMES,
    SPLITS,
    instance_to_annotation,
    main,
    make_roboflow_export,
    render_scene,
)

SIZE = 192  # px; small enough to keep the whole file fast


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A 10-image export at 192 px; returns (root, counts)."""
    root = str(tmp_path_factory.mktemp("synthetic"))
    return root, make_roboflow_export(root, num_images=10, seed=3, image_size=SIZE)


@pytest.fixture(scope="module")
def scenes():
    """Eight scenes at 256 px, drawn with fixed seeds."""
    return [render_scene(np.random.default_rng(seed), 256) for seed in range(8)]


def _load(root, split):
    with open(os.path.join(root, split, ANNOTATION_FILE)) as f:
        return json.load(f)


def _shoelace(poly):
    x, y = np.asarray(poly[0::2]), np.asarray(poly[1::2])
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def test_split_sizes(export):
    root, counts = export
    assert counts == {"train": 8, "valid": 1, "test": 1}
    assert sorted(os.listdir(root)) == ["README.dataset.txt", "test", "train", "valid"]
    for split in SPLITS:
        assert len(_load(root, split)["images"]) == counts[split]


def test_pycocotools_loads_every_split(export):
    root, _ = export
    for split in SPLITS:
        coco = COCO(os.path.join(root, split, ANNOTATION_FILE))
        assert coco.loadCats(coco.getCatIds()) == CATEGORIES
        assert not coco.getAnnIds(catIds=[0])  # the superclass holds no annotation


def test_json_layout_and_images(export):
    root, _ = export
    for split in SPLITS:
        data = _load(root, split)
        assert list(data) == ["info", "licenses", "categories", "images", "annotations"]
        assert [im["id"] for im in data["images"]] == list(range(len(data["images"])))
        assert [a["id"] for a in data["annotations"]] == list(range(len(data["annotations"])))
        for im in data["images"]:
            assert im["file_name"].endswith(".jpg") and "_jpg.rf." in im["file_name"]
            assert len(im["file_name"].split(".rf.")[1]) == len("0123456789abcdef.jpg")
            image = cv2.imread(os.path.join(root, split, im["file_name"]))
            assert image is not None, im["file_name"]
            assert image.shape == (im["height"], im["width"], 3) == (SIZE, SIZE, 3)


def test_annotations_are_valid_polygons(export):
    root, _ = export
    seen = 0
    for split in SPLITS:
        data = _load(root, split)
        sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
        for ann in data["annotations"]:
            w, h = sizes[ann["image_id"]]
            assert ann["category_id"] in (1, 2) and ann["iscrowd"] == 0
            xs, ys = [], []
            for poly in ann["segmentation"]:
                assert len(poly) >= 6 and len(poly) % 2 == 0
                assert _shoelace(poly) > 0
                xs += poly[0::2]
                ys += poly[1::2]
            assert 0 <= min(xs) and max(xs) <= w and 0 <= min(ys) and max(ys) <= h
            bx, by, bw, bh = ann["bbox"]
            assert np.allclose(
                [bx, by, bx + bw, by + bh], [min(xs), min(ys), max(xs), max(ys)], atol=0.02
            )
            assert ann["area"] > 0
            assert ann["area"] == pytest.approx(
                sum(_shoelace(p) for p in ann["segmentation"]), abs=0.05
            )
            seen += 1
    assert seen > 10


def test_both_classes_in_export(export):
    root, _ = export
    categories = {a["category_id"] for s in SPLITS for a in _load(root, s)["annotations"]}
    assert categories == {1, 2}


def test_rectangle_mask_to_annotation():
    mask = np.zeros((32, 32), bool)
    mask[10:20, 5:12] = True  # rows 10..19, columns 5..11: pixel edges at x 5..12, y 10..20
    ann = instance_to_annotation(mask)
    assert ann["bbox"] == [5.0, 10.0, 7.0, 10.0]
    assert ann["area"] == 70.0
    assert sorted(zip(ann["segmentation"][0][0::2], ann["segmentation"][0][1::2])) == [
        (5.0, 10.0),
        (5.0, 20.0),
        (12.0, 10.0),
        (12.0, 20.0),
    ]


def test_two_parts_and_tiny_masks():
    mask = np.zeros((40, 40), bool)
    mask[0:40, 0:3] = True  # touches the image border
    mask[5:9, 20:40] = True
    ann = instance_to_annotation(mask, min_area=10)
    assert len(ann["segmentation"]) == 2
    assert ann["bbox"] == [0.0, 0.0, 40.0, 40.0]
    assert ann["area"] == 200.0
    assert instance_to_annotation(np.eye(40, dtype=bool)) is None  # 40 px < 60


def test_polygons_rasterize_back_to_masks(scenes):
    count = 0
    for image, instances in scenes:
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        for inst in instances:
            ann = instance_to_annotation(inst["mask"], min_area=12)
            assert ann is not None
            rle = mask_util.merge(mask_util.frPyObjects(ann["segmentation"], 256, 256))
            drawn = mask_util.decode(rle).astype(bool)
            iou = (drawn & inst["mask"]).sum() / (drawn | inst["mask"]).sum()
            assert iou >= 0.9, (iou, inst["category_id"], int(inst["mask"].sum()))
            count += 1
    assert count >= 15


def test_scenes_hold_both_classes_and_occlusion(scenes):
    instances = [inst for _, insts in scenes for inst in insts]
    assert {inst["category_id"] for inst in instances} == {1, 2}
    for inst in instances:
        assert not (inst["mask"] & ~inst["full_mask"]).any()  # visible part lies within the shape
    # something stands in front of something else: visible parts cut out of the full shapes
    hidden = [1 - inst["mask"].sum() / inst["full_mask"].sum() for inst in instances]
    assert sum(h > 0.1 for h in hidden) >= 2


def test_render_is_deterministic():
    a_img, a_inst = render_scene(np.random.default_rng(11), 128)
    b_img, b_inst = render_scene(np.random.default_rng(11), 128)
    assert np.array_equal(a_img, b_img)
    assert len(a_inst) == len(b_inst)
    assert all(np.array_equal(a["mask"], b["mask"]) for a, b in zip(a_inst, b_inst))


def test_export_is_deterministic(tmp_path):
    def files(root):
        return {
            (s, name): open(os.path.join(root, s, name), "rb").read()
            for s in SPLITS
            for name in sorted(os.listdir(os.path.join(root, s)))
        }

    make_roboflow_export(str(tmp_path / "a"), num_images=10, seed=5, image_size=96)
    make_roboflow_export(str(tmp_path / "b"), num_images=10, seed=5, image_size=96)
    make_roboflow_export(str(tmp_path / "c"), num_images=10, seed=6, image_size=96)
    a, b, c = (files(str(tmp_path / x)) for x in "abc")
    assert a == b
    for split in SPLITS:
        assert a[(split, ANNOTATION_FILE)] != c[(split, ANNOTATION_FILE)]


def test_overwrites_an_export_and_refuses_other_folders(tmp_path):
    out = tmp_path / "export"
    make_roboflow_export(str(out), num_images=20, seed=1, image_size=96)
    make_roboflow_export(str(out), num_images=10, seed=2, image_size=96)
    jpgs = [n for s in SPLITS for n in os.listdir(out / s) if n.endswith(".jpg")]
    assert len(jpgs) == 10  # nothing left over from the first, larger export

    (out / "model_final.pth").write_bytes(b"weights")
    with pytest.raises(FileExistsError, match="model_final.pth"):
        make_roboflow_export(str(out), num_images=10, seed=2, image_size=96)
    assert (out / "model_final.pth").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="valid"):
        make_roboflow_export(str(tmp_path / "x"), num_images=3, image_size=96)
    with pytest.raises(ValueError, match="sum to 1"):
        make_roboflow_export(str(tmp_path / "y"), num_images=10, split_fractions=(0.5, 0.1, 0.1))


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    main(["--out", str(out), "--num-images", "10", "--seed", "4", "--image-size", "96"])
    printed = capsys.readouterr().out
    assert str(out) in printed
    for name in SPLITS + tuple(CLASS_NAMES):
        assert name in printed
    assert (out / "train" / ANNOTATION_FILE).exists()


def test_command_line_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "notes.md").write_text("keep me")
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path), "--num-images", "10", "--image-size", "96"])
    assert exc.value.code == 2
    assert "notes.md" in capsys.readouterr().err
    assert (tmp_path / "notes.md").read_text() == "keep me"


def test_tool_runs_from_outside_the_checkout(tmp_path):
    """tools/make_synthetic.py finds synthetic/ (not installed) from any working folder and writes
    the same files as main() with the same arguments."""
    tool = Path(__file__).resolve().parents[1] / "tools" / "make_synthetic.py"
    args = ["--num-images", "10", "--seed", "4", "--image-size", "96"]
    proc = subprocess.run(
        [sys.executable, str(tool), "--out", "by_tool", *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    main(["--out", str(tmp_path / "by_main"), *args])
    for split in SPLITS:
        by_tool = _load(str(tmp_path / "by_tool"), split)
        assert by_tool == _load(str(tmp_path / "by_main"), split)
        assert len(by_tool["images"]) == {"train": 8, "valid": 1, "test": 1}[split]
