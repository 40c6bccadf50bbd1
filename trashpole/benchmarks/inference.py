"""Latency of one 640x640 image: trashpole's predictor (default and fast settings) against
torchvision's ``maskrcnn_resnet50_fpn``, with random weights, on the same image and threads.

Equal work: score thresholds are 0 in every contender, so 1000 proposals reach the box head and
100 detections the mask head in each. Random weights need input normalization to produce
detections at all, so trashpole's models use ImageNet mean/std here as torchvision does.
Contenders run in turn (one image each, round after round) after a warm-up, so that a change
of load on the machine hits all of them alike; the median of the rounds is reported, with the
GMAC from detectron2's flop counter, the implied fraction of the machine's matmul peak measured
in the same run, and the memory one prediction needs. Results and their reading:
docs/performance.md."""

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.modeling import build_model
from detectron2.utils.analysis import FlopCountAnalysis

from trashpole.benchmarks.measure import (
    CPU_CONFIG,
    R50_CONFIG,
    imagenet_norm_opts,
    load_average,
    matmul_peak,
    street_image,
    summarize,
    time_alternating,
    write_result,
)
from trashpole.config import load_config
from trashpole.predict.predictor import TrashPolePredictor
from trashpole.speed import bf16_supported, set_test_size, speed_opts

logger = logging.getLogger(__name__)

# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"size": 64, "warmup": 0, "repeats": 1, "matmul_size": 256}
QUICK.update({"proposals": 50, "detections": 5})

# ----------------------------------------------------------------------------------------------
# The inference benchmark


@dataclass
class Contender:
    """
    One model set-up to time.

    Attributes:
        name: label in the table.
        family: "trashpole" (a :class:`TrashPolePredictor` built from ``config`` and ``opts``) or
            "torchvision" (``maskrcnn_resnet50_fpn``).
        config: trashpole YAML.
        opts: config overrides (speed options and the like), applied after the run's equal-work
            settings (so a contender may change its proposals).
        note: what the row is, for the table's reader.
        input_size: test size of this contender, at most the run's ``size`` (0: ``size``).
    """

    name: str
    family: str
    config: str = ""
    opts: Sequence[str] = field(default_factory=tuple)
    note: str = ""
    input_size: int = 0

    @property
    def bf16(self) -> bool:
        pairs = dict(zip(self.opts[::2], self.opts[1::2]))
        return pairs.get("TRASHPOLE.INFERENCE.BF16", "False") == "True"


def fast_opts() -> List[str]:
    """The fastest inference settings that keep the work equal (1000 proposals, 100 masks):
    bf16 autocast (where the CPU has it), channels_last, ROIAlign with 2x2 samples per bin."""

    return speed_opts(bf16=bf16_supported(), channels_last=True, sampling_ratio=2)


def default_contenders() -> List[Contender]:
    """torchvision's peer, trashpole's R50-FPN (same architecture) and its CPU recipe (R18-FPN with
    lighter heads), each at default and fast settings; :func:`run` gives them all the same
    proposals and detections."""
    fast = fast_opts()
    shipped = fast + ["MODEL.RPN.POST_NMS_TOPK_TEST", "100"]
    return [
        Contender("torchvision R50-FPN", "torchvision", note="the peer, fp32"),
        Contender("trashpole R50-FPN", "trashpole", R50_CONFIG, (), "fp32, d2 defaults"),
        Contender("trashpole R50-FPN fast", "trashpole", R50_CONFIG, fast, "same net"),
        Contender("trashpole CPU R18", "trashpole", CPU_CONFIG, (), "CPU recipe, fp32"),
        Contender("trashpole CPU R18 fast", "trashpole", CPU_CONFIG, fast, "CPU recipe"),
        Contender(
            "trashpole CPU R18 384px 100prop",
            "trashpole",
            CPU_CONFIG,
            shipped,
            "fast, at the recipe's 384 px and 100 proposals: less work",
            input_size=384,
        ),
    ]


