"""The measuring kit of the benchmarks: generated inputs, timers that alternate contenders, memory,
the machine's matmul and convolution peaks, the header of a result, result files and tables."""

import ctypes
import gc
import logging
import os
import re
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import detectron2
import numpy as np
import torch
import torchvision
from torch.nn import functional as F

from trashpole.jsonio import write_json
from trashpole.speed import cpu_features

logger = logging.getLogger(__name__)

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
R50_CONFIG = os.path.join(REPO_CONFIGS, "mask_rcnn_R_50_FPN_reference.yaml")
CPU_CONFIG = os.path.join(REPO_CONFIGS, "mask_rcnn_R_18_FPN_cpu_quick.yaml")


def onednn_version() -> str:
    """oneDNN's version as torch's build report states it ("3.12.0"), or "" if absent."""
    match = re.search(r"(?:oneDNN|MKL-DNN) v([0-9.]+)", torch.__config__.show())
    return match.group(1) if match else ""


def machine_info() -> Dict[str, Any]:
    """
    The machine a result was measured on: CPU model and the ISA flags that matter here
    (AVX-512 BF16, AMX-BF16, AMX-INT8, VNNI), whether oneDNN runs bf16 natively, logical CPUs,
    torch's CPU capability, and the versions of torch, oneDNN, torchvision and detectron2.
    """
    features = cpu_features()
    return {
        "cpu_model": features["model"],
        "isa_flags": features["flags"],
        "onednn_bf16": features["onednn_bf16"],
        "logical_cpus": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "onednn": onednn_version(),
        "torchvision": torchvision.__version__,
        "detectron2": detectron2.__version__,
    }


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


@contextmanager
def measuring(benchmark: str, **settings: Any) -> Iterator[Dict[str, Any]]:
    """
    The result of a suite, begun with the header every suite shares; wrap the timed part in it.

    Args:
        benchmark: the suite's name (``NAME``).
        settings: what the suite ran with (size, rounds...), in the order the file should show.

    Yields:
        the result: ``benchmark``, the settings, ``threads`` (torch's, once the suite has set
        them), ``load_before`` (:func:`load_average` on entry) and ``machine``
        (:func:`machine_info`); ``load_after`` is added when the block ends.
    """
    result: Dict[str, Any] = {"benchmark": benchmark, **settings}
    result.update(threads=torch.get_num_threads(), load_before=load_average())
    result["machine"] = machine_info()
    yield result
    result["load_after"] = load_average()


def use_threads(threads: int) -> None:
    """Set torch's threads for a suite; 0 keeps torch's default."""
    if threads > 0:
        torch.set_num_threads(threads)


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


def write_result(result: Dict[str, Any], out_dir: str, name: str) -> str:
    """Write ``result`` as ``out_dir/name`` (JSON); returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    write_json(result, path)
    logger.info(f"wrote {path}")
    return path


def format_table(result: Dict[str, Any]) -> str:
    """The contenders of an inference or training result as a fixed-width text table: each row's
    label (what ran), time, speed-ups against the peer plain and with the same switches, GMAC,
    fractions of the matmul and conv peaks, memory."""
    per = "s/image" if result.get("benchmark") == "inference" else "s/iter"
    plain, switches = "speedup_vs_torchvision", "speedup_vs_torchvision_switches"
    if result.get("benchmark") == "training":
        plain, switches = "speedup_vs_torchvision_d2", "speedup_vs_torchvision_d2_switches"
    engine = "speedup_vs_torchvision_openvino"
    header = f"{'contender (what ran)':<100} {per:>8} {'x plain':>7} {'x sw':>6} {'x OV':>6}"
    header += f" {'GMAC':>6} {'%peak':>6} {'%conv':>6} {'+RSS MB':>8}"
    lines = [header, "-" * len(header)]
    for name, row in result["contenders"].items():
        peak = _num(100 * row.get("peak_fraction", float("nan")), 1)
        conv = _num(100 * row.get("conv_peak_fraction", float("nan")), 1)
        lines.append(
            f"{row.get('label', name):<100} {row['median_s']:>8.3f} {_num(row.get(plain), 2):>7} "
            f"{_num(row.get(switches), 2):>6} {_num(row.get(engine), 2):>6} "
            f"{_num(row.get('gmac'), 1):>6} "
            f"{peak:>6} {conv:>6} {_num(row.get('extra_rss_mb'), 0):>8}"
        )
    peak = result.get("matmul_peak", {})
    machine = result.get("machine", {})
    lines.append(
        f"peak GFLOP/s: matmul {peak.get('fp32_gflops', 0):.0f} fp32, "
        f"{peak.get('bf16_gflops', 0):.0f} bf16; 3x3 conv {peak.get('fp32_conv_gflops', 0):.0f}"
        f" fp32, {peak.get('bf16_conv_gflops', 0):.0f} bf16; threads {result.get('threads')}; "
        f"load {result.get('load_before')} -> {result.get('load_after')}"
    )
    if machine:
        flags = [k for k, v in machine.get("isa_flags", {}).items() if v]
        lines.append(
            f"{machine.get('cpu_model')} ({' '.join(flags)}); torch {machine.get('torch')}, "
            f"oneDNN {machine.get('onednn')}"
        )
    return "\n".join(lines)


def _num(value: Optional[float], digits: int) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:.{digits}f}"
