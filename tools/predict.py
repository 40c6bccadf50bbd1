#!/usr/bin/env python
"""
Run a trained trashpole model on images, folders, globs or videos.

    tools/predict.py --run output/demo --input street.jpg --output output/demo/predictions
    tools/predict.py --run output/demo --input "photos/**/*.jpg" --output out --score 0.6
"""

import argparse
import logging

from detectron2.utils.logger import setup_logger

from trashpole.predictor import load_predictor, predict_paths


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, help="run folder (with config.yaml) or a config.yaml")
    p.add_argument(
        "--weights", default=None, help="checkpoint (default: the run's model_final.pth)"
    )
    p.add_argument("--input", required=True, help="image, video, folder or glob")
    p.add_argument("--output", required=True, help="folder for overlays and JSON")
    p.add_argument("--score", type=float, default=0.5, help="minimum score of a detection")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-overlays", action="store_true", help="write JSON only")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="trashpole")
    predictor = load_predictor(args.run, args.weights, args.score, args.device, args.opts)
    counts = predict_paths(predictor, args.input, args.output, save_overlays=not args.no_overlays)
    logging.getLogger("trashpole").info(f"Wrote {args.output}: {counts}")
    return counts


if __name__ == "__main__":
    main()
