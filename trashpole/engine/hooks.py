"""Training hooks: epochs in the log, validation loss, best checkpoint with early stopping, curves."""

import csv
import json
import logging
import math
import operator
import os
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.data import DatasetCatalog, DatasetMapper, build_detection_test_loader
from detectron2.data import transforms as T
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trashpole.engine.checkpoint import atomic_write_text
from trashpole.errors import UserError
from trashpole.evaluation.run_index import write_run_index
from trashpole.jsonio import dumps
from trashpole.visualization import plot_training_curves

logger = logging.getLogger(__name__)


class EarlyStop(BaseException):
    """
    Raised by a hook to end training before MAX_ITER; the trainer catches it. A BaseException, so
    that detectron2's training loop runs ``after_train`` without logging it as a failure.
    """


# torch's batch norm layers: each keeps running statistics that a forward in training mode
# updates (the lazy ones become one of these at their first forward)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class EpochLogger(HookBase):
    """Logs the epoch at each epoch start and records it as the scalar ``epoch``."""

    def __init__(self, iters_per_epoch: int):
        self._ipe = max(1, iters_per_epoch)

    def before_step(self):
        it = self.trainer.iter
        total = math.ceil(self.trainer.max_iter / self._ipe)
        if it % self._ipe == 0:
            epoch = it // self._ipe + 1
            last = min((epoch * self._ipe), self.trainer.max_iter) - 1
            logger.info(f"Epoch {epoch}/{total} (iterations {it}-{last})")

    def after_step(self):
        self.trainer.storage.put_scalar(
            "epoch", (self.trainer.iter + 1) / self._ipe, smoothing_hint=False
        )


class _AtEvaluation(HookBase):
    """A hook that runs ``_do`` when detectron2's EvalHook evaluates: every ``_period``
    iterations and after the last one."""

    _period = 0

    def _do(self):
        raise NotImplementedError

    def after_step(self):
        next_iter = self.trainer.iter + 1
        periodic = self._period > 0 and next_iter % self._period == 0
        if periodic and next_iter != self.trainer.max_iter:
            self._do()

    def after_train(self):
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            self._do()


class ValidationLoss(_AtEvaluation):
    """
    The model's training losses on a held-out split, without gradient, every ``period``
    iterations and at the end; written to the event storage as ``val_<loss>`` and
    ``val_total_loss``.

    The model runs in training mode (Mask R-CNN only returns losses there) with its BatchNorm
    layers switched to eval mode, so the running statistics are not touched by validation data.
    """

    def __init__(self, cfg, dataset_name: str, period: int):
        self._period = period
        mapper = DatasetMapper(
            is_train=True,
            augmentations=[T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)],
            image_format=cfg.INPUT.FORMAT,
            use_instance_mask=cfg.MODEL.MASK_ON,
            instance_mask_format=cfg.INPUT.MASK_FORMAT,
            recompute_boxes=False,
        )
        self._loader = build_detection_test_loader(
            DatasetCatalog.get(dataset_name), mapper=mapper, num_workers=0
        )

    @torch.no_grad()
    def _compute(self) -> Dict[str, float]:
        model = _unwrap(self.trainer.model)
        norm_layers = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
        was_training = model.training
        model.train()
        for m in norm_layers:
            m.eval()
        sums: Dict[str, float] = {}
        count = 0
        try:
            for inputs in self._loader:
                losses = model(inputs)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
        finally:
            model.train(was_training)
        gathered = comm.all_gather((sums, count))
        total_count = sum(c for _, c in gathered)
        merged: Dict[str, float] = {}
        for part, _ in gathered:
            for k, v in part.items():
                merged[k] = merged.get(k, 0.0) + v
        means = {f"val_{k}": v / max(1, total_count) for k, v in merged.items()}
        means["val_total_loss"] = sum(means.values())
        return means

    def _do(self):
        means = self._compute()
        self.trainer.storage.put_scalars(**means, smoothing_hint=False)
        logger.info(
            "Validation loss: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(means.items()))
        )


