"""bf16 mixed precision for training on the CPU (detectron2's AMPTrainer is CUDA-only)."""

import contextlib
from typing import Iterator

import torch
from detectron2.engine import SimpleTrainer

from trashpole.speed import install_fp32_guards
from trashpole.speed.precision import context_around_forward


@contextlib.contextmanager
def autocast_forward(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """
    While open, every forward of ``model`` runs under CPU bf16 autocast and nothing else does
    (backward and optimizer step stay outside, as PyTorch recommends). Done with forward hooks,
    so the model (and its checkpoints) stay as they are.

    Args:
        model: the training model (a DistributedDataParallel wrapper is fine).
        enabled: False makes this a no-op.
    """
    if not enabled:
        yield
        return
    handles = context_around_forward(model, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class CPUAutocastTrainer(SimpleTrainer):
    """
    detectron2's ``SimpleTrainer`` with the forward under CPU bf16 autocast (detectron2's
    ``AMPTrainer`` is CUDA-only). The losses stay fp32: the layers that produce the logits and
    box deltas hand fp32 to the loss functions (:func:`trashpole.speed.install_fp32_guards`).
    bf16 keeps fp32's exponent range, so no gradient scaling is needed.
    """

    def __init__(self, model, data_loader, optimizer, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        install_fp32_guards(model)

    def run_step(self):
        with autocast_forward(self.model):
            super().run_step()
