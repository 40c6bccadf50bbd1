"""Bad and unusual image files, in a data split and in prediction: each is reported, none crashes.
Every file is written here: a truncated JPEG, a 0-byte file, a 16-bit PNG, a CMYK JPEG, and an
image over PIL's decompression-bomb limit (the limit is lowered instead of writing a huge file)."""

import json
import logging

import numpy as np
import pytest
import torch
from conftest import ANNOTATION_FILE, CLASS_COLORS, edit_json, write_tiny_export
from detectron2.data import DatasetCatalog, Metadata
from detectron2.data.detection_utils import read_image
from detectron2.structures import Boxes, Instances
from PIL import Image

from synthetic import CLASS_NAMES
from trashpole.data import register_roboflow_splits, validate_coco_json, write_data_summary
from trashpole.predict import predict_paths

SIZE = 64  # side of the tiny export's images
BOMB = 2 * SIZE  # the bomb is 128 x 128 = 16384 pixels ...
LIMIT = SIZE * SIZE  # ... and MAX_IMAGE_PIXELS 4096: PIL refuses over 2 x 4096 = 8192 pixels


def noise(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def write_bad(folder, name: str, case: str) -> str:
    """Write the ``case`` file as ``folder/<name>.<ext>``; returns the file name."""
    ext = {"gray16": "png", "bomb": "png"}.get(case, "jpg")
    path = folder / f"{name}.{ext}"
    if case == "truncated":
        Image.fromarray(noise(SIZE)).save(path, quality=95)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "gray16":
        # 8-bit values v stored as v * 257: scaled back to 8 bits they are exactly v again
        gray = np.tile(np.arange(SIZE, dtype=np.uint16) * 4, (SIZE, 1)) * 257
        Image.fromarray(gray).save(path)  # PIL stores uint16 as mode I;16
    elif case == "cmyk":
        pixels = np.full((SIZE, SIZE, 3), CLASS_COLORS[1], dtype=np.uint8)
        Image.fromarray(pixels).convert("CMYK").save(path, quality=95)
    elif case == "bomb":
        Image.fromarray(noise(BOMB)).save(path)
    return path.name


@pytest.fixture
def low_pil_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT)


def _split_with(tmp_path, cases):
    """A train split of len(cases) + 1 images whose first ones are replaced by the cases."""
    folder = write_tiny_export(tmp_path, splits=("train",), num_images=len(cases) + 1) / "train"
    for index, case in enumerate(cases):
        old = folder / f"train_{index:03d}.jpg"
        old.unlink()
        name = write_bad(folder, f"train_{index:03d}", case)
        size = BOMB if case == "bomb" else SIZE

        def rename(d, index=index, name=name, size=size):
            d["images"][index].update(file_name=name, width=size, height=size)

        edit_json(folder / ANNOTATION_FILE, rename)
    return folder


@pytest.mark.parametrize(
    "case, kind, detail",
    [
        ("truncated", "image_unreadable", "cannot be read: OSError: image file is truncated"),
        ("empty", "image_unreadable", "is an empty file (0 bytes)"),
        ("gray16", "image_bit_depth", "has I;16 pixels (16-bit or float)"),
        ("bomb", "image_too_large", "is too large for PIL: Image size (16384 pixels) exceeds "
         "limit of 8192 pixels"),
    ],
)  # fmt: skip
def test_a_split_skips_and_reports_an_unusable_image(tmp_path, low_pil_limit, case, kind, detail):
    folder = _split_with(tmp_path, [case])
    dicts, report = validate_coco_json(str(folder / ANNOTATION_FILE), str(folder))
    assert [d["image_id"] for d in dicts] == [1]
    assert report.counts() == {kind: 1}
    label = f"train/_annotations.coco.json: image 0 ({report.problems[0].record.split('(')[1]}"
    assert report.problems[0].message.startswith(label + f" {detail}")
    assert report.problems[0].action == "skipped image"


def test_a_cmyk_image_is_converted_and_used(tmp_path):
    folder = _split_with(tmp_path, ["cmyk"])
    dicts, report = validate_coco_json(str(folder / ANNOTATION_FILE), str(folder))
    assert [d["image_id"] for d in dicts] == [0, 1]
    assert report.counts() == {"image_converted": 1} and not report.blocking
    # detectron2 reads it as the RGB colour it was made of (JPEG rounding aside)
    pixels = read_image(dicts[0]["file_name"], format="RGB")
    assert pixels.shape == (SIZE, SIZE, 3)
    np.testing.assert_allclose(pixels.reshape(-1, 3).mean(0), CLASS_COLORS[1], atol=3)


