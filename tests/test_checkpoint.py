"""Checkpoints: COCO-shaped weights into the 2-class model, atomic writes, best/early stop."""

import json
import logging
import os

import pytest
import torch
from detectron2.modeling import build_model
from tiny_model import write_tiny_config

from trashpole.config import load_config
from trashpole.engine.checkpoint import TrashPoleCheckpointer, atomic_torch_save

CLASS_SPECIFIC = (
    "roi_heads.box_predictor.cls_score.weight",
    "roi_heads.box_predictor.cls_score.bias",
    "roi_heads.box_predictor.bbox_pred.weight",
    "roi_heads.box_predictor.bbox_pred.bias",
    "roi_heads.mask_head.predictor.weight",
    "roi_heads.mask_head.predictor.bias",
)


def _model(tmp_path, num_classes):
    cfg = load_config(write_tiny_config(tmp_path), ["MODEL.ROI_HEADS.NUM_CLASSES", num_classes])
    torch.manual_seed(num_classes)
    return build_model(cfg)


def test_coco_checkpoint_keeps_all_but_class_specific_layers(tmp_path, caplog):
    coco = _model(tmp_path, 80)
    path = str(tmp_path / "coco_like.pth")
    torch.save({"model": coco.state_dict(), "__author__": "test"}, path)
    model = _model(tmp_path, 2)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="trashpole"):
        TrashPoleCheckpointer(model).load(path)
    state, source = model.state_dict(), coco.state_dict()
    for key in state:
        if key in CLASS_SPECIFIC:
            assert state[key].shape != source[key].shape, key
            assert torch.equal(state[key], fresh[key]), key  # fresh initialisation kept
        else:
            assert torch.equal(state[key], source[key]), key  # backbone, FPN, RPN, heads loaded
    assert len(state) - len(CLASS_SPECIFIC) > 100
    lines = [r.getMessage() for r in caplog.records if "class-specific" in r.getMessage()]
    assert len(lines) == 1
    assert f"{len(source) - 6} of {len(source)}" in lines[0]
    assert all(k in lines[0] for k in CLASS_SPECIFIC)


def test_interrupted_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "model.pth")
    atomic_torch_save({"v": torch.ones(3)}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"v": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path)["v"], torch.ones(3))
    assert os.listdir(tmp_path) == ["model.pth"]  # no temporary file left behind


def test_checkpointer_tags_last_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 2)
    ckpt = TrashPoleCheckpointer(model, save_dir=str(tmp_path))
    ckpt.save("model_0000009", iteration=9)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    assert ckpt.get_checkpoint_file().endswith("model_0000009.pth")
    assert torch.load(str(tmp_path / "model_0000009.pth"))["iteration"] == 9


def test_early_stopping_ends_training_and_keeps_best(tmp_path):
    from conftest import write_tiny_export
    from test_train import _metrics, _run

    export = write_tiny_export(tmp_path / "export", num_images=4)
    # the metric is the epoch counter with mode "min": it never improves after the first
    # evaluation, so patience 1 stops at the second one (end of epoch 2, iteration 3)
    config = write_tiny_config(tmp_path, epochs=30, step=29)
    run = str(tmp_path / "run")
    _run(
        ["--config-file", config, "--dataset-root", str(export), "OUTPUT_DIR", run,
         "TRASHPOLE.BEST_METRIC", "epoch", "TRASHPOLE.BEST_MODE", "min",
         "TRASHPOLE.EARLY_STOP_PATIENCE", "1", "TRASHPOLE.VAL_LOSS", "False"]
    )  # fmt: skip
    last_iter = max(r["iteration"] for r in _metrics(run) if "total_loss" in r)
    assert last_iter == 3
    best = json.load(open(os.path.join(run, "model_best.json")))
    assert best == {"metric": "epoch", "value": 1.0, "iteration": 1, "evals_since_best": 1}
    assert os.path.isfile(os.path.join(run, "model_best.pth"))
    assert os.path.isfile(os.path.join(run, "model_final.pth"))
