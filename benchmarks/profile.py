"""Where the time of one 640x640 inference goes: torch.profiler's self CPU time of every op, by
category (convolutions, linear layers, ROIAlign, NMS, mask pasting, copies and casts, fills,
the rest), for the same contenders and equal work as :mod:`benchmarks.inference`.

Mask pasting is what runs inside the postprocessing that pastes the masks into the image
(detectron2's ``detector_postprocess``, torchvision's ``paste_masks_in_image``), found through
a profiler scope around it; every other category is read from the op's name. torch.profiler
sums self times over the threads it sees; the shares are of that total. The profiler adds its own overhead: the
wall time here is a little above the inference benchmark's."""

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from benchmarks.describe import describe_model, label, observe_features
from benchmarks.inference import Contender, _prepare, pytorch_opts
from benchmarks.measure import R50_CONFIG, measuring, street_image, use_threads, write_result
from trashpole.compat.pytorch import mask_paste_in_scope
from trashpole.run import backend_opts
from trashpole.speed import fp32_opts, precision, speed_opts

logger = logging.getLogger(__name__)

CATEGORIES = ("conv", "linear", "ROIAlign", "NMS", "mask paste", "copies/casts", "fills", "other")
_PASTE_SCOPE = "trashpole::mask_paste"
# op names (after "aten::", "mkldnn::"...) by category; "conv" is any name containing "conv"
_LINEAR = {"addmm", "mm", "bmm", "matmul", "linear", "_mkldnn_linear", "mkldnn_linear"}
_COPIES = {"copy_", "to", "_to_copy", "contiguous", "clone", "cat", "stack", "index_select"}
_FILLS = {"zero_", "fill_", "zeros", "zeros_like", "full", "new_zeros", "new_full"}

NAME = "profile"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"size": 64, "warmup": 0, "proposals": 50, "detections": 5}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "size": "size"}


def default_contenders() -> List[Contender]:
    """trashpole's R50-FPN on the PyTorch backend in fp32 and with its default switches, and the
    peer with the same switches; equal work as in the inference benchmark (ROIAlign sampling 2).
    The OpenVINO backend's profile: :mod:`benchmarks.profile_openvino`."""

    ratio2 = speed_opts(sampling_ratio=2)
    pytorch = backend_opts("pytorch")  # torch.profiler sees inside the PyTorch backend only
    return [
        Contender("trashpole fp32", "trashpole", R50_CONFIG, pytorch + fp32_opts() + ratio2),
        Contender("trashpole pytorch", "trashpole", R50_CONFIG, pytorch_opts()),
        Contender(
            "torchvision switches",
            "torchvision",
            bf16=precision.bf16_supported(),
            channels_last=True,
        ),
    ]


def categorize(name: str) -> str:
    """The category (one of :data:`CATEGORIES`, mask pasting aside: that one is found by its
    scope, see :func:`breakdown`) of a profiler op named ``name``."""
    short = name.split("::")[-1]
    if "roi_align" in short:
        return "ROIAlign"
    if "nms" in short:
        return "NMS"
    if "conv" in short:
        return "conv"
    if short in _LINEAR:
        return "linear"
    if short in _COPIES:
        return "copies/casts"
    if short in _FILLS:
        return "fills"
    return "other"