def build_trashpole(
    contender: Contender, size: int, proposals: int = 1000, detections: int = 100, seed: int = 0
):
    """
    A trashpole predictor with random weights for timing: ImageNet normalization, score
    threshold 0, test size ``size``, ``proposals`` to the box head and ``detections`` to the
    mask head.

    Returns:
        :class:`trashpole.predict.TrashPolePredictor`.
    """

    opts = imagenet_norm_opts() + ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"]
    opts += ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "MODEL.ROI_HEADS.NUM_CLASSES", "2"]
    opts += ["MODEL.RPN.POST_NMS_TOPK_TEST", str(proposals)]
    opts += ["TEST.DETECTIONS_PER_IMAGE", str(detections)]
    cfg = load_config(contender.config, opts + list(contender.opts))
    set_test_size(cfg, min(contender.input_size or size, size))
    cfg.freeze()
    torch.manual_seed(seed)
    return TrashPolePredictor(cfg)


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
    """(predict function, model or predictor for the flop count, its inputs) of a contender."""
    if contender.family == "torchvision":
        model = build_torchvision(size, proposals, detections)

        def predict():
            with torch.no_grad():
                return len(model([_torchvision_input(image)])[0]["boxes"])

        return predict, model, [_torchvision_input(image)]
    if contender.family == "trashpole":
        predictor = build_trashpole(contender, size, proposals, detections)

        def predict():
            return len(predictor(image)["instances"])

        return predict, predictor, [predictor.preprocess(image)]
    raise ValueError(f"unknown contender family {contender.family!r}; use trashpole or torchvision")


def count_gmac(model: Any, inputs: list) -> Optional[float]:
    """
    Multiply-adds of one forward (GMAC), by detectron2's flop counter (fvcore counts one
    multiply-add as one flop). Elementwise ops, ROIAlign and NMS are not counted.

    Args:
        model: a detectron2 or torchvision detection model in eval mode, or a
            :class:`TrashPolePredictor`, whose model is counted in its plain fp32 form (the fused
            oneDNN calls of the speed options do the same work but are opaque to the counter).
        inputs: the model's input list for one image.

    Returns:
        GMAC, or None if the model cannot be traced.
    """

    if isinstance(model, TrashPolePredictor):
        torch.manual_seed(0)
        model = build_model(model.cfg).eval()
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
        ``load_after`` (load averages), ``matmul_peak`` and ``contenders``: name ->
        ``median_s``, ``min_s``, ``max_s``, ``times_s``, ``detections``, ``gmac``, ``gflops``,
        ``peak_fraction``, ``peak_rss_mb``, ``extra_rss_mb`` (see :func:`measure_memory`) and
        ``speedup_vs_torchvision`` (torchvision's median over this one).
    """
    if threads > 0:
        torch.set_num_threads(threads)
    contenders = list(contenders or default_contenders())
    image = street_image(size, seed)
    result: Dict[str, Any] = {
        "benchmark": "inference",
        "size": size,
        "proposals": proposals,
        "detections": detections,
        "threads": torch.get_num_threads(),
        "warmup": warmup,
        "repeats": repeats,
        "load_before": load_average(),
        "torch": torch.__version__,
    }
    prepared = {c.name: _prepare(c, image, size, proposals, detections) for c in contenders}
    result["matmul_peak"] = matmul_peak(matmul_size)
    times, memory = time_alternating({n: p[0] for n, p in prepared.items()}, warmup, repeats)
    rows: Dict[str, Dict[str, Any]] = {}
    for c in contenders:
        predict, model, inputs = prepared[c.name]
        row: Dict[str, Any] = {**asdict(c), "opts": list(c.opts), "times_s": times[c.name]}
        row.update(summarize(times[c.name]))
        row.update(memory[c.name])
        row["detections"] = predict()
        row["gmac"] = count_gmac(model, inputs)
        rows[c.name] = row
    result["load_after"] = load_average()
    result["contenders"] = _add_ratios(rows, result["matmul_peak"], contenders)
    if out_dir:
        write_result(result, out_dir, "inference_benchmark.json")
    return result


def _add_ratios(
    rows: Dict[str, Dict[str, Any]], peak: Dict[str, float], contenders: Sequence[Contender]
) -> Dict[str, Dict[str, Any]]:
    """Achieved GFLOP/s, fraction of the matmul peak and of the conv peak (the bf16 ones for bf16
    rows), and speed-up against the torchvision row."""
    reference = next((rows[c.name] for c in contenders if c.family == "torchvision"), None)
    for c in contenders:
        row = rows[c.name]
        if row["gmac"]:
            dtype = "bf16" if c.bf16 else "fp32"
            row["gflops"] = 2 * row["gmac"] / row["median_s"]
            row["peak_fraction"] = row["gflops"] / peak[f"{dtype}_gflops"]
            if f"{dtype}_conv_gflops" in peak:
                row["conv_peak_fraction"] = row["gflops"] / peak[f"{dtype}_conv_gflops"]
        if reference is not None:
            row["speedup_vs_torchvision"] = reference["median_s"] / row["median_s"]
    return rows
