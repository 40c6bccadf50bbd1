#!/usr/bin/env python
"""
Export a trained trashpole run to OpenVINO IR (torch.export + openvino.convert_model, optionally
int8), TorchScript or ONNX (detectron2's tracing), with export_meta.json (class names, input size
and format, outputs) beside the model.

    tools/export_model.py --run output/demo --format openvino --output output/demo/export_ov
    tools/export_model.py --run output/demo --format openvino --int8 --output output/demo/export_ov
    tools/export_model.py --run output/demo --format torchscript --output output/demo/export_ts
    tools/export_model.py --run output/demo --format onnx --output output/demo/export_onnx \\
        --sample-image datasets/trashpole/test/street_001.jpg

Run the result without trashpole: examples/run_openvino.py (OpenVINO), examples/run_exported.py
(TorchScript, ONNX). Details: docs/export.md.
"""

import argparse
import logging
import os
import sys

from detectron2.utils.logger import setup_logger

from trashpole.cli import add_debug_flag, run_tool
from trashpole.errors import UserError
from trashpole.export import EXPORT_FORMATS, export_model
from trashpole.images import UnreadableImage, read_bgr


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, help="run folder (with config.yaml) or a config.yaml")
    p.add_argument(
        "--weights", default=None, help="checkpoint (default: the run's model_final.pth)"
    )
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="what to write")
    p.add_argument("--output", required=True, help="folder for the model and export_meta.json")
    p.add_argument(
        "--sample-image",
        default=None,
        help="image to trace with and check the export on (default: noise at the test size)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the exported-vs-eager check")
    p.add_argument(
        "--int8",
        action="store_true",
        help="OpenVINO: also write the int8 feature stage (NNCF, calibrated on the train split)",
    )
    p.add_argument(
        "--calibration-images",
        default=None,
        help="with --int8: folder of calibration images (default: the run's train split)",
    )
    add_debug_flag(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return p.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    setup_logger(name="trashpole")
    image = None
    if args.sample_image:
        if not os.path.isfile(args.sample_image):
            raise UserError(f"--sample-image {args.sample_image}: no such file")
        try:  # read as training and predict read it
            image, _ = read_bgr(args.sample_image)
        except UnreadableImage as e:
            raise UserError(
                f"--sample-image {args.sample_image}: {e}; give a JPEG or PNG, or leave it out "
                "to trace with noise"
            ) from None
    path = export_model(
        args.run,
        args.output,
        args.format,
        weights=args.weights,
        sample_image=image,
        opts=args.opts,
        verify=not args.no_verify,
        int8=args.int8,
        calibration=args.calibration_images,
    )
    logging.getLogger("trashpole").info(f"Wrote {path}")
    return path


if __name__ == "__main__":
    sys.exit(run_tool(main))
