"""Command line and config setup shared by tools/train_net.py and the tests."""

import argparse
import logging
import os
from typing import Any, Dict, List, Optional

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm

from trashpole.cli import add_debug_flag
from trashpole.config import default_dataset_root, describe_schedule, load_config, resolve_epochs
from trashpole.data import register_roboflow_splits, required_mask_format
from trashpole.data.anchors import derive_anchors
from trashpole.data.augment import nominal_train_size, train_scale_fn
from trashpole.data.summary import object_widths, thin_object_warning
from trashpole.engine.weights import fetch_weights, is_remote
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


def register_datasets(cfg: CfgNode) -> Dict[str, str]:
    """
    Register the export of ``cfg`` in detectron2's catalogs (idempotent). Changes nothing in
    ``cfg``: :func:`derive_from_data` sets what follows from the data.

    Returns:
        {canonical split: registered data set name}, e.g. ``{"train": "trashpole_train", ...}``.
    """
    return register_roboflow_splits(
        cfg.TRASHPOLE.DATASET_NAME,
        default_dataset_root(cfg),
        strict=cfg.TRASHPOLE.STRICT_DATA,
        masks=cfg.MODEL.MASK_ON,
    )


def _set_key(cfg: CfgNode, key: str, value: Any, why: str, changes: List[str]) -> None:
    *path, name = key.split(".")
    node = cfg
    for part in path:
        node = node[part]
    old = node[name]
    if old != value:
        node[name] = value
        changes.append(f"{key}: {old!r} -> {value!r} ({why})")


def derive_from_data(cfg: CfgNode, splits: Dict[str, str], training: bool = True) -> List[str]:
    """
    Set, in place, the config keys that follow from the registered export, and log each change:

    - ``TRASHPOLE.DATASET_ROOT``: made absolute, so that the saved config works from anywhere;
    - ``TRASHPOLE.CLASS_NAMES`` and ``MODEL.ROI_HEADS.NUM_CLASSES``: the export's classes;
    - ``DATASETS.TEST``: an entry that is not registered falls back to valid, then test;
    - for training, ``DATASETS.TRAIN`` is checked, and ``INPUT.MASK_FORMAT`` becomes ``bitmask``
      when the train split has (non-crowd) RLE masks, which detectron2's polygon reader rejects;
    - for training with ``TRASHPOLE.ANCHORS.FROM_DATA``, ``MODEL.ANCHOR_GENERATOR``'s aspect
      ratios (and sizes with ``FIT_SIZES``) from the train boxes, coverage logged before/after;
      and a warning when many train objects are only a few pixels wide at the training size;
    - ``TRASHPOLE.BEST_METRIC``: a ``segm/`` metric becomes ``bbox/`` for a box-only model.

    Args:
        cfg: unfrozen config.
        splits: from :func:`register_datasets`.
        training: the config is for training (else for evaluation or prediction).

    Returns:
        one line per key that changed: ``KEY: old -> new (why)``.
    """
    changes: List[str] = []
    root = os.path.abspath(default_dataset_root(cfg))
    names = list(MetadataCatalog.get(next(iter(splits.values()))).thing_classes)
    _set_key(cfg, "TRASHPOLE.DATASET_ROOT", root, "the export's absolute path", changes)
    _set_key(cfg, "TRASHPOLE.CLASS_NAMES", names, "the export's classes", changes)
    _set_key(cfg, "MODEL.ROI_HEADS.NUM_CLASSES", len(names), f"{len(names)} classes", changes)
    fallback = _test_fallback(cfg, splits)
    if fallback is not None:
        _set_key(cfg, "DATASETS.TEST", fallback, "the configured ones are not registered", changes)
    if training:
        _check_train_names(cfg, splits)
        train = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])
        fmt = required_mask_format(train)
        _set_key(cfg, "INPUT.MASK_FORMAT", fmt, "what the train split's masks need", changes)
        _derive_anchors(cfg, train, changes)
        _warn_thin_objects(cfg, train)
    if not cfg.MODEL.MASK_ON and cfg.TRASHPOLE.BEST_METRIC.startswith("segm/"):
        metric = cfg.TRASHPOLE.BEST_METRIC.replace("segm/", "bbox/", 1)
        _set_key(cfg, "TRASHPOLE.BEST_METRIC", metric, "a box-only model has no segm", changes)
    for line in changes:
        logger.info(f"config from the data: {line}")
    return changes


def _derive_anchors(cfg: CfgNode, train: List[dict], changes: List[str]) -> None:
    fit = derive_anchors(cfg, train, train_scale_fn(cfg))
    if fit is None:
        return
    why = (
        f"anchor coverage {fit.coverage_before:.1%} -> {fit.coverage_after:.1%} of the train boxes"
    )
    _set_key(cfg, "MODEL.ANCHOR_GENERATOR.SIZES", fit.sizes, why, changes)
    _set_key(cfg, "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", [fit.ratios], why, changes)


def _warn_thin_objects(cfg: CfgNode, train: List[dict]) -> None:
    widths = object_widths(train, train_scale_fn(cfg))
    t = cfg.TRASHPOLE.TRAIN
    warning = thin_object_warning(
        widths, nominal_train_size(cfg), t.MIN_OBJECT_WIDTH, t.THIN_OBJECT_SHARE
    )
    if warning:
        logger.warning(warning)


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


def _test_fallback(cfg: CfgNode, splits: Dict[str, str]) -> Optional[tuple]:
    """None when every DATASETS.TEST entry is registered, else the split to use instead (valid,
    then test; empty when the export has neither)."""
    known = set(splits.values())
    if all(n in known for n in cfg.DATASETS.TEST):
        return None
    fallback = splits.get("valid") or splits.get("test")
    logger.warning(
        f"DATASETS.TEST {list(cfg.DATASETS.TEST)} is not in {sorted(known)}; "
        f"evaluating on {fallback or 'nothing'} instead"
    )
    return (fallback,) if fallback else ()


def _check_weights(cfg: CfgNode, args: argparse.Namespace) -> None:
    """A local MODEL.WEIGHTS file that is missing is a user mistake, unless --resume finds the
    run's own last checkpoint (which detectron2 loads instead); a URL is fetched now (or found in
    detectron2's download cache), so that an offline machine stops here with one line."""
    weights = cfg.MODEL.WEIGHTS
    resuming = getattr(args, "resume", False) and os.path.isfile(
        os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")
    )
    if not weights or resuming:
        return
    if is_remote(weights):
        fetch_weights(weights)
        return
    if "://" in weights or os.path.isfile(weights):
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
    splits = register_datasets(cfg)
    derive_from_data(cfg, splits, training=not args.eval_only)
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
