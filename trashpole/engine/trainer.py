"""The trashpole trainer: detectron2's DefaultTrainer with the choices of a trashpole recipe."""

import logging
import os
import weakref
from collections import OrderedDict
from typing import Dict, Optional

import torch
from detectron2.data import build_detection_train_loader, get_detection_dataset_dicts
from detectron2.engine import DefaultTrainer, hooks
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
from detectron2.utils import comm
from detectron2.utils.events import JSONWriter

from trashpole.compat import ddp_for_trainer
from trashpole.compat.d2 import keep_eval_results, kept_eval_results, replace_loop_trainer
from trashpole.data.augment import build_train_mapper, uses_trashpole_augmentations
from trashpole.engine.amp import CPUAutocastTrainer
from trashpole.engine.checkpoint import TrashPoleCheckpointer
from trashpole.engine.hooks import (
    BestCheckpointerWithPatience,
    EarlyStop,
    EpochLogger,
    TrainingCurves,
    ValidationLoss,
)
from trashpole.engine.writers import StrictJSONWriter
from trashpole.errors import UserError
from trashpole.evaluation import build_evaluators
from trashpole.evaluation.evaluate import evaluate_and_report
from trashpole.run import build_inference_model
from trashpole.speed import bf16_supported, index_gt_masks, thread_roi_align

logger = logging.getLogger(__name__)


def prepare_training_model(cfg, model: torch.nn.Module) -> torch.nn.Module:
    """The trainer's speed options on a built model, in place (``TRASHPOLE.TRAIN``): ROIAlign
    spread over the threads (bit-identical; torchvision runs its backward on one core), bitmask
    targets without a copy per proposal (bit-identical) and the weights in channels_last."""
    if cfg.TRASHPOLE.TRAIN.THREADED_ROI_ALIGN:
        thread_roi_align(model)
    if cfg.TRASHPOLE.TRAIN.INDEXED_GT_MASKS:
        index_gt_masks(model)
    if cfg.TRASHPOLE.TRAIN.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    return model


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """
    SGD, Adam or AdamW by ``SOLVER.OPTIMIZER``, with detectron2's parameter groups (weight decay
    of norm layers and biases, bias LR factor) and gradient clipping (``SOLVER.CLIP_GRADIENTS``).
    """
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    name = cfg.SOLVER.OPTIMIZER
    if name == "SGD":
        cls = torch.optim.SGD
        kwargs = dict(momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV)
    elif name in ("Adam", "AdamW"):
        cls = getattr(torch.optim, name)
        kwargs = dict(betas=tuple(cfg.SOLVER.BETAS))
    else:
        raise UserError(
            f"unknown SOLVER.OPTIMIZER {name!r}; choose one of ['Adam', 'AdamW', 'SGD']"
        )
    return maybe_add_gradient_clipping(cfg, cls)(
        params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY, **kwargs
    )