class BestCheckpointerWithPatience(_AtEvaluation):
    """
    Saves ``model_best.pth`` when an evaluation gives the best value so far of a metric (what
    detectron2's ``BestCheckpointer`` does, on detectron2's public hook API), keeps the best value
    across ``--resume`` (in ``model_best.json``) and can stop training when the metric has not
    improved for ``patience`` evaluations. It runs when the EvalHook before it evaluates.

    A run that evaluated always has a ``model_best.pth``: while no evaluation has given a defined
    value of the metric (it is NaN, e.g. AP when the model predicted nothing, or missing), the
    model of the first evaluation is kept, the log says so, and ``model_best.json`` holds
    ``"value": null``; the first defined value replaces it. An undefined value never replaces
    a defined one.

    Args:
        eval_period: the EvalHook's period (iterations).
        checkpointer: saves the model (``save(name, iteration=...)``; ``save_dir``).
        val_metric: the event-storage key of the metric, e.g. ``"segm/AP"``.
        mode: ``"max"`` or ``"min"``: whether a larger or a smaller value is better.
        patience_evals: evaluations without improvement that stop training (0: never).
    """

    FILE_PREFIX = "model_best"

    def __init__(self, eval_period, checkpointer, val_metric, mode="max", patience_evals=0):
        better = {"max": operator.gt, "min": operator.lt}
        if mode not in better:
            raise UserError(f"TRASHPOLE.BEST_MODE is {mode!r}; use 'max' or 'min'")
        self._period = eval_period
        self.checkpointer = checkpointer
        self.metric = val_metric
        self.is_better = better[mode]
        self.best_metric: Optional[float] = None
        self.best_iter: Optional[int] = None
        self._patience = patience_evals
        self._evals_since_best = 0
        self._state_file = os.path.join(checkpointer.save_dir, "model_best.json")

    def before_train(self):
        if os.path.isfile(self._state_file):
            with open(self._state_file) as f:
                state = json.load(f)
            self.best_metric = state["value"]
            self.best_iter = state["iteration"]
            self._evals_since_best = state.get("evals_since_best", 0)

    def check(self) -> None:
        """After an evaluation: save the model if it is the best, stop if patience ran out.

        Raises:
            EarlyStop: on every process, when the metric has not improved for
                ``patience_evals`` evaluations.
        """
        stop = self._update_and_decide() if comm.is_main_process() else False
        # only the main process sees the metrics; every process must stop at the same iteration
        if comm.get_world_size() > 1:
            stop = comm.all_gather(stop)[0]
        if stop:
            raise EarlyStop()

    def _do(self):
        self.check()

    def _latest(self) -> Tuple[Optional[float], int, str]:
        """(the metric's value, or None when undefined; its iteration; why it is undefined)."""
        latest = self.trainer.storage.latest()
        if self.metric not in latest:
            computed = sorted(k for k in latest if "/" in k)
            why = f"the evaluation did not compute it (it gave {computed[:12]})"
            return None, self.trainer.storage.iter, why
        value, iteration = latest[self.metric]
        if value is None or not math.isfinite(float(value)):
            why = f"it is {value} (e.g. no predictions above the test score threshold)"
            return None, iteration, why
        return float(value), iteration, ""

    def _save(self, iteration: int) -> None:
        self.checkpointer.save(self.FILE_PREFIX, iteration=iteration)

    def _update_and_decide(self) -> bool:
        metric = self.metric
        value, iteration, why = self._latest()
        if value is not None and (
            self.best_metric is None or self.is_better(value, self.best_metric)
        ):
            before = "" if self.best_metric is None else f", better than {self.best_metric:.4f}"
            self._save(iteration)
            logger.info(f"model_best.pth: {metric} {value:.4f} at iteration {iteration}{before}")
            self.best_metric, self.best_iter, self._evals_since_best = value, iteration, 0
        elif self.best_iter is None:
            self._save(iteration)
            self.best_iter, self._evals_since_best = iteration, 0
            logger.warning(
                f"{metric} is undefined at iteration {iteration}: {why}. model_best.pth keeps "
                f"this first evaluated model until an evaluation gives a defined {metric}"
            )
        else:
            self._evals_since_best += 1
            best = "undefined" if self.best_metric is None else f"{self.best_metric:.4f}"
            now = f"{value:.4f}" if value is not None else f"undefined ({why})"
            logger.info(
                f"model_best.pth unchanged: {metric} is {now} at iteration {iteration}; "
                f"the best is {best} (iteration {self.best_iter})"
            )
        state = {
            "metric": metric,
            "value": self.best_metric,
            "iteration": self.best_iter,
            "evals_since_best": self._evals_since_best,
        }
        atomic_write_text(dumps(state, indent=2), self._state_file)
        if 0 < self._patience <= self._evals_since_best:
            best = "undefined" if self.best_metric is None else f"{self.best_metric:.4f}"
            logger.info(
                f"Early stopping: {metric} has not improved on {best} "
                f"(iteration {self.best_iter}) for {self._evals_since_best} evaluations"
            )
            return True
        return False


