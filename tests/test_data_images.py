"""Pixels and annotations line up after detectron2's DatasetMapper: EXIF orientation, grayscale,
RGBA, palette PNG and RLE masks."""

import os
import tempfile

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from conftest import ANNOTATION_FILE, save_json
from detectron2.data import DatasetMapper
from detectron2.data.detection_utils import read_image
from PIL import Image

from trashpole.data import validate_coco_json
from trashpole.data.geometry import exif_transform_points

RAW_W, RAW_H = 48, 32  # not square, so orientations 5-8 swap width and height
RAW_BOX = (5, 4, 20, 14)  # x0, y0, x1, y1 of the object in the stored (un-rotated) pixels
GREEN = (30, 200, 60)


def _raw_pixels(mode="RGB"):
    pixels = np.full((RAW_H, RAW_W, 3), 30, dtype=np.uint8)
    x0, y0, x1, y1 = RAW_BOX
    pixels[y0:y1, x0:x1] = GREEN
    image = Image.fromarray(pixels)
    return image if mode == "RGB" else image.convert(mode)


def _oriented_box(orientation):
    """The object's box and the image size after the EXIF orientation, as read_image sees them."""
    mask = np.zeros((RAW_H, RAW_W), dtype=np.uint8)
    x0, y0, x1, y1 = RAW_BOX
    mask[y0:y1, x0:x1] = 255
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mask.png")
        exif = Image.Exif()
        exif[274] = orientation
        Image.fromarray(mask).save(path, exif=exif.tobytes())
        seen = read_image(path, format="L")[:, :, 0]
    ys, xs = np.nonzero(seen)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return box, (seen.shape[1], seen.shape[0])


def _write_split(folder, image, box, size, ext="jpg", orientation=1, segmentation=None):
    """One image with one annotation (a rectangle polygon unless ``segmentation``)."""
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[274] = orientation
        kwargs["exif"] = exif.tobytes()
    image.save(folder / f"a.{ext}", quality=95, **kwargs)
    x0, y0, x1, y1 = box
    ann = {
        "id": 0,
        "image_id": 0,
        "category_id": 1,
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "segmentation": segmentation or [[x0, y0, x1, y0, x1, y1, x0, y1]],
        "iscrowd": 0,
    }
    data = {
        "categories": [
            {"id": 0, "name": "things", "supercategory": "none"},
            {"id": 1, "name": "trash-can", "supercategory": "things"},
        ],
        "images": [{"id": 0, "file_name": f"a.{ext}", "width": size[0], "height": size[1]}],
        "annotations": [ann],
    }
    save_json(folder / ANNOTATION_FILE, data)


def _map(folder):
    """(report, mapped dict) of the split's only image through a train DatasetMapper."""
    dicts, report = validate_coco_json(str(folder / ANNOTATION_FILE), str(folder))
    mapper = DatasetMapper(
        is_train=True,
        augmentations=[],
        image_format="RGB",
        use_instance_mask=True,
        instance_mask_format="bitmask",
    )
    return report, mapper(dicts[0])


def _object_iou(mapped):
    """IoU of the first ground-truth mask with the green pixels of the mapped image."""
    image = mapped["image"].numpy().astype(int)  # [3, H, W] RGB
    green = (image[1] > 120) & (image[0] < 100)
    mask = mapped["instances"].gt_masks.tensor[0].numpy()
    assert mask.shape == green.shape
    return (mask & green).sum() / (mask | green).sum()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_points_match_pil_transpose(orientation):
    (x0, y0, x1, y1), _ = _oriented_box(orientation)
    corners = np.array([RAW_BOX[:2], RAW_BOX[2:]], dtype=float)
    moved = exif_transform_points(corners, orientation, RAW_W, RAW_H)
    np.testing.assert_allclose(np.concatenate([moved.min(0), moved.max(0)]), [x0, y0, x1, y1])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_annotations_on_the_rotated_image_line_up(tmp_path, orientation):
    box, size = _oriented_box(orientation)
    _write_split(tmp_path, _raw_pixels(), box, size, orientation=orientation)
    report, mapped = _map(tmp_path)
    assert _object_iou(mapped) > 0.9
    expected = ["exif_ambiguous"] if orientation in (2, 3, 4) else []
    assert list(report.counts()) == expected


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_annotations_on_the_raw_pixels_are_rotated(tmp_path, orientation):
    _write_split(tmp_path, _raw_pixels(), RAW_BOX, (RAW_W, RAW_H), "jpg", orientation)
    report, mapped = _map(tmp_path)
    assert list(report.counts()) == ["exif_raw_frame"]
    assert _object_iou(mapped) > 0.9
    box = [float(v) for v in _oriented_box(orientation)[0]]
    assert mapped["instances"].gt_boxes.tensor.tolist() == [box]


def test_png_with_exif_orientation(tmp_path):
    _write_split(tmp_path, _raw_pixels(), RAW_BOX, (RAW_W, RAW_H), "png", orientation=6)
    report, mapped = _map(tmp_path)
    assert list(report.counts()) == ["exif_raw_frame"]
    assert _object_iou(mapped) > 0.99


@pytest.mark.parametrize("mode, ext", [("L", "jpg"), ("RGBA", "png"), ("P", "png"), ("L", "png")])
def test_grayscale_rgba_and_palette_images(tmp_path, mode, ext):
    _write_split(tmp_path, _raw_pixels(mode), RAW_BOX, (RAW_W, RAW_H), ext)
    _, mapped = _map(tmp_path)
    image = mapped["image"]
    assert image.shape == (3, RAW_H, RAW_W) and image.dtype == torch.uint8
    bright = image.float().mean(0).numpy() > 70  # the object is brighter than the background
    mask = mapped["instances"].gt_masks.tensor[0].numpy()
    assert (mask & bright).sum() / (mask | bright).sum() > 0.9


def _raw_box_rle() -> dict:
    """Compressed RLE (JSON-ready) of RAW_BOX in the raw, un-rotated frame."""
    mask = np.zeros((RAW_H, RAW_W), dtype=np.uint8)
    x0, y0, x1, y1 = RAW_BOX
    mask[y0:y1, x0:x1] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def test_rle_masks_line_up_through_the_mapper(tmp_path):
    rle = _raw_box_rle()
    _write_split(tmp_path, _raw_pixels(), RAW_BOX, (RAW_W, RAW_H), "png", segmentation=rle)
    report, mapped = _map(tmp_path)
    assert report.problems == []
    assert _object_iou(mapped) == 1.0


def test_rle_on_raw_pixels_is_rotated(tmp_path):
    rle = _raw_box_rle()
    _write_split(tmp_path, _raw_pixels(), RAW_BOX, (RAW_W, RAW_H), "png", 8, segmentation=rle)
    report, mapped = _map(tmp_path)
    assert list(report.counts()) == ["exif_raw_frame"]
    assert _object_iou(mapped) == 1.0
