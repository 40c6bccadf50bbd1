"""Export a trained run to TorchScript or ONNX through detectron2's tracing, and run the result.

The exported graph is ``GeneralizedRCNN.inference(..., do_postprocess=False)`` traced by
:class:`detectron2.export.TracingAdapter` on the CPU in eval mode, as detectron2's deploy tool
does. It takes one image and returns, in the order written to ``export_meta.json``:

- ``pred_boxes``: Tensor[N, 4] float32, XYXY in pixels of the model input (the resized image);
- ``pred_classes``: Tensor[N] int64, contiguous class ids (names in ``export_meta.json``);
- ``pred_masks``: Tensor[N, 1, M, M] float32, mask probabilities in each box (M = 28);
- ``scores``: Tensor[N] float32;
- ``image_size``: Tensor[2] int64, (height, width) of the model input.

Normalization by the pixel mean/std and padding to the backbone's size divisibility happen inside
the graph; resizing the image to the test size before, and scaling boxes and pasting masks at the
original image size after (detectron2's ``detector_postprocess``), happen outside it:
:class:`ExportedPredictor` does both with detectron2, ``examples/run_exported.py`` without it.
"""

import dataclasses
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.export import TracingAdapter
from detectron2.export.flatten import InstancesSchema
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from trashpole import __version__, compat
from trashpole.config import load_config
from trashpole.errors import MissingFileError, UserError
from trashpole.jsonio import write_json
from trashpole.predict.predictor import resolve_run
from trashpole.predict.preprocess import cfg_model_input, class_names, model_input

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("openvino", "torchscript", "onnx")
MODEL_FILES = {"torchscript": "model.ts", "onnx": "model.onnx", "openvino": "features.xml"}
META_FILE = "export_meta.json"
# torchvision exports detectron2's ROIAlign(aligned=True) exactly only from opset 16 on (RoiAlign's
# half_pixel mode); at detectron2's STABLE_ONNX_OPSET_VERSION (11) every RoI is off by half a pixel.
ONNX_OPSET = 16
# Name of the graph's input in the ONNX file.
ONNX_INPUT = "image"
# detectron2's default binarization threshold of mask probabilities when pasting.
MASK_THRESHOLD = 0.5