class Trainer(DefaultTrainer):
    """
    ``DefaultTrainer`` with: the optimizer by ``SOLVER.OPTIMIZER``; COCO + trashpole evaluators;
    hooks for epochs, validation loss, best checkpoint / early stopping and training curves;
    atomic checkpoints; CPU multi-process (gloo) training.
    """

    def __init__(self, cfg):
        cpu_amp = cfg.SOLVER.AMP.ENABLED and cfg.MODEL.DEVICE == "cpu"
        d2_cfg = cfg
        if cpu_amp:
            # detectron2 would build its CUDA-only AMPTrainer (and a CUDA GradScaler, which warns
            # on a CPU); it gets the config without AMP, and the CPU trainer is chosen below
            d2_cfg = cfg.clone()
            d2_cfg.defrost()
            d2_cfg.SOLVER.AMP.ENABLED = False
            d2_cfg.freeze()
        with ddp_for_trainer():
            super().__init__(d2_cfg)
        self.cfg = cfg
        if cpu_amp:
            # on the CPU, AMP means bf16 autocast, which only pays where the CPU has native bf16
            # (emulated, it is slower than fp32)
            if bf16_supported():
                loop = CPUAutocastTrainer(self.model, self.data_loader, self.optimizer)
                replace_loop_trainer(self, loop)
            else:
                logger.warning("SOLVER.AMP.ENABLED: this CPU has no native bf16; training in fp32")

    @classmethod
    def build_model(cls, cfg):
        return prepare_training_model(cfg, super().build_model(cfg))

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        """detectron2's train loader; with a ``TRASHPOLE.AUG`` switch on, its mapper is
        :class:`~trashpole.data.augment.TrainMapper` (copy-paste draws from the same records)."""
        if not uses_trashpole_augmentations(cfg):
            return super().build_train_loader(cfg)
        dicts = get_detection_dataset_dicts(
            cfg.DATASETS.TRAIN,
            filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=0,
            proposal_files=None,
        )
        mapper = build_train_mapper(cfg, dicts)
        return build_detection_train_loader(cfg, mapper=mapper, dataset=dicts)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """
        Evaluate on every DATASETS.TEST entry and rewrite its report in ``eval/<split>/``, so
        that after training ``eval/valid/`` describes the final model without a second pass
        over the data.
        """
        if evaluators is not None:
            return super().test(cfg, model, evaluators)
        names = list(cfg.DATASETS.TEST)
        results = OrderedDict((name, evaluate_and_report(cfg, model, name)) for name in names)
        if len(results) == 1:
            return results[names[0]]
        return results

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluators(cfg, dataset_name, output_folder)

    def build_writers(self):
        """detectron2's writers, with ``metrics.json`` in strict JSON (``null``, not ``NaN``)."""
        writers = []
        for writer in super().build_writers():
            if type(writer) is JSONWriter:
                writer.close()
                writer = StrictJSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))
            writers.append(writer)
        return writers

    def build_hooks(self):
        cfg = self.cfg
        # DefaultTrainer builds a plain DetectionCheckpointer in __init__, just before calling
        # build_hooks; the checkpointing hooks must hold the atomic one.
        self.checkpointer = TrashPoleCheckpointer(
            self.model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        ret = super().build_hooks()
        # keep only the newest periodic checkpoints (model_final and model_best are kept apart)
        ret = [
            (
                hooks.PeriodicCheckpointer(
                    self.checkpointer,
                    cfg.SOLVER.CHECKPOINT_PERIOD,
                    max_to_keep=cfg.SOLVER.CHECKPOINT_MAX_KEEP,
                )
                if isinstance(h, hooks.PeriodicCheckpointer)
                else h
            )
            for h in ret
        ]
        period = cfg.TEST.EVAL_PERIOD
        ipe = cfg.SOLVER.ITERS_PER_EPOCH or period
        extra = [EpochLogger(ipe)]
        if cfg.TRASHPOLE.VAL_LOSS and cfg.DATASETS.TEST:
            extra.append(ValidationLoss(cfg, cfg.DATASETS.TEST[0], period))
        if cfg.DATASETS.TEST and cfg.TRASHPOLE.BEST_METRIC:
            patience = cfg.TRASHPOLE.EARLY_STOP_PATIENCE
            evals = -(-patience * ipe // period) if patience > 0 and period > 0 else 0
            extra.append(
                BestCheckpointerWithPatience(
                    period,
                    self.checkpointer,
                    cfg.TRASHPOLE.BEST_METRIC,
                    cfg.TRASHPOLE.BEST_MODE,
                    patience_evals=evals,
                )
            )
        if comm.is_main_process():
            extra.append(TrainingCurves(cfg.OUTPUT_DIR, period, ipe))
        # the evaluation at the end of training runs the saved model as predict runs it
        ret = [
            (
                hooks.EvalHook(cfg.TEST.EVAL_PERIOD, self.evaluate)
                if isinstance(h, hooks.EvalHook)
                else h
            )
            for h in ret
        ]
        # after EvalHook (so metrics are in the storage), before the writers (so they are written)
        idx = next(i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook)) + 1
        return ret[:idx] + extra + ret[idx:]

    def evaluate(self) -> Dict:
        """
        What the evaluation hook runs: during training, the model being trained (PyTorch, fp32,
        as detectron2 does); at the end, ``model_final.pth`` on the inference backend
        (:func:`trashpole.run.build_inference_model`), so that the final ``eval/<split>/``
        measures what ``predict`` and ``--eval-only`` run.
        """
        final = os.path.join(self.cfg.OUTPUT_DIR, "model_final.pth")
        if self.iter + 1 >= self.max_iter and os.path.isfile(final):
            model = build_inference_model(self.cfg, weights=final)
        else:
            model = self.model
        results = self.test(self.cfg, model)
        keep_eval_results(self, results)  # where DefaultTrainer.train looks for them
        return results

    def train(self) -> Optional[Dict]:
        try:
            return super().train()
        except EarlyStop:
            if comm.is_main_process():
                self.checkpointer.save("model_final")
            return kept_eval_results(self)
