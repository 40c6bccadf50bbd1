"""Ground-truth bitmasks in training without a copy per sampled RoI (exact).

detectron2's ROI heads give every sampled proposal its ground truth by indexing the image's
``gt_*`` fields with the matched target of each proposal (``label_and_sample_proposals``), and
the mask head then keeps the foreground ones. For ``BitMasks`` that copies a full-image mask per
proposal: 512 sampled proposals of a 640x640 image are 210 MB of bool masks, which the mask loss
converts to fp32 (``BitMasks.crop_and_resize``) to crop each with ROIAlign. Here the image's masks
are kept once and the proposals hold only the index of their target; the crop runs ROIAlign on
the image's own masks with that index as each box's batch index. ROIAlign pools each box from
the one mask its index names, so the targets are bit-identical to detectron2's.

Polygon masks (``INPUT.MASK_FORMAT: polygon``, what a Roboflow polygon export trains with) are
not copied by detectron2 in the first place and are left as they are.
"""

from typing import Any, Union

import torch
from detectron2.layers import ROIAlign
from detectron2.modeling.roi_heads import ROIHeads
from detectron2.structures import BitMasks
from torch import nn


class IndexedBitMasks(BitMasks):
    """
    ``BitMasks`` whose rows are ``base[index]``, computed only when :attr:`tensor` is read;
    indexing composes the index, and :meth:`crop_and_resize` pools from ``base`` directly.

    Args:
        base: bool [N, H, W], the image's masks.
        index: int64 [M], a row of ``base`` for each mask.
    """

    def __init__(self, base: torch.Tensor, index: torch.Tensor):
        self.base = base
        self.index = index
        self.image_size = base.shape[1:]

    @classmethod
    def of(cls, masks: BitMasks) -> "IndexedBitMasks":
        """``masks`` as the identity index into their own rows."""
        return cls(masks.tensor, torch.arange(len(masks), device=masks.tensor.device))

    @property
    def tensor(self) -> torch.Tensor:  # what BitMasks stores: read by BitMasks' other methods
        return self.base[self.index]

    @property
    def device(self) -> torch.device:
        return self.base.device

    def to(self, *args: Any, **kwargs: Any) -> "IndexedBitMasks":
        base = self.base.to(*args, **kwargs)
        return IndexedBitMasks(base, self.index.to(base.device))

    def __getitem__(self, item: Union[int, slice, torch.Tensor]) -> "IndexedBitMasks":
        if isinstance(item, int):
            return IndexedBitMasks(self.base, self.index[item].reshape(1))
        index = self.index[item]
        if index.dim() != 1:
            raise IndexError(f"indexing BitMasks with {item!r} gives {index.dim()} dims, not 1")
        return IndexedBitMasks(self.base, index)

    def __len__(self) -> int:
        return self.index.shape[0]

    def nonempty(self) -> torch.Tensor:
        return self.base.flatten(1).any(dim=1)[self.index]

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
        """As ``BitMasks.crop_and_resize`` (the same ROIAlign on the same mask for each box),
        with each box's mask found by its index instead of a copy."""
        if len(boxes) != len(self):
            raise ValueError(f"{len(boxes)} boxes for {len(self)} masks")
        rois = torch.cat([self.index.to(boxes.dtype)[:, None], boxes], dim=1)
        masks = self.base.to(dtype=torch.float32)[:, None, :, :]
        align = ROIAlign((mask_size, mask_size), 1.0, 0, aligned=True)
        return align.forward(masks, rois.to(masks.device)).squeeze(1) >= 0.5


def _index_targets(module: nn.Module, args: tuple, kwargs: dict) -> None:
    # ROIHeads.forward(images, features, proposals, targets=None)
    targets = kwargs.get("targets", args[3] if len(args) > 3 else None)
    for target in targets or ():
        masks = target.get("gt_masks") if target.has("gt_masks") else None
        if type(masks) is BitMasks:
            target.gt_masks = IndexedBitMasks.of(masks)


def index_gt_masks(model: nn.Module) -> int:
    """
    Give the ROI heads of ``model`` their targets' bitmasks as :class:`IndexedBitMasks` (a
    forward pre-hook; in place, no effect on polygon masks or at inference).

    Returns:
        how many ROI heads got the hook.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, ROIHeads):
            module.register_forward_pre_hook(_index_targets, with_kwargs=True)
            count += 1
    return count
