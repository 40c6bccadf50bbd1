"""Latency of one 640x640 image: trashpole's predictor (OpenVINO and PyTorch backends) against
torchvision's ``maskrcnn_resnet50_fpn`` (an R50-FPN Mask R-CNN; detectron2's keeps
``STRIDE_IN_1X1``, so its ResNet does 1.35% fewer multiply-adds than torchvision's), in PyTorch and
on OpenVINO, with random weights, on the same image and threads. End to end: a BGR image in,
instances at the image's size out (masks pasted) in every row.

Equal work: score thresholds are 0 in every contender, so 1000 proposals reach the box head and
100 detections the mask head in each, and ROIAlign samples 2x2 points per bin everywhere (as
torchvision does). Random weights need input normalization to produce detections at all, so
trashpole's models use ImageNet mean/std here as torchvision does.

Equal switches: the peer runs as built (fp32, NCHW), with the generic PyTorch switches that
trashpole's PyTorch backend uses (bf16 autocast where the CPU has native bf16, channels_last, the
same threads), and on OpenVINO at the precision of trashpole's OpenVINO row, split and converted
as trashpole's model is (:mod:`benchmarks.peer_openvino`); every row has its speed-up
against each. Each row's label is read from the
model that was timed (:mod:`benchmarks.describe`), not from the options asked for.

Contenders run in turn (one image each, round after round) after a warm-up, so that a change
of load on the machine hits all of them alike; the median of the rounds is reported, with the
GMAC from detectron2's flop counter, the implied fraction of the machine's matmul and 3x3-conv
peaks (bf16 or fp32 as the row computed) measured in the same run, the memory one prediction
needs and the machine (CPU model, ISA flags, torch and oneDNN versions). Results and their
reading: docs/performance.md."""

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.modeling import build_model
from detectron2.utils.analysis import FlopCountAnalysis

from benchmarks import measure
from benchmarks.describe import (
    describe_model,
    describe_openvino,
    is_openvino,
    label,
    observe_features,
    openvino_label,
)
from benchmarks.measure import (
    R50_CONFIG,
    imagenet_norm_opts,
    matmul_peak,
    measuring,
    street_image,
    summarize,
    time_alternating,
    use_threads,
    write_result,
)
from trashpole.config import load_config
from trashpole.predict.predictor import TrashPolePredictor
from trashpole.run import backend_opts
from trashpole.speed import fp32_opts, precision, set_test_size, speed_opts

logger = logging.getLogger(__name__)

NAME = "inference"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"size": 64, "warmup": 0, "repeats": 1, "matmul_size": 256}
QUICK.update({"proposals": 50, "detections": 5})
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "size": "size", "repeats": "repeats"}

# ----------------------------------------------------------------------------------------------
# The inference benchmark


@dataclass
class Contender:
    """
    One model set-up to time.

    Attributes:
        name: key of the row (its label is read from the timed model).
        family: "trashpole" (a :class:`TrashPolePredictor` built from ``config`` and ``opts``),
            "torchvision" (``maskrcnn_resnet50_fpn``) or "torchvision-openvino" (the same on
            OpenVINO at ``precision``).
        config: trashpole YAML.
        opts: config overrides (speed options and the like), applied after the run's equal-work
            settings (so a contender may change its proposals).
        bf16: torchvision only: forward under CPU bf16 autocast (weights stay fp32).
        channels_last: torchvision only: the model in channels_last.
        note: what the row is for, for the table's reader.
    """

    name: str
    family: str
    config: str = ""
    opts: Sequence[str] = field(default_factory=tuple)
    bf16: bool = False
    channels_last: bool = False
    precision: str = ""
    note: str = ""


def pytorch_opts() -> List[str]:
    """The PyTorch backend's default switches with equal work (1000 proposals, 100 masks, ROIAlign
    2x2 samples per bin): bf16 autocast (where the CPU has it natively), channels_last. The same
    generic switches as the peer's "switches" row."""

    return backend_opts("pytorch") + speed_opts(
        bf16=precision.bf16_supported(), channels_last=True, sampling_ratio=2
    )


