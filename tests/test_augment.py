"""Train augmentations: polygon clipping, crops at native resolution, large-scale jitter and
copy-paste keep every polygon mask on its object's pixels."""

import numpy as np
import pytest
from detectron2.data import DatasetMapper
from detectron2.structures import BoxMode
from detectron2.structures.masks import polygons_to_bitmask
from PIL import Image
from tiny_model import write_tiny_config

from trashpole.config import load_config
from trashpole.data.augment import (
    PolygonCropTransform,
    build_train_mapper,
    nominal_train_size,
    train_scale_fn,
)
from trashpole.data.copy_paste import copy_paste
from trashpole.data.polygons import clip_polygon, polygon_area

# one colour per object, so that each mask can be checked against the pixels it covers
COLORS = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250), (250, 0, 250)]


def _square(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def test_clip_polygon_by_hand():
    square = np.array([[-5, -5], [5, -5], [5, 5], [-5, 5]], dtype=float)
    clipped = clip_polygon(square, 10, 10)
    assert polygon_area(clipped) == pytest.approx(25.0)
    assert clipped.min(0) == pytest.approx([0, 0]) and clipped.max(0) == pytest.approx([5, 5])
    # a triangle crossing the right edge: (0,0) (20,0) (0,10) cut at x = 10 keeps
    # 20*10/2 - 10*5/2 = 75
    triangle = np.array([[0, 0], [20, 0], [0, 10]], dtype=float)
    assert polygon_area(clip_polygon(triangle, 10, 10)) == pytest.approx(75.0)
    assert len(clip_polygon(square + 20, 10, 10)) < 3  # all outside


def test_crop_transform_clips_and_shifts_polygons():
    crop = PolygonCropTransform(5, 5, 10, 10, orig_w=30, orig_h=30)
    inside = np.array([[0, 0], [8, 0], [8, 8], [0, 8]], dtype=float)
    (p,) = crop.apply_polygons([inside])
    assert polygon_area(p) == pytest.approx(9.0)  # [5, 8] x [5, 8] shifted to [0, 3]^2
    assert p.min(0) == pytest.approx([0, 0]) and p.max(0) == pytest.approx([3, 3])
    assert crop.apply_polygons([inside + 100]) == []


def _write_record(path, size, boxes, first_color=0):
    """An image with one coloured rectangle per box, and its record (polygons, XYWH boxes)."""
    image = np.full((size, size, 3), 40, dtype=np.uint8)
    annotations = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        image[y0:y1, x0:x1] = COLORS[first_color + i]
        annotations.append(
            {
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "segmentation": [_square(x0, y0, x1, y1)],
                "category_id": 0,
            }
        )
    Image.fromarray(image[:, :, ::-1]).save(path)  # BGR -> RGB file
    return {"file_name": str(path), "height": size, "width": size, "annotations": annotations}


def _check_masks_match_colors(out):
    """Every instance's mask covers its object: at least 90% of the mask's pixels are nearest to
    one colour of COLORS (resized edges blend), and the box is the mask's box."""
    image = out["image"].numpy().transpose(1, 2, 0).astype(float)
    h, w = image.shape[:2]
    inst = out["instances"]
    assert len(inst) > 0
    palette = np.array(COLORS + [(40, 40, 40), (114, 114, 114)], dtype=float)  # + background, pad
    for polys, box in zip(inst.gt_masks.polygons, inst.gt_boxes.tensor.numpy()):
        mask = polygons_to_bitmask(polys, h, w)
        nearest = np.linalg.norm(image[mask][:, None] - palette[None], axis=2).argmin(1)
        counts = np.bincount(nearest, minlength=len(palette))
        assert counts.argmax() < len(COLORS)
        assert counts.max() >= 0.9 * mask.sum()
        points = np.concatenate([p.reshape(-1, 2) for p in polys])
        assert box == pytest.approx([*points.min(0), *points.max(0)], abs=1e-4)


def _cfg(tmp_path, **aug):
    cfg = load_config(write_tiny_config(tmp_path))
    for key, value in aug.items():
        cfg.TRASHPOLE.AUG[key] = value
    return cfg


def test_no_switch_keeps_detectron2s_mapper(tmp_path):
    assert type(build_train_mapper(_cfg(tmp_path))) is DatasetMapper


def test_native_crop_keeps_polygons_on_their_pixels(tmp_path):
    record = _write_record(
        tmp_path / "a.png", 96, [(5, 10, 25, 90), (40, 20, 52, 80), (70, 5, 80, 95)]
    )
    cfg = _cfg(tmp_path, NATIVE_CROP_PROB=1.0, WINDOW_SIZE=48)
    mapper = build_train_mapper(cfg, [record])
    for seed in range(6):
        np.random.seed(seed)
        out = mapper(record)
        assert tuple(out["image"].shape) == (3, 48, 48)  # cropped, not resized
        _check_masks_match_colors(out)


def test_large_scale_jitter_gives_the_window_and_exact_polygons(tmp_path):
    record = _write_record(tmp_path / "a.png", 96, [(5, 10, 25, 90), (40, 20, 60, 80)])
    cfg = _cfg(tmp_path, LSJ=True, LSJ_SCALE=(1.0, 2.0), WINDOW_SIZE=64)
    mapper = build_train_mapper(cfg, [record])
    for seed in range(4):
        np.random.seed(seed)
        out = mapper(record)
        assert tuple(out["image"].shape) == (3, 64, 64)
        if len(out["instances"]):
            _check_masks_match_colors(out)  # resized edges blend: 90% of each mask
    # the nominal training size is the window at the mean scale: 64 * 1.5
    assert nominal_train_size(cfg) == 96.0
    assert train_scale_fn(cfg)(96, 48) == pytest.approx(1.0)


class _AllOf:
    """A generator stub that makes copy_paste choose every donor instance, in order."""

    def randint(self, low, high):
        return high - 1

    def choice(self, n, size, replace):
        return np.arange(n)[:size]


def test_copy_paste_by_hand():
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    donor = np.full((20, 20, 3), 9, dtype=np.uint8)
    mine = {"segmentation": [np.array(_square(2, 2, 8, 8), dtype=float)], "bbox": [2, 2, 8, 8]}
    over = {"segmentation": [np.array(_square(5, 5, 12, 12), dtype=float)], "bbox": [5, 5, 12, 12]}
    free = {"segmentation": [np.array(_square(12, 2, 30, 6), dtype=float)], "bbox": [12, 2, 30, 6]}
    rng = _AllOf()  # paste every donor instance that fits
    out, annotations, pasted = copy_paste(image, [mine], donor, [over, free], rng)
    # `over` would cover pixels of `mine`: not pasted; `free` is clipped to the 20 px image
    assert pasted == 1 and len(annotations) == 2
    assert annotations[0] is mine
    (poly,) = annotations[1]["segmentation"]
    assert polygon_area(poly) == pytest.approx(8 * 4)
    assert annotations[1]["bbox"] == [12.0, 2.0, 20.0, 6.0]
    mask = polygons_to_bitmask([poly], 20, 20)
    assert (out[mask] == 9).all() and (out[~mask] == 0).all()
    assert (image == 0).all()  # the input is not modified


def test_copy_paste_in_the_mapper_keeps_every_mask_exact(tmp_path):
    a = _write_record(tmp_path / "a.png", 64, [(4, 4, 14, 60)])
    b = _write_record(tmp_path / "b.png", 64, [(30, 8, 40, 56), (50, 2, 60, 40)], first_color=1)
    cfg = _cfg(tmp_path, COPY_PASTE_PROB=1.0)
    cfg.INPUT.RANDOM_FLIP = "none"  # the pasted objects stay where the checks expect them
    mapper = build_train_mapper(cfg, [a, b])
    counts = set()
    for seed in range(8):
        np.random.seed(seed)
        out = mapper(a)
        counts.add(len(out["instances"]))
        _check_masks_match_colors(out)
    assert counts <= {1, 2, 3} and max(counts) > 1  # a's object, plus 1 or 2 pasted


def test_copy_paste_with_bitmasks():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    donor = np.full((12, 12, 3), 7, dtype=np.uint8)
    mine = np.zeros((10, 10), dtype=bool)
    mine[0:4, 0:4] = True
    theirs = np.zeros((12, 12), dtype=bool)
    theirs[6:12, 6:12] = True  # 6 x 6 in the donor, 4 x 4 inside the 10 px image
    out, annotations, pasted = copy_paste(
        image, [{"segmentation": mine}], donor, [{"segmentation": theirs}], _AllOf()
    )
    assert pasted == 1
    mask = annotations[1]["segmentation"]
    assert mask.shape == (10, 10) and mask.sum() == 16 and mask[6:10, 6:10].all()
    assert annotations[1]["bbox"] == [6.0, 6.0, 10.0, 10.0]
    assert (out[mask] == 7).all() and (out[~mask] == 0).all()
