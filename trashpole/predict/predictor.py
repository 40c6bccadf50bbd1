"""Inference from a trained run: detectron2's DefaultPredictor with the run's class names, on the
run's backend (OpenVINO on a CPU by default, PyTorch on CUDA: :mod:`trashpole.run`)."""

import copy
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import Metadata
from detectron2.engine import DefaultPredictor

from trashpole.predict.pipeline import stream_count, streamed_copy
from trashpole.predict.preprocess import cfg_model_input, class_names, resize_transform
from trashpole.predict.sliced_model import original_input
from trashpole.predict.slicing import slice_opts
from trashpole.run import backend_opts, build_inference_model, open_run, resolve_run  # noqa: F401
from trashpole.visualization import class_colors

logger = logging.getLogger(__name__)


class TrashPolePredictor(DefaultPredictor):
    """
    detectron2's ``DefaultPredictor`` on the run's backend
    (:func:`trashpole.run.build_inference_model`: OpenVINO on a CPU by default, PyTorch on
    CUDA), whose ``metadata`` carries the class names of
    the run (``TRASHPOLE.CLASS_NAMES`` in its config.yaml), so that nothing needs to be
    registered at inference time, plus :meth:`predict_batch` for many images. Outputs are the
    same on every backend: fp32 boxes and scores and bool masks at the image's size.

    Args:
        cfg: a frozen trashpole config with ``MODEL.WEIGHTS`` set.
        model: an inference model of that config (default: built here).
    """

    def __init__(self, cfg: CfgNode, model=None):
        # DefaultPredictor.__init__ would build and load a PyTorch model we may not run
        self.cfg = cfg.clone()
        self.model = model if model is not None else build_inference_model(cfg)
        self.input_format = cfg.INPUT.FORMAT
        # DefaultPredictor's attribute: the test-time resize (what preprocess applies)
        self.aug = resize_transform(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
        names = class_names(cfg)
        self.metadata = Metadata(
            name="trashpole_predictor", thing_classes=names, thing_colors=class_colors(len(names))
        )
        # (model, streams) -> this predictor's copy for images in flight (in_flight)
        self._in_flight: Dict[Tuple[Any, int], "TrashPolePredictor"] = {}

    @property
    def backend(self) -> str:
        """What runs: backend and precision, e.g. ``openvino bf16``."""
        return self.model.description

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

    def in_flight(self, workers: int) -> "TrashPolePredictor":
        """
        This predictor for ``workers`` images predicted at once from the threads of the folder
        and video pipeline (:mod:`trashpole.predict.pipeline`). On OpenVINO with
        ``TRASHPOLE.INFERENCE.STREAMS``: a copy whose model is compiled for that many streams
        (made at the first call and kept; the same outputs to within the engine's rounding).
        Otherwise: this predictor.
        """
        streams = stream_count(self.model, self.cfg, workers)
        if streams < 2:
            return self
        key = (self.model, streams)  # a model set later gets its own copy
        if key not in self._in_flight:
            twin = copy.copy(self)
            twin.model = streamed_copy(self.model, streams, "images")
            self._in_flight[key] = twin
        return self._in_flight[key]

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
        for start in range(0, len(images), batch_size):
            inputs = [self.preprocess(img) for img in images[start : start + batch_size]]
            outputs.extend(self.model(inputs))
        return outputs

    def preprocess(self, original_image: np.ndarray) -> Dict:
        """
        One BGR image as the model's input: resized by ``INPUT.MIN/MAX_SIZE_TEST``, channels in
        ``INPUT.FORMAT`` order.

        Args:
            original_image: uint8 array [H, W, 3] in BGR order.

        Returns:
            ``{"image": Tensor[3, h, w] of float32, "height": H, "width": W}``; with slicing on
            (a :class:`~trashpole.predict.sliced_model.SlicedModel`), the image unresized, as
            Tensor[3, H, W] of uint8, which the model slices or resizes itself.
        """
        if getattr(self.model, "takes_original_images", False):  # sliced: cut at full size
            return original_input(original_image, self.input_format)
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
    backend: Optional[str] = None,
    int8: Optional[bool] = None,
    slice: Union[None, str, int] = None,
    overlap: Optional[float] = None,
) -> TrashPolePredictor:
    """
    Build a predictor from a trained run.

    Args:
        run_or_config: the run folder or its ``config.yaml``.
        weights: checkpoint file (default: the run's model_final.pth).
        score_thresh: keep detections scoring at least this (default: the config's
            ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``).
        device: "cpu" or "cuda".
        opts: more KEY VALUE config overrides, e.g. the PyTorch speed options of
            :func:`trashpole.speed.speed_opts` (``TRASHPOLE.INFERENCE.BF16 True``...).
        input_size: shorter side of the images given to the model (default: the config's
            ``INPUT.MIN_SIZE_TEST``); see :func:`trashpole.speed.set_test_size`.
        backend: ``"auto"`` (OpenVINO on a CPU, PyTorch on CUDA), ``"openvino"`` or
            ``"pytorch"`` (default: the config's ``TRASHPOLE.INFERENCE.BACKEND``).
        int8: OpenVINO in int8 (``TRASHPOLE.INFERENCE.INT8``; calibrated on the run's train split).
        slice: sliced inference of large images (docs/slicing.md): ``"off"``, ``"on"``,
            ``"auto"`` (only the images the test size shrinks at least
            ``SLICE.AUTO_MIN_SHRINK`` times), or a slice side in px (on, at that size); default:
            the config's ``TRASHPOLE.INFERENCE.SLICE.MODE`` and ``SIZE``.
        overlap: least share of a slice's side shared by its neighbours (``SLICE.OVERLAP``).

    Returns:
        a :class:`TrashPolePredictor` (a detectron2 ``DefaultPredictor``); ``predictor(bgr_image)``
        returns ``{"instances": Instances}`` with ``pred_masks``, ``pred_boxes``, ``pred_classes``
        and ``scores``, sliced and merged where ``slice`` says; ``predictor.class_names`` names
        the classes.
    """
    opts = list(opts or []) + backend_opts(backend, int8) + slice_opts(slice, overlap)
    run = open_run(run_or_config, weights, opts, score_thresh, device, input_size)
    predictor = TrashPolePredictor(run.cfg)
    logger.info(f"Loaded {run.weights} with classes {predictor.class_names} ({predictor.backend})")
    return predictor