def default_contenders() -> List[Contender]:
    """torchvision's R50-FPN plain, with the generic switches, and on OpenVINO; trashpole's R50-FPN
    (the same network, but for ``STRIDE_IN_1X1``) as detectron2 builds it (fp32), with the PyTorch
    backend's default switches, and on OpenVINO (the default on a CPU) in float and int8; all
    with ROIAlign sampling 2 as torchvision."""

    from trashpole.predict.openvino import precision_for

    bf16 = precision.bf16_supported()
    ratio2 = speed_opts(sampling_ratio=2)
    ov = backend_opts("openvino") + ratio2
    return [
        Contender("torchvision plain", "torchvision", note="the peer as built"),
        Contender(
            "torchvision switches",
            "torchvision",
            bf16=bf16,
            channels_last=True,
            note="the peer with the generic switches",
        ),
        Contender(
            "torchvision openvino",
            "torchvision-openvino",
            precision=precision_for(True),
            note="the peer on the same engine at the same precision",
        ),
        Contender(
            "trashpole plain",
            "trashpole",
            R50_CONFIG,
            backend_opts("pytorch") + fp32_opts() + ratio2,
            note="detectron2's model as built",
        ),
        Contender(
            "trashpole pytorch",
            "trashpole",
            R50_CONFIG,
            pytorch_opts(),
            note="PyTorch backend default: the peer's switches",
        ),
        Contender("trashpole openvino", "trashpole", R50_CONFIG, ov, note="the default on a CPU"),
        Contender(
            "trashpole openvino int8",
            "trashpole",
            R50_CONFIG,
            ov + backend_opts(int8=True),
            note="int8 feature stage (NNCF, calibrated on generated street images)",
        ),
    ]


def build_trashpole(
    contender: Contender, size: int, proposals: int = 1000, detections: int = 100, seed: int = 0
):
    """
    A trashpole predictor with random weights for timing: ImageNet normalization, score
    threshold 0, test size ``size``, ``proposals`` to the box head and ``detections`` to the
    mask head; the contender's opts come last (the speed options are the config's unless they
    say otherwise).

    Returns:
        :class:`trashpole.predict.TrashPolePredictor`.
    """

    opts = imagenet_norm_opts() + ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"]
    opts += ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "MODEL.ROI_HEADS.NUM_CLASSES", "2"]
    opts += ["MODEL.RPN.POST_NMS_TOPK_TEST", str(proposals)]
    opts += ["TEST.DETECTIONS_PER_IMAGE", str(detections)]
    opts += ["TRASHPOLE.DATASET_ROOT", calibration_root(size)]
    cfg = load_config(contender.config, opts + list(contender.opts))
    set_test_size(cfg, size)
    cfg.freeze()
    torch.manual_seed(seed)
    return TrashPolePredictor(cfg)


def calibration_root(size: int, count: int = 8) -> str:
    """A folder ``<tmp>/train`` of ``count`` generated street images (seeds 1..count, not the
    timed image's) that calibrates the int8 rows; made once per size and process, and deleted
    when the process ends."""
    import atexit
    import os
    import shutil
    import tempfile

    import cv2

    root = os.path.join(tempfile.gettempdir(), f"trashpole_calibration_{size}_{os.getpid()}")
    train = os.path.join(root, "train")
    if not os.path.isdir(train):
        os.makedirs(train)
        atexit.register(shutil.rmtree, root, True)
        for seed in range(1, count + 1):
            cv2.imwrite(os.path.join(train, f"street_{seed}.png"), street_image(size, seed))
    return root


def build_torchvision(
    size: int, proposals: int = 1000, detections: int = 100, seed: int = 0
) -> torch.nn.Module:
    """torchvision's Mask R-CNN R50-FPN for 3 classes (background included) at ``size`` px, random
    weights, score threshold 0, ``proposals`` to the box head, ``detections`` to the mask head,
    in eval mode."""
    # the peer's model code, loaded only for its rows
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(seed)
    model = maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=3,
        min_size=size,
        max_size=size,
        box_score_thresh=0.0,
        rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_test=proposals,
        box_detections_per_img=detections,
    )
    return model.eval()


def _torchvision_input(image_bgr: np.ndarray) -> torch.Tensor:
    """Tensor[3, H, W] of float RGB in 0-1, as torchvision's detection models take."""
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


