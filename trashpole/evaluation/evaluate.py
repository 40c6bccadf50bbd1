"""
The one evaluation path, used by training (``Trainer.test``), ``tools/train_net.py --eval-only``
and the benchmarks, and the one rule for where it writes:

    OUTPUT_DIR/eval/<split>/   report.md, metrics.json, per_image.json, plots

``<split>`` is the split of the registered data set (``trashpole_valid`` -> ``valid``). Training
evaluates ``DATASETS.TEST`` (the valid split) every period and rewrites ``eval/valid/`` with the
final model at its end; ``--eval-only --eval-split test`` writes ``eval/test/``.
"""

import json
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
) -> Dict:
    """
    Evaluate ``model`` on ``dataset_name`` with COCO + trashpole metrics and, on the main process,
    write the readable report (metrics.json, report.md, plots).

    Args:
        cfg: the run's config.
        model: what predicts: the inference model of :func:`trashpole.run.build_inference_model`
            (``--eval-only``, the evaluation at the end of training, the benchmarks: the model as
            ``predict`` runs it, on its backend), or the model being trained (the periodic
            evaluations, fp32 PyTorch). Its ``description`` (backend and precision) goes into
            the log and ``metrics.json``. A model with a ``test_mapper()`` (sliced inference,
            :class:`trashpole.predict.sliced_model.SlicedModel`) gets its images through that
            mapper, at their original resolution.
        dataset_name: a registered data set.
        report_dir: where the report goes; default ``eval_dir(cfg.OUTPUT_DIR, split)``.

    Returns:
        the results of ``inference_on_dataset``: ``{"bbox": {...}, "segm": {...},
        "trashpole": {...}}`` (no ``segm``/``trashpole`` for a box-only model).
    """
    if report_dir is None:
        report_dir = eval_dir(cfg.OUTPUT_DIR, split_name(cfg, dataset_name))
    # sliced inference cuts slices from the full-resolution image: such a model names its mapper
    mapper = model.test_mapper() if hasattr(model, "test_mapper") else None
    data_loader = build_detection_test_loader(cfg, dataset_name, mapper=mapper)
    # the evaluators write their files here; the report is made from them
    inference_dir = os.path.join(report_dir, "inference")
    evaluators = build_evaluator_list(cfg, dataset_name, inference_dir)
    backend = getattr(model, "description", "pytorch fp32 (the training model)")
    logger.info(f"Evaluating on {dataset_name} with {backend}")
    results = inference_on_dataset(model, data_loader, DatasetEvaluators(evaluators))
    if not comm.is_main_process():
        return results
    if len(evaluators) == 2:
        write_report(results, inference_dir, report_dir)
        _record_backend(os.path.join(report_dir, "metrics.json"), backend)
        logger.info(f"Evaluation report of {dataset_name}: {os.path.join(report_dir, 'report.md')}")
    else:  # a box-only model: COCO box AP is all there is
        undefined = undefined_reasons(results, cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST)
        summary = {
            "dataset": dataset_name,
            "backend": backend,
            "results": results,
            "undefined": undefined,
        }
        write_json(summary, os.path.join(report_dir, "metrics.json"))
    return results


def _record_backend(metrics_file: str, backend: str) -> None:
    """Add what predicted (``backend``) to the report's metrics.json."""
    if not os.path.isfile(metrics_file):
        return
    with open(metrics_file) as f:
        metrics = json.load(f)
    metrics["backend"] = backend
    write_json(metrics, metrics_file)
