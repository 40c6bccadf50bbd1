#!/usr/bin/env python
"""
Compare finished runs side by side: a table on stdout and a bar plot PNG.

    python tools/compare_runs.py output/run_a output/run_b --output compare.png

Each RUN_DIR needs ``eval/<split>/metrics.json`` (written by the evaluation report); the training log
``RUN_DIR/metrics.json`` is summarized when present.
"""

import argparse
import logging
import sys

from trashpole.cli import add_debug_flag, run_tool
from trashpole.evaluation.compare import compare_runs, format_table
from trashpole.visualization.charts import plot_comparison


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run output folders")
    parser.add_argument(
        "--split", default="valid", help="evaluated split to compare (default: %(default)s)"
    )
    parser.add_argument(
        "--output", default="compare_runs.png", help="bar plot PNG (default: %(default)s)"
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    runs = compare_runs(args.run_dirs, split=args.split)
    print(format_table(runs))
    plot_comparison(runs, args.output)
    logging.getLogger("compare_runs").info("wrote %s", args.output)


if __name__ == "__main__":
    sys.exit(run_tool(main))