def _prepare(contender: Contender, image: np.ndarray, size: int, proposals: int, detections: int):
    """(predict function, model or predictor, its inputs for the flop count) of a contender."""
    if contender.family == "torchvision":
        model = build_torchvision(size, proposals, detections)
        if contender.channels_last:
            model.to(memory_format=torch.channels_last)

        def predict():
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=contender.bf16):
                return len(model([_torchvision_input(image)])[0]["boxes"])

        return predict, model, [_torchvision_input(image)]
    if contender.family == "torchvision-openvino":
        from benchmarks.peer_openvino import TorchvisionOpenVINO

        peer = TorchvisionOpenVINO(
            build_torchvision(size, proposals, detections),
            _torchvision_input(image),
            contender.precision,
        )

        def predict():
            return len(peer([_torchvision_input(image)])[0]["boxes"])

        return predict, peer, [_torchvision_input(image)]
    if contender.family == "trashpole":
        predictor = build_trashpole(contender, size, proposals, detections)

        def predict():
            return len(predictor(image)["instances"])

        return predict, predictor, [predictor.preprocess(image)]
    raise ValueError(f"unknown contender family {contender.family!r}; use trashpole or torchvision")


def _observed_run(predict, model) -> Dict[str, Any]:
    """One more call of ``predict``, recording what it computed (:func:`observe_features`;
    an OpenVINO model's runtime graph is read by :func:`describe_openvino` instead)."""
    if is_openvino(model):
        return {"detections": predict(), "seen": {}}
    with observe_features(model) as seen:
        detections = predict()
    return {"detections": detections, "seen": dict(seen)}


def _setup_and_label(model) -> tuple:
    """What a row ran, read from the timed model: (setup, label)."""
    if is_openvino(model):
        setup = describe_openvino(model)
        return setup, openvino_label(setup)
    return None, None


def count_gmac(model: Any, inputs: list) -> Optional[float]:
    """
    Multiply-adds of one forward (GMAC), by detectron2's flop counter (fvcore counts one
    multiply-add as one flop). Elementwise ops, ROIAlign and NMS are not counted.

    Args:
        model: a detectron2 or torchvision detection model in eval mode, or a
            :class:`TrashPolePredictor`, whose model is counted in its plain fp32 form.
        inputs: the model's input list for one image.

    Returns:
        GMAC, or None if the model cannot be traced.
    """

    if isinstance(model, TrashPolePredictor):
        torch.manual_seed(0)
        model = build_model(model.cfg).eval()
    elif is_openvino(model):  # the same network as the peer's PyTorch model
        model = model.model
    try:
        with torch.no_grad():
            counter = FlopCountAnalysis(model, inputs)
            counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return counter.total() / 1e9
    except Exception as e:  # tracing failures are many and varied; the timing still stands
        logger.warning(f"flop count failed for {type(model).__name__}: {e}")
        return None


def run(
    out_dir: Optional[str] = None,
    size: int = 640,
    warmup: int = 1,
    repeats: int = 5,
    threads: int = 0,
    contenders: Optional[Sequence[Contender]] = None,
    matmul_size: int = 2048,
    proposals: int = 1000,
    detections: int = 100,
    seed: int = 0,
) -> Dict[str, Any]:
    """
    Time one image through each contender, alternating, and write ``inference_benchmark.json``.

    Args:
        out_dir: folder for the JSON (none written if None).
        size: image side (the image is size x size; every model runs at that size).
        warmup: untimed rounds first.
        repeats: timed rounds (the median is reported).
        threads: torch threads for everyone (0: torch's default).
        contenders: default: :func:`default_contenders`.
        matmul_size: side of the matrices that measure the machine's peak.
        proposals: RPN proposals that reach the box head, in every contender.
        detections: detections that reach the mask head, in every contender (with score
            threshold 0 each image yields exactly this many).
        seed: seed of the image and the random weights.

    Returns:
        dict with ``size``, ``proposals``, ``detections``, ``threads``, ``load_before`` and
        ``load_after`` (load averages), ``machine`` (:func:`machine_info`), ``matmul_peak`` and
        ``contenders``: name -> ``label`` (what ran, read from the model), ``setup``
        (:func:`describe_model`), ``seen`` (:func:`observe_features`), ``median_s``,
        ``first_call_s`` (the first prediction after building: oneDNN's kernel choice),
        ``min_s``, ``max_s``, ``times_s``, ``detections``, ``gmac``, ``gflops``,
        ``peak_fraction``, ``conv_peak_fraction``, ``peak_rss_mb``, ``extra_rss_mb`` (see
        :func:`measure_memory`) and ``speedup_vs_torchvision`` /
        ``speedup_vs_torchvision_switches`` (the peer's median over this one's).
    """
    use_threads(threads)
    contenders = list(contenders or default_contenders())
    image = street_image(size, seed)
    with measuring(
        NAME, size=size, proposals=proposals, detections=detections, warmup=warmup, repeats=repeats
    ) as result:
        prepared = {c.name: _prepare(c, image, size, proposals, detections) for c in contenders}
        first_call = {name: _seconds(p[0]) for name, p in prepared.items()}
        result["matmul_peak"] = matmul_peak(matmul_size)
        times, memory = time_alternating({n: p[0] for n, p in prepared.items()}, warmup, repeats)
    rows = {
        c.name: _row(c, *prepared[c.name], first_call[c.name], times[c.name], memory[c.name])
        for c in contenders
    }
    result["contenders"] = add_ratios(rows, result["matmul_peak"])
    if out_dir:
        write_result(result, out_dir, "inference_benchmark.json")
    return result


