#!/usr/bin/env python
"""
Look at a Roboflow export before training on it: ground-truth overlays (masks, boxes, class
names) of a sample or of all images, optionally as the trainer sees them after the train
augmentations, and the data summary (tables + labels.png).

    python tools/visualize_data.py --dataset-root datasets/trashpole --split train \
        --output output/data_vis --num 16 --stats
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

from detectron2.utils.logger import setup_logger

from trashpole.cli import add_debug_flag, run_tool
from trashpole.config import load_config
from trashpole.data import canonical_split, register_roboflow_splits, write_data_summary
from trashpole.data.visualize import visualize_dataset
from trashpole.errors import UserError

logger = logging.getLogger("trashpole.tools.visualize_data")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Draw ground-truth overlays and the data summary of a Roboflow export."
    )
    parser.add_argument("--dataset-root", required=True, help="folder of the Roboflow export")
    parser.add_argument("--split", default="train", help="train, valid (val), or test")
    parser.add_argument("--output", required=True, help="folder for the overlays and summary")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--num", type=int, default=16, help="random sample of this many images")
    group.add_argument("--all", action="store_true", help="draw every image of the split")
    parser.add_argument(
        "--augmented", action="store_true", help="draw images after the train augmentations"
    )
    parser.add_argument("--stats", action="store_true", help="write the data summary of all splits")
    parser.add_argument("--config-file", default="", help="config for the augmentations")
    parser.add_argument("--strict", action="store_true", help="stop on any bad record")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and augmentations")
    parser.add_argument("--name", default="trashpole", help="prefix of the registered names")
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> List[str]:
    """Register the export, write the overlays (and the summary); returns the overlay paths."""
    setup_logger(name="trashpole")
    setup_logger(name="detectron2")
    cfg = load_config(args.config_file) if args.config_file else None
    # with a box-only config (MODEL.MASK_ON False), box-only annotations are shown, not dropped
    masks = cfg.MODEL.MASK_ON if cfg is not None else True
    registered = register_roboflow_splits(
        args.name, args.dataset_root, strict=args.strict, masks=masks
    )
    split = canonical_split(args.split)
    if split not in registered:
        raise UserError(
            f"{args.dataset_root}: no {args.split} split; choose --split from {list(registered)}"
        )
    paths = visualize_dataset(
        registered[split],
        os.path.join(args.output, split),
        num=None if args.all else args.num,
        augmented=args.augmented,
        cfg=cfg,
        seed=args.seed,
    )
    if args.stats:
        write_data_summary(list(registered.values()), args.output)
    return paths


if __name__ == "__main__":
    sys.exit(run_tool(lambda argv: main(parse_args(argv))))
