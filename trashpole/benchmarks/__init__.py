"""Timings of trashpole's parts on generated inputs; each module has ``run(out_dir, ...) -> dict``.

- :mod:`.inference`: latency of one image, trashpole's predictor against torchvision's Mask R-CNN;
- :mod:`.training`: seconds per training iteration, trashpole's recipe against torchvision's;
- :mod:`.data`: registering and loading a large export;
- :mod:`.evaluation`: time and memory of the trashpole evaluator;
- :mod:`.report`: size on disk and load time in headless Chromium of a large report.html.
- :mod:`.tracking`: the cost of tracking a frame against predicting it.

``tools/benchmark.py`` runs them from the command line.
"""

# the benchmark modules, as tools/benchmark.py names them
SUITES = ("inference", "training", "data", "evaluation", "report", "tracking")
