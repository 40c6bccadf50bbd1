"""
int8 for the OpenVINO backend: NNCF post-training quantization of the feature stage (backbone,
FPN and RPN head: nearly all of the convolutions), calibrated on images of the run's own train
split. The box and mask stages stay in float (bf16 where the CPU has it): they hold the box
regression and the mask logits that are pasted.

Calibrate once (the result is cached beside the float model)::

    tools/export_model.py --run output/demo --format openvino --int8 --output output/demo/export

or predict with ``--int8``: the first call calibrates on ``TRASHPOLE.INFERENCE.INT8_CALIBRATION_IMAGES``
images of ``TRASHPOLE.DATASET_ROOT/train`` (or ``--calibration-images DIR``).
"""

import logging
import os
import time
from typing import Any, List, Optional

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.modeling import GeneralizedRCNN

from trashpole.errors import UserError
from trashpole.images import UnreadableImage, read_bgr
from trashpole.predict.inputs import find_inputs
from trashpole.predict.preprocess import cfg_model_input

logger = logging.getLogger(__name__)


def calibration_folder(cfg: CfgNode, folder: Optional[str] = None) -> str:
    """The folder of calibration images: ``folder``, else the run's ``DATASET_ROOT/train``."""
    folder = folder or os.path.join(cfg.TRASHPOLE.DATASET_ROOT, "train")
    if not cfg.TRASHPOLE.DATASET_ROOT and not folder:
        folder = ""
    if not folder or not os.path.isdir(folder):
        raise UserError(
            f"int8 calibration needs images of the run's train split, and {folder or 'none'!r} "
            "is not a folder: pass --calibration-images DIR (photos like the ones you predict on) "
            "or set TRASHPOLE.DATASET_ROOT to the Roboflow export"
        )
    return folder


def calibration_inputs(
    model: GeneralizedRCNN, cfg: CfgNode, folder: str, count: int
) -> List[np.ndarray]:
    """
    The feature stage's inputs for up to ``count`` images of ``folder``, spread evenly over the
    sorted file list: each resized to the test size, normalized and padded as the model does.

    Returns:
        list of float32 arrays [1, 3, H, W].
    """
    images, _ = find_inputs(folder)
    if not images:
        raise UserError(f"no images in {folder!r} to calibrate int8 with")
    step = max(1, len(images) // max(1, count))
    inputs = []
    for path in images[::step][:count]:
        try:
            bgr, _ = read_bgr(path)
        except UnreadableImage as e:
            logger.warning(f"int8 calibration skips {path}: {e}")
            continue
        image = cfg_model_input(cfg, bgr)
        padded = model.preprocess_image([{"image": image}]).tensor
        inputs.append(np.ascontiguousarray(padded.numpy()))
    return inputs


def quantize_features(ov_model: Any, inputs: List[np.ndarray]) -> Any:
    """
    NNCF post-training quantization (8-bit weights and activations, the performance preset)
    of the feature stage.

    Args:
        ov_model: the feature stage as an ``openvino.Model``.
        inputs: calibration inputs (:func:`calibration_inputs`).

    Returns:
        the quantized ``openvino.Model``.
    """
    import nncf

    from trashpole.compat.openvino import telemetry_off

    with telemetry_off():
        dataset = nncf.Dataset(inputs)
        return nncf.quantize(
            ov_model,
            dataset,
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(inputs),
            fast_bias_correction=True,
        )


def quantized_features(
    model: GeneralizedRCNN,
    cfg: CfgNode,
    float_features: Any,
    cache_path: Optional[str],
    folder: Optional[str] = None,
) -> Any:
    """
    The int8 feature stage: read from ``cache_path`` when there, else calibrated now and saved
    there (None: not cached).
    """
    from trashpole.predict.openvino import openvino_core, save_stages

    if cache_path and os.path.isfile(cache_path):
        logger.info(f"int8 feature stage from the cache: {cache_path}")
        return openvino_core().read_model(cache_path)
    folder = calibration_folder(cfg, folder)
    count = int(cfg.TRASHPOLE.INFERENCE.INT8_CALIBRATION_IMAGES)
    logger.info(f"Quantizing to int8, calibrated on up to {count} images of {folder}...")
    start = time.perf_counter()
    with torch.no_grad():
        inputs = calibration_inputs(model, cfg, folder, count)
    quantized = quantize_features(float_features, inputs)
    logger.info(f"Quantized in {time.perf_counter() - start:.1f} s on {len(inputs)} images")
    if cache_path:
        save_stages({"features": quantized}, os.path.dirname(cache_path), suffix="_int8")
    return quantized
