"""
One way to open a trained run and build the model that predicts with it.

:func:`open_run` reads a run (its folder or ``config.yaml``, the weights, command-line
overrides) into a :class:`Run`: the config, the weights and the class names. Every consumer
builds its inference model from there with :func:`build_inference_model`: the predictor,
``tools/train_net.py --eval-only``, the evaluation at the end of training and the benchmarks, so
an evaluation runs the model the way ``predict`` runs it.

The backend (``TRASHPOLE.INFERENCE.BACKEND``):

- ``openvino``: the networks run by OpenVINO (:mod:`trashpole.predict.openvino`), bf16 where the
  CPU has it, int8 with ``TRASHPOLE.INFERENCE.INT8``;
- ``pytorch``: detectron2's model with the speed options of ``TRASHPOLE.INFERENCE``
  (:mod:`trashpole.speed`); the backend for CUDA and for exactness checks;
- ``auto``: OpenVINO on a CPU, PyTorch on CUDA.
"""

import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.modeling import build_model

from trashpole.config import load_config
from trashpole.errors import MissingFileError, UserError
from trashpole.speed import apply_inference_options, inference_autocast, set_test_size, to_fp32

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "pytorch", "openvino")


def resolve_run(run_or_config: str, weights: Optional[str] = None) -> tuple:
    """
    Find the config and weights of a run.

    Args:
        run_or_config: a run folder (holding config.yaml) or a config file.
        weights: a checkpoint; default: the run's model_final.pth (else model_best.pth).

    Returns:
        (config file, weights file)
    """
    if os.path.isdir(run_or_config):
        config, folder = os.path.join(run_or_config, "config.yaml"), run_or_config
    else:
        config, folder = run_or_config, os.path.dirname(run_or_config)
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


def resolve_backend(cfg: CfgNode) -> str:
    """``"openvino"`` or ``"pytorch"`` for ``TRASHPOLE.INFERENCE.BACKEND`` and the device."""
    name = str(cfg.TRASHPOLE.INFERENCE.BACKEND).lower()
    if name not in BACKENDS:
        raise UserError(
            f"TRASHPOLE.INFERENCE.BACKEND {name!r} is not a backend; choose one of {list(BACKENDS)}"
        )
    on_cpu = str(cfg.MODEL.DEVICE).startswith("cpu")
    if name == "auto":
        return "openvino" if on_cpu else "pytorch"
    if name == "openvino" and not on_cpu:
        raise UserError(
            f"the OpenVINO backend runs on the CPU; MODEL.DEVICE is {cfg.MODEL.DEVICE!r}: use "
            "--backend pytorch or --device cpu"
        )
    return name


def backend_opts(backend: Optional[str] = None, int8: Optional[bool] = None) -> List[str]:
    """Config overrides for a backend choice (None: leave the config's)."""
    opts: List[str] = []
    if backend is not None:
        opts += ["TRASHPOLE.INFERENCE.BACKEND", backend]
    if int8 is not None:
        opts += ["TRASHPOLE.INFERENCE.INT8", str(bool(int8))]
    return opts


class PyTorchModel:
    """detectron2's model with trashpole's CPU speed options, called like the model: bf16
    autocast around each forward where configured, fp32 outputs."""

    def __init__(self, model: torch.nn.Module, cfg: CfgNode):
        self.model = apply_inference_options(model, cfg, inference_only=True)
        self.cfg = cfg
        self.description = describe_pytorch(cfg)

    def __call__(self, batched_inputs: Sequence[Dict]) -> List[Dict]:
        with torch.no_grad(), inference_autocast(self.cfg):
            return to_fp32(self.model(list(batched_inputs)))

    def eval(self) -> "PyTorchModel":
        return self


def describe_pytorch(cfg: CfgNode) -> str:
    """A short label of the PyTorch backend's options, e.g. ``pytorch bf16 channels_last``."""
    from trashpole.speed import use_bf16

    options = cfg.TRASHPOLE.INFERENCE
    parts = ["pytorch", "bf16" if use_bf16(cfg) else "fp32"]
    parts += ["channels_last"] if options.CHANNELS_LAST else []
    return " ".join(parts)


