"""Every config key that follows from the data, set in one place (:func:`derive_from_data`):
the export's path and classes, the test split, the mask format, anchors from the train boxes,
the best-checkpoint metric, and the schedule in iterations from the schedule in epochs."""

import logging
import math
import os
from typing import Any, Dict, List, Optional

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog

from trashpole.config import default_dataset_root
from trashpole.data import required_mask_format
from trashpole.data.anchors import derive_anchors
from trashpole.data.augment import nominal_train_size, train_scale_fn
from trashpole.data.summary import object_widths, thin_object_warning
from trashpole.errors import UserError

logger = logging.getLogger(__name__)


def _set_key(cfg: CfgNode, key: str, value: Any, why: str, changes: List[str]) -> None:
    *path, name = key.split(".")
    node = cfg
    for part in path:
        node = node[part]
    old = node[name]
    if old != value:
        node[name] = value
        changes.append(f"{key}: {old!r} -> {value!r} ({why})")


def derive_from_data(
    cfg: CfgNode, splits: Dict[str, str], training: bool = True, eval_split: str = ""
) -> List[str]:
    """
    Set, in place, the config keys that follow from the registered export, and log each change:

    - ``TRASHPOLE.DATASET_ROOT``: made absolute, so that the saved config works from anywhere;
    - ``TRASHPOLE.CLASS_NAMES`` and ``MODEL.ROI_HEADS.NUM_CLASSES``: the export's classes;
    - ``DATASETS.TEST``: the split ``eval_split`` names if given, else an entry that is not
      registered falls back to valid, then test;
    - for training, ``DATASETS.TRAIN`` is checked, and ``INPUT.MASK_FORMAT`` becomes ``bitmask``
      when the train split has (non-crowd) RLE masks, which detectron2's polygon reader rejects;
    - for training with ``TRASHPOLE.ANCHORS.FROM_DATA``, ``MODEL.ANCHOR_GENERATOR``'s aspect
      ratios (and sizes with ``FIT_SIZES``) from the train boxes, coverage logged before/after;
      and a warning when many train objects are only a few pixels wide at the training size;
    - for training, the schedule in iterations from the schedule in epochs
      (:func:`resolve_epochs`), after the train split is known;
    - ``TRASHPOLE.BEST_METRIC``: a ``segm/`` metric becomes ``bbox/`` for a box-only model.

    Args:
        cfg: unfrozen config.
        splits: from :func:`register_datasets`.
        training: the config is for training (else for evaluation or prediction).
        eval_split: a split of the export to evaluate (train, valid or test); "" keeps
            ``DATASETS.TEST``.

    Returns:
        one line per key that changed: ``KEY: old -> new (why)``.
    """
    changes: List[str] = []
    root = os.path.abspath(default_dataset_root(cfg))
    names = list(MetadataCatalog.get(next(iter(splits.values()))).thing_classes)
    _set_key(cfg, "TRASHPOLE.DATASET_ROOT", root, "the export's absolute path", changes)
    _set_key(cfg, "TRASHPOLE.CLASS_NAMES", names, "the export's classes", changes)
    _set_key(cfg, "MODEL.ROI_HEADS.NUM_CLASSES", len(names), f"{len(names)} classes", changes)
    _derive_test_split(cfg, splits, eval_split, changes)
    if training:
        _check_train_names(cfg, splits)
        train = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])
        fmt = required_mask_format(train)
        _set_key(cfg, "INPUT.MASK_FORMAT", fmt, "what the train split's masks need", changes)
        _derive_anchors(cfg, train, changes)
        _warn_thin_objects(cfg, train)
        changes += resolve_epochs(cfg, count_train_images(cfg))
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


def _derive_test_split(
    cfg: CfgNode, splits: Dict[str, str], eval_split: str, changes: List[str]
) -> None:
    if eval_split:
        if eval_split not in splits:
            raise UserError(
                f"--eval-split {eval_split!r}: {cfg.TRASHPOLE.DATASET_ROOT} has the splits "
                f"{sorted(splits)}; pick one of them"
            )
        _set_key(cfg, "DATASETS.TEST", (splits[eval_split],), "--eval-split", changes)
        return
    fallback = _test_fallback(cfg, splits)
    if fallback is not None:
        _set_key(cfg, "DATASETS.TEST", fallback, "the configured ones are not registered", changes)


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


