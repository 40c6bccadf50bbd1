"""
Latency of one 640x640 image: trashpole's predictor (default and fast settings) against
torchvision's ``maskrcnn_resnet50_fpn``, with random weights, on the same image and threads.

Equal work: score thresholds are 0 in every contender, so 1000 proposals reach the box head and
100 detections the mask head in each. Random weights need input normalization to produce
detections at all, so trashpole's models use ImageNet mean/std here as torchvision does.
Contenders run in turn (one image each, round after round) after a warm-up, so that a change
of load on the machine hits all of them alike; the median of the rounds is reported, with the
GMAC from detectron2's flop counter, the implied fraction of the machine's matmul peak measured
in the same run, and the memory one prediction needs.

Also here: :func:`run_accuracy`, the speed and segm AP of each speed option on a trained run
(``tools/benchmark.py accuracy``), and the measuring tools that
:mod:`trashpole.benchmarks.training` uses. Results and their reading: docs/performance.md.
"""

import ctypes
import gc
import logging
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional as F

from trashpole.errors import UserError
from trashpole.jsonio import write_json

logger = logging.getLogger(__name__)

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "configs")
R50_CONFIG = os.path.join(REPO_CONFIGS, "mask_rcnn_R_50_FPN_reference.yaml")
CPU_CONFIG = os.path.join(REPO_CONFIGS, "mask_rcnn_R_18_FPN_cpu_quick.yaml")

# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"size": 64, "warmup": 0, "repeats": 1, "matmul_size": 256}
QUICK.update({"proposals": 50, "detections": 5})

# ImageNet mean and std in detectron2's convention (BGR, 0-255 pixels); torchvision uses the same
# numbers in RGB on 0-1 pixels. Random weights need them: with detectron2's PIXEL_STD of 1 the
# features explode and almost no detection survives.
IMAGENET_MEAN_BGR = [103.53, 116.28, 123.675]
IMAGENET_STD_BGR = [57.375, 57.12, 58.395]


def imagenet_norm_opts() -> List[str]:
    """Config overrides that normalize a detectron2 model's input as torchvision does."""
    return ["MODEL.PIXEL_MEAN", str(IMAGENET_MEAN_BGR), "MODEL.PIXEL_STD", str(IMAGENET_STD_BGR)]


