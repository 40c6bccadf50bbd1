"""
Predictions against known objects: the one-to-one pairing of a frame's detections with its true
boxes, and the ID switches of tracks over a sequence (the synthetic video's check of the
tracker, the tests of sliced inference).
"""

from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from detectron2.structures import Boxes
from detectron2.structures.boxes import pairwise_iou
from scipy.optimize import linear_sum_assignment


def count_id_switches(matches: Iterable[Mapping[int, int]]) -> Tuple[int, Dict[int, List[int]]]:
    """
    ID switches against known identities (as in the CLEAR MOT metrics): an object whose
    matched track ID differs from the one it was last matched to counts one switch. Frames
    where the object is unmatched neither switch nor reset it.

    Args:
        matches: per frame, ``{true object id: track id}`` of the matched detections.

    Returns:
        (switches, ``{true object id: its distinct track IDs in order of appearance}``).
    """
    last: Dict[int, int] = {}
    seen: Dict[int, List[int]] = {}
    switches = 0
    for frame in matches:
        for obj, track_id in frame.items():
            if obj in last and last[obj] != track_id:
                switches += 1
            last[obj] = track_id
            if track_id not in seen.setdefault(obj, []):
                seen[obj].append(track_id)
    return switches, seen


def match_to_truth(
    boxes: torch.Tensor,
    classes: Sequence[int],
    true_boxes: torch.Tensor,
    true_classes: Sequence[int],
    iou_thresh: float = 0.5,
) -> List[Tuple[int, int]]:
    """
    One-to-one pairs of detections and true objects of one frame: the largest total box IoU
    among same-class pairs with IoU >= ``iou_thresh``.

    Args:
        boxes: Tensor[N, 4] of XYXY detection boxes.
        classes: N class ids.
        true_boxes: Tensor[M, 4] of XYXY true boxes.
        true_classes: M class ids.
        iou_thresh: least IoU of a pair.

    Returns:
        list of (detection index, true object index).
    """
    if len(boxes) == 0 or len(true_boxes) == 0:
        return []
    iou = pairwise_iou(Boxes(boxes.float()), Boxes(true_boxes.float())).numpy()
    same = np.asarray(classes).reshape(-1, 1) == np.asarray(true_classes).reshape(1, -1)
    valid = (iou >= iou_thresh) & same
    rows, cols = linear_sum_assignment(np.where(valid, -iou, 0.0))
    return [(int(r), int(c)) for r, c in zip(rows, cols) if valid[r, c]]
