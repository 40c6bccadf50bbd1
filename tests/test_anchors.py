"""RPN anchors from the data: shapes, coverage, the fit, the setup step and a pretrained head."""

import logging
import math

import numpy as np
import pytest
import torch
from conftest import write_tiny_export
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from tiny_model import write_tiny_config

from trashpole.config import load_config
from trashpole.data.anchors import best_anchor_iou, cell_anchor_shapes, fit_anchors


def test_cell_anchor_shapes_are_detectron2s():
    shapes = cell_anchor_shapes([32], [0.5, 1.0, 2.0])
    r2 = math.sqrt(2)
    assert shapes == pytest.approx(np.array([[32 * r2, 32 / r2], [32, 32], [32 / r2, 32 * r2]]))


def test_best_anchor_iou_by_hand():
    # a 16 x 64 box in a 32 x 32 anchor: 16*32 / (16*64 + 32*32 - 16*32) = 512 / 1536
    boxes = np.array([[16.0, 64.0]])
    assert best_anchor_iou(boxes, np.array([[32.0, 32.0]])) == pytest.approx([1 / 3])
    # ratio 4 at size 32 is exactly 16 x 64
    assert best_anchor_iou(boxes, cell_anchor_shapes([32], [1.0, 4.0])) == pytest.approx([1.0])


def test_fit_finds_thin_ratios_and_keeps_their_number():
    boxes = np.array([[10.0, 90.0]] * 6 + [[60.0, 15.0]] * 4)  # ratios 9 and 1/4, area 30^2
    fit = fit_anchors(boxes, [[30]], [0.5, 1.0, 2.0], iou_thresh=0.7)
    assert fit.coverage_before == 0.0
    assert fit.coverage_after == 1.0
    assert len(fit.ratios) == 3
    assert min(abs(math.log(r / 9)) for r in fit.ratios) < 0.06  # the candidate grid's step
    assert min(abs(math.log(r * 4)) for r in fit.ratios) < 0.06
    assert fit.sizes == [[30]]


def test_fit_keeps_the_config_when_nothing_covers_more():
    boxes = np.array([[32.0, 32.0], [30.0, 34.0]])
    fit = fit_anchors(boxes, [[32]], [0.5, 1.0, 2.0], iou_thresh=0.7)
    assert fit.ratios == [0.5, 1.0, 2.0] and fit.coverage_after == fit.coverage_before == 1.0


def test_fit_sizes_scales_every_level_by_one_factor():
    # 16 x 16 boxes: ratio 1 at size 32 reaches IoU 1/4 only; size 16 (factor 0.5) covers them
    boxes = np.array([[16.0, 16.0]] * 3)
    fit = fit_anchors(boxes, [[32], [64]], [0.5, 1.0, 2.0], 0.7, num_ratios=1, fit_sizes=True)
    assert fit.sizes == [[16.0], [32.0]]
    assert fit.ratios == [1.0] and fit.coverage_after == 1.0


def test_fit_of_a_fit_gives_it_back():
    # 16 px boxes need size 16 (factor 0.5, the smallest), 8 px boxes size 8: the first fit
    # covers half. Run again on its own output (a run's config.yaml, e.g. with --resume), the
    # factors apply to the sizes rescaled to 32 px first, so the sizes are not halved once more.
    boxes = np.array([[16.0, 16.0]] * 3 + [[8.0, 8.0]] * 3)
    fit = fit_anchors(boxes, [[32], [64]], [1.0], 0.7, fit_sizes=True)
    assert fit.sizes == [[16.0], [32.0]] and fit.coverage_after == 0.5
    again = fit_anchors(boxes, fit.sizes, fit.ratios, 0.7, fit_sizes=True)
    assert again.sizes == fit.sizes and again.ratios == fit.ratios


def test_setup_sets_anchors_from_the_train_boxes(tmp_path, clean_catalogs, caplog):
    from trashpole.engine import derive_from_data, register_datasets

    export = write_tiny_export(tmp_path / "export", splits=("train", "valid"))
    cfg = load_config(write_tiny_config(tmp_path), ["TRASHPOLE.DATASET_ROOT", str(export)])
    kept = load_config(write_tiny_config(tmp_path), ["TRASHPOLE.DATASET_ROOT", str(export)])
    for c in (cfg, kept):  # wide anchors for tall objects
        c.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.25, 0.5, 1.0]]
    cfg.TRASHPOLE.ANCHORS.FROM_DATA = True
    with caplog.at_level(logging.INFO, logger="trashpole"):
        changes = derive_from_data(cfg, register_datasets(cfg), training=True)
    # the train boxes are 20 x 52 and 20 x 32 (64 px images, trained at 64 px). Ratio 1 at size
    # 32 reaches IoU 640/1424 and 640/1024 on them: none covered at 0.7. Ratio 2.6 = 52/20 at
    # size 32 (area 1024 against 1040) covers the first kind; the second (area 640) reaches at
    # most 0.625 with any ratio at size 32.
    assert any(c.startswith("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS") for c in changes)
    ratios = cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0]
    assert len(ratios) == 3
    assert min(abs(math.log(r / 2.6)) for r in ratios) < 0.06
    assert "0.0% with the config's anchors" in caplog.text and "50.0% with sizes" in caplog.text
    derive_from_data(kept, register_datasets(kept), training=True)  # the switch off
    assert kept.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS == [[0.25, 0.5, 1.0]]


def _tiny_model(tmp_path, ratios):
    cfg = load_config(write_tiny_config(tmp_path))
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [ratios]
    torch.manual_seed(0)
    return build_model(cfg)


def test_pretrained_rpn_head_loads_whole_with_as_many_ratios(tmp_path):
    """Same number of ratios, other values: every weight of the checkpoint loads. Another
    number: the two 1x1 output layers of the RPN head are skipped (shape mismatch) and keep their
    random init; the rest loads."""
    source = _tiny_model(tmp_path, [0.5, 1.0, 2.0])
    path = tmp_path / "source.pth"
    torch.save({"model": source.state_dict()}, path)
    head = "proposal_generator.rpn_head."
    same = _tiny_model(tmp_path, [2.7, 5.7, 12.0])
    DetectionCheckpointer(same).load(str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(same.state_dict()[key], value), key
    more = _tiny_model(tmp_path, [1.4, 2.7, 5.7, 12.0, 25.0])
    before = {k: v.clone() for k, v in more.state_dict().items()}
    DetectionCheckpointer(more).load(str(path))
    after = more.state_dict()
    assert after[head + "objectness_logits.weight"].shape[0] == 5
    for key in ("objectness_logits.weight", "anchor_deltas.weight"):
        assert torch.equal(after[head + key], before[head + key])  # not loaded
    assert torch.equal(after[head + "conv.weight"], source.state_dict()[head + "conv.weight"])
