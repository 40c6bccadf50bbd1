"""The real-photo recipe: its anchors come from the data and it trains with its augmentations."""

import os

import torch
import yaml
from conftest import write_tiny_export
from tiny_model import REPO, TINY_YAML

from trashpole.data.augment import TrainMapper

REAL_RECIPE = REPO / "configs" / "mask_rcnn_R_18_FPN_real_cpu.yaml"


def test_real_recipe_trains_with_fitted_anchors_and_augmentations(
    tmp_path, clean_catalogs, monkeypatch
):
    from trashpole.engine import Trainer, argument_parser, setup

    export = write_tiny_export(tmp_path / "export", num_images=4)
    config = tmp_path / "tiny_real.yaml"
    config.write_text(TINY_YAML.format(base=REAL_RECIPE, epochs=1, step=1))
    args = argument_parser().parse_args(
        ["--config-file", str(config), "--dataset-root", str(export), "TRASHPOLE.AUG.WINDOW_SIZE",
         "64", "OUTPUT_DIR", str(tmp_path / "run"), "TEST.EVAL_PERIOD_EPOCHS", "0",
         "DATASETS.TEST", "()", "SOLVER.AMP.ENABLED", "False",
         "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.25, 0.5, 1.0]]"]
    )  # fmt: skip
    cfg = setup(args)
    assert cfg.TRASHPOLE.AUG.LSJ and cfg.TRASHPOLE.AUG.COPY_PASTE_PROB == 0.5
    # the tiny export's tall boxes (20 x 52 and 20 x 32 at 64 px; LSJ's mean scale 1.0 of a
    # 64 px window) are covered by none of the wide anchors given: three other ratios, saved in
    # the run's config
    ratios = cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0]
    assert len(ratios) == 3 and max(ratios) > 2
    saved = yaml.safe_load(open(os.path.join(cfg.OUTPUT_DIR, "config.yaml")))
    assert saved["MODEL"]["ANCHOR_GENERATOR"]["ASPECT_RATIOS"] == [list(ratios)]
    mapped = []
    original = TrainMapper.__call__
    monkeypatch.setattr(
        TrainMapper, "__call__", lambda self, d: mapped.append(1) or original(self, d)
    )
    Trainer(cfg).train()
    assert len(mapped) >= 4  # the loader (NUM_WORKERS 0) ran the trashpole mapper
    final = torch.load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    assert final["iteration"] == 1  # iterations 0 and 1: 4 images, batch 2, one epoch
