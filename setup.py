#!/usr/bin/env python
"""trashpole: Mask R-CNN for trash cans and poles, built on detectron2."""
from setuptools import find_packages, setup

setup(
    name="trashpole",
    version="0.1.0",
    description="detectron2 Mask R-CNN toolkit for trash cans and poles in street and campus photos",
    packages=find_packages(exclude=("tests", "tools")),
    python_requires=">=3.10,<3.11",
    install_requires=[
        # sal-detectron2 is upstream detectron2 (commit a59f0563) with a compiled _C for CPython 3.10
        # and torch 2.3; it does not declare fvcore and iopath, so they are named here.
        "torch==2.3.1",
        "torchvision==0.18.1",
        "numpy<2",
        "sal-detectron2==0.7.2",
        "fvcore",
        "iopath>=0.1.7,<0.1.10",
        "pycocotools",
        "opencv-python-headless",
        "matplotlib",
        "tensorboard",
        "scipy",
        "tqdm",
    ],
    extras_require={
        "dev": ["pytest", "black", "isort"],
        # TorchScript export needs nothing more; ONNX export needs onnx, and checking or running
        # the exported file needs onnxruntime
        "export": ["onnx>=1.16,<1.18", "onnxruntime>=1.17,<1.20"],
    },
)
