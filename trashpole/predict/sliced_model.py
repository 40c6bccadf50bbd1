"""
Sliced inference as an inference model, so that every consumer of
:func:`trashpole.run.build_inference_model` slices the same way: the predictor (photos, folders,
video, ``--track``, GeoJSON), ``tools/train_net.py --eval-only``, the evaluation at the end of
training and the benchmarks.

:class:`SlicedModel` is called like detectron2's model, ``model(batched_inputs) ->
[{"instances": Instances}]``, but it takes each image at its **original resolution**, because a
slice is cut from the full-resolution image: the predictor gives it the image unresized
(:meth:`trashpole.predict.predictor.TrashPolePredictor.preprocess`), and the evaluation builds its
test loader with :meth:`SlicedModel.test_mapper` (detectron2's ``DatasetMapper`` without the
test-time resize). Each image is then either sliced (:func:`trashpole.predict.slicing
.predict_sliced`: slices in batches of ``SLICE.BATCH`` through the wrapped backend, plus the whole
image) or, when ``auto`` decides not to slice it, resized to the test size and run whole, exactly
as without slicing. The decision is logged once per image size.
"""

import logging
import threading
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetMapper
from detectron2.structures import Instances

from trashpole.predict.pipeline import backend_workers, in_order, stream_count, streamed_copy
from trashpole.predict.preprocess import cfg_model_input
from trashpole.predict.slicing import (
    SliceSettings,
    decide_slicing,
    predict_sliced,
    slice_grid,
    slice_settings,
)

logger = logging.getLogger(__name__)


def describe_slicing(settings: SliceSettings, streams: int = 1) -> str:
    """A short label of the slicing, e.g. ``sliced auto 384px overlap 0.2 batch 4 +whole``, with
    ``on N streams`` after the batch when a batch's slices run on ``streams`` > 1 streams."""
    whole = " +whole" if settings.whole_image else ""
    on = f" on {streams} streams" if streams > 1 and settings.batch > 1 else ""
    return (
        f"sliced {settings.mode} {settings.size}px overlap {settings.overlap:g} "
        f"batch {settings.batch}{on}{whole}"
    )


