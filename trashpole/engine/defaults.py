"""Command line and config setup shared by tools/train_net.py and the tests."""

import argparse
import logging
import os
from typing import List, Optional

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm

from trashpole.cli import add_debug_flag
from trashpole.config import default_dataset_root, describe_schedule, load_config, resolve_epochs
from trashpole.data import register_roboflow_splits, required_mask_format
from trashpole.engine.writers import setup_run_logging
from trashpole.errors import MissingFileError, UserError
from trashpole.evaluation.evaluate import EVAL_FOLDER

logger = logging.getLogger(__name__)


def argument_parser(epilog: Optional[str] = None) -> argparse.ArgumentParser:
    """detectron2's training arguments plus trashpole's data-set options."""
    parser = default_argument_parser(epilog=epilog)
    parser.add_argument(
        "--dataset-root",
        default="",
        help="folder of the Roboflow COCO export (train/, valid/, test/); "
        "default: TRASHPOLE.DATASET_ROOT, else $DETECTRON2_DATASETS/<TRASHPOLE.DATASET_NAME>",
    )
    parser.add_argument(
        "--strict-data",
        action="store_true",
        help="stop on the first bad record in the export instead of skipping it with a count",
    )
    parser.add_argument(
        "--eval-split",
        default="",
        help="with --eval-only: the split to evaluate (train, valid or test); "
        "default: DATASETS.TEST of the config",
    )
    return add_debug_flag(parser)


def count_train_images(cfg: CfgNode) -> int:
    """Images the train loader draws from (detectron2 drops images without annotations)."""
    total = 0
    for name in cfg.DATASETS.TRAIN:
        dicts = DatasetCatalog.get(name)
        if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS:
            dicts = [
                d for d in dicts if any(a.get("iscrowd", 0) == 0 for a in d.get("annotations", []))
            ]
        total += len(dicts)
    return total


def register_datasets(cfg: CfgNode, training: bool = True) -> dict:
    """
    Register the export of ``cfg`` (idempotent) and fill TRASHPOLE.CLASS_NAMES, in place; for
    training, also check DATASETS.TRAIN and pick the mask format the train split needs.
    """
    root = default_dataset_root(cfg)
    splits = register_roboflow_splits(
        cfg.TRASHPOLE.DATASET_NAME,
        root,
        strict=cfg.TRASHPOLE.STRICT_DATA,
        masks=cfg.MODEL.MASK_ON,
    )
    names = list(MetadataCatalog.get(next(iter(splits.values()))).thing_classes)
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES != len(names):
        logger.info(
            f"{root} has {len(names)} classes {names}: "
            f"MODEL.ROI_HEADS.NUM_CLASSES set to {len(names)}"
        )
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(names)
    cfg.TRASHPOLE.CLASS_NAMES = names
    cfg.TRASHPOLE.DATASET_ROOT = os.path.abspath(root)
    _check_test_names(cfg, splits)
    if training:
        _check_train_names(cfg, splits)
        # detectron2 reads polygons by default; (non-crowd) RLE masks need bitmasks
        train = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])
        cfg.INPUT.MASK_FORMAT = required_mask_format(train)
    if not cfg.MODEL.MASK_ON and cfg.TRASHPOLE.BEST_METRIC.startswith("segm/"):
        cfg.TRASHPOLE.BEST_METRIC = cfg.TRASHPOLE.BEST_METRIC.replace("segm/", "bbox/", 1)
    return splits


def _check_train_names(cfg: CfgNode, splits: dict) -> None:
    known = set(splits.values())
    missing = [n for n in cfg.DATASETS.TRAIN if n not in known]
    if missing:
        hint = "" if "train" in splits else "; the export has no train/ split"
        raise UserError(
            f"DATASETS.TRAIN names {missing}, but {cfg.TRASHPOLE.DATASET_ROOT} registers "
            f"{sorted(known)}{hint}; set DATASETS.TRAIN (e.g. \"('{sorted(known)[0]}',)\") or "
            "TRASHPOLE.DATASET_NAME to match"
        )


def _check_test_names(cfg: CfgNode, splits: dict) -> None:
    """A DATASETS.TEST entry that is not registered falls back to valid, then test."""
    known = set(splits.values())
    if all(n in known for n in cfg.DATASETS.TEST):
        return
    fallback = splits.get("valid") or splits.get("test")
    logger.warning(
        f"DATASETS.TEST {list(cfg.DATASETS.TEST)} is not in {sorted(known)}; "
        f"evaluating on {fallback or 'nothing'} instead"
    )
    cfg.DATASETS.TEST = (fallback,) if fallback else ()


def _check_weights(cfg: CfgNode, args: argparse.Namespace) -> None:
    """A local MODEL.WEIGHTS file that is missing is a user mistake, unless --resume finds the
    run's own last checkpoint (which detectron2 loads instead)."""
    weights = cfg.MODEL.WEIGHTS
    if not weights or "://" in weights or os.path.isfile(weights):
        return
    if getattr(args, "resume", False) and os.path.isfile(
        os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")
    ):
        return
    raise MissingFileError(
        f"MODEL.WEIGHTS {weights!r} does not exist; give a checkpoint of a run (e.g. "
        "<run>/model_final.pth) or a detectron2:// model-zoo URL"
    )


def setup(args: argparse.Namespace) -> CfgNode:
    """
    The whole setup of a run: config (file, opts), data registration, derived values (epochs to
    iterations, class names), freeze, detectron2's ``default_setup`` (output folder, config.yaml,
    logs, seed).
    """
    opts: List[str] = list(args.opts)
    cfg = load_config(args.config_file, opts)
    if args.dataset_root:
        cfg.TRASHPOLE.DATASET_ROOT = args.dataset_root
    if args.strict_data:
        cfg.TRASHPOLE.STRICT_DATA = True
    _check_weights(cfg, args)
    # an evaluation keeps the run's own config.yaml and log.txt: its own go to OUTPUT_DIR/eval/
    log_dir = os.path.join(cfg.OUTPUT_DIR, EVAL_FOLDER) if args.eval_only else cfg.OUTPUT_DIR
    # log.txt gets plain text, also for the coloured config dump of default_setup
    setup_run_logging(log_dir, comm.get_rank())
    splits = register_datasets(cfg, training=not args.eval_only)
    if args.eval_split:
        if args.eval_split not in splits:
            raise UserError(
                f"--eval-split {args.eval_split!r}: {cfg.TRASHPOLE.DATASET_ROOT} has the splits "
                f"{sorted(splits)}; pick one of them"
            )
        cfg.DATASETS.TEST = (splits[args.eval_split],)
    if not args.eval_only:
        resolve_epochs(cfg, count_train_images(cfg))
    cfg.freeze()
    if args.eval_only:
        setup_cfg = cfg.clone()
        setup_cfg.defrost()
        setup_cfg.OUTPUT_DIR = log_dir
        default_setup(setup_cfg, args)
    else:
        default_setup(cfg, args)
    if not args.eval_only:
        for line in describe_schedule(cfg):
            logger.info(line)
    return cfg
