"""Config assembly, epoch arithmetic, LR schedule and optimizers."""

import pytest
import torch
from detectron2.solver import build_lr_scheduler
from tiny_model import REPO

from trashpole.config import load_config
from trashpole.engine import build_optimizer
from trashpole.engine.derive import describe_schedule, resolve_epochs
from trashpole.errors import UserError

REFERENCE = str(REPO / "configs" / "mask_rcnn_R_50_FPN_reference.yaml")


def _lr_at(cfg, iterations):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([{"params": [param], "lr": cfg.SOLVER.BASE_LR}])
    scheduler = build_lr_scheduler(cfg, optimizer)
    seen = {}
    for it in range(cfg.SOLVER.MAX_ITER):
        if it in iterations:
            seen[it] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
    return seen


def test_reference_recipe_is_the_users_design():
    cfg = load_config(REFERENCE)
    assert cfg.SOLVER.OPTIMIZER == "Adam"
    assert cfg.SOLVER.BASE_LR == pytest.approx(1e-4)
    assert cfg.SOLVER.IMS_PER_BATCH == 8
    assert cfg.SOLVER.EPOCHS == 20
    assert tuple(cfg.SOLVER.STEP_EPOCHS) == (5, 10, 15)
    assert cfg.SOLVER.GAMMA == pytest.approx(0.1)
    assert cfg.INPUT.RANDOM_FLIP == "horizontal"
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2
    assert cfg.MODEL.MASK_ON and cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.WEIGHTS.startswith("detectron2://COCO-InstanceSegmentation/mask_rcnn_R_50")
    # the COCO checkpoint's normalization: BGR mean, std 1
    assert list(cfg.MODEL.PIXEL_STD) == [1.0, 1.0, 1.0]
    assert list(cfg.MODEL.PIXEL_MEAN) == [103.53, 116.28, 123.675]


def test_reference_epochs_become_iterations_and_lr_steps():
    cfg = load_config(REFERENCE)
    resolve_epochs(cfg, num_train_images=160)
    assert cfg.SOLVER.ITERS_PER_EPOCH == 20
    assert cfg.SOLVER.MAX_ITER == 400
    assert tuple(cfg.SOLVER.STEPS) == (100, 200, 300)
    assert cfg.TEST.EVAL_PERIOD == 20 and cfg.SOLVER.CHECKPOINT_PERIOD == 20
    assert cfg.SOLVER.WARMUP_ITERS == 0
    lrs = _lr_at(cfg, {0, 50, 99, 100, 199, 200, 299, 300, 399})
    expected = {0: 1e-4, 50: 1e-4, 99: 1e-4, 100: 1e-5, 199: 1e-5, 200: 1e-6, 299: 1e-6}
    expected.update({300: 1e-7, 399: 1e-7})
    for it, lr in expected.items():
        assert lrs[it] == pytest.approx(lr, rel=1e-9), it
    assert (
        "LR 0.0001, 1e-05 from iteration 100, 1e-06 from iteration 200" in describe_schedule(cfg)[1]
    )


def test_partial_last_batch_counts_as_an_iteration():
    cfg = load_config(REFERENCE, ["SOLVER.EPOCHS", "3", "SOLVER.STEP_EPOCHS", "(2,)"])
    resolve_epochs(cfg, num_train_images=17)  # 17 / 8 -> 3 iterations an epoch
    assert (cfg.SOLVER.ITERS_PER_EPOCH, cfg.SOLVER.MAX_ITER) == (3, 9)
    assert tuple(cfg.SOLVER.STEPS) == (6,)


def test_warmup_in_epochs():
    cfg = load_config(REFERENCE, ["SOLVER.WARMUP_EPOCHS", "0.5", "SOLVER.WARMUP_FACTOR", "0.1"])
    resolve_epochs(cfg, num_train_images=160)
    assert cfg.SOLVER.WARMUP_ITERS == 10
    lrs = _lr_at(cfg, {0, 5, 10})
    assert lrs[0] == pytest.approx(1e-5)
    assert lrs[5] == pytest.approx(1e-4 * (0.1 + 0.9 * 0.5))
    assert lrs[10] == pytest.approx(1e-4)


def test_epochs_zero_keeps_iterations():
    cfg = load_config(REFERENCE, ["SOLVER.EPOCHS", "0", "SOLVER.MAX_ITER", "77"])
    resolve_epochs(cfg, num_train_images=160)
    assert cfg.SOLVER.MAX_ITER == 77


def test_empty_train_split_is_a_clear_error():
    cfg = load_config(REFERENCE)
    with pytest.raises(ValueError, match="no usable image"):
        resolve_epochs(cfg, num_train_images=0)


