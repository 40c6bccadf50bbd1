#!/usr/bin/env python
"""trashpole: Mask R-CNN for trash cans and poles, built on detectron2."""

from setuptools import find_packages, setup

setup(
    name="trashpole",
    version="0.1.0",
    description="detectron2 Mask R-CNN toolkit for trash cans and poles in street and campus photos",
    # benchmarks/ (the suites of tools/benchmark.py) and synthetic/ (the demo's data generator,
    # tools/make_synthetic.py) stay in the checkout: users never import them
    packages=find_packages(
        exclude=("tests", "tools", "benchmarks", "benchmarks.*", "synthetic", "synthetic.*")
    ),
    # the styles and script that report.html and index.html inline
    package_data={"trashpole.evaluation": ["static/*.css", "static/*.js"]},
    python_requires=">=3.10,<3.14",
    # detectron2 itself is not on PyPI: `make venv` (tools/install_detectron2.py) installs it from
    # the pinned sal-detectron2 wheel's Python sources, or keeps a detectron2 built from source.
    # The exact versions tested are pinned in constraints.txt; these are the ranges that work.
    install_requires=[
        "torch>=2.6",  # weights_only checkpoint loading (trashpole.compat)
        "torchvision>=0.21",
        "numpy>=1.26",
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "pycocotools>=2.0.7",
        "opencv-python-headless>=4.8",
        "matplotlib>=3.7",
        "pillow>=10",
        "tensorboard",
        "scipy>=1.10",
        "tqdm",
        # report.md to report.html (trashpole.evaluation.markdown_html); 4.x: CommonMark + tables
        "markdown-it-py>=4,<5",
        # the CPU inference engine (trashpole.predict.openvino): the default backend on a CPU
        "openvino>=2025.3",
        # int8 post-training quantization of the OpenVINO model (--int8)
        "nncf>=2.18",
    ],
    extras_require={
        "dev": ["pytest", "black", "isort"],
        # TorchScript export needs nothing more; ONNX export needs onnx (trashpole uses the
        # TorchScript-based exporter, which needs no onnxscript), and checking or running the
        # exported file needs onnxruntime
        "export": ["onnx>=1.16", "onnxruntime>=1.17"],
    },
)
