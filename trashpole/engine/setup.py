"""Command line and config setup shared by tools/train_net.py and the tests."""

import argparse
import logging
import os
from typing import Dict, List, Optional

from detectron2.config import CfgNode
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm

from trashpole.cli import add_debug_flag
from trashpole.config import default_dataset_root, load_config
from trashpole.data import register_roboflow_splits
from trashpole.engine.derive import derive_from_data, describe_schedule
from trashpole.engine.weights import fetch_weights, is_remote
from trashpole.engine.writers import setup_run_logging
from trashpole.errors import MissingFileError
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
    derive_from_data(cfg, splits, training=not args.eval_only, eval_split=args.eval_split)
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
