#!/usr/bin/env python
"""
Train or evaluate a trashpole Mask R-CNN.

    tools/train_net.py --config-file configs/mask_rcnn_R_18_FPN_cpu_quick.yaml --dataset-root DIR
    tools/train_net.py --config-file output/demo/config.yaml --eval-only --eval-split test \\
        MODEL.WEIGHTS output/demo/model_final.pth
"""

import logging
import os

from detectron2.utils import comm

from trashpole.data import write_data_summary
from trashpole.engine import (
    Trainer,
    TrashPoleCheckpointer,
    argument_parser,
    evaluate_and_report,
    launch,
    setup,
)
from trashpole.evaluation.run_index import write_run_index

logger = logging.getLogger("trashpole.train_net")


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        TrashPoleCheckpointer(model, cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
        results = {}
        for name in cfg.DATASETS.TEST:
            out = (
                cfg.OUTPUT_DIR
                if len(cfg.DATASETS.TEST) == 1
                else os.path.join(cfg.OUTPUT_DIR, name)
            )
            results[name] = evaluate_and_report(cfg, model, name, out, inference_only=True)
        if comm.is_main_process():
            # OUTPUT_DIR is <run>/eval_<split> here (see setup): list it in the run's index.html
            write_run_index(os.path.dirname(os.path.abspath(cfg.OUTPUT_DIR)))
        return results

    if comm.is_main_process():
        write_data_summary(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST), cfg.OUTPUT_DIR)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    # the last evaluation (at the end of training) also writes the report into OUTPUT_DIR/eval
    return trainer.train()


if __name__ == "__main__":
    args = argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
