"""A tiny trashpole recipe for tests: the CPU recipe shrunk to 64 px images and thin heads."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_RECIPE = REPO / "configs" / "mask_rcnn_R_18_FPN_cpu_quick.yaml"

TINY_YAML = """
_BASE_: "{base}"
MODEL:
  FPN:
    OUT_CHANNELS: 32
  RPN:
    PRE_NMS_TOPK_TRAIN: 200
    PRE_NMS_TOPK_TEST: 100
    POST_NMS_TOPK_TRAIN: 50
    POST_NMS_TOPK_TEST: 50
  ROI_HEADS:
    BATCH_SIZE_PER_IMAGE: 32
  ROI_BOX_HEAD:
    FC_DIM: 64
  ROI_MASK_HEAD:
    CONV_DIM: 32
    NUM_CONV: 1
INPUT:
  MIN_SIZE_TRAIN: (64,)
  MAX_SIZE_TRAIN: 64
  MIN_SIZE_TEST: 64
  MAX_SIZE_TEST: 64
DATALOADER:
  NUM_WORKERS: 0
SOLVER:
  IMS_PER_BATCH: 2
  EPOCHS: {epochs}
  STEP_EPOCHS: ({step},)
  WARMUP_EPOCHS: 0.0
TEST:
  EVAL_PERIOD_EPOCHS: 1
SEED: 7
"""


def write_tiny_config(folder, epochs: int = 2, step: int = 1, extra: str = "") -> str:
    """Write the tiny recipe (inheriting the CPU recipe) into ``folder``; returns its path."""
    path = os.path.join(str(folder), "tiny.yaml")
    with open(path, "w") as f:
        f.write(TINY_YAML.format(base=CPU_RECIPE, epochs=epochs, step=step) + extra)
    return path