def load_model(cfg: CfgNode) -> GeneralizedRCNN:
    """
    Build the eager model of ``cfg`` with ``cfg.MODEL.WEIGHTS`` loaded, in eval mode, on the CPU,
    without gradients (so that traced outputs carry none).

    Returns:
        the detectron2 meta-architecture (a ``GeneralizedRCNN`` for Mask R-CNN).
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    model.eval()
    model.requires_grad_(False)
    return model


def image_to_input(cfg: CfgNode, image_bgr: np.ndarray) -> torch.Tensor:
    """The model input of a BGR image, as the predictor makes it (Tensor[3, h, w] of float32)."""
    return cfg_model_input(cfg, image_bgr)


def default_sample_image(cfg: CfgNode, seed: int = 0) -> np.ndarray:
    """
    A noise image at the test size, for tracing when no sample image is given. The graph does
    not depend on what the image shows (see docs/export.md), only the self-check does.

    Returns:
        uint8 array [S, S, 3] with S = INPUT.MIN_SIZE_TEST (clipped to MAX_SIZE_TEST).
    """
    size = min(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) or 512
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _raw_inference(model: GeneralizedRCNN, inputs: List[Dict[str, torch.Tensor]]) -> List[Dict]:
    # do_postprocess=False keeps boxes in input pixels and masks as M x M probabilities, so that
    # the graph does not depend on the original image size.
    instances = model.inference(inputs, do_postprocess=False)[0]
    return [{"instances": instances}]


def output_names(schema: Any) -> List[str]:
    """
    Names of the flattened outputs of a :class:`TracingAdapter`, in order, from its
    ``outputs_schema``: the field names of the ``Instances`` (sorted, as detectron2 flattens them)
    followed by ``image_size``.

    Args:
        schema: ``adapter.outputs_schema`` (set once the adapter has run).

    Returns:
        e.g. ``["pred_boxes", "pred_classes", "pred_masks", "scores", "image_size"]``.
    """
    names: List[str] = []

    def walk(node: Any, path: Tuple[str, ...]) -> None:
        children = getattr(node, "schemas", None)
        if children is None:  # a leaf: one tensor
            names.append(".".join(path) or "output")
            return
        keys = getattr(node, "keys", None)
        for i, child in enumerate(children):
            walk(child, path + (keys[i],) if keys else path)
        if isinstance(node, InstancesSchema):  # flattened after the fields
            names.append(".".join(path + ("image_size",)))

    walk(schema, ())
    leaves = [n.split(".")[-1] for n in names]
    return leaves if len(set(leaves)) == len(leaves) else names


def _trace_adapter(model: GeneralizedRCNN, image: torch.Tensor) -> Tuple[TracingAdapter, tuple]:
    # The adapter is a fresh nn.Module in training mode; torch.onnx.export restores that mode on
    # the way out, which would switch the wrapped model to training too.
    adapter = TracingAdapter(model, [{"image": image}], _raw_inference).eval()
    with torch.no_grad():
        reference = adapter(image)  # also fills adapter.outputs_schema
    return adapter, reference


def build_export_meta(
    cfg: CfgNode, fmt: str, names: List[str], schema: Any, image: torch.Tensor, sources: Dict
) -> Dict:
    classes = class_names(cfg)
    return {
        "format": fmt,
        "model_file": MODEL_FILES[fmt],
        "class_names": classes,
        "input": {
            "name": ONNX_INPUT,
            "layout": "CHW",
            "dtype": "float32",
            "value_range": [0, 255],
            "channel_order": cfg.INPUT.FORMAT,
            "resize": "shortest edge to min_size_test, longest edge at most max_size_test",
            "min_size_test": int(cfg.INPUT.MIN_SIZE_TEST),
            "max_size_test": int(cfg.INPUT.MAX_SIZE_TEST),
            "traced_size": list(image.shape[1:]),
        },
        "normalization": {
            "inside_model": True,
            "pixel_mean": [float(v) for v in cfg.MODEL.PIXEL_MEAN],
            "pixel_std": [float(v) for v in cfg.MODEL.PIXEL_STD],
        },
        "score_thresh": float(cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST),
        "nms_thresh": float(cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST),
        "detections_per_image": int(cfg.TEST.DETECTIONS_PER_IMAGE),
        "mask_threshold": MASK_THRESHOLD,
        "outputs": names,
        "outputs_schema": (
            {"type": type(schema).__name__, **dataclasses.asdict(schema)} if schema else None
        ),
        "source": sources,
        "versions": {"torch": torch.__version__, "trashpole": __version__},
    }


def _write_torchscript(adapter: TracingAdapter, image: torch.Tensor, path: str) -> None:
    # TorchScript is what libtorch (C++) and older runtimes load, and torch.jit is the only way to
    # write it; torch.export's .pt2 cannot be made for this model (see _write_onnx).
    with compat.torchscript_calls():
        traced = torch.jit.trace(adapter, (image,), check_trace=False)
        torch.jit.save(traced, path)


def _write_onnx(adapter: TracingAdapter, image: torch.Tensor, names: List[str], path: str) -> None:
    try:
        import onnx  # noqa: F401  (optional dependency: torch.onnx.export serializes through it)
    except ImportError:
        raise ImportError(
            f"exporting {path} needs the onnx package: pip install onnx "
            "(and onnxruntime to run and check it), or pip install -e '.[export]'"
        ) from None
    # Input height/width and the number of detections are symbolic, so one file serves any size.
    dynamic = {ONNX_INPUT: {1: "height", 2: "width"}}
    dynamic.update({n: {0: "detections"} for n in names if n != "image_size"})
    # torch >= 2.9 defaults to the torch.export-based exporter (dynamo=True). It cannot capture
    # detectron2's Mask R-CNN: torch.export stops at data-dependent Python control flow such as
    # `if not valid_mask.all()` in find_top_rpn_proposals (GuardOnDataDependentSymNode, checked
    # with torch 2.14.1), and making it pass would mean rewriting detectron2's RPN, ROI heads and
    # mask pasting. The TorchScript-based exporter (dynamo=False) traces the values of one run
    # and exports the model exactly, as the parity tests check.
    with compat.legacy_onnx_export():
        torch.onnx.export(
            adapter,
            (image,),
            path,
            opset_version=ONNX_OPSET,
            input_names=[ONNX_INPUT],
            output_names=names,
            dynamic_axes=dynamic,
            dynamo=False,
        )


def export_model(
    run_or_config: str,
    output_dir: str,
    fmt: str = "torchscript",
    weights: Optional[str] = None,
    sample_image: Optional[np.ndarray] = None,
    opts: Optional[Sequence[str]] = None,
    verify: bool = True,
    int8: bool = False,
    calibration: Optional[str] = None,
) -> str:
    """
    Trace a trained run and write ``model.ts`` or ``model.onnx`` plus ``export_meta.json``; or,
    for ``"openvino"``, the IR of the three networks (``features``, ``boxes``, ``masks``
    ``.xml`` + ``.bin``, see :mod:`trashpole.predict.openvino`), ``export_meta.json`` and the
    ``config.yaml`` whose detectron2 glue runs between them.

    Args:
        run_or_config: the run folder or its ``config.yaml``.
        output_dir: folder for the exported files (created).
        fmt: "torchscript" or "onnx".
        weights: checkpoint (default: the run's model_final.pth, else model_best.pth).
        sample_image: uint8 BGR array [H, W, 3] to trace with (default: noise at the test size).
        opts: more KEY VALUE config overrides (e.g. ``MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.3``:
            the score threshold is frozen into the graph).
        verify: run the exported file on the sample image and check it against the eager model
            (ONNX: only when onnxruntime is installed; OpenVINO: at f32).
        int8: OpenVINO: also write ``features_int8.xml``, quantized by NNCF.
        calibration: folder of int8 calibration images (default: the run's train split).

    Returns:
        path of the exported model file.
    """
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {list(EXPORT_FORMATS)}")
    config, weights = resolve_run(run_or_config, weights)
    cfg = load_config(config, opts)
    cfg.MODEL.WEIGHTS = weights
    model = load_model(cfg)
    if sample_image is None:
        sample_image = default_sample_image(cfg)
    if fmt == "openvino":  # its precision is chosen where it is compiled (BF16 applies there)
        from trashpole.export_openvino import export_openvino

        return export_openvino(cfg, model, output_dir, sample_image, verify, int8, calibration)
    source = {"config": config, "weights": weights}
    return _export_traced(cfg, model, fmt, sample_image, output_dir, source, verify)


def _export_traced(
    cfg: CfgNode,
    model: torch.nn.Module,
    fmt: str,
    sample_image: np.ndarray,
    output_dir: str,
    source: Dict[str, str],
    verify: bool,
) -> str:
    """
    Trace ``model`` on ``sample_image`` and write it as TorchScript or ONNX with
    ``export_meta.json`` (``source``: the run's config and weights files), then check the file
    against the eager outputs when ``verify``; returns the model file's path.
    """
    _warn_ignored_speed_options(cfg)
    image = image_to_input(cfg, sample_image)
    adapter, reference = _trace_adapter(model, image)
    names = output_names(adapter.outputs_schema)

    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, MODEL_FILES[fmt])
    if fmt == "torchscript":
        _write_torchscript(adapter, image, path)
    else:
        _write_onnx(adapter, image, names, path)
    meta = build_export_meta(cfg, fmt, names, adapter.outputs_schema, image, source)
    write_json(meta, os.path.join(output_dir, META_FILE))
    logger.info(
        f"Exported {source['weights']} to {path} (traced at {tuple(image.shape[1:])}, "
        f"{len(reference[0])} detections on the sample image)"
    )
    if verify:
        _verify(output_dir, image, dict(zip(names, reference)))
    return path


def _warn_ignored_speed_options(cfg: CfgNode) -> None:
    # bf16 autocast and channels_last are eager-mode switches of the predictor; the traced graph
    # is always the fp32 model, whatever the run's config says.
    options = cfg.TRASHPOLE.get("INFERENCE", CfgNode())
    ignored = [f"TRASHPOLE.INFERENCE.{k}" for k in ("BF16", "CHANNELS_LAST") if options.get(k)]
    if ignored:
        logger.warning(f"{', '.join(ignored)} ignored: the exported graph is the plain fp32 model")


def _verify(export_dir: str, image: torch.Tensor, reference: Dict[str, torch.Tensor]) -> None:
    try:
        exported = ExportedPredictor(export_dir)
    except ImportError as e:
        logger.info(f"Skipped the check of {export_dir}: {e}")
        return
    diffs = compare_raw_outputs(reference, exported.run_raw(image))
    logger.info(f"Exported vs eager on the sample image: {diffs}")
    if diffs["num_detections"][0] != diffs["num_detections"][1] or diffs["box_max_abs"] > 1e-2:
        raise RuntimeError(
            f"{export_dir}: the exported model disagrees with the eager one on the sample image "
            f"({diffs}); export with --sample-image set to a real photo and report the difference"
        )


def compare_raw_outputs(
    expected: Dict[str, torch.Tensor], actual: Dict[str, torch.Tensor]
) -> Dict[str, Any]:
    """
    Largest differences between two sets of raw outputs (see the module docstring).

    Returns:
        ``num_detections`` (expected, actual) and, when both counts agree, ``box_max_abs`` (px),
        ``score_max_abs``, ``mask_prob_max_abs`` and ``classes_equal``.
    """
    n_exp, n_act = len(expected["scores"]), len(actual["scores"])
    diffs: Dict[str, Any] = {"num_detections": (n_exp, n_act)}
    if n_exp != n_act:
        diffs["box_max_abs"] = float("inf")
        return diffs

    def max_abs(key: str) -> float:
        if n_exp == 0:
            return 0.0
        return float((expected[key].float() - actual[key].float()).abs().max())

    diffs["box_max_abs"] = max_abs("pred_boxes")
    diffs["score_max_abs"] = max_abs("scores")
    diffs["mask_prob_max_abs"] = max_abs("pred_masks")
    diffs["classes_equal"] = bool(torch.equal(expected["pred_classes"], actual["pred_classes"]))
    return diffs


def read_export_meta(export_dir: str) -> Dict:
    """The ``export_meta.json`` of an export folder."""
    path = os.path.join(export_dir, META_FILE)
    if not os.path.isfile(path):
        raise MissingFileError(
            f"{path} does not exist: give the folder written by tools/export_model.py"
        )
    with open(path) as f:
        return json.load(f)


class ExportedPredictor:
    """
    Run an exported model like detectron2's ``DefaultPredictor``: BGR image in,
    ``{"instances": Instances}`` at the image's own size out (boxes, classes, scores and pasted
    masks, via detectron2's ``detector_postprocess``). Needs detectron2; to run an export without
    it see ``examples/run_exported.py``.

    Args:
        export_dir: folder written by :func:`export_model`.
    """

    def __init__(self, export_dir: str, precision: Optional[str] = None, int8: bool = False):
        self.meta = read_export_meta(export_dir)
        self.path = os.path.join(export_dir, self.meta["model_file"])
        size = self.meta["input"]
        self.size = (size["min_size_test"], size["max_size_test"])
        if self.meta["format"] == "openvino":
            from trashpole.predict.openvino import load_exported

            self._model = load_exported(export_dir, self.meta, precision, int8)
        elif self.meta["format"] == "onnx":
            import onnxruntime  # optional dependency (the export extra)

            self._session = onnxruntime.InferenceSession(
                self.path, providers=["CPUExecutionProvider"]
            )
        else:
            with compat.torchscript_calls():
                self._module = torch.jit.load(self.path, map_location="cpu")

    @property
    def class_names(self) -> List[str]:
        return list(self.meta["class_names"])

    def run_raw(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Run the graph on one model input.

        Args:
            image: Tensor[3, h, w] of float32, already resized (see :func:`image_to_input`).

        Returns:
            the raw outputs by name (see the module docstring).
        """
        if self.meta["format"] == "onnx":
            values = self._session.run(None, {ONNX_INPUT: image.numpy()})
            values = [torch.from_numpy(v) for v in values]
        else:
            with torch.no_grad():
                values = self._module(image)
        return dict(zip(self.meta["outputs"], values))

    def __call__(self, image_bgr: np.ndarray) -> Dict[str, Instances]:
        """
        Args:
            image_bgr: uint8 array [H, W, 3] in BGR order.

        Returns:
            ``{"instances": Instances}`` of image size (H, W) with ``pred_boxes``,
            ``pred_classes``, ``scores`` and ``pred_masks`` (Tensor[N, H, W] of bool).
        """
        height, width = image_bgr.shape[:2]
        image = model_input(image_bgr, self.meta["input"]["channel_order"], *self.size)
        if self.meta["format"] == "openvino":  # the glue pastes at image size itself
            return self._model([{"image": image, "height": height, "width": width}])[0]
        raw = self.run_raw(image)
        return {"instances": raw_to_instances(raw, height, width, self.meta["mask_threshold"])}


def raw_to_instances(
    raw: Dict[str, torch.Tensor], height: int, width: int, mask_threshold: float = MASK_THRESHOLD
) -> Instances:
    """
    detectron2's postprocess on raw exported outputs: scale boxes to (height, width), clip them,
    drop empty ones and paste the masks.

    Args:
        raw: outputs by name, as :meth:`ExportedPredictor.run_raw` returns.
        height, width: size of the original image.
        mask_threshold: probability at which a mask pixel is on.

    Returns:
        Instances of size (height, width); ``pred_masks`` is Tensor[N, height, width] of bool.
    """
    input_size = tuple(int(v) for v in raw["image_size"])
    instances = Instances(
        input_size,
        pred_boxes=Boxes(raw["pred_boxes"]),
        pred_classes=raw["pred_classes"],
        pred_masks=raw["pred_masks"],
        scores=raw["scores"],
    )
    return detector_postprocess(instances, height, width, mask_threshold)
