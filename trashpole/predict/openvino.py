"""
The OpenVINO backend: trashpole's Mask R-CNN on the engine users deploy on a CPU.

The path from PyTorch: each network of :mod:`trashpole.predict.stages` is captured by
``torch.export`` (with the image size and the number of boxes symbolic) and handed to
``openvino.convert_model`` as an ``ExportedProgram``, then saved as IR (``.xml`` + ``.bin``).
``torch.export`` is PyTorch's supported exporter; the TorchScript-based ONNX exporter and
``torch.jit.trace`` (what ``convert_model`` falls back to for a bare ``nn.Module``) are being
deprecated. ``torch.export`` cannot capture the whole detector (its RPN and NMS branch on data),
so detectron2's own code runs between the three networks (:func:`stages.run_stages`): one
post-processing, shared with the PyTorch backend.

The converted model is cached beside the weights (``<weights folder>/openvino/<key>/``, else in
``~/.cache/trashpole/openvino``), keyed by the weights' SHA-256, the model's config and the
OpenVINO version; int8 models (:mod:`trashpole.predict.quantize`) are cached there too.
Precision: bf16 where the CPU has it (OpenVINO's ``OPTIMIZATION_CAPABILITIES``), f32 elsewhere.
"""

import hashlib
import json
import logging
import os
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.modeling import GeneralizedRCNN

from trashpole import __version__
from trashpole.jsonio import write_json
from trashpole.predict.stages import build_stages, feature_names, run_stages, stage_inputs

logger = logging.getLogger(__name__)

STAGES = ("features", "boxes", "masks")
CACHE_FOLDER = "openvino"
USER_CACHE = os.path.join("~", ".cache", "trashpole", "openvino")
# The config nodes that change the converted graphs (the rest: data, solver, output...).
GRAPH_KEYS = ("MODEL", "INPUT.FORMAT")


def openvino_core():
    """One ``openvino.Core`` for the process, with telemetry off (docs/export.md)."""
    from trashpole.compat.openvino import core

    return core()


def bf16_available() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AMX or AVX-512 BF16)."""
    return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def precision_for(bf16: bool) -> str:
    """The CPU plugin's inference precision: ``"bf16"`` when asked and native, else ``"f32"``."""
    return "bf16" if bf16 and bf16_available() else "f32"


# --- conversion -------------------------------------------------------------------------------


def _sample_image(model: GeneralizedRCNN, size: int = 256) -> torch.Tensor:
    """A normalized, padded input for tracing (values do not shape the graph)."""
    image = torch.rand(3, size, size) * 255
    return model.preprocess_image([{"image": image}]).tensor


def _dims(prefix: str, divisor: int):
    from torch.export import Dim

    if divisor > 1:
        return divisor * Dim(f"{prefix}_h", min=1, max=8192 // divisor), divisor * Dim(
            f"{prefix}_w", min=1, max=8192 // divisor
        )
    return Dim(f"{prefix}_h", min=1, max=8192), Dim(f"{prefix}_w", min=1, max=8192)


def export_stages(model: GeneralizedRCNN) -> Dict[str, Any]:
    """
    Capture the stages of ``model`` with ``torch.export``, image size and box counts symbolic.

    Returns:
        ``{stage: torch.export.ExportedProgram}``.
    """
    from torch.export import Dim, export

    stages = build_stages(model)
    image = _sample_image(model)
    h, w = _dims("image", max(1, model.backbone.size_divisibility))
    programs = {
        "features": export(
            stages["features"], (image,), dynamic_shapes=({2: h, 3: w},), strict=False
        )
    }
    with torch.no_grad():
        outputs = stages["features"](image)
    features = dict(zip(feature_names(model), outputs))
    boxes = torch.tensor([[4.0, 4.0, 60.0, 90.0], [10.0, 20.0, 200.0, 120.0]])
    for name, inputs in stage_inputs(model).items():
        args = tuple(features[n] for n in inputs) + (boxes,)
        shapes = tuple({2: Dim(f"{n}_h"), 3: Dim(f"{n}_w")} for n in inputs)
        shapes += ({0: Dim("boxes", min=1)},)
        programs[name] = export(stages[name], args, dynamic_shapes=(shapes,), strict=False)
    return programs


