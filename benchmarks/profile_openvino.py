"""Where the time of one 640x640 prediction on OpenVINO goes: each phase of
:func:`trashpole.predict.stages.run_stages` (the three networks, detectron2's code between them,
mask pasting) by wall time, and inside each network the layers by type and kernel, from OpenVINO's
own per-layer counters (``PERF_COUNT``). Same model and equal work as the inference benchmark
(R50-FPN, random weights, 1000 proposals, 100 detections, ROIAlign sampling 2)."""

import logging
import statistics
from collections import defaultdict
from typing import Any, Dict, Optional

from benchmarks.inference import Contender, build_trashpole
from benchmarks.measure import R50_CONFIG, measuring, street_image, use_threads, write_result
from trashpole.predict.openvino import compile_stages, precision_for
from trashpole.predict.stages import Laps
from trashpole.run import backend_opts
from trashpole.speed import speed_opts

logger = logging.getLogger(__name__)

NAME = "profile-openvino"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"size": 64, "proposals": 50, "detections": 5, "repeats": 1}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "size": "size"}


def _layers(stage) -> Dict[str, float]:
    """ms by ``type (kernel)`` of the last inference of a compiled stage."""
    ms: Dict[str, float] = defaultdict(float)
    for info in stage.last_request.get_profiling_info():
        if info.status.name == "EXECUTED":
            ms[f"{info.node_type} ({info.exec_type})"] += info.real_time.total_seconds() * 1000
    return dict(ms)


def run(
    out_dir: Optional[str] = None,
    size: int = 640,
    proposals: int = 1000,
    detections: int = 100,
    repeats: int = 3,
    threads: int = 0,
    int8: bool = False,
) -> Dict[str, Any]:
    """
    Profile ``repeats`` predictions (after one untimed) and write
    ``profile_openvino_benchmark.json``.

    Returns:
        ``label``, ``phases_ms`` (median wall ms of each phase), ``total_ms``, ``share`` (of
        the total), ``layers_ms`` (stage -> ``type (kernel)`` -> ms, the last run) and the
        machine and load.
    """
    use_threads(threads)
    opts = backend_opts("openvino", int8=int8) + speed_opts(sampling_ratio=2)
    predictor = build_trashpole(
        Contender("trashpole openvino", "trashpole", R50_CONFIG, opts), size, proposals, detections
    )
    model = predictor.model
    precision = precision_for(bool(predictor.cfg.TRASHPOLE.INFERENCE.BF16))
    model.stages = compile_stages(model.graphs, precision, threads, {"PERF_COUNT": True})
    image = street_image(size, 0)
    predictor(image)
    runs = []
    settings = dict(size=size, proposals=proposals, detections=detections, repeats=repeats)
    with measuring(NAME, label=predictor.backend, **settings) as result:
        for _ in range(repeats):
            model.laps = Laps()
            predictor(image)
            runs.append(model.laps.seconds)
    model.laps = None
    phases = {k: 1000 * statistics.median(r[k] for r in runs) for k in runs[0]}
    total = sum(phases.values())
    result.update(phases_ms=phases, total_ms=total)
    result["share"] = {k: v / total for k, v in phases.items()}
    result["layers_ms"] = {name: _layers(stage) for name, stage in model.stages.items()}
    if out_dir:
        write_result(result, out_dir, "profile_openvino_benchmark.json")
    return result


def format_table(result: Dict[str, Any], top: int = 6) -> str:
    """Phases with their share, then each stage's heaviest layer kinds."""
    lines = [f"{result['label']}: {result['total_ms']:.0f} ms a prediction (median phases)"]
    for phase, ms in result["phases_ms"].items():
        lines.append(f"  {phase:<24} {ms:>8.1f} ms {100 * result['share'][phase]:>5.1f}%")
    for stage, layers in result["layers_ms"].items():
        heaviest = sorted(layers.items(), key=lambda kv: -kv[1])[:top]
        lines.append(f"  {stage}: " + "; ".join(f"{k} {v:.1f} ms" for k, v in heaviest))
    lines.append(
        f"threads {result['threads']}; load {result['load_before']} -> {result['load_after']}"
    )
    return "\n".join(lines)