def _epochs_to_iters(epochs: float, iters_per_epoch: int) -> int:
    return int(round(epochs * iters_per_epoch))


def schedule_in_iterations(cfg: CfgNode, num_train_images: int) -> Dict[str, Any]:
    """
    detectron2's iteration keys that the epoch keys of ``cfg`` give. One epoch is
    ``ceil(num_train_images / IMS_PER_BATCH)`` iterations. With ``SOLVER.EPOCHS == 0`` only
    ``SOLVER.ITERS_PER_EPOCH`` is given: the iteration keys stay as configured.

    Args:
        cfg: a trashpole config.
        num_train_images: images the train loader will draw from (after empty ones are filtered).

    Returns:
        {dotted key: value}.
    """
    if num_train_images <= 0:
        raise UserError(
            f"the train split {list(cfg.DATASETS.TRAIN)} has no usable image (none with "
            "annotations); check the export (its data summary lists what was skipped)"
        )
    s = cfg.SOLVER
    ipe = math.ceil(num_train_images / s.IMS_PER_BATCH)
    keys: Dict[str, Any] = {"SOLVER.ITERS_PER_EPOCH": ipe}
    if s.EPOCHS <= 0:
        return keys
    eval_epochs = cfg.TEST.EVAL_PERIOD_EPOCHS
    keys.update(
        {
            "SOLVER.MAX_ITER": _epochs_to_iters(s.EPOCHS, ipe),
            "SOLVER.STEPS": tuple(_epochs_to_iters(e, ipe) for e in s.STEP_EPOCHS if e < s.EPOCHS),
            "SOLVER.WARMUP_ITERS": _epochs_to_iters(s.WARMUP_EPOCHS, ipe),
            "SOLVER.CHECKPOINT_PERIOD": max(1, _epochs_to_iters(s.CHECKPOINT_PERIOD_EPOCHS, ipe)),
            "TEST.EVAL_PERIOD": _epochs_to_iters(eval_epochs, ipe) if eval_epochs > 0 else 0,
        }
    )
    return keys


def resolve_epochs(cfg: CfgNode, num_train_images: int) -> List[str]:
    """
    Turn the epoch keys into detectron2's iteration keys, in place
    (:func:`schedule_in_iterations`).

    Args:
        cfg: unfrozen config.
        num_train_images: images the train loader will draw from.

    Returns:
        one line per key that changed: ``KEY: old -> new (why)``.
    """
    keys = schedule_in_iterations(cfg, num_train_images)
    why = (
        f"{cfg.SOLVER.EPOCHS:g} epochs of {keys['SOLVER.ITERS_PER_EPOCH']} iterations: "
        f"{num_train_images} train images, batch {cfg.SOLVER.IMS_PER_BATCH}"
    )
    changes: List[str] = []
    for key, value in keys.items():
        _set_key(cfg, key, value, why, changes)
    return changes


def describe_schedule(cfg: CfgNode) -> List[str]:
    """Human-readable lines of the iteration schedule, for the start-of-run log."""
    s = cfg.SOLVER
    ipe = max(1, s.ITERS_PER_EPOCH)
    lrs = [s.BASE_LR * s.GAMMA**k for k in range(len(s.STEPS) + 1)]
    lines = [
        f"{s.ITERS_PER_EPOCH} iterations an epoch (batch {s.IMS_PER_BATCH}), "
        f"{s.MAX_ITER} iterations = {s.MAX_ITER / ipe:g} epochs",
        f"optimizer {s.OPTIMIZER}, LR {lrs[0]:g}"
        + "".join(f", {lr:g} from iteration {it}" for it, lr in zip(s.STEPS, lrs[1:])),
        f"warmup {s.WARMUP_ITERS} iterations; checkpoint every {s.CHECKPOINT_PERIOD} iterations; "
        f"evaluation every {cfg.TEST.EVAL_PERIOD or s.MAX_ITER} iterations",
    ]
    return lines