def convert_stages(model: GeneralizedRCNN) -> Dict[str, Any]:
    """
    ``torch.export`` + ``openvino.convert_model`` of each stage (fp32 weights).

    Returns:
        ``{stage: openvino.Model}`` with inputs named ``image`` (features) or by feature name
        plus ``boxes``.
    """
    import openvino as ov

    from trashpole.compat.openvino import keep_in_f32, telemetry_off

    models = {}
    with telemetry_off():
        for name, program in export_stages(model).items():
            models[name] = ov.convert_model(program)
    for name in stage_inputs(model):  # the ROI stages: their box coordinates stay f32
        models[name] = keep_in_f32(models[name], box_coordinate_ops(models[name]))
    return models


def box_coordinate_ops(model) -> List[str]:
    """
    Friendly names of the operations of an ROI stage (``openvino.Model``) computed from its
    boxes input alone (its last input) and constants: the level assignment and the boxes handed
    to ROIAlign. At bf16 inference precision the CPU plugin would run them in bf16, whose 8-bit
    significand moves a box corner by up to 1 px at 256-512 px and 2 px at 512-1024 px: that
    cost 0.56-0.60 segm AP (docs/performance.md). Kept in f32 (:func:`trashpole.compat.openvino.keep_in_f32`), the
    bf16 model's AP is that of f32; they are a few operations on R x 4 numbers.
    """
    boxes = model.get_parameters()[-1].get_friendly_name()
    from_boxes_only: Dict[str, bool] = {}
    names = []
    for op in model.get_ordered_ops():
        kind, name = op.get_type_name(), op.get_friendly_name()
        if kind == "Parameter":
            from_boxes_only[name] = name == boxes
        elif kind == "Constant":
            from_boxes_only[name] = True
        else:
            parents = [value.get_node().get_friendly_name() for value in op.input_values()]
            from_boxes_only[name] = all(from_boxes_only.get(p, False) for p in parents)
            if from_boxes_only[name] and kind != "Result":
                names.append(name)
    return names


# Bumped whenever the exported stages change (trashpole.predict.stages), so that a model cached
# by an older trashpole is converted again. 2: blocked_layout_hint before ROIAlign. 3: the box
# coordinates of the ROI stages kept in f32 (box_coordinate_ops).
GRAPH_VERSION = 3


# MODEL keys that the converted networks do not read: the weights' path (their bytes key the
# model), the device, and what only the glue between the stages reads (trashpole.predict.stages:
# proposal selection, score threshold, NMS).
GLUE_KEYS = (
    "WEIGHTS",
    "DEVICE",
    "RPN.PRE_NMS_TOPK_TEST",
    "RPN.POST_NMS_TOPK_TEST",
    "RPN.NMS_THRESH",
    "ROI_HEADS.SCORE_THRESH_TEST",
    "ROI_HEADS.NMS_THRESH_TEST",
)


def graph_key(cfg: CfgNode, weights: str) -> str:
    """The cache key of a run's converted model: SHA-256 of the weights file, the graph-shaping
    config keys (``MODEL`` but :data:`GLUE_KEYS`), the OpenVINO and trashpole versions and
    :data:`GRAPH_VERSION` (16 hex digits)."""
    import openvino as ov

    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    model = cfg.MODEL.clone()
    model.defrost()
    for key in GLUE_KEYS:
        node, name = model, key
        while "." in name:
            head, name = name.split(".", 1)
            node = node[head]
        node[name] = None
    # values, not YAML text: a config in memory shares lists that its dump writes as aliases
    digest.update(json.dumps(model, sort_keys=True, default=str).encode())
    digest.update(f"{cfg.INPUT.FORMAT}|{ov.__version__}|{__version__}|{GRAPH_VERSION}".encode())
    return digest.hexdigest()[:16]


def cache_dir(weights: str, key: str) -> str:
    """``<weights folder>/openvino/<key>`` when that folder is writable, else the user cache."""
    folder = os.path.dirname(os.path.abspath(weights))
    if os.access(folder, os.W_OK):
        return os.path.join(folder, CACHE_FOLDER, key)
    return os.path.join(os.path.expanduser(USER_CACHE), key)


def stage_paths(folder: str, suffix: str = "") -> Dict[str, str]:
    """The IR files of the stages in ``folder`` (``features.xml``..., or ``features_int8.xml``)."""
    return {name: os.path.join(folder, f"{name}{suffix}.xml") for name in STAGES}


