"""Where the time of one training iteration goes: torch.profiler's self CPU time of every op of
the forward, the backward and the optimizer step, by category (convolutions forward and backward,
linear layers, ROIAlign forward and backward, NMS, copies and casts, fills, the optimizer step,
the rest), and the wall time of each phase.

Contenders:

- the CPU recipe as ``make demo`` trains it (``configs/mask_rcnn_R_18_FPN_cpu_quick.yaml``:
  R18-FPN, bf16 autocast where the CPU has native bf16, channels_last, 4 images of 384 px, masks
  as polygons, as the demo's export has them);
- trashpole's R50-FPN with the fast settings, and torchvision's R50-FPN set up like detectron2
  with the same generic switches, at the training benchmark's equal work (2 images of 640 px,
  ROIAlign sampling 2), as in :mod:`benchmarks.training`.

What the profile leaves out: the data loader (the demo's runs in a worker process, here the batch
is made once beforehand) and the trainer's hooks (logging, checkpoints, evaluation). As in the
inference profile, trashpole's threaded ROIAlign runs on threads torch.profiler does not see: its
scopes in the calling thread (forward and backward) count their wall time as ROIAlign."""

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.measure import R50_CONFIG, measuring, use_threads, write_result
from benchmarks.profile import category_lines, load_line, profiled_row
from benchmarks.training import (
    PHASE_SCOPES,
    TrainContender,
    _make_step,
    synthetic_samples,
)
from trashpole.speed import precision, speed_opts

logger = logging.getLogger(__name__)

CATEGORIES = (
    "conv",
    "linear",
    "ROIAlign",
    "NMS",
    "copies/casts",
    "fills",
    "optimizer",
    "other",
)
DEMO_CONFIG = "configs/mask_rcnn_R_18_FPN_cpu_quick.yaml"

NAME = "profile-training"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"size": 64, "batch": 1, "warmup": 0, "proposals": 50, "rois": 16, "quick": True}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "size": "size"}


@dataclass
class ProfiledContender:
    """
    A training set-up and the batch it is profiled on.

    Attributes:
        contender: what trains (see :class:`benchmarks.training.TrainContender`).
        size: image side (0: the run's).
        batch: images per iteration (0: the run's).
    """

    contender: TrainContender
    size: int = 0
    batch: int = 0


def default_contenders() -> List[ProfiledContender]:
    """The demo's recipe at its own batch and size; trashpole R50 fast and the peer with the same
    switches at the run's."""
    bf16 = precision.bf16_supported()
    ratio2 = speed_opts(sampling_ratio=2)
    return [
        ProfiledContender(
            TrainContender(
                "demo recipe R18", "trashpole", DEMO_CONFIG, (), bf16, True, polygon_masks=True
            ),
            size=384,
            batch=4,
        ),
        ProfiledContender(
            TrainContender("trashpole R50 fast", "trashpole", R50_CONFIG, ratio2, bf16, True)
        ),
        ProfiledContender(
            TrainContender("torchvision like d2 switches", "torchvision-d2", (), (), bf16, True)
        ),
    ]


def profile_step(
    item: ProfiledContender,
    size: int,
    batch: int,
    warmup: int,
    proposals: int = 0,
    rois: int = 0,
    seed: int = 0,
) -> Dict[str, Any]:
    """Profile one training iteration of ``item`` after ``warmup`` unprofiled ones (``size``,
    ``batch``, ``proposals`` and ``rois`` apply where ``item`` sets none, see
    :func:`benchmarks.training.run`)."""
    size, batch = item.size or size, item.batch or batch
    samples = synthetic_samples(size, batch, seed)
    step, model = _make_step(item.contender, samples, size, seed, proposals, rois)
    for _ in range(warmup):
        step()
    phases: Dict[str, float] = {}
    scopes = {PHASE_SCOPES["optimizer"]: "optimizer"}
    row, loss = profiled_row(lambda: step(phases), model, CATEGORIES, scopes, training=True)
    masks = "polygons" if item.contender.polygon_masks else "bitmasks"
    return {**row, "masks": masks, "size": size, "batch": batch, "loss": loss, "phase_s": phases}


def run(
    out_dir: Optional[str] = None,
    size: int = 640,
    batch: int = 2,
    warmup: int = 2,
    threads: int = 0,
    contenders: Optional[Sequence[ProfiledContender]] = None,
    proposals: int = 0,
    rois: int = 0,
    quick: bool = False,
    **unused: Any,
) -> Dict[str, Any]:
    """
    Profile one training iteration of each contender and write
    ``profile_training_benchmark.json``.

    Args:
        out_dir: folder for the JSON (none written if None).
        size, batch: images of an iteration, for contenders that set none.
        warmup: unprofiled iterations first (oneDNN picks and caches its kernels in the first).
        threads: torch threads (0: torch's default).
        contenders: default :func:`default_contenders`.
        proposals, rois: as in :func:`benchmarks.training.run` (0: each default).
        quick: every contender at ``size`` and ``batch`` (a smoke test).

    Returns:
        dict with ``threads``, load averages, ``machine`` and ``contenders``: name -> ``label``,
        ``size``, ``batch``, ``wall_s``, ``phase_s`` (forward, backward, optimizer), ``self_ms``
        and ``share`` by category, ``total_self_ms``, ``top_ops``.
    """
    use_threads(threads)
    settings = dict(proposals=proposals or "default", rois=rois or "default", warmup=warmup)
    rows = {}
    with measuring(NAME, **settings) as result:
        for item in contenders or default_contenders():
            if quick:
                item = ProfiledContender(item.contender)
            logger.info("profiling a training iteration of %s", item.contender.name)
            rows[item.contender.name] = profile_step(item, size, batch, warmup, proposals, rois)
    result["contenders"] = rows
    if out_dir:
        write_result(result, out_dir, "profile_training_benchmark.json")
    return result


def format_table(result: Dict[str, Any]) -> str:
    """Milliseconds and shares by category and the phases' wall time, one column per
    contender."""
    rows = result["contenders"]
    lines = category_lines(result, CATEGORIES, width=24)
    for phase in PHASE_SCOPES:
        cells = [f"{1000 * row['phase_s'].get(phase, 0.0):>9.0f} ms wall" for row in rows.values()]
        lines.append(f"{phase:<14}" + "".join(f" {c:>24}" for c in cells))
    lines.append("what ran:")
    lines += [
        f"  {n}: {row['label']}, batch {row['batch']} at {row['size']}, {row['masks']}"
        for n, row in rows.items()
    ]
    lines.append(load_line(result))
    return "\n".join(lines)
