#!/usr/bin/env python
"""
Run a trained trashpole model on images, folders, globs or videos.

    tools/predict.py --run output/demo --input street.jpg --output output/demo/predictions
    tools/predict.py --run output/demo --input "photos/**/*.jpg" --output out --score 0.6
    tools/predict.py --run output/demo --input datasets/trashpole/test --output out \\
        --coco-json out/coco_results.json \\
        --coco-images datasets/trashpole/test/_annotations.coco.json
    tools/predict.py --run output/demo --input street.jpg --output out --fp32 --no-channels-last

Speed on the CPU: each option is on or off as the run's config says (TRASHPOLE.INFERENCE) unless
a flag says otherwise; --fp32 --no-channels-last --no-fuse --no-threaded-roi-align runs the model
exactly as detectron2 builds it. See docs/performance.md for what each option costs and gains.
"""

import argparse
import logging

from detectron2.utils.logger import setup_logger

from trashpole.predictor import load_predictor, predict_paths
from trashpole.speed import speed_opts


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
    p.add_argument(
        "--coco-json",
        default=None,
        help="also write all image predictions as one COCO results JSON",
    )
    p.add_argument(
        "--coco-images",
        default=None,
        help="COCO JSON whose image and category ids --coco-json uses (default: images numbered "
        "0, 1, ... in sorted order, classes 1, 2, ...)",
    )
    speed = p.add_argument_group("speed (CPU)")
    switch = argparse.BooleanOptionalAction
    speed.add_argument(
        "--bf16", action=switch, default=None, help="bfloat16 (only on CPUs with native bf16)"
    )
    speed.add_argument(
        "--fp32", dest="bf16", action="store_const", const=False, help="same as --no-bf16"
    )
    speed.add_argument("--channels-last", action=switch, default=None, help="NHWC convolutions")
    speed.add_argument(
        "--fuse", action=switch, default=None, help="fold norms, fuse conv+ReLU(+add) (exact)"
    )
    speed.add_argument(
        "--threaded-roi-align", action=switch, default=None, help="ROIAlign over the threads"
    )
    speed.add_argument(
        "--compile", action=switch, default=None, help="torch.compile the backbone (slow start)"
    )
    speed.add_argument("--threads", type=int, default=0, help="torch threads (0: one per core)")
    speed.add_argument(
        "--proposals",
        type=int,
        default=0,
        help="RPN proposals per image (MODEL.RPN.POST_NMS_TOPK_TEST)",
    )
    speed.add_argument(
        "--input-size", type=int, default=0, help="shorter image side given to the model (pixels)"
    )
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return p.parse_args(argv)


def speed_opts_of(args) -> list:
    """The config overrides of the speed flags (a flag not given leaves the config's value)."""
    return speed_opts(
        bf16=args.bf16,
        channels_last=args.channels_last,
        threads=args.threads,
        proposals=args.proposals,
        fuse=args.fuse,
        threaded_roi_align=args.threaded_roi_align,
        compile=args.compile,
    )


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="trashpole")
    opts = speed_opts_of(args) + list(args.opts)
    predictor = load_predictor(
        args.run, args.weights, args.score, args.device, opts, input_size=args.input_size or None
    )
    counts = predict_paths(
        predictor,
        args.input,
        args.output,
        save_overlays=not args.no_overlays,
        coco_json=args.coco_json,
        coco_images=args.coco_images,
    )
    logging.getLogger("trashpole").info(f"Wrote {args.output}: {counts}")
    return counts


if __name__ == "__main__":
    main()