def save_stages(models: Dict[str, Any], folder: str, suffix: str = "") -> Dict[str, str]:
    """Write each ``openvino.Model`` as IR into ``folder`` (fp32 weights kept); returns paths.
    Written under a temporary name first, so that an interrupted save is never taken as done."""
    import openvino as ov

    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, model in models.items():
        path = stage_paths(folder, suffix)[name]
        tmp = path[:-4] + ".tmp.xml"
        ov.save_model(model, tmp, compress_to_fp16=False)
        os.replace(tmp[:-4] + ".bin", path[:-4] + ".bin")
        os.replace(tmp, path)
        paths[name] = path
    return paths


def run_cache_dir(cfg: CfgNode, weights: str) -> Optional[str]:
    """The cache folder of a run's converted model (:func:`cache_dir` of :func:`graph_key`), or
    None when the weights are not a file (nothing to key the cache by)."""
    if not weights or not os.path.isfile(weights):
        return None
    return cache_dir(weights, graph_key(cfg, weights))


def converted_stages(model: GeneralizedRCNN, weights: str, folder: Optional[str]) -> Dict[str, Any]:
    """
    The run's stages as ``openvino.Model``s, from the cache ``folder`` or converted now (and
    cached there; None: not cached). The first call logs that it converts and how long it took.
    """
    import openvino as ov

    if folder is None:
        logger.info("Converting the model to OpenVINO (weights not from a file: not cached)")
        return convert_stages(model)
    names = ["features", *stage_inputs(model)]
    paths = {n: p for n, p in stage_paths(folder).items() if n in names}
    if all(os.path.isfile(p) for p in paths.values()):
        logger.info(f"OpenVINO model from the cache: {folder}")
        core = openvino_core()
        return {n: core.read_model(p) for n, p in paths.items()}
    logger.info(f"Converting {weights} to OpenVINO (first use of these weights)...")
    start = time.perf_counter()
    models = convert_stages(model)
    save_stages(models, folder)
    write_json(
        {"weights": os.path.abspath(weights), "key": os.path.basename(folder)}
        | {"openvino": ov.__version__},
        os.path.join(folder, "source.json"),
    )
    logger.info(f"Converted in {time.perf_counter() - start:.1f} s; cached in {folder}")
    return models


# --- running ----------------------------------------------------------------------------------


class CompiledStage:
    """
    One compiled stage, callable on torch tensors, from several threads at once
    (:mod:`trashpole.predict.pipeline`): each call takes an idle infer request, or makes one
    when every request is busy, and hands it back when done, so that a process makes as many
    requests as it ever had calls in flight (a new thread pool for each batch of slices reuses
    them). Outputs are copied out of the request, so they stay valid after the next call.

    Attributes:
        last_request: the request of the last finished call (its profiling counters).
    """

    def __init__(self, compiled):
        self.compiled = compiled
        self.last_request = None
        self._idle: List[Any] = []
        self._lock = threading.Lock()

    def _take(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.compiled.create_infer_request()

    def __call__(self, *inputs: torch.Tensor):
        """Run on Tensors (float32); returns one Tensor, or a tuple for several outputs, as the
        PyTorch stage does."""
        request = self._take()
        try:
            arrays = [np.ascontiguousarray(t.detach().float().numpy()) for t in inputs]
            request.infer(arrays, share_inputs=True)
            count = len(self.compiled.outputs)
            outputs = tuple(
                torch.from_numpy(request.get_output_tensor(i).data.copy()) for i in range(count)
            )
        finally:
            with self._lock:
                self._idle.append(request)
                self.last_request = request
        return outputs[0] if count == 1 else outputs


def compile_stages(
    models: Dict[str, Any],
    precision: str,
    num_threads: int = 0,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, CompiledStage]:
    """Compile each stage for the CPU at ``precision`` ("bf16", "f32"; "int8" models were
    quantized before and run their float parts in bf16 where available). ``extra``: more CPU
    plugin properties (e.g. ``{"PERF_COUNT": True}`` for per-layer timings)."""
    config: Dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        **(extra or {}),
    }
    if num_threads > 0:
        config["INFERENCE_NUM_THREADS"] = int(num_threads)
    core = openvino_core()
    return {name: CompiledStage(core.compile_model(m, "CPU", config)) for name, m in models.items()}


