"""Timings of trashpole's parts on generated inputs, run by ``tools/benchmark.py``. This package
lives in the checkout and is not installed with trashpole (setup.py leaves it out).

Every suite is a module with the same small interface, so that the tool runs each the same way:

- ``NAME``: the suite's name on the command line;
- ``QUICK``: keyword arguments of ``run`` that shrink the suite to a smoke test (``--quick``);
- ``OPTIONS``: the command-line options the suite takes (the attribute of the parsed arguments)
  and the keyword of ``run`` each one sets; an option left at its default (0, "") is not passed;
- ``run(out_dir, **kwargs) -> dict``: measures, writes its result file (``*_benchmark.json``)
  under ``out_dir`` and returns the result that file holds;
- ``format_table(result) -> str``: the result as the text the tool prints.

The suites whose rows are contenders start their result with :func:`.measure.measuring`'s header
(benchmark, settings, threads, load before and after, machine). The suites:

- :mod:`.inference`: latency of one image, trashpole's predictor against torchvision's Mask R-CNN
  (plain and with the same generic switches), each row labelled from what ran (:mod:`.describe`);
- :mod:`.profile`: where that image's time goes (torch.profiler, by op category);
- :mod:`.profile_openvino`: the same on OpenVINO (phases, and OpenVINO's per-layer counters);
- :mod:`.profile_training`: where a training iteration's time goes (the same, for forward,
  backward and optimizer step);
- :mod:`.training`: seconds per training iteration, trashpole's recipe against torchvision's;
- :mod:`.data`: registering and loading a large export;
- :mod:`.evaluation`: time and memory of the trashpole evaluator;
- :mod:`.report`: size on disk and load time in headless Chromium of a large report.html;
- :mod:`.tracking`: the cost of tracking a frame against predicting it;
- :mod:`.folder`: images per second of ``tools/predict.py`` on a folder, per backend;
- :mod:`.slicing`: a large photo predicted whole and sliced;
- :mod:`.accuracy`: AP and speed of each speed option on trained runs;
- :mod:`.counting`: a trained run's counts of distinct objects on synthetic clips, and the
  tracker settings that count best on clips other than the scored one;
- :mod:`.mask_head`: the mask head's forward and backward in a training step, at several widths.

Beside the suites: :mod:`.synthetic_video`, a panned and zoomed synthetic clip whose objects'
identities are known, which the tracking suite and the tests film and ``tools/synthetic_video.py``
scores a tracker on.
"""

import importlib
from types import ModuleType

# suite name -> its module; a suite is imported only when it runs, so that each loads only what
# it measures (the peer's model code, Chromium...)
SUITES = {
    "inference": "benchmarks.inference",
    "profile": "benchmarks.profile",
    "profile-openvino": "benchmarks.profile_openvino",
    "profile-training": "benchmarks.profile_training",
    "training": "benchmarks.training",
    "data": "benchmarks.data",
    "evaluation": "benchmarks.evaluation",
    "report": "benchmarks.report",
    "tracking": "benchmarks.tracking",
    "folder": "benchmarks.folder",
    "accuracy": "benchmarks.accuracy",
    "slicing": "benchmarks.slicing",
    "counting": "benchmarks.counting",
    "mask-head": "benchmarks.mask_head",
}
# what ``tools/benchmark.py all`` runs: every suite but accuracy and counting (they need trained
# runs), slicing and mask-head, which run only when named
ALL = tuple(name for name in SUITES if name not in ("accuracy", "slicing", "counting", "mask-head"))


def load_suite(name: str) -> ModuleType:
    """The module of suite ``name`` (a key of :data:`SUITES`), imported now."""
    if name not in SUITES:
        raise ValueError(f"unknown benchmark suite {name!r}; choose from {sorted(SUITES)}")
    return importlib.import_module(SUITES[name])