def load_weights(cfg: CfgNode, weights: str) -> torch.nn.Module:
    """The detectron2 model of ``cfg`` with ``weights`` loaded (an empty string keeps the random
    initialization), in eval mode, without gradients."""
    model = build_model(cfg)
    if weights:
        DetectionCheckpointer(model).load(weights)
    model.eval()
    model.requires_grad_(False)
    return model


def build_inference_model(cfg: CfgNode, weights: Optional[str] = None, model=None):
    """
    The model that predicts for ``cfg`` on its backend (see the module docstring).

    Args:
        cfg: a trashpole config (``MODEL.DEVICE``, ``TRASHPOLE.INFERENCE``).
        weights: checkpoint (default ``cfg.MODEL.WEIGHTS``); the OpenVINO cache is keyed by it.
        model: an already built detectron2 model holding those weights (else built here).

    Returns:
        a callable ``model(batched_inputs) -> [{"instances": Instances}]`` with a
        ``description`` of what runs (backend, precision). With ``TRASHPOLE.INFERENCE.SLICE.MODE``
        on or auto, a :class:`trashpole.predict.sliced_model.SlicedModel` over the backend: it
        takes the images at their original size (``takes_original_images``; the evaluation
        loads them with its ``test_mapper()``).
    """
    from trashpole.predict.slicing import slice_settings  # trashpole.predict imports this module

    slicing = slice_settings(cfg)  # a bad SLICE key is reported before anything is built
    weights = cfg.MODEL.WEIGHTS if weights is None else weights
    if model is None:
        model = load_weights(cfg, weights)
    backend = resolve_backend(cfg)
    if backend == "pytorch":
        built = PyTorchModel(model, cfg)
    else:
        from trashpole.predict.openvino import openvino_model

        built = openvino_model(model, cfg, weights)
    if slicing.mode != "off":  # large images sliced (TRASHPOLE.INFERENCE.SLICE, docs/slicing.md)
        from trashpole.predict.sliced_model import SlicedModel

        built = SlicedModel(built, cfg, slicing)
    logger.info(f"Inference backend: {built.description}")
    return built


@dataclasses.dataclass
class Run:
    """A trained run opened for inference: the frozen config, the weights and the class names."""

    cfg: CfgNode
    weights: str
    config_file: str

    @property
    def class_names(self) -> List[str]:
        from trashpole.predict.preprocess import class_names  # trashpole.predict imports this

        return class_names(self.cfg)

    def inference_model(self):
        """:func:`build_inference_model` of this run."""
        return build_inference_model(self.cfg, self.weights)


def open_run(
    run_or_config: str,
    weights: Optional[str] = None,
    opts: Optional[Sequence[str]] = None,
    score_thresh: Optional[float] = None,
    device: str = "cpu",
    input_size: Optional[int] = None,
) -> Run:
    """
    Open a trained run for inference.

    Args:
        run_or_config: the run folder or its ``config.yaml``.
        weights: checkpoint (default: the run's model_final.pth, else model_best.pth).
        opts: KEY VALUE config overrides (e.g. :func:`backend_opts`).
        score_thresh: ``MODEL.ROI_HEADS.SCORE_THRESH_TEST`` (default: the config's).
        device: "cpu" or "cuda".
        input_size: shorter side of the model input (see :func:`trashpole.speed.set_test_size`).

    Returns:
        a :class:`Run` with a frozen config.
    """
    config, weights = resolve_run(run_or_config, weights)
    cfg = load_config(config, opts)
    cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = device
    if score_thresh is not None:
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_thresh
    if input_size:
        set_test_size(cfg, input_size)
    resolve_backend(cfg)  # an unknown backend is reported before anything is built
    cfg.freeze()
    return Run(cfg=cfg, weights=weights, config_file=config)
