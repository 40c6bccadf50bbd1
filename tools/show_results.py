#!/usr/bin/env python
"""
Print where a run's results are and its headline metrics.

    tools/show_results.py output/demo [--times data=31 train=900 ...]
"""

import argparse
import sys

from trashpole.cli import add_debug_flag, run_tool
from trashpole.evaluation.compare import headline


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", help="run folder")
    p.add_argument("--times", nargs="*", default=[], help="stage=seconds pairs to print")
    add_debug_flag(p)
    args = p.parse_args(argv)
    print(headline(args.run))
    if args.times:
        print("Wall time: " + ", ".join(f"{k} {int(v) // 60}m{int(v) % 60:02d}s" for k, v in
                                        (t.split("=") for t in args.times)))  # fmt: skip


if __name__ == "__main__":
    sys.exit(run_tool(main))
