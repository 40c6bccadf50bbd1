#!/usr/bin/env python
"""Install detectron2 into the running interpreter without a compiler, from PyPI alone.

detectron2 is not published on PyPI. ``sal-detectron2==0.7.2`` is: a wheel of upstream detectron2
(commit a59f0563, April 2024) whose Python sources run on any CPython 3.10+ and current torch, but
which is tagged ``cp310``, carries a ``_C`` built for CPython 3.10 + torch 2.3, asks for ``numpy<2``
and also installs a stray top-level ``tools`` package. This script:

1. keeps an importable detectron2 >= 0.6 that has its compiled ``_C`` (a source build) untouched;
2. downloads the sal-detectron2 wheel with pip (the user's index settings apply) and checks it
   against the pinned sha256 below;
3. repacks the ``detectron2/`` sources, without ``_C``, as a pure-Python wheel named
   ``detectron2`` (version ``0.7.2+purepy``) whose requirements are the ones the sources import;
4. installs that wheel with pip, so that ``pip list`` shows it and ``pip uninstall detectron2``
   removes it.

Only the standard library and pip are used: this runs before trashpole is installed. Every failure
ends with one line ``error: ...`` on stderr and exit status 1.

What ``_C`` would add (trashpole needs none of it): rotated boxes and their NMS/ROIAlign,
deformable convolution, and ``fast_eval_api`` (a C++ COCOeval); without it detectron2's
``COCOEvaluator`` falls back to pycocotools' ``COCOeval``, which gives the same AP.
"""

import argparse
import base64
import csv
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import zipfile

SOURCE = "sal-detectron2==0.7.2"
SOURCE_FILE = "sal_detectron2-0.7.2-cp310-none-any.whl"
# sha256 of SOURCE_FILE as published on PyPI (checked on 2026-12-01)
SOURCE_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
VERSION = "0.7.2+purepy"
WHEEL_NAME = f"detectron2-{VERSION}-py3-none-any.whl"
# What the detectron2 sources import at module level on the paths trashpole uses (the wheel's own
# list minus numpy<2, which numpy 2 does not need, minus black and hydra-core, imported only
# by LazyConfig tools that trashpole does not use). Versions are pinned by constraints.txt.
REQUIRES = [
    "numpy",
    "torch",
    "torchvision",
    "Pillow>=7.1",
    "matplotlib",
    "pycocotools>=2.0.2",
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "tensorboard",
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "omegaconf>=2.1,<2.4",
    "packaging",
]


class InstallError(Exception):
    """A failure the user can act on; printed as one line."""


def compiled_detectron2() -> str:
    """The version of an importable detectron2 >= 0.6 with its ``_C``, else ''."""
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        return ""
    folder = list(spec.submodule_search_locations)[0]
    if not any(f.startswith("_C.") and f.endswith((".so", ".pyd")) for f in os.listdir(folder)):
        return ""
    version = _read_version(os.path.join(folder, "__init__.py"))
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return version if parts >= (0, 6) else ""


def installed_version() -> str:
    """The installed distribution version of ``detectron2``, '' when none."""
    from importlib import metadata  # stdlib; only needed on this path

    try:
        return metadata.version("detectron2")
    except metadata.PackageNotFoundError:
        return ""


def _read_version(init_file: str) -> str:
    with open(init_file) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("\"'")
    return ""


def download(dest: str, pip_args=()) -> str:
    """Download the source wheel with pip into ``dest``; returns its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    # the wheel is tagged cp310-none-any: ask pip for it whatever this interpreter is
    cmd += ["--python-version", "3.10", "--implementation", "cp", "-d", dest, *pip_args, SOURCE]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    path = os.path.join(dest, SOURCE_FILE)
    if proc.returncode != 0 or not os.path.isfile(path):
        reason = (proc.stderr.strip().splitlines() or ["no file"])[-1]
        raise InstallError(
            f"could not download {SOURCE} from the package index ({reason}); check the network "
            "or pip's index settings, then run make again"
        )
    return path


def check_sha256(path: str, expected: str = SOURCE_SHA256) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise InstallError(
            f"{os.path.basename(path)} has sha256 {digest.hexdigest()}, expected {expected}: "
            "the download is corrupt or not the published file; delete pip's cache entry "
            "('pip cache remove sal_detectron2') and run make again"
        )


def _record_line(name: str, data: bytes) -> list:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [name, f"sha256={digest}", str(len(data))]


def repack(source: str, dest_dir: str) -> str:
    """Write the pure-Python ``detectron2`` wheel from the source wheel; returns its path."""
    dist_info = f"detectron2-{VERSION}.dist-info"
    files = {}
    with zipfile.ZipFile(source) as zin:
        for info in zin.infolist():
            name = info.filename
            # only the library: no compiled _C, no stray top-level tools/ package
            if not name.startswith("detectron2/") or name.endswith("/"):
                continue
            if os.path.basename(name).startswith("_C.") and name.count("/") == 1:
                continue
            files[name] = zin.read(info)
        license_text = next(
            (zin.read(n) for n in zin.namelist() if n.endswith(".dist-info/LICENSE")), b""
        )
    metadata = [
        "Metadata-Version: 2.1",
        "Name: detectron2",
        f"Version: {VERSION}",
        "Summary: detectron2's Python sources (from sal-detectron2 0.7.2) without the compiled _C",
        "Home-page: https://github.com/facebookresearch/detectron2",
        "License: Apache-2.0",
        "Requires-Python: >=3.8",
        *(f"Requires-Dist: {r}" for r in REQUIRES),
    ]
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: trashpole install_detectron2\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    files[f"{dist_info}/top_level.txt"] = b"detectron2\n"
    if license_text:
        files[f"{dist_info}/LICENSE"] = license_text
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files.items():
        writer.writerow(_record_line(name, data))
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    files[f"{dist_info}/RECORD"] = record.getvalue().encode()
    path = os.path.join(dest_dir, WHEEL_NAME)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in files.items():
            zout.writestr(name, data)
    return path


def install(wheel: str, pip_args=()) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *pip_args, wheel]
    if subprocess.run(cmd).returncode != 0:
        raise InstallError(
            f"pip could not install {os.path.basename(wheel)} (its message is above)"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--constraint", "-c", default="", help="pip constraints file for the requirements"
    )
    parser.add_argument(
        "--wheel", default="", help=f"use this local copy of {SOURCE_FILE} instead of downloading"
    )
    parser.add_argument("--force", action="store_true", help="reinstall even if already installed")
    args = parser.parse_args(argv)
    try:
        compiled = compiled_detectron2()
        if compiled and not args.force:
            print(f"detectron2 {compiled} with its compiled _C is installed: keeping it")
            return 0
        if installed_version() == VERSION and not args.force:
            print(f"detectron2 {VERSION} is installed")
            return 0
        pip_args = ["-c", args.constraint] if args.constraint else []
        with tempfile.TemporaryDirectory(prefix="trashpole-d2-") as tmp:
            source = args.wheel or download(tmp)
            check_sha256(source)
            install(repack(source, tmp), pip_args)
        print(f"installed detectron2 {VERSION} (pure Python, from {SOURCE}, sha256 checked)")
        return 0
    except InstallError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
