"""Layer fusion for inference: norms folded into convolutions, conv+ReLU(+add) as one oneDNN op."""

from typing import Any, Optional

import torch
from detectron2.layers import Conv2d, FrozenBatchNorm2d
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock
from torch import nn
from torch.nn import functional as F


def fuse_conv_norm(model: nn.Module) -> int:
    """
    Fold the norm of each detectron2 ``Conv2d`` (FrozenBatchNorm2d, or BatchNorm2d in eval mode)
    into the convolution, in place; ``conv.norm`` becomes None.

    Args:
        model: any module; other norms (GroupNorm...) are left alone.

    Returns:
        how many norms were folded.
    """
    count = 0
    for module in model.modules():
        if not isinstance(module, Conv2d):
            continue
        norm = module.norm
        if isinstance(norm, nn.BatchNorm2d) and norm.training:
            continue  # its statistics still change
        if not isinstance(norm, (FrozenBatchNorm2d, nn.BatchNorm2d)):
            continue
        if norm.running_mean is None:  # BatchNorm2d(track_running_stats=False)
            continue
        with torch.no_grad():
            scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
            bias = module.bias if module.bias is not None else torch.zeros_like(scale)
            new_bias = (bias - norm.running_mean) * scale + norm.bias
            module.weight.mul_(scale.reshape(-1, 1, 1, 1))
            module.bias = nn.Parameter(new_bias, requires_grad=module.weight.requires_grad)
        module.norm = None
        count += 1
    return count


def _pointwise_op_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_convolution_pointwise"
    )


def _fusable(conv: Optional[nn.Module]) -> bool:
    return (
        isinstance(conv, Conv2d)
        and conv.norm is None
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )


def _conv_pointwise(
    conv: Conv2d, x: torch.Tensor, unary: str = "none", add: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``conv(x)`` (+ ``add``), then ``unary`` ("relu" or "none"), in one oneDNN call, in the
    weights' dtype."""
    x = x.to(conv.weight.dtype)
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    if add is None:
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, *geometry, unary, [], ""
        )
    if not x.is_contiguous(memory_format=torch.channels_last):
        # oneDNN fuses the add only in NHWC; PyTorch's NCHW fallback has no bf16 kernel
        out = torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, *geometry, "none", [], ""
        )
        out += add.to(out.dtype)
        return out.relu_() if unary == "relu" else out
    return _conv_add_nhwc(conv, x, add, unary)


def _conv_add_nhwc(conv: Conv2d, x: torch.Tensor, add: torch.Tensor, unary: str) -> torch.Tensor:
    """``unary(conv(x) + add)`` for NHWC ``x``: oneDNN's binary post-op, one pass."""
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, add.to(conv.weight.dtype), conv.weight, conv.bias, *geometry, "add", 1.0, unary, [], ""
    )


class _FusedBottleneckBlock(BottleneckBlock):
    """detectron2's bottleneck block with conv+ReLU and conv+add+ReLU fused (inference only)."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        out = _conv_pointwise(self.conv1, x, "relu")
        out = _conv_pointwise(self.conv2, out, "relu")
        shortcut = x if self.shortcut is None else _conv_pointwise(self.shortcut, x)
        return _conv_pointwise(self.conv3, out, "relu", add=shortcut)


class _FusedBasicBlock(BasicBlock):
    """detectron2's basic block (ResNet-18/34) with its convs fused likewise (inference only)."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        out = _conv_pointwise(self.conv1, x, "relu")
        shortcut = x if self.shortcut is None else _conv_pointwise(self.shortcut, x)
        return _conv_pointwise(self.conv2, out, "relu", add=shortcut)


class _FusedBasicStem(BasicStem):
    """detectron2's stem with conv+ReLU fused (inference only)."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        x = _conv_pointwise(self.conv1, x, "relu")
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class _FusedConvReLU(Conv2d):
    """detectron2's Conv2d with a ReLU activation and no norm, fused (inference only)."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        return _conv_pointwise(self, x, "relu")


def fuse_conv_activations(model: nn.Module) -> int:
    """
    Make the ResNet blocks and stem, and each ``Conv2d`` with a ReLU activation, run their
    convolution, residual add and ReLU as one oneDNN call (what ``torch.compile`` would do on
    the CPU) when no gradient is recorded; with gradients they run as before. Only modules
    whose norms were folded (:func:`fuse_conv_norm`) qualify. In place, by switching the
    modules' classes; a no-op without oneDNN.

    Args:
        model: a detectron2 model.

    Returns:
        how many modules were switched.
    """
    if not _pointwise_op_available():
        return 0
    count = 0
    for module in model.modules():
        convs = [getattr(module, n, None) for n in ("conv1", "conv2", "conv3", "shortcut")]
        convs = [c for c in convs if c is not None]
        if not all(_fusable(c) for c in convs):
            continue
        if type(module) is BottleneckBlock:
            module.__class__ = _FusedBottleneckBlock
        elif type(module) is BasicBlock:
            module.__class__ = _FusedBasicBlock
        elif type(module) is BasicStem:
            module.__class__ = _FusedBasicStem
        elif type(module) is Conv2d and _fusable(module) and _is_relu(module.activation):
            module.__class__ = _FusedConvReLU
        else:
            continue
        count += 1
    return count


def _is_relu(activation: Any) -> bool:
    return isinstance(activation, nn.ReLU) or activation in (F.relu, F.relu_, torch.relu)
