"""Timings of trashpole's parts on generated inputs; each module has ``run(out_dir, ...) -> dict``.

- :mod:`.inference`: latency of one image, trashpole's predictor against torchvision's Mask R-CNN
  (plain and with the same generic switches), each row labelled from what ran (:mod:`.describe`);
- :mod:`.profile`: where that image's time goes (torch.profiler, by op category);
- :mod:`.profile_openvino`: the same on OpenVINO (phases, and OpenVINO's per-layer counters);
- :mod:`.profile_training`: where a training iteration's time goes (the same, for forward,
  backward and optimizer step);
- :mod:`.training`: seconds per training iteration, trashpole's recipe against torchvision's;
- :mod:`.data`: registering and loading a large export;
- :mod:`.evaluation`: time and memory of the trashpole evaluator;
- :mod:`.report`: size on disk and load time in headless Chromium of a large report.html.
- :mod:`.tracking`: the cost of tracking a frame against predicting it;
- :mod:`.folder`: images per second of ``tools/predict.py`` on a folder, per backend.

``tools/benchmark.py`` runs them from the command line.
"""

# the benchmark modules, as tools/benchmark.py names them
SUITES = (
    "inference",
    "profile",
    "profile-openvino",
    "profile-training",
    "training",
    "data",
    "evaluation",
    "report",
    "tracking",
    "folder",
)