class OpenVINOModel:
    """
    A detectron2-style model run by OpenVINO: ``model(batched_inputs)`` takes and returns what
    ``GeneralizedRCNN`` does in eval mode (``[{"instances": Instances}]`` at each image's size),
    so the predictor, ``inference_on_dataset`` and the benchmarks use it unchanged.

    Args:
        glue: the detectron2 model whose weight-free code runs between the stages.
        stages: compiled stages (:func:`compile_stages`).
        description: what runs (precision, int8), for logs and benchmark labels.
        graphs: the ``openvino.Model`` of each stage (profiling; :meth:`with_streams`).
        precision, num_threads: what the stages were compiled with (:func:`compile_stages`).
    """

    def __init__(
        self,
        glue: GeneralizedRCNN,
        stages: Dict[str, CompiledStage],
        description: str,
        graphs: Optional[Dict[str, Any]] = None,
        precision: str = "f32",
        num_threads: int = 0,
    ):
        self.glue = glue.eval()
        self.stages = stages
        self.description = description
        self.graphs = graphs or {}
        self.precision, self.num_threads = precision, num_threads
        self.laps = None  # a stages.Laps to time each phase (benchmarks)

    def __call__(self, batched_inputs: Sequence[Dict]) -> List[Dict]:
        return run_stages(self.glue, self.stages, list(batched_inputs), self.laps)

    def eval(self) -> "OpenVINOModel":
        return self

    def with_streams(self, streams: int) -> "OpenVINOModel":
        """
        The same networks and glue compiled for ``streams`` images in flight at once, each
        inference on its share of the cores (OpenVINO's throughput mode), for the slices of a
        batch (:class:`trashpole.predict.sliced_model.SlicedModel`). One image alone runs
        slower on it than on this model, which gives one inference every core; images in flight
        together run faster (docs/slicing.md). Without the stages' graphs, this model.
        """
        if not self.graphs or streams < 2:
            return self
        extra = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": int(streams)}
        stages = compile_stages(self.graphs, self.precision, self.num_threads, extra)
        description = f"{self.description} on {streams} streams"
        return OpenVINOModel(
            self.glue, stages, description, self.graphs, self.precision, self.num_threads
        )


def openvino_model(
    model: GeneralizedRCNN, cfg: CfgNode, weights: str, calibration: Optional[str] = None
) -> OpenVINOModel:
    """
    The OpenVINO backend of a built model with ``weights`` loaded: converted (or read from the
    cache), quantized when ``TRASHPOLE.INFERENCE.INT8``, compiled at bf16 where the CPU has it.

    Args:
        model: the detectron2 model (eval mode, weights loaded); its glue runs between stages.
        cfg: the run's config.
        weights: the checkpoint file the model holds (keys the cache; "" for no cache).
        calibration: a folder of int8 calibration images (default: the train split).
    """
    options = cfg.TRASHPOLE.INFERENCE
    folder = run_cache_dir(cfg, weights)  # hashes the weights file once
    models = converted_stages(model, weights, folder)
    label = []
    if options.INT8:
        from trashpole.predict.quantize import quantized_features

        path = stage_paths(folder, "_int8")["features"] if folder else None
        models["features"] = quantized_features(model, cfg, models["features"], path, calibration)
        label.append("int8 features")
    precision = precision_for(bool(options.BF16))
    threads = int(options.NUM_THREADS)
    stages = compile_stages(models, precision, threads)
    description = " ".join(["openvino", precision] + label)
    return OpenVINOModel(model, stages, description, models, precision, threads)


def load_exported(
    export_dir: str, meta: Dict, precision: Optional[str] = None, int8: bool = False
) -> OpenVINOModel:
    """
    An :class:`OpenVINOModel` from a folder written by ``tools/export_model.py --format openvino``:
    the IR files and the glue built from the folder's ``config.yaml`` (its weights unused).

    Args:
        export_dir: the export folder.
        meta: its ``export_meta.json``.
        precision: "bf16" or "f32" (default: bf16 where the CPU has it).
        int8: use ``features_int8.xml`` (written by ``--int8``).
    """
    from detectron2.modeling import build_model

    from trashpole.config import load_config
    from trashpole.errors import MissingFileError

    cfg = load_config(os.path.join(export_dir, meta["glue_config"]), ["MODEL.DEVICE", "cpu"])
    cfg.MODEL.WEIGHTS = ""
    glue = build_model(cfg).eval()
    files = dict(meta["stages"])
    if int8:
        if "stages_int8" not in meta:
            raise MissingFileError(f"{export_dir} has no int8 model: export it with --int8")
        files.update(meta["stages_int8"])
    core = openvino_core()
    models = {n: core.read_model(os.path.join(export_dir, f)) for n, f in files.items()}
    precision = precision or precision_for(True)
    stages = compile_stages(models, precision)
    description = " ".join(["openvino", precision] + ["int8"] * int8)
    return OpenVINOModel(glue, stages, description, models, precision)
