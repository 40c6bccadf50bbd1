"""
The one matching rule of the trashpole metrics, for one image: which prediction goes with which
ground-truth instance (:func:`match_instances`), and the same rule along the score ranking of the
precision-recall curves (:func:`ranked_hits`). The rule is written out, with two hand-worked
cases, in :mod:`trashpole.evaluation.metrics`.
"""

from typing import List, Optional, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment


def match_instances(
    iou: np.ndarray, iou_thresh: float = 0.5, same_class: Optional[np.ndarray] = None
) -> List[Tuple[int, int]]:
    """
    The one-to-one matching of the trashpole metrics (the rule is written out in
    :mod:`trashpole.evaluation.metrics`): among all pairings, the one with

    1. the most right-class hits (IoU >= ``iou_thresh`` and the same class), then
    2. the most hits of any class, then
    3. the largest summed IoU,

    found by one assignment (Hungarian algorithm) whose weights give each level more than all
    lower levels together can. Pairs with IoU 0 are dropped.

    Args:
        iou: ndarray[N, G] of IoU between N predictions and G ground-truth instances.
        iou_thresh: the IoU a pair needs to be a hit.
        same_class: ndarray[N, G] of bool, whether the prediction has the instance's class;
            None matches class-agnostically (only levels 2 and 3).

    Returns:
        list of (prediction index, ground-truth index) pairs, each with IoU > 0, sorted by the
        ground-truth index.
    """
    if iou.size == 0:
        return []
    hit = (iou >= iou_thresh) & (iou > 0)
    n = min(iou.shape)  # pairs in a matching; their summed IoU is at most n
    hit_weight = n + 1.0  # one more hit outweighs any summed IoU
    right_weight = n * (hit_weight + 1.0) + 1.0  # one more right-class hit outweighs the rest
    weight = iou + hit_weight * hit
    if same_class is not None:
        weight = weight + right_weight * (hit & same_class)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] > 0]
    return sorted(pairs, key=lambda p: p[1])


def ranked_hits(
    iou: np.ndarray,
    scores: np.ndarray,
    pred_classes: np.ndarray,
    gt_classes: np.ndarray,
    iou_thresh: float,
) -> np.ndarray:
    """
    The matching rule along the score ranking, for the precision-recall curves (AP50): the
    predictions are taken in decreasing score order, and after each one the number of
    right-class hits is the most that the predictions taken so far can make one-to-one (level
    1 of :func:`match_instances` at every score threshold). A prediction is marked when taking
    it raises that number, which it does by one at most, so the cumulative sum over the ranking
    is the TP count of the matching rule at each score threshold.

    Kuhn's augmenting paths keep a maximum matching of the predictions taken so far: a new
    prediction either finds a path to a free instance (one more hit) or none exists.

    Args:
        iou: ndarray[N, G] of IoU.
        scores: ndarray[N] of float.
        pred_classes: ndarray[N] of int.
        gt_classes: ndarray[G] of int.
        iou_thresh: the IoU a hit needs.

    Returns:
        ndarray[N] of bool, in input order.
    """
    allowed = (iou >= iou_thresh) & (iou > 0) & (pred_classes[:, None] == gt_classes[None, :])
    owner = np.full(len(gt_classes), -1, dtype=np.int64)  # instance -> prediction
    marked = np.zeros(len(scores), dtype=bool)
    # A stable sort keeps ties in input order, like COCOeval.
    for p in np.argsort(-scores, kind="mergesort"):
        marked[p] = _augment(int(p), allowed, owner, np.zeros(len(gt_classes), dtype=bool))
    return marked


def _augment(p: int, allowed: np.ndarray, owner: np.ndarray, visited: np.ndarray) -> bool:
    """Find an augmenting path from prediction ``p`` and flip it into ``owner`` (in place)."""
    for g in np.flatnonzero(allowed[p] & ~visited):
        visited[g] = True
        if owner[g] < 0 or _augment(int(owner[g]), allowed, owner, visited):
            owner[g] = p
            return True
    return False