def _scope_category(event: Any, scopes: Dict[str, str]) -> Optional[str]:
    """The category of the innermost of ``scopes`` (scope name -> category) that encloses
    ``event``, or None."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in scopes:
            return scopes[parent.name]
        parent = parent.cpu_parent
    return None


def breakdown(
    events: Sequence[Any],
    categories: Sequence[str] = CATEGORIES,
    scopes: Optional[Dict[str, str]] = None,
) -> Dict[str, float]:
    """
    Self CPU milliseconds by category of a profiler's ``events()``.

    Args:
        events: the profiler's events.
        categories: the categories to sum into (an op's category from :func:`categorize`).
        scopes: profiler scope name -> category: every op inside the scope counts in that
            category, whatever its name (default: the mask pasting scope); the scopes' own
            self time is left out.
    """
    scopes = {_PASTE_SCOPE: "mask paste"} if scopes is None else scopes
    totals = {c: 0.0 for c in categories}
    for event in events:
        if event.name in scopes:
            continue
        category = _scope_category(event, scopes) or categorize(event.name)
        totals[category] += event.self_cpu_time_total / 1000
    return totals


def profiled_row(
    fn: Callable[[], Any],
    model: Any,
    categories: Sequence[str] = CATEGORIES,
    scopes: Optional[Dict[str, str]] = None,
    training: bool = False,
) -> Tuple[Dict[str, Any], Any]:
    """
    Run ``fn`` once under torch.profiler, watching what ``model``'s backbone computes.

    Returns:
        (the row: ``label``, ``setup``, ``seen``, ``wall_s``, ``self_ms`` and ``share`` by
        category (:func:`breakdown` with ``categories`` and ``scopes``), ``total_self_ms``,
        ``top_ops``; what ``fn`` returned)
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    with observe_features(model) as seen:
        with torch.profiler.profile(activities=activities) as prof:
            start = time.perf_counter()
            value = fn()
            wall = time.perf_counter() - start
    ms = breakdown(prof.events(), categories, scopes)
    total = sum(ms.values())
    setup = describe_model(model)
    row = {
        "label": label(setup, seen, training=training),
        "setup": setup,
        "seen": dict(seen),
        "wall_s": wall,
        "self_ms": ms,
        "total_self_ms": total,
        "share": {c: v / total for c, v in ms.items()} if total else {},
        "top_ops": _top_ops(prof),
    }
    return row, value


def profile_contender(
    contender: Contender, size: int, proposals: int, detections: int, warmup: int
) -> Dict[str, Any]:
    """Profile one prediction of ``contender`` after ``warmup`` unprofiled ones."""
    image = street_image(size, 0)
    predict, model, _ = _prepare(contender, image, size, proposals, detections)
    for _ in range(warmup):
        predict()
    # the library whose postprocessing the contender runs (trashpole's is detectron2's)
    library = "torchvision" if contender.family == "torchvision" else "detectron2"
    with mask_paste_in_scope(library, _PASTE_SCOPE):
        return profiled_row(predict, model)[0]


def _top_ops(prof: Any, count: int = 12) -> List[Dict[str, Any]]:
    """The ops with the most self CPU time (name, ms, calls)."""
    averages = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:count]
    return [
        {"op": e.key, "self_ms": e.self_cpu_time_total / 1000, "calls": e.count} for e in averages
    ]


def run(
    out_dir: Optional[str] = None,
    size: int = 640,
    warmup: int = 1,
    threads: int = 0,
    contenders: Optional[Sequence[Contender]] = None,
    proposals: int = 1000,
    detections: int = 100,
    **unused: Any,
) -> Dict[str, Any]:
    """
    Profile one image through each contender and write ``profile_benchmark.json``.

    Args:
        out_dir: folder for the JSON (none written if None).
        size: image side.
        warmup: unprofiled predictions first.
        threads: torch threads (0: torch's default).
        contenders: default :func:`default_contenders`.
        proposals, detections: equal work, as in the inference benchmark.

    Returns:
        dict with ``size``, ``threads``, load averages, ``machine`` and ``contenders``: name ->
        ``label``, ``wall_s``, ``self_ms`` and ``share`` by category, ``total_self_ms``,
        ``top_ops``.
    """
    use_threads(threads)
    rows = {}
    with measuring(NAME, size=size, proposals=proposals, detections=detections) as result:
        for c in contenders or default_contenders():
            rows[c.name] = profile_contender(c, size, proposals, detections, warmup)
    result["contenders"] = rows
    if out_dir:
        write_result(result, out_dir, "profile_benchmark.json")
    return result


def category_lines(
    result: Dict[str, Any], categories: Sequence[str] = CATEGORIES, width: int = 22
) -> List[str]:
    """The header and one line per category (self ms and share), then the total self time and
    wall time, one column of ``width`` characters per contender of a profile ``result``."""
    rows = result["contenders"]
    names = list(rows)

    def line(first: str, cells: List[str]) -> str:
        return f"{first:<14}" + "".join(f" {c:>{width}}" for c in cells)

    header = line("category", [n[:width] for n in names])
    lines = [header, "-" * len(header)]
    for category in categories:
        lines.append(
            line(
                category,
                [
                    f"{rows[n]['self_ms'][category]:>9.1f} ms "
                    f"{100 * rows[n]['share'].get(category, 0.0):>5.1f}%"
                    for n in names
                ],
            )
        )
    totals = [
        f"{rows[n]['total_self_ms']:>9.0f} ms (wall {1000 * rows[n]['wall_s']:.0f})" for n in names
    ]
    lines.append(line("total", totals))
    return lines


def load_line(result: Dict[str, Any]) -> str:
    """The threads and the load average before and after a run."""
    return f"threads {result['threads']}; load {result['load_before']} -> {result['load_after']}"


def format_table(result: Dict[str, Any]) -> str:
    """Milliseconds and shares by category, one column per contender."""
    lines = category_lines(result)
    lines.append("what ran:")
    lines += [f"  {n}: {row['label']}" for n, row in result["contenders"].items()]
    lines.append(load_line(result))
    return "\n".join(lines)
