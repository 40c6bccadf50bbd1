"""Inference from a trained run: detectron2's DefaultPredictor with the run's class names and the
CPU speed options, and the one preprocessing that the export shares."""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata
from detectron2.engine import DefaultPredictor

from trashpole.config import load_config
from trashpole.errors import MissingFileError
from trashpole.predict.preprocess import cfg_model_input, class_names
from trashpole.speed import (
    apply_inference_options,
    inference_autocast,
    set_test_size,
    to_fp32,
)
from trashpole.visualization import class_colors

logger = logging.getLogger(__name__)


def resolve_run(run_or_config: str, weights: Optional[str] = None) -> Tuple[str, str]:
    """
    Find the config and weights of a run.

    Args:
        run_or_config: a run folder (holding config.yaml) or a config file.
        weights: a checkpoint; default: the run's model_final.pth (else model_best.pth).

    Returns:
        (config file, weights file)
    """
    if os.path.isdir(run_or_config):
        config = os.path.join(run_or_config, "config.yaml")
        folder = run_or_config
    else:
        config = run_or_config
        folder = os.path.dirname(run_or_config)
    if not os.path.isfile(config):
        raise MissingFileError(
            f"{config} does not exist: give a run folder (the OUTPUT_DIR of a training, holding "
            "config.yaml) or its config.yaml"
        )
    if weights is None:
        candidates = [os.path.join(folder, n) for n in ("model_final.pth", "model_best.pth")]
        weights = next((c for c in candidates if os.path.isfile(c)), None)
        if weights is None:
            raise MissingFileError(
                f"no model_final.pth or model_best.pth in {folder!r}: pass the weights explicitly"
            )
    elif "://" not in weights and not os.path.isfile(weights):
        raise MissingFileError(f"weights {weights!r} do not exist; give a checkpoint file (.pth)")
    return config, weights


class TrashPolePredictor(DefaultPredictor):
    """
    detectron2's ``DefaultPredictor`` whose ``metadata`` carries the class names of the run
    (``TRASHPOLE.CLASS_NAMES`` in its config.yaml), so that nothing needs to be registered at
    inference time, plus :meth:`predict_batch` for many images. The model is prepared by
    :func:`trashpole.speed.apply_inference_options`: ``cfg.TRASHPOLE.INFERENCE`` (bf16,
    channels_last, threads) applies, and norms are folded and convolutions fused; outputs are
    the same fp32 boxes and scores and bool masks as detectron2's.
    """

    def __init__(self, cfg: CfgNode):
        super().__init__(cfg)
        names = class_names(cfg)
        self.metadata = Metadata(
            name="trashpole_predictor", thing_classes=names, thing_colors=class_colors(len(names))
        )
        # the model is ours alone and never trained: norms folded, convs fused, bf16 weights
        apply_inference_options(self.model, self.cfg, inference_only=True)

    def __call__(self, original_image: np.ndarray) -> Dict:
        """
        Run the model on one BGR image.

        Args:
            original_image: uint8 array [H, W, 3] in BGR order.

        Returns:
            ``{"instances": Instances}`` at the image's size: ``pred_boxes`` (Boxes of float32
            XYXY), ``scores`` (Tensor[N] of float32), ``pred_classes`` (Tensor[N] of int64) and
            ``pred_masks`` (Tensor[N, H, W] of bool), whatever the speed options.
        """
        return self.predict_batch([original_image], batch_size=1)[0]

    @property
    def class_names(self) -> List[str]:
        return list(self.metadata.thing_classes)

    def predict_batch(self, images: Sequence[np.ndarray], batch_size: int = 4) -> List[Dict]:
        """
        Run the model on many BGR images, ``batch_size`` at a time.

        Args:
            images: uint8 arrays [H, W, 3] in BGR order (as ``cv2.imread`` gives).
            batch_size: images per forward pass.

        Returns:
            one dict per image with ``instances`` at the image's own size, as ``__call__`` returns.
        """
        outputs: List[Dict] = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                inputs = [self.preprocess(img) for img in images[start : start + batch_size]]
                with inference_autocast(self.cfg):
                    batch = self.model(inputs)
                outputs.extend(to_fp32(batch))
        return outputs

    def preprocess(self, original_image: np.ndarray) -> Dict:
        """
        One BGR image as the model's input: resized by ``INPUT.MIN/MAX_SIZE_TEST``, channels in
        ``INPUT.FORMAT`` order.

        Args:
            original_image: uint8 array [H, W, 3] in BGR order.

        Returns:
            ``{"image": Tensor[3, h, w] of float32, "height": H, "width": W}``.
        """
        height, width = original_image.shape[:2]
        image = cfg_model_input(self.cfg, original_image)
        return {"image": image.to(self.cfg.MODEL.DEVICE), "height": height, "width": width}


def load_predictor(
    run_or_config: str,
    weights: Optional[str] = None,
    score_thresh: Optional[float] = None,
    device: str = "cpu",
    opts: Optional[Sequence[str]] = None,
    input_size: Optional[int] = None,
) -> TrashPolePredictor:
    """
    Build a predictor from a trained run.

    Args:
        run_or_config: the run folder or its ``config.yaml``.
        weights: checkpoint file (default: the run's model_final.pth).
        score_thresh: keep detections scoring at least this (default: the config's
            ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``).
        device: "cpu" or "cuda".
        opts: more KEY VALUE config overrides, e.g. the speed options of
            :func:`trashpole.speed.speed_opts` (``TRASHPOLE.INFERENCE.BF16 True``...).
        input_size: shorter side of the images given to the model (default: the config's
            ``INPUT.MIN_SIZE_TEST``); see :func:`trashpole.speed.set_test_size`.

    Returns:
        a :class:`TrashPolePredictor` (a detectron2 ``DefaultPredictor``); ``predictor(bgr_image)``
        returns ``{"instances": Instances}`` with ``pred_masks``, ``pred_boxes``, ``pred_classes``
        and ``scores``; ``predictor.class_names`` names the classes.
    """
    config, weights = resolve_run(run_or_config, weights)
    cfg = load_config(config, opts)
    cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = device
    if score_thresh is not None:
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_thresh
    if input_size:
        set_test_size(cfg, input_size)
    cfg.freeze()
    predictor = TrashPolePredictor(cfg)
    logger.info(f"Loaded {weights} with classes {predictor.class_names}")
    return predictor