class SlicedModel:
    """
    An inference model that slices the images its settings say to slice and runs the others
    whole, over another inference model (the backend).

    Args:
        inner: the backend, ``inner(batched_inputs) -> [{"instances": Instances}]`` taking images
            resized to the test size (:func:`trashpole.run.build_inference_model`'s models).
        cfg: the config (``INPUT.FORMAT``, ``MIN/MAX_SIZE_TEST``, ``MODEL.DEVICE``).
        settings: the slicing (default: :func:`slice_settings` of ``cfg``).

    Attributes:
        takes_original_images: True: the inputs' ``image`` is at the original resolution.
        description: the backend's description and the slicing, e.g.
            ``openvino f32, sliced auto 384px overlap 0.2 batch 4 on 2 streams +whole``.
        laps: None, or a :class:`trashpole.predict.stages.Laps` that adds up the time of each
            step of slicing (benchmarks).
    """

    takes_original_images = True

    def __init__(self, inner, cfg: CfgNode, settings: Optional[SliceSettings] = None):
        self.inner = inner  # not ``model``: callers read ``.model`` as the PyTorch module
        self.cfg = cfg
        self.settings = settings or slice_settings(cfg)
        self.workers = backend_workers(getattr(inner, "description", ""), cfg)
        # OpenVINO: a batch's slices run on a copy compiled for that many streams, made when the
        # first image is sliced
        self.streams = stream_count(inner, cfg, self.workers)
        self.description = f"{inner.description}, {describe_slicing(self.settings, self.streams)}"
        self._streamed: Optional[Tuple[Any, Any]] = None  # (backend, its copy for streams)
        self._logged: Set[Tuple[int, int]] = set()
        self._lock = threading.Lock()  # the pipeline calls the model from several threads
        self.laps = None  # a stages.Laps to time each step of slicing (benchmarks)

    def eval(self) -> "SlicedModel":
        return self

    def test_mapper(self) -> DatasetMapper:
        """The evaluation's mapper: detectron2's test ``DatasetMapper`` without the resize, so
        that the images reach :meth:`__call__` at their original resolution."""
        return DatasetMapper(self.cfg, is_train=False, augmentations=[])

    def should_slice(self, height: int, width: int) -> bool:
        """Whether an image of that size is sliced; the reason is logged once per size."""
        s = self.settings
        test = self.cfg.INPUT
        sliced, why = decide_slicing(
            s.mode, height, width, test.MIN_SIZE_TEST, test.MAX_SIZE_TEST, s.auto_min_shrink
        )
        with self._lock:
            first = (height, width) not in self._logged
            self._logged.add((height, width))
        if first:
            if sliced:
                slices = len(slice_grid(height, width, s.size, s.overlap))
                whole = " + the whole image" if s.whole_image else ""
                plural = "s" if slices > 1 else ""
                why += f": {slices} slice{plural} of {s.size} px (overlap {s.overlap:g}){whole}"
            logger.info(why)
        return sliced

    def __call__(self, batched_inputs: Sequence[Dict]) -> List[Dict]:
        """
        Predict a batch of images at their original resolution.

        Args:
            batched_inputs: dicts with ``image`` (Tensor[3, H, W], uint8 or float in 0-255,
                channels in ``INPUT.FORMAT``, **not resized**) and optionally ``height`` and
                ``width`` (must equal H and W).

        Returns:
            one ``{"instances": Instances}`` per input, at its size, with ``pred_boxes``,
            ``scores``, ``pred_classes`` and ``pred_masks`` (Tensor[N, H, W] of bool).
        """
        images = [self._original_bgr(inputs) for inputs in batched_inputs]
        sliced = [self.should_slice(*image.shape[:2]) for image in images]
        outputs: List[Optional[Dict]] = [None] * len(images)
        whole = [i for i, s in enumerate(sliced) if not s]
        if whole:  # the images auto leaves whole run together, as they would without slicing
            for i, out in zip(whole, self.inner([self._model_input(images[i]) for i in whole])):
                outputs[i] = out
        s = self.settings
        for i in (i for i, yes in enumerate(sliced) if yes):
            instances = predict_sliced(
                self.run_batch,
                images[i],
                s.size,
                s.overlap,
                s.whole_image,
                s.batch,
                laps=self.laps,
            )
            outputs[i] = {"instances": instances}
        return outputs

    def run_batch(self, images_bgr: List[np.ndarray]) -> List[Instances]:
        """The backend on a batch of BGR images (slices, or the whole image), each resized to
        the test size as the predictor does; one ``Instances`` per image at its size, on the
        CPU. On OpenVINO, whose backend takes a batch one image at a time, the images of a batch
        are in flight together, ``TRASHPOLE.INFERENCE.WORKERS`` at once (each image its own
        infer request), as the folder pipeline runs photos, on a copy of the backend compiled
        for that many streams (:meth:`trashpole.predict.openvino.OpenVINOModel.with_streams`);
        a batch of one image (the whole-image pass) runs on the backend itself."""
        if self.workers > 1 and len(images_bgr) > 1:
            model = self.streamed_model()

            def one(image: np.ndarray) -> Dict:
                return model([self._model_input(image)])[0]

            count = len(images_bgr)
            outputs = [out for _, out in in_order(one, images_bgr, self.workers, count)]
        else:
            outputs = self.inner([self._model_input(image) for image in images_bgr])
        return [out["instances"].to("cpu") for out in outputs]

    def streamed_model(self):
        """The backend for images in flight together: its copy compiled for ``streams``
        streams (made once for each backend ``inner`` is set to), or the backend itself."""
        inner = self.inner
        if self.streams < 2 or not hasattr(inner, "with_streams"):
            return inner
        with self._lock:
            if self._streamed is None or self._streamed[0] is not inner:
                self._streamed = (inner, streamed_copy(inner, self.streams, "slices"))
            return self._streamed[1]

    def _model_input(self, image_bgr: np.ndarray) -> Dict:
        height, width = image_bgr.shape[:2]
        image = cfg_model_input(self.cfg, image_bgr).to(self.cfg.MODEL.DEVICE)
        return {"image": image, "height": height, "width": width}

    def _original_bgr(self, inputs: Dict) -> np.ndarray:
        """The input's image as a BGR uint8 array [H, W, 3], checked to be at its original
        size."""
        image: torch.Tensor = inputs["image"]
        size = tuple(image.shape[1:])
        expected = (inputs.get("height", size[0]), inputs.get("width", size[1]))
        if size != expected:
            raise ValueError(
                f"sliced inference takes images at their original size: got {size[1]}x{size[0]} "
                f"for an image of {expected[1]}x{expected[0]}; build the test loader with "
                "model.test_mapper() (no resize)"
            )
        array = image.permute(1, 2, 0).to("cpu").numpy()
        if array.dtype != np.uint8:
            array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
        if self.cfg.INPUT.FORMAT == "RGB":
            array = array[:, :, ::-1]
        return np.ascontiguousarray(array)


def original_input(image_bgr: np.ndarray, channel_order: str) -> Dict:
    """
    A BGR image as :class:`SlicedModel`'s input, unresized.

    Args:
        image_bgr: uint8 array [H, W, 3] in BGR order.
        channel_order: the model's ``INPUT.FORMAT``, ``"BGR"`` or ``"RGB"``.

    Returns:
        ``{"image": Tensor[3, H, W] of uint8 in channel_order, "height": H, "width": W}``.
    """
    image = image_bgr[:, :, ::-1] if channel_order == "RGB" else image_bgr
    tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return {"image": tensor, "height": image_bgr.shape[0], "width": image_bgr.shape[1]}