def street_image(size: int, seed: int = 0) -> np.ndarray:
    """
    A deterministic test picture: a noisy gradient with a few poles and bins painted on it.

    Args:
        size: side in pixels.
        seed: random seed.

    Returns:
        uint8 array [size, size, 3] in BGR order.
    """
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 200, size, dtype=np.float32)
    image = np.stack([ramp[:, None] * np.ones((1, size), np.float32)] * 3, axis=2)
    image += rng.normal(0, 12, image.shape).astype(np.float32)
    for k in range(6):
        x0, y0 = rng.integers(0, size * 3 // 4, 2)
        w, h = (size // 30, size // 3) if k % 2 == 0 else (size // 8, size // 7)
        image[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 255, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def load_average() -> List[float]:
    """The 1, 5 and 15 minute load averages (runnable processes), or [] where unknown."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _proc_status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> Optional[float]:
    """The process's resident memory now (MiB), or None where /proc is missing."""
    kb = _proc_status_kb("VmRSS")
    return None if kb is None else kb / 1024


def reset_peak_rss() -> bool:
    """Reset the process's peak resident memory (Linux ``clear_refs``); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> Optional[float]:
    """The process's peak resident memory since the last :func:`reset_peak_rss` (MiB)."""
    kb = _proc_status_kb("VmHWM")
    return None if kb is None else kb / 1024


def measure_memory(fn: Callable[[], object]) -> Dict[str, Optional[float]]:
    """
    Run ``fn`` once and report the memory it needed.

    Returns:
        ``peak_rss_mb`` (the process's peak during the call, everything else loaded included) and
        ``extra_rss_mb`` (that peak minus the resident memory just before: what the call itself
        needed); None where the system does not tell.
    """
    gc.collect()
    _release_free_memory()
    reset_ok = reset_peak_rss()
    before = rss_mb()
    fn()
    peak = peak_rss_mb() if reset_ok else None
    extra = None if peak is None or before is None else peak - before
    return {"peak_rss_mb": peak, "extra_rss_mb": extra}


def _release_free_memory() -> None:
    """Hand memory that the allocator keeps after frees back to the system (glibc only), so that
    the next peak counts what a call needs rather than what was free already."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def time_alternating(
    contenders: Dict[str, Callable[[], object]], warmup: int, repeats: int
) -> Tuple[Dict[str, List[float]], Dict[str, Dict[str, Optional[float]]]]:
    """
    Time each callable ``warmup + repeats`` times, one call of each in turn, so that a change of
    load on the machine hits every contender alike; the warm-up calls are not kept. The memory
    of each contender is measured on its first call (:func:`measure_memory`), which therefore
    includes one-off allocations such as oneDNN's kernel caches.

    Args:
        contenders: name -> callable without arguments.
        warmup: untimed rounds first (0 times the first calls: a smoke test).
        repeats: timed rounds.

    Returns:
        (name -> list of seconds, one per timed round; name -> memory of the first call)
    """
    times: Dict[str, List[float]] = {name: [] for name in contenders}
    memory: Dict[str, Dict[str, Optional[float]]] = {}
    for round_index in range(warmup + repeats):
        for name, fn in contenders.items():
            elapsed: List[float] = []

            def timed() -> None:
                start = time.perf_counter()
                fn()
                elapsed.append(time.perf_counter() - start)

            if round_index == 0:
                memory[name] = measure_memory(timed)
            else:
                timed()
            if round_index >= warmup:
                times[name].extend(elapsed)
    return times, memory


def summarize(seconds: Sequence[float]) -> Dict[str, float]:
    """Median, min and max of a list of timings (seconds)."""
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
    }


def _best_seconds(fn: Callable[[], object], min_seconds: float) -> float:
    """The fastest of repeated calls (at least 3, and at least ``min_seconds`` of them)."""
    fn()  # warm-up: oneDNN picks and caches its kernel
    fastest, spent, count = float("inf"), 0.0, 0
    while count < 3 or spent < min_seconds:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        fastest, spent, count = min(fastest, elapsed), spent + elapsed, count + 1
    return fastest


def matmul_peak(size: int = 2048, min_seconds: float = 0.3) -> Dict[str, float]:
    """
    The machine's practical dense throughput at the current thread count, in fp32 and bf16:

    - ``fp32_gflops``/``bf16_gflops``: the best square matmul of side ``size // 2`` or ``size``
      (two sizes, because the bf16 kernels can run faster on the smaller one, which stays in
      cache, and the fp32 ones on the larger one); the reference for ``peak_fraction``;
    - ``fp32_conv_gflops``/``bf16_conv_gflops``: a 3x3 convolution of 256 channels in NHWC
      (size / 16 pixels a side), as oneDNN runs the detectors' convolutions; it can beat the
      matmul, so a detector can exceed 100% of the matmul peak.

    Returns:
        those four numbers (10^9 floating-point operations a second, 2 per multiply-add) and
        ``size``.
    """
    result: Dict[str, float] = {"size": size}
    side = max(8, size // 16)
    x = torch.randn(1, 256, side, side).to(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).to(memory_format=torch.channels_last)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best = 0.0
        for n in (size // 2, size):
            a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
            best = max(best, 2.0 * n**3 / _best_seconds(lambda: torch.mm(a, b), min_seconds) / 1e9)
        result[f"{name}_gflops"] = best
        xd, wd = x.to(dtype), w.to(dtype)
        with torch.no_grad():
            seconds = _best_seconds(lambda: F.conv2d(xd, wd, padding=1), min_seconds)
        result[f"{name}_conv_gflops"] = 2.0 * 256 * 256 * 9 * side * side / seconds / 1e9
    return result


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
    from trashpole.inference import bf16_supported, speed_opts

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
        :class:`trashpole.predictor.TrashPolePredictor`.
    """
    from trashpole.config import load_config
    from trashpole.inference import set_test_size
    from trashpole.predictor import TrashPolePredictor

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
    from detectron2.modeling import build_model
    from detectron2.utils.analysis import FlopCountAnalysis

    from trashpole.predictor import TrashPolePredictor

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


def write_result(result: Dict[str, Any], out_dir: str, name: str) -> str:
    """Write ``result`` as ``out_dir/name`` (JSON); returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    write_json(result, path)
    logger.info(f"wrote {path}")
    return path


def format_table(result: Dict[str, Any]) -> str:
    """The contenders of an inference or training result as a fixed-width text table."""
    per = "s/image" if result.get("benchmark") == "inference" else "s/iter"
    header = f"{'contender':<32} {per:>8} {'x peer':>7} {'GMAC':>7} {'%peak':>6} {'%conv':>6}"
    header += f" {'+RSS MB':>8}"
    lines = [header, "-" * len(header)]
    for name, row in result["contenders"].items():
        speedup = _num(row.get("speedup_vs_torchvision"), 2)
        peak = _num(100 * row.get("peak_fraction", float("nan")), 1)
        conv = _num(100 * row.get("conv_peak_fraction", float("nan")), 1)
        lines.append(
            f"{name:<32} {row['median_s']:>8.3f} {speedup:>7} {_num(row.get('gmac'), 1):>7} "
            f"{peak:>6} {conv:>6} {_num(row.get('extra_rss_mb'), 0):>8}"
        )
    peak = result.get("matmul_peak", {})
    lines.append(
        f"peak GFLOP/s: matmul {peak.get('fp32_gflops', 0):.0f} fp32, "
        f"{peak.get('bf16_gflops', 0):.0f} bf16; 3x3 conv {peak.get('fp32_conv_gflops', 0):.0f}"
        f" fp32, {peak.get('bf16_conv_gflops', 0):.0f} bf16; threads {result.get('threads')}; "
        f"load {result.get('load_before')} -> {result.get('load_after')}"
    )
    return "\n".join(lines)


def _num(value: Optional[float], digits: int) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:.{digits}f}"


# ----------------------------------------------------------------------------------------------
# Speed and accuracy of each speed option on a trained run


def default_variants() -> Dict[str, List[str]]:
    """Speed choices to compare on a trained run: name -> config overrides (run's config first,
    these after). ``size=N`` entries set the test input size (see :func:`set_test_size`);
    ``fuse=0`` leaves the model as detectron2 builds it (no norm folding, no fused
    convolutions, no threaded ROIAlign)."""
    from trashpole.inference import speed_opts

    return {
        "default (fp32)": [],
        "no folding/fusion (plain d2)": ["fuse=0"],
        "channels_last": speed_opts(channels_last=True),
        "bf16": speed_opts(bf16=True),
        "bf16 + channels_last": speed_opts(bf16=True, channels_last=True),
        "1 thread": speed_opts(threads=1),
        "ROIAlign adaptive (ratio 0)": speed_opts(sampling_ratio=0),
        "1000 proposals": speed_opts(proposals=1000),
        "100 proposals": speed_opts(proposals=100),
        "50 proposals": speed_opts(proposals=50),
        "input 320": ["size=320"],
        "input 448": ["size=448"],
        "bf16 + channels_last + 100 proposals": speed_opts(True, True, proposals=100),
    }


class _TimedModel(torch.nn.Module):
    """Runs the wrapped model under the config's autocast and adds up the forward time, after
    ``warmup`` untimed calls; what :func:`detectron2.evaluation.inference_on_dataset` sees as
    the model."""

    def __init__(self, model: torch.nn.Module, cfg, warmup: int = 2):
        super().__init__()
        self.model, self.cfg, self.warmup = model, cfg, warmup
        self.seconds, self.images, self.calls = 0.0, 0, 0

    def forward(self, inputs):
        from trashpole.inference import inference_autocast, to_fp32

        start = time.perf_counter()
        with inference_autocast(self.cfg):
            outputs = self.model(inputs)
        outputs = to_fp32(outputs)
        self.calls += 1
        if self.calls > self.warmup:
            self.seconds += time.perf_counter() - start
            self.images += len(inputs)
        return outputs


def evaluate_variant(
    run_dir: str, opts: Sequence[str], split: str = "test", dataset_root: str = ""
) -> Dict[str, Any]:
    """
    COCO bbox/segm AP of a trained run on one split with the given speed options, and the mean
    forward time per image.

    Args:
        run_dir: run folder with ``config.yaml`` and ``model_final.pth``.
        opts: config overrides; ``size=N`` sets the test input size, ``fuse=0`` turns off the
            folding and fusing of :func:`apply_inference_options`.
        split: train, valid or test.
        dataset_root: the export (default: the run's ``TRASHPOLE.DATASET_ROOT``).

    Returns:
        ``{"bbox/AP", "segm/AP", "segm/AP50", "trashpole/mIoU", "trashpole/F1", "ms_per_image",
        "images", "threads"}``; the
        time leaves out the first two images (warm-up), ``images`` counts the timed ones.
    """
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.data import build_detection_test_loader
    from detectron2.evaluation import inference_on_dataset
    from detectron2.modeling import build_model

    from trashpole.config import load_config
    from trashpole.engine.defaults import register_datasets
    from trashpole.evaluation import build_evaluators
    from trashpole.inference import apply_inference_options, set_test_size
    from trashpole.predictor import resolve_run

    config, weights = resolve_run(run_dir)
    sizes = [int(o[5:]) for o in opts if o.startswith("size=")]
    fuse = "fuse=0" not in opts
    cfg = load_config(config, [o for o in opts if not o.startswith(("size=", "fuse="))])
    if sizes:
        set_test_size(cfg, sizes[-1])
    if dataset_root:
        cfg.TRASHPOLE.DATASET_ROOT = dataset_root
    threads = torch.get_num_threads()
    splits = register_datasets(cfg, training=False)
    if split not in splits:
        raise UserError(
            f"--split {split!r}: {cfg.TRASHPOLE.DATASET_ROOT} has the splits {sorted(splits)}"
        )
    model = build_model(cfg)
    DetectionCheckpointer(model).load(weights)
    timed = _TimedModel(apply_inference_options(model, cfg, inference_only=fuse), cfg)
    try:
        with tempfile.TemporaryDirectory() as tmp:  # COCOEvaluator's conversion of the split
            evaluators = build_evaluators(cfg, splits[split], tmp)
            loader = build_detection_test_loader(cfg, splits[split])
            results = inference_on_dataset(timed, loader, evaluators)
    finally:
        torch.set_num_threads(threads)  # a "threads" variant must not change the next ones
    return {
        "bbox/AP": results["bbox"]["AP"],
        "segm/AP": results["segm"]["AP"],
        "segm/AP50": results["segm"]["AP50"],
        "trashpole/mIoU": results.get("trashpole", {}).get("mIoU"),
        "trashpole/F1": results.get("trashpole", {}).get("F1"),
        "ms_per_image": 1000 * timed.seconds / max(1, timed.images),
        "images": timed.images,
        "threads": int(cfg.TRASHPOLE.INFERENCE.NUM_THREADS) or threads,
    }


def run_accuracy(
    run_dir: str,
    out_dir: Optional[str] = None,
    split: str = "test",
    dataset_root: str = "",
    variants: Optional[Dict[str, List[str]]] = None,
) -> Dict[str, Any]:
    """
    :func:`evaluate_variant` for every speed choice, with the AP change against the first
    variant (the fp32 default); writes ``accuracy_benchmark.json``.

    Args:
        run_dir: a trained run.
        out_dir: folder for the JSON (none written if None).
        split: the split to evaluate.
        dataset_root: the export (default: the run's).
        variants: name -> opts; default :func:`default_variants`.

    Returns:
        dict with ``run``, ``split``, load averages and ``contenders``: name -> the metrics of
        :func:`evaluate_variant` plus ``opts``, ``median_s`` (seconds per image),
        ``delta_segm_AP``, ``delta_bbox_AP`` and ``speedup_vs_default``.
    """
    variants = dict(variants or default_variants())
    result: Dict[str, Any] = {
        "benchmark": "accuracy",
        "run": run_dir,
        "split": split,
        "load_before": load_average(),
    }
    rows: Dict[str, Dict[str, Any]] = {}
    for name, opts in variants.items():
        logger.info(f"speed option {name!r}: {opts}")
        rows[name] = {"opts": list(opts), **evaluate_variant(run_dir, opts, split, dataset_root)}
        rows[name]["median_s"] = rows[name]["ms_per_image"] / 1000
    base = next(iter(rows.values()))
    for row in rows.values():
        row["delta_segm_AP"] = row["segm/AP"] - base["segm/AP"]
        row["delta_bbox_AP"] = row["bbox/AP"] - base["bbox/AP"]
        row["speedup_vs_default"] = base["ms_per_image"] / row["ms_per_image"]
    result["load_after"] = load_average()
    result["contenders"] = rows
    if out_dir:
        write_result(result, out_dir, "accuracy_benchmark.json")
    return result


def format_accuracy_table(result: Dict[str, Any]) -> str:
    """The variants of :func:`run_accuracy` as a fixed-width text table."""
    header = f"{'speed option':<38} {'ms/img':>7} {'speed-up':>8} {'segm AP':>8} {'dAP':>6}"
    header += f" {'box AP':>7}"
    lines = [header, "-" * len(header)]
    for name, row in result["contenders"].items():
        lines.append(
            f"{name:<38} {row['ms_per_image']:>7.1f} {row['speedup_vs_default']:>8.2f} "
            f"{row['segm/AP']:>8.2f} {row['delta_segm_AP']:>+6.2f} {row['bbox/AP']:>7.2f}"
        )
    lines.append(
        f"{result['run']} on {result['split']}; load {result['load_before']} -> "
        f"{result['load_after']}"
    )
    return "\n".join(lines)
