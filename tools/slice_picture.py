#!/usr/bin/env python
"""
Draw how sliced inference merged one object: the mask pieces of each slice beside the merged
instance (trashpole/visualization/slices.py), for the README and for checking a run's slicing.

    tools/slice_picture.py --run output/demo --image datasets/trashpole_hires/test/x.jpg \\
        --output docs/images/merged_pole.png --class-name pole

The object shown is the one of that class whose pieces come from the most slices. The slicing is
the run's TRASHPOLE.INFERENCE.SLICE with --slice / --overlap on top (on, at the model's test size,
by default).
"""

import argparse
import logging
import os
import sys

import cv2
from detectron2.utils.logger import setup_logger

from trashpole.cli import add_debug_flag, run_tool
from trashpole.errors import UserError
from trashpole.images import UnreadableImage, read_bgr
from trashpole.predict import load_predictor
from trashpole.predict.merge import group_pieces, unite
from trashpole.predict.slicing import sliced_pieces
from trashpole.visualization.slices import merge_picture, pick_merged_group

logger = logging.getLogger("trashpole.tools.slice_picture")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, help="trained run folder")
    p.add_argument("--image", required=True, help="a large photo")
    p.add_argument("--output", required=True, help="PNG to write")
    p.add_argument("--class-name", default="pole", help="class of the object to show")
    p.add_argument("--slice", default="on", help="slice side in px, or on (the test size)")
    p.add_argument("--overlap", type=float, default=None, help="least overlap of the slices")
    p.add_argument("--height", type=int, default=480, help="picture height, px")
    add_debug_flag(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="trashpole")
    if not os.path.isfile(args.image):
        raise UserError(f"--image {args.image}: no such file")
    try:
        image, _ = read_bgr(args.image)
    except UnreadableImage as e:
        raise UserError(f"--image {args.image}: {e}") from None
    predictor = load_predictor(args.run, slice=args.slice, overlap=args.overlap)
    names = list(predictor.class_names)
    if args.class_name not in names:
        raise UserError(f"--class-name {args.class_name!r}: the run's classes are {names}")
    s = predictor.model.settings  # the SlicedModel that slicing "on" builds
    windows, pieces = sliced_pieces(
        predictor.model.run_batch, image, s.size, s.overlap, s.whole_image, s.batch
    )
    groups = group_pieces(pieces)
    chosen = pick_merged_group(pieces, groups, names.index(args.class_name))
    if chosen is None:
        raise UserError(
            f"{args.image}: no {args.class_name} was found in two slices or more "
            f"({len(windows)} slices, {len(pieces)} pieces); try another image or a smaller --slice"
        )
    members = [pieces[i] for i in groups[chosen]]
    seen = sorted({p.window for p in members if not p.whole})
    picture = merge_picture(image, members, unite(members), seen, args.height)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    cv2.imwrite(args.output, picture[:, :, ::-1])
    slices = len({p.window for p in members if not p.whole})
    logger.info(
        f"{args.class_name} from {slices} slices ({len(members)} pieces) merged into one: "
        f"{args.output}"
    )
    return {"slices": slices, "pieces": len(members), "output": args.output}


if __name__ == "__main__":
    sys.exit(run_tool(main))