# Columns of results.csv: (column, event-storage key).
CURVE_COLUMNS = [
    ("train_loss", "total_loss"),
    ("val_loss", "val_total_loss"),
    ("lr", "lr"),
    ("segm_AP", "segm/AP"),
    ("segm_AP50", "segm/AP50"),
    ("bbox_AP", "bbox/AP"),
    ("bbox_AP50", "bbox/AP50"),
    ("mIoU", "trashpole/mIoU"),
    ("accuracy", "trashpole/accuracy"),
]


class TrainingCurves(_AtEvaluation):
    """
    After each evaluation, appends one row per evaluation to ``results.csv`` (epoch, iteration,
    mean training loss since the previous row, validation loss, AP, mean IoU, accuracy, LR),
    redraws ``curves.png`` from it and rewrites the run's ``index.html``. Rows already in the file
    are kept on ``--resume``.
    """

    def __init__(self, output_dir: str, period: int, iters_per_epoch: int):
        self._output_dir = output_dir
        self._csv = os.path.join(output_dir, "results.csv")
        self._png = os.path.join(output_dir, "curves.png")
        self._period = period
        self._ipe = max(1, iters_per_epoch)
        self._rows: List[Dict[str, float]] = []

    def before_train(self):
        rows = read_results_csv(self._csv) or []
        # rows past the resumed iteration come from a run killed before its next checkpoint;
        # the resumed run writes them again
        self._rows = [r for r in rows if r["iteration"] <= self.trainer.iter]

    def _row(self) -> Dict[str, float]:
        storage = self.trainer.storage
        # after_train sees iter == max_iter; after_step sees the iteration just run
        it = min(self.trainer.iter + 1, self.trainer.max_iter)
        prev = int(self._rows[-1]["iteration"]) if self._rows else 0
        row = {"epoch": it / self._ipe, "iteration": it}
        latest = storage.latest()
        for col, key in CURVE_COLUMNS:
            if key == "total_loss" and key in storage.histories():
                values = [v for v, i in storage.history(key).values() if prev <= i < it]
                if values:
                    row[col] = sum(values) / len(values)
            elif key in latest and latest[key][1] >= it - 1:
                row[col] = float(latest[key][0])
        return row

    def _do(self):
        self._rows.append(self._row())
        fields = ["epoch", "iteration"] + [c for c, _ in CURVE_COLUMNS]
        lines = [",".join(fields)]
        for r in self._rows:
            lines.append(",".join(f"{r[c]:.6g}" if c in r else "" for c in fields))
        atomic_write_text("\n".join(lines) + "\n", self._csv)
        plot_training_curves(self._rows, self._png)
        write_run_index(self._output_dir)


def read_results_csv(path: str) -> Optional[List[Dict[str, float]]]:
    """Rows of a run's results.csv as dicts of floats (missing cells left out), or None."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
