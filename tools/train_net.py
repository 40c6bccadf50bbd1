#!/usr/bin/env python
"""
Train or evaluate a trashpole Mask R-CNN.

    tools/train_net.py --config-file configs/mask_rcnn_R_18_FPN_cpu_quick.yaml --dataset-root DIR
    tools/train_net.py --config-file output/demo/config.yaml --eval-only --eval-split test \\
        MODEL.WEIGHTS output/demo/model_final.pth
"""

import logging
import sys
from functools import partial
from typing import List

from detectron2.utils import comm

from trashpole.cli import run_tool, run_worker
from trashpole.data import write_data_summary
from trashpole.data.augment import train_scale_fn
from trashpole.engine import Trainer, argument_parser, launch, setup
from trashpole.evaluation.evaluate import evaluate_and_report
from trashpole.evaluation.run_index import write_run_index
from trashpole.run import build_inference_model

logger = logging.getLogger("trashpole.train_net")


def main(args):
    cfg = setup(args)
    if args.eval_only:
        # the model as predict runs it (trashpole.run: backend, precision, options)
        model = build_inference_model(cfg)
        # each split's report goes to OUTPUT_DIR/eval/<split>/ (trashpole.evaluation.evaluate)
        results = {name: evaluate_and_report(cfg, model, name) for name in cfg.DATASETS.TEST}
        if comm.is_main_process():
            write_run_index(cfg.OUTPUT_DIR)  # the run's index.html lists the new report
        return results

    if comm.is_main_process():
        names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
        write_data_summary(names, cfg.OUTPUT_DIR, scale_of=train_scale_fn(cfg))
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    # the last evaluation (at the end of training) rewrites OUTPUT_DIR/eval/<split>/
    return trainer.train()


def cli(argv: List[str]) -> None:
    """Parse the command line and run ``main`` in each process of detectron2's ``launch``."""
    args = argument_parser().parse_args(argv)
    launch(
        partial(run_worker, main),
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    sys.exit(run_tool(cli))
