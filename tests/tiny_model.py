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

# The CPU recipe's anchor fit and augmentations, off: tests that need them turn them on.
PLAIN_TRAINING = """TRASHPOLE:
  ANCHORS:
    FROM_DATA: False
  AUG:
    LSJ: False
    PHOTOMETRIC: 0.0
    COPY_PASTE_PROB: 0.0
"""


def write_tiny_config(folder, epochs: int = 2, step: int = 1, trashpole: str = "") -> str:
    """Write the tiny recipe (inheriting the CPU recipe, without its anchor fit and augmentations)
    into ``folder``, with ``trashpole``'s lines added to its TRASHPOLE section; returns its path."""
    path = os.path.join(str(folder), "tiny.yaml")
    with open(path, "w") as f:
        f.write(TINY_YAML.format(base=CPU_RECIPE, epochs=epochs, step=step))
        f.write(PLAIN_TRAINING + trashpole)
    return path


def train_tiny_run(folder, iterations: int = 60) -> list:
    """
    Write a run folder (config.yaml + model_final.pth) of the tiny recipe (ResNet-18 FPN, 64 px)
    trained for ``iterations`` (~20 s on one thread) on two generated images with 4 objects each,
    so that its detections have clear scores.

    Returns:
        those images (BGR uint8 arrays).
    """
    import torch
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from benchmarks.training import detectron2_batch, synthetic_samples
    from synthetic import CLASS_NAMES
    from trashpole.config import load_config

    cfg = load_config(write_tiny_config(folder))
    cfg.TRASHPOLE.CLASS_NAMES = list(CLASS_NAMES)
    cfg.MODEL.WEIGHTS = ""
    with open(os.path.join(str(folder), "config.yaml"), "w") as f:
        f.write(cfg.dump())
    samples = synthetic_samples(64, num_images=2, seed=0)
    count = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model trains faster on one thread than on two shared ones
    try:
        torch.manual_seed(0)
        model = build_model(cfg).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        batch = detectron2_batch(samples)
        with EventStorage():
            for _ in range(iterations):
                loss = sum(model(batch).values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(count)
    torch.save({"model": model.state_dict()}, os.path.join(str(folder), "model_final.pth"))
    return [s["image"] for s in samples]


def write_random_run(folder, seed: int = 0) -> str:
    """
    Write a run folder as training leaves it (config.yaml with the class names, model_final.pth)
    of the tiny recipe with random weights (``seed``).

    Returns:
        the folder, as a string.
    """
    import torch
    from detectron2.modeling import build_model

    from synthetic import CLASS_NAMES
    from trashpole.config import load_config

    cfg = load_config(write_tiny_config(folder))
    cfg.TRASHPOLE.CLASS_NAMES = list(CLASS_NAMES)
    cfg.MODEL.WEIGHTS = ""
    with open(os.path.join(str(folder), "config.yaml"), "w") as f:
        f.write(cfg.dump())
    torch.manual_seed(seed)
    torch.save(
        {"model": build_model(cfg).state_dict()}, os.path.join(str(folder), "model_final.pth")
    )
    return str(folder)
