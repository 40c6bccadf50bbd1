#!/usr/bin/env python
"""
What an install costs: the disk a venv takes and the size of the files pip downloads for it.

    python -m pip download --no-deps -d /tmp/wheels -r <(grep -v '^detectron2==' locks/python3.13.txt)
    python tools/install_size.py --venv .venv --downloads /tmp/wheels \\
        --output docs/benchmarks/install_size.json

The venv is measured file by file (as ``du`` counts, in bytes of 1e6 to a MB), the downloads as
the files pip fetched; both are grouped into torch, NVIDIA's CUDA libraries (nvidia-*, cuda-*),
triton, and everything else.
"""

import argparse
import json
import os
import platform
import re
import sys
from typing import Dict, Iterable, Tuple

GROUPS = (
    ("nvidia_cuda", r"^(nvidia|cuda)"),
    ("torch", r"^torch(?!vision)"),
    ("triton", r"^triton"),
)


def group_of(name: str) -> str:
    """The group of a site-packages entry or a downloaded file, by its name."""
    for group, pattern in GROUPS:
        if re.match(pattern, name.lower()):
            return group
    return "other"


def folder_bytes(path: str) -> int:
    """Bytes of the files under ``path`` (links not followed, each file counted once)."""
    total, seen = 0, set()
    for root, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def grouped_mb(sizes: Iterable[Tuple[str, int]]) -> Dict[str, float]:
    """{group: MB} and "total" of (name, bytes) pairs."""
    out = {g: 0.0 for g, _ in GROUPS}
    out["other"] = 0.0
    for name, size in sizes:
        out[group_of(name)] += size / 1e6
    out["total"] = sum(out.values())
    return {k: round(v, 1) for k, v in out.items()}


def measure(venv: str, downloads: str) -> dict:
    lib = os.path.join(venv, "lib")
    (python_dir,) = os.listdir(lib)
    site = os.path.join(lib, python_dir, "site-packages")
    entries = [(n, folder_bytes(os.path.join(site, n))) for n in os.listdir(site)]
    files = [(n, os.path.getsize(os.path.join(downloads, n))) for n in os.listdir(downloads)]
    return {
        "command": "python tools/install_size.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.system()} {platform.machine()}, {python_dir}",
        "venv_MB": {**grouped_mb(entries), "whole_venv": round(folder_bytes(venv) / 1e6, 1)},
        "download_MB": grouped_mb(files),
        "downloaded_files": len(files),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--venv", default=".venv", help="the venv to measure")
    parser.add_argument("--downloads", required=True, help="folder of the files pip downloaded")
    parser.add_argument("--output", default="", help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    text = json.dumps(measure(args.venv, args.downloads), indent=2) + "\n"
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
