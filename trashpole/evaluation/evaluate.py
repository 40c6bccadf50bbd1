"""
The one evaluation path, used by training (``Trainer.test``), ``tools/train_net.py --eval-only``
and the benchmarks, and the one rule for where it writes:

    OUTPUT_DIR/eval/<split>/   report.md, metrics.json, per_image.json, plots

``<split>`` is the split of the registered data set (``trashpole_valid`` -> ``valid``). Training
evaluates ``DATASETS.TEST`` (the valid split) every period and rewrites ``eval/valid/`` with the
final model at its end; ``--eval-only --eval-split test`` writes ``eval/test/``.
"""

import logging
import os
from typing import Dict, Optional

from detectron2.config import CfgNode
from detectron2.data import build_detection_test_loader
from detectron2.evaluation import DatasetEvaluators, inference_on_dataset
from detectron2.utils import comm

from trashpole.evaluation.evaluator import build_evaluator_list
from trashpole.evaluation.report import write_report
from trashpole.evaluation.undefined import undefined_reasons
from trashpole.jsonio import write_json
from trashpole.speed import apply_inference_options, inference_autocast

logger = logging.getLogger(__name__)

EVAL_FOLDER = "eval"


def split_name(cfg: CfgNode, dataset_name: str) -> str:
    """The split of a registered data set: ``<TRASHPOLE.DATASET_NAME>_<split>`` -> ``<split>``;
    a data set registered under another name keeps its whole name."""
    prefix = f"{cfg.TRASHPOLE.DATASET_NAME}_"
    return dataset_name[len(prefix) :] if dataset_name.startswith(prefix) else dataset_name


def eval_dir(output_dir: str, split: str) -> str:
    """``output_dir/eval/<split>``: the folder every evaluation of ``split`` writes."""
    return os.path.join(output_dir, EVAL_FOLDER, split)


def evaluate_and_report(
    cfg: CfgNode,
    model,
    dataset_name: str,
    report_dir: Optional[str] = None,
    inference_only: bool = False,
) -> Dict:
    """
    Evaluate ``model`` on ``dataset_name`` with COCO + trashpole metrics and, on the main process,
    write the readable report (metrics.json, report.md, plots).

    Args:
        cfg: the run's config.
        model: a built model with its weights loaded.
        dataset_name: a registered data set.
        report_dir: where the report goes; default ``eval_dir(cfg.OUTPUT_DIR, split)``.
        inference_only: the model is not trained afterwards (``--eval-only``, benchmarks): it
            then runs with the CPU speed options of ``TRASHPOLE.INFERENCE`` (bf16,
            channels_last, fused layers), as the predictor does. False evaluates the model as
            given: training's evaluations (fp32), or a caller that prepared it itself.

    Returns:
        the results of ``inference_on_dataset``: ``{"bbox": {...}, "segm": {...},
        "trashpole": {...}}`` (no ``segm``/``trashpole`` for a box-only model).
    """
    if report_dir is None:
        report_dir = eval_dir(cfg.OUTPUT_DIR, split_name(cfg, dataset_name))
    data_loader = build_detection_test_loader(cfg, dataset_name)
    # the evaluators write their files here; the report is made from them
    inference_dir = os.path.join(report_dir, "inference")
    evaluators = build_evaluator_list(cfg, dataset_name, inference_dir)
    if inference_only:
        model = apply_inference_options(model, cfg, inference_only=True)
    with inference_autocast(cfg if inference_only else False):
        results = inference_on_dataset(model, data_loader, DatasetEvaluators(evaluators))
    if not comm.is_main_process():
        return results
    if len(evaluators) == 2:
        write_report(results, inference_dir, report_dir)
        logger.info(f"Evaluation report of {dataset_name}: {os.path.join(report_dir, 'report.md')}")
    else:  # a box-only model: COCO box AP is all there is
        undefined = undefined_reasons(results, cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST)
        summary = {"dataset": dataset_name, "results": results, "undefined": undefined}
        write_json(summary, os.path.join(report_dir, "metrics.json"))
    return results