@pytest.mark.parametrize(
    "name,cls", [("Adam", torch.optim.Adam), ("AdamW", torch.optim.AdamW), ("SGD", torch.optim.SGD)]
)
def test_optimizers(name, cls):
    cfg = load_config(REFERENCE, ["SOLVER.OPTIMIZER", name, "SOLVER.WEIGHT_DECAY", "0.01"])
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = build_optimizer(cfg, model)
    assert isinstance(opt, cls)
    assert all(g["lr"] == pytest.approx(1e-4) for g in opt.param_groups)
    # detectron2's groups: no weight decay on norm layers (WEIGHT_DECAY_NORM = 0)
    decays = sorted({g["weight_decay"] for g in opt.param_groups})
    assert decays == [0.0, 0.01]


def test_gradient_clipping_from_detectron2():
    cfg = load_config(
        REFERENCE,
        ["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm"],
    )
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    model = torch.nn.Linear(2, 1, bias=False)
    opt = build_optimizer(cfg, model)
    model.weight.grad = torch.full_like(model.weight, 10.0)
    before = model.weight.detach().clone()
    opt.step()
    # Adam's first step moves each weight by ~lr whatever the gradient; clipping ran first
    assert torch.allclose(model.weight, before - 1e-4, atol=1e-6)
    assert torch.linalg.vector_norm(model.weight.grad) == pytest.approx(0.5, rel=1e-5)


def test_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown SOLVER.OPTIMIZER 'Lion'.*Adam.*AdamW.*SGD"):
        load_config(REFERENCE, ["SOLVER.OPTIMIZER", "Lion"])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))


def test_unknown_key_in_a_config_file_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("SOLVER:\n  EPOCS: 3\n")
    with pytest.raises(UserError, match=r"typo.yaml: unknown config key SOLVER.EPOCS \(did you "):
        load_config(str(path))


def test_derive_from_data_sets_and_reports_each_key(tmp_path, clean_catalogs, monkeypatch):
    from conftest import write_tiny_export
    from tiny_model import write_tiny_config

    from trashpole.engine import derive_from_data, register_datasets

    export = write_tiny_export(tmp_path / "export", splits=("train", "test"))
    cfg = load_config(write_tiny_config(tmp_path))
    monkeypatch.chdir(tmp_path)
    cfg.TRASHPOLE.DATASET_ROOT = "export"  # relative to the working folder
    cfg.TRASHPOLE.DATASET_NAME = "derive"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 80
    cfg.MODEL.MASK_ON = False
    cfg.DATASETS.TRAIN = ("derive_train",)
    cfg.DATASETS.TEST = ("derive_valid",)  # the export has no valid split
    before = cfg.dump()
    splits = register_datasets(cfg)
    assert splits == {"train": "derive_train", "test": "derive_test"}
    assert cfg.dump() == before  # registering changes nothing in the config
    changes = derive_from_data(cfg, splits, training=True)
    assert changes == [
        f"TRASHPOLE.DATASET_ROOT: 'export' -> {str(export)!r} (the export's absolute path)",
        "TRASHPOLE.CLASS_NAMES: [] -> ['pole', 'trash-can'] (the export's classes)",
        "MODEL.ROI_HEADS.NUM_CLASSES: 80 -> 2 (2 classes)",
        "DATASETS.TEST: ('derive_valid',) -> ('derive_test',) (the configured ones are not "
        "registered)",
    ] + [
        # 3 train images in batches of 2: 2 iterations an epoch; the tiny recipe's 2 epochs with
        # a step after epoch 1, an evaluation and a checkpoint every epoch, no warmup
        f"{key}: {old} -> {new} (2 epochs of 2 iterations: 3 train images, batch 2)"
        for key, old, new in [
            ("SOLVER.ITERS_PER_EPOCH", 0, 2),
            ("SOLVER.MAX_ITER", 270000, 4),
            ("SOLVER.STEPS", (210000, 250000), (2,)),
            ("SOLVER.WARMUP_ITERS", 1000, 0),
            ("SOLVER.CHECKPOINT_PERIOD", 5000, 2),
            ("TEST.EVAL_PERIOD", 0, 2),
        ]
    ] + [
        "TRASHPOLE.BEST_METRIC: 'segm/AP' -> 'bbox/AP' (a box-only model has no segm)",
    ]
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2 and cfg.DATASETS.TEST == ("derive_test",)
    assert cfg.INPUT.MASK_FORMAT == "polygon"  # unchanged: the train split has polygons
    assert derive_from_data(cfg, splits, training=True) == []  # a second call changes nothing
    # an evaluation: --eval-split picks the split, and the schedule is left alone
    assert derive_from_data(cfg, splits, training=False, eval_split="train") == [
        "DATASETS.TEST: ('derive_test',) -> ('derive_train',) (--eval-split)"
    ]
    with pytest.raises(UserError, match="--eval-split 'valid': .* has the splits"):
        derive_from_data(cfg, splits, training=False, eval_split="valid")
