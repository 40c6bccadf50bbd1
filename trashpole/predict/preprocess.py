"""The one preprocessing of a BGR image into the model's input, shared by the predictor and the
export (which records it in export_meta.json for runtimes without trashpole), and the class names
of a run."""

from typing import List

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import transforms as T


def resize_transform(min_size: int, max_size: int) -> T.Augmentation:
    """The test-time resize: shorter side to ``min_size``, longer side at most ``max_size``
    (what detectron2's ``DefaultPredictor`` applies)."""
    return T.ResizeShortestEdge([min_size, min_size], max_size)


def model_input(
    image_bgr: np.ndarray, channel_order: str, min_size: int, max_size: int
) -> torch.Tensor:
    """
    Turn a BGR image into the model input.

    Args:
        image_bgr: uint8 array [H, W, 3] in BGR order (as ``cv2.imread`` gives).
        channel_order: ``"BGR"`` or ``"RGB"``, the model's ``INPUT.FORMAT``.
        min_size, max_size: ``INPUT.MIN_SIZE_TEST`` and ``INPUT.MAX_SIZE_TEST``.

    Returns:
        Tensor[3, h, w] of float32 in 0-255, channels in ``channel_order``, resized.
    """
    image = image_bgr[:, :, ::-1] if channel_order == "RGB" else image_bgr
    image = resize_transform(min_size, max_size).get_transform(image).apply_image(image)
    return torch.as_tensor(np.ascontiguousarray(image.astype("float32").transpose(2, 0, 1)))


def cfg_model_input(cfg: CfgNode, image_bgr: np.ndarray) -> torch.Tensor:
    """:func:`model_input` with the sizes and channel order of a config."""
    return model_input(
        image_bgr, cfg.INPUT.FORMAT, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
    )


def class_names(cfg: CfgNode) -> List[str]:
    """The run's class names (``TRASHPOLE.CLASS_NAMES``), or ``class_0``, ``class_1``... for a
    config without them."""
    names = list(cfg.TRASHPOLE.CLASS_NAMES)
    return names or [f"class_{i}" for i in range(cfg.MODEL.ROI_HEADS.NUM_CLASSES)]