def _row(
    contender: Contender,
    predict: Callable[[], Any],
    model: Any,
    inputs: Any,
    first_call_s: float,
    times: List[float],
    memory: Dict[str, Optional[float]],
) -> Dict[str, Any]:
    """One contender's row: its settings, what ran (seen in one more untimed call), its times,
    memory and multiply-accumulates."""
    row: Dict[str, Any] = {**asdict(contender), "opts": list(contender.opts)}
    row.update(_observed_run(predict, model))
    row["setup"], row["label"] = _setup_and_label(model)
    if row["setup"] is None:
        row["setup"] = describe_model(model)
        row["label"] = label(row["setup"], row["seen"])
    row["first_call_s"] = first_call_s
    row["times_s"] = times
    row.update(summarize(times))
    row.update(memory)
    row["gmac"] = count_gmac(model, inputs)
    return row


def format_table(result: Dict[str, Any]) -> str:
    """The contenders as a text table (:func:`benchmarks.measure.format_table`)."""
    return measure.format_table(result)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def add_ratios(
    rows: Dict[str, Dict[str, Any]], peak: Dict[str, float]
) -> Dict[str, Dict[str, Any]]:
    """
    Achieved GFLOP/s, fraction of the matmul peak and of the 3x3-conv peak (bf16 ones for rows
    whose features were computed in bf16, as observed), and speed-ups against the peer plain
    (the first torchvision row without switches) and with the switches (the first with them).
    """

    def peer(switched: bool) -> Optional[Dict[str, Any]]:
        return next(
            (
                r
                for r in rows.values()
                if r["family"] == "torchvision"
                and bool(r.get("bf16") or r.get("channels_last")) == switched
            ),
            None,
        )

    references = {"": peer(False), "_switches": peer(True)}
    references["_openvino"] = next(
        (r for r in rows.values() if r["family"] == "torchvision-openvino"), None
    )
    for row in rows.values():
        if row.get("gmac"):
            dtype = "bf16" if _computes_bf16(row) else "fp32"
            row["gflops"] = 2 * row["gmac"] / row["median_s"]
            row["peak_fraction"] = row["gflops"] / peak[f"{dtype}_gflops"]
            if f"{dtype}_conv_gflops" in peak:
                row["conv_peak_fraction"] = row["gflops"] / peak[f"{dtype}_conv_gflops"]
        for key, reference in references.items():
            if reference is not None:
                row[f"speedup_vs_torchvision{key}"] = reference["median_s"] / row["median_s"]
    return rows


def _computes_bf16(row: Dict[str, Any]) -> bool:
    """Whether a row's convolutions ran in bf16 (observed in PyTorch, read from the runtime
    graph on OpenVINO; int8 rows count as bf16, their float parts' precision)."""
    setup = row.get("setup") or {}
    if setup.get("engine") == "openvino":
        return "bf" in setup.get("precision", "")
    return row.get("seen", {}).get("feature_dtype") == "bf16"
