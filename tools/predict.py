#!/usr/bin/env python
"""
Run a trained trashpole model on images, folders, globs or videos.

    tools/predict.py --run output/demo --input street.jpg --output output/demo/predictions
    tools/predict.py --run output/demo --input "photos/**/*.jpg" --output out --score 0.6
    tools/predict.py --run output/demo --input datasets/trashpole/test --output out \\
        --coco-json out/coco_results.json \\
        --coco-images datasets/trashpole/test/_annotations.coco.json
    tools/predict.py --run output/demo --input street.jpg --output out --int8   # OpenVINO int8
    tools/predict.py --run output/demo --input street.jpg --output out --backend pytorch --fp32
    tools/predict.py --run output/demo --input walk.mp4 --output out --track   # IDs and counts
    tools/predict.py --run output/demo --input frames/ --output out --track --min-track-frames 3
    tools/predict.py --run output/demo --input walk.mp4 --output out --track --count-score 0.8
    tools/predict.py --run output/demo --input "photos/*.jpg" --output out --slice auto

Photos with GPS EXIF also give detections.geojson and positions.png. --track: see
trashpole/predict/sequence.py for what the output folder holds (tracks.csv, summary.json...).

Engine: OpenVINO on a CPU (bf16 where the CPU has it; the first use of a run's weights converts
them and caches the result beside them), PyTorch on CUDA; --backend chooses. The PyTorch speed
options (bf16 autocast, channels_last, threads) are on or off as the run's config says
(TRASHPOLE.INFERENCE) unless a flag says otherwise; --backend pytorch --fp32 --no-channels-last
runs the model exactly as detectron2 builds it. See docs/performance.md and docs/export.md.
"""

import argparse
import logging
import sys

from detectron2.utils.logger import setup_logger

from trashpole.cli import add_debug_flag, run_tool
from trashpole.errors import UserError
from trashpole.predict import find_inputs, load_predictor, predict_paths, track_paths
from trashpole.predict.slicing import slice_opts
from trashpole.speed import speed_opts


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    _add_io_args(p)
    _add_track_args(p)
    _add_slice_args(p)
    _add_engine_args(p)
    _add_speed_args(p)
    add_debug_flag(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = p.parse_args(argv)
    if args.track and (args.coco_json or args.coco_images):
        p.error("--coco-json and --coco-images are for image predictions, not for --track")
    try:
        slice_opts(args.slice, args.overlap)
    except UserError as e:
        p.error(str(e))
    if args.min_track_frames is not None and args.min_track_frames < 1:
        p.error(f"--min-track-frames {args.min_track_frames}: give 1 or more frames")
    if args.count_score is not None and not 0 <= args.count_score <= 1:
        p.error(f"--count-score {args.count_score}: give a score from 0 to 1")
    return args


def _add_io_args(p: argparse.ArgumentParser) -> None:
    """The run, the inputs and what is written."""
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


def _add_track_args(p: argparse.ArgumentParser) -> None:
    """--track and how many frames a track needs."""
    track = p.add_argument_group("tracking (videos, or a folder of frames taken as one sequence)")
    track.add_argument(
        "--track", action="store_true", help="IDs across frames, tracks.csv, counts of objects"
    )
    track.add_argument(
        "--min-track-frames",
        type=int,
        default=None,
        help="frames a track must be detected in to count (default: TRASHPOLE.TRACK.MIN_FRAMES)",
    )
    track.add_argument(
        "--count-score",
        type=float,
        default=None,
        help="score one of a track's detections must reach for it to count (default: "
        "TRASHPOLE.TRACK.COUNT_SCORE)",
    )


def _add_slice_args(p: argparse.ArgumentParser) -> None:
    """Sliced inference of large photos."""
    slicing = p.add_argument_group("slicing (large photos; docs/slicing.md)")
    slicing.add_argument(
        "--slice",
        default=None,
        metavar="SIZE|auto|on|off",
        help="cut each image into overlapping slices of SIZE px (on: INPUT.MIN_SIZE_TEST), run "
        "them in batches plus the whole image, merge the masks; auto: only the images the test "
        "size shrinks 2x or more (default: TRASHPOLE.INFERENCE.SLICE.MODE, off)",
    )
    slicing.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="least share of a slice's side shared by its neighbours, 0-1 (default 0.2)",
    )


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    """Which backend runs the model, and OpenVINO's int8."""
    engine = p.add_argument_group("engine")
    engine.add_argument(
        "--backend",
        choices=("auto", "openvino", "pytorch"),
        default=None,
        help="auto (default): OpenVINO on a CPU, PyTorch on CUDA (TRASHPOLE.INFERENCE.BACKEND)",
    )
    engine.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="OpenVINO in int8, calibrated on the run's train split (TRASHPOLE.INFERENCE.INT8)",
    )


def _add_speed_args(p: argparse.ArgumentParser) -> None:
    """The switches of the PyTorch speed options (and bf16 on OpenVINO)."""
    speed = p.add_argument_group("speed (--bf16/--fp32: both backends; --channels-last: PyTorch)")
    switch = argparse.BooleanOptionalAction
    speed.add_argument(
        "--bf16", action=switch, default=None, help="bfloat16 where the CPU has it natively"
    )
    speed.add_argument(
        "--fp32", dest="bf16", action="store_const", const=False, help="same as --no-bf16"
    )
    speed.add_argument("--channels-last", action=switch, default=None, help="NHWC convolutions")
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


def speed_opts_of(args) -> list:
    """The config overrides of the speed flags (a flag not given leaves the config's value)."""
    return speed_opts(
        bf16=args.bf16,
        channels_last=args.channels_last,
        threads=args.threads,
        proposals=args.proposals,
    )


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="trashpole")
    find_inputs(args.input)  # a wrong --input fails before the model is loaded
    opts = speed_opts_of(args) + list(args.opts)
    predictor = load_predictor(
        args.run,
        args.weights,
        args.score,
        args.device,
        opts,
        input_size=args.input_size or None,
        backend=args.backend,
        int8=args.int8,
        slice=args.slice,
        overlap=args.overlap,
    )
    if args.track:
        summary = track_paths(
            predictor,
            args.input,
            args.output,
            args.min_track_frames,
            not args.no_overlays,
            args.count_score,
        )
        print(format_summary(summary))
        return summary
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


def format_summary(summary: dict) -> str:
    """The counts of a --track run as a few lines."""
    lines = [
        f"{name}: {s['frames']} frames, {s['tracks']} tracks, objects {s['objects']}"
        for name, s in summary["sequences"].items()
    ]
    objects = ", ".join(f"{n} {c}" for c, n in summary["objects"].items())
    rule = f"tracks of at least {summary['min_frames']} frames, seen once at score >= "
    lines.append(f"distinct objects ({rule}{summary['count_score']:g}): {objects}")
    if "gps" in summary:
        gps = summary["gps"]
        lines.append(
            f"photos with a GPS position: {gps['images_with_gps']}, without: "
            f"{gps['images_without_gps']} (malformed GPS tags: {gps['gps_problems']})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_tool(main))