def test_the_data_summary_lists_skipped_and_converted_images(
    tmp_path, low_pil_limit, clean_catalogs
):
    cases = ["truncated", "empty", "gray16", "bomb", "cmyk"]
    root = _split_with(tmp_path, cases).parent
    names = register_roboflow_splits("bad", str(root))
    assert len(DatasetCatalog.get(names["train"])) == 2  # the CMYK image and the good one
    summary = write_data_summary([names["train"]], str(tmp_path / "summary"))
    split = summary["splits"]["bad_train"]
    assert split["problems"] == {
        "image_unreadable": 2,
        "image_too_large": 1,
        "image_bit_depth": 1,
        "image_converted": 1,
    }
    assert len(split["skipped_images"]) == 4 and len(split["converted_images"]) == 1
    text = (tmp_path / "summary" / "data_summary.txt").read_text()
    for index, name in enumerate(["train_000.jpg", "train_001.jpg", "train_002.png"]):
        assert f"    skipped: train/_annotations.coco.json: image {index} ({name})" in text
    assert "    skipped: train/_annotations.coco.json: image 3 (train_003.png) is too large" in text
    assert "    converted: train/_annotations.coco.json: image 4 (train_004.jpg) is CMYK" in text


class RecordingPredictor:
    """Stands in for TrashPolePredictor: records the images it is given, predicts nothing."""

    class_names = list(CLASS_NAMES)
    metadata = Metadata(thing_classes=class_names)

    def __init__(self):
        self.images = []

    def __call__(self, image):
        self.images.append(image)
        h, w = image.shape[:2]
        empty = Instances((h, w), pred_boxes=Boxes(torch.zeros(0, 4)), scores=torch.zeros(0))
        empty.pred_classes = torch.zeros(0, dtype=torch.int64)
        empty.pred_masks = torch.zeros(0, h, w, dtype=torch.bool)
        return {"instances": empty}


def test_prediction_skips_and_lists_bad_images(tmp_path, low_pil_limit, caplog, monkeypatch):
    # detectron2's setup_logger, once called in this process, stops "trashpole" propagating
    monkeypatch.setattr(logging.getLogger("trashpole"), "propagate", True)
    folder = tmp_path / "photos"
    folder.mkdir()
    files = {case: write_bad(folder, case, case) for case in ("truncated", "empty", "bomb")}
    files.update({case: write_bad(folder, case, case) for case in ("gray16", "cmyk")})
    Image.fromarray(noise(SIZE, seed=1)).save(folder / "good.png")
    predictor = RecordingPredictor()
    counts = predict_paths(predictor, str(folder), str(tmp_path / "out"), save_overlays=False)
    assert (counts["images"], counts["skipped"], counts["converted"]) == (3, 3, 2)

    written = json.loads((tmp_path / "out" / "predictions.json").read_text())
    reasons = {item["file_name"].split("/")[-1]: item["reason"] for item in written["skipped"]}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["truncated.jpg"].startswith("truncated or corrupt (OSError: image file is")
    assert reasons["bomb.png"].startswith(
        "too large: Image size (16384 pixels) exceeds limit of 8192 pixels"
    )
    notes = {item["file_name"].split("/")[-1]: item["note"] for item in written["converted"]}
    assert notes == {"cmyk.jpg": "CMYK, converted to RGB", "gray16.png": "16-bit grayscale, scaled "
                     "to 8 bits"}  # fmt: skip
    assert sorted(n.split("/")[-1] for n in written["images"]) == ["cmyk.jpg", "good.png",
                                                                   "gray16.png"]  # fmt: skip
    assert "skipped 3 of 6 images (listed in predictions.json): bomb.png: too large" in caplog.text

    # the converted pixels are right: files are read in sorted order (cmyk, good, gray16)
    cmyk, good, gray16 = predictor.images
    np.testing.assert_allclose(cmyk.reshape(-1, 3).mean(0), CLASS_COLORS[1][::-1], atol=3)
    np.testing.assert_array_equal(good, noise(SIZE, seed=1)[:, :, ::-1])
    expected = np.tile(np.arange(SIZE, dtype=np.uint8) * 4, (SIZE, 1))
    np.testing.assert_array_equal(gray16, np.repeat(expected[:, :, None], 3, axis=2))
