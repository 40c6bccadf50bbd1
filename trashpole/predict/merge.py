"""
The merge rule of sliced inference: the detections of overlapping slices, and of one pass over the
whole image, become one set of instances, each object once with its whole mask.

**Pieces.** Every detection of every pass is a :class:`Piece`: its class, its score, its mask cut
to the mask's own box and placed in full-image coordinates, and the *window* of the pass that saw
it (the slice's rectangle, or the whole image for the whole-image pass). A detection without a
single mask pixel has nothing to merge by and is left out.

**Pairing.** Two pieces are candidates when they have the same class, come from different windows
and their mask boxes overlap. A candidate pair is paired when either

- *edge IoU* >= ``edge_iou`` (default 0.5): the mask IoU counted only inside the region that both
  windows see (their intersection: the overlap band of two neighbouring slices, or the whole slice
  for a slice and the whole image). An object cut by a slice edge is seen by both slices in their
  overlap band, and there the two pieces agree, however long the object is outside it;
- *IoS* >= ``ios`` (default 0.7): the intersection over the smaller of the two masks, whole masks
  (a small object seen whole in two slices; a slice's piece lying inside the whole-image mask).

**Grouping.** Pairs join their groups from the strongest (the larger of its two values) down,
except when both groups already hold a piece of one same window: two detections that one pass of
the model kept apart are never merged, so two bins side by side stay two even when a third piece
(a blurred whole-image mask) overlaps both.

**One instance per group.** Class: the pieces' class. Score: the highest score of its pieces.
Mask, in one of two ways:

- *the whole-image pass resolved it*: when the group holds a whole-image piece whose mean thickness
  (mask area over the longer side of its box) is at least ``whole_side`` (default 0.1) times the
  slice side, the instance is that piece's mask and box. The whole pass sees such an object at the scale the model was trained at, while
  each slice sees only a part of it, magnified (on the high-resolution synthetic set, letting the
  slices' pieces replace its mask lost 8 points of large-object AP, docs/slicing.md);
- *otherwise* (a small or thin object, or one the whole pass missed): the union of its slice
  pieces, plus the whole-image piece's pixels that lie outside every slice window in which the
  group has a piece (a slice sees the object at the model's native resolution, so where one saw
  it its mask is kept; the whole-image pass fills in the parts that no slice detected).

Box: the box of that mask, ``[x0, y0, x1 + 1, y1 + 1]`` of its first and last pixels, as
detectron2's ``BitMasks.get_bounding_boxes``.

**Fragments.** An instance made of slice pieces only that lies inside an instance the whole pass
resolved (intersection over its own mask >= ``ios``, same class) is a part of that object that a
slice detected on its own (a slice can return two parts of one large object, which the grouping
keeps apart): it is dropped.

Objects cut by a slice edge are merged through the overlap of the slices (overlap > 0) or through
the whole-image pass; with neither, their pieces stay apart.
"""

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

# Mask IoU inside the region two windows share at which their pieces are one object.
EDGE_IOU = 0.5
# Intersection over the smaller mask at which two pieces are one object.
IOS = 0.7
# Mean thickness of a whole-image piece (mask area over its box's longer side), as a share of the
# slice side, from which the whole-image pass gives the object's mask (see "One instance per
# group").
WHOLE_SIDE = 0.1

Window = Tuple[int, int, int, int]  # (x0, y0, x1, y1) in image pixels, x1 and y1 excluded


@dataclass
class Piece:
    """
    One detection of one pass, in full-image coordinates.

    Attributes:
        window: (x0, y0, x1, y1) of the pass that saw it (a slice, or the whole image).
        whole: True for the whole-image pass.
        category: class index (contiguous, as ``pred_classes``).
        score: the detection's score.
        x0, y0: image position of ``mask[0, 0]``.
        mask: ndarray[h, w] of bool, the mask cut to its box (its first and last rows and columns
            hold a pixel).
    """

    window: Window
    whole: bool
    category: int
    score: float
    x0: int
    y0: int
    mask: np.ndarray

    @property
    def box(self) -> Window:
        """(x0, y0, x1, y1) of the mask, x1 and y1 excluded."""
        h, w = self.mask.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    @cached_property
    def area(self) -> int:
        """Mask pixels."""
        return int(np.count_nonzero(self.mask))

    def paste(self, canvas: np.ndarray, x0: int = 0, y0: int = 0) -> None:
        """OR the mask into ``canvas`` (ndarray[H, W] of bool whose pixel [0, 0] is image
        position (``x0``, ``y0``)), in place; the part outside the canvas is left out."""
        region = (x0, y0, x0 + canvas.shape[1], y0 + canvas.shape[0])
        part = _crop(self, region)
        if part is not None:
            px, py = max(self.x0, x0), max(self.y0, y0)
            canvas[py - y0 : py - y0 + part.shape[0], px - x0 : px - x0 + part.shape[1]] |= part

    def count_in(self, region: Window) -> int:
        """Mask pixels inside ``region``."""
        crop = _crop(self, region)
        return int(crop.sum()) if crop is not None else 0


def make_piece(
    mask: np.ndarray, window: Window, whole: bool, category: int, score: float
) -> Optional[Piece]:
    """
    A piece from a mask given over its window.

    Args:
        mask: ndarray[H_w, W_w] of bool, the detection's mask over the window (as the pass
            returned it, at the window's size).
        window: (x0, y0, x1, y1) of the window in the image.
        whole: whether the window is the whole-image pass.
        category, score: the detection's class index and score.

    Returns:
        the piece, its mask cut to its box; None when the mask is empty.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    r0, r1 = rows[0], rows[-1] + 1
    cols = np.flatnonzero(mask[r0:r1].any(axis=0))  # only the rows that hold the mask
    c0, c1 = cols[0], cols[-1] + 1
    cut = np.ascontiguousarray(mask[r0:r1, c0:c1], dtype=bool)
    wx, wy = window[0], window[1]
    return Piece(tuple(window), whole, int(category), float(score), wx + int(c0), wy + int(r0), cut)


def _intersect(a: Window, b: Window) -> Optional[Window]:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def _crop(p: Piece, region: Window) -> Optional[np.ndarray]:
    """The part of ``p.mask`` inside ``region`` (a view), or None when they do not meet."""
    inside = _intersect(p.box, region)
    if inside is None:
        return None
    x0, y0, x1, y1 = inside
    return p.mask[y0 - p.y0 : y1 - p.y0, x0 - p.x0 : x1 - p.x0]


def _overlap(a: Piece, b: Piece) -> int:
    """Pixels that the masks of ``a`` and ``b`` share."""
    meet = _intersect(a.box, b.box)
    if meet is None:
        return 0
    return int(np.count_nonzero(_crop(a, meet) & _crop(b, meet)))


def pair_values(a: Piece, b: Piece) -> Tuple[float, float]:
    """
    The two pairing values of pieces ``a`` and ``b`` (see the module docstring).

    Returns:
        (edge IoU, IoS): the mask IoU inside the intersection of the two windows (0 when neither
        mask reaches it), and the intersection over the smaller mask.
    """
    inter = _overlap(a, b)
    if inter == 0:
        return 0.0, 0.0
    # both masks lie inside their own windows, so their intersection lies inside the shared region
    shared = _intersect(a.window, b.window)
    union = a.count_in(shared) + b.count_in(shared) - inter if shared is not None else 0
    edge = inter / union if union > 0 else 0.0
    return edge, inter / min(a.area, b.area)


def candidate_pairs(pieces: Sequence[Piece]) -> Iterator[Tuple[int, int]]:
    """Index pairs (i < j) of pieces of the same class, from different windows, whose mask
    boxes overlap."""
    if not pieces:
        return
    boxes = np.array([p.box for p in pieces], dtype=np.int64)
    classes = np.array([p.category for p in pieces])
    windows = [p.window for p in pieces]
    for i in range(len(pieces) - 1):
        rest = boxes[i + 1 :]
        overlap = (np.minimum(rest[:, 2], boxes[i, 2]) > np.maximum(rest[:, 0], boxes[i, 0])) & (
            np.minimum(rest[:, 3], boxes[i, 3]) > np.maximum(rest[:, 1], boxes[i, 1])
        )
        for j in np.flatnonzero(overlap & (classes[i + 1 :] == classes[i])) + i + 1:
            if windows[j] != windows[i]:
                yield i, int(j)


def group_pieces(
    pieces: Sequence[Piece], edge_iou: float = EDGE_IOU, ios: float = IOS
) -> List[List[int]]:
    """
    Group the pieces that show one object (pairing and grouping of the module docstring).

    Args:
        pieces: the pieces of every pass over one image.
        edge_iou, ios: the pairing thresholds.

    Returns:
        groups of piece indices, each sorted, in the order of their first piece.
    """
    paired = []
    for i, j in candidate_pairs(pieces):
        edge, over = pair_values(pieces[i], pieces[j])
        if edge >= edge_iou or over >= ios:
            paired.append((-max(edge, over), i, j))
    parent = list(range(len(pieces)))
    windows: Dict[int, set] = {i: {p.window} for i, p in enumerate(pieces)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, i, j in sorted(paired):  # strongest first; ties by index, so the result is fixed
        ri, rj = root(i), root(j)
        if ri == rj or windows[ri] & windows[rj]:
            continue
        parent[rj] = ri
        windows[ri] |= windows.pop(rj)
    groups: Dict[int, List[int]] = {}
    for i in range(len(pieces)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def resolved_whole(group: Sequence[Piece], whole_side: float = WHOLE_SIDE) -> Optional[Piece]:
    """The group's whole-image piece when the whole pass resolved the object: its mean thickness
    (mask area over the longer side of its box, so that a slanted pole counts as thin) is at least
    ``whole_side`` x the side of the group's slices. None otherwise."""
    whole = [p for p in group if p.whole]
    sides = [p.window[2] - p.window[0] for p in group if not p.whole]
    if not whole or not sides:
        return whole[0] if whole else None
    thickness = whole[0].area / max(whole[0].mask.shape)
    return whole[0] if thickness >= whole_side * max(sides) else None


def unite(group: Sequence[Piece], whole_side: float = WHOLE_SIDE) -> Piece:
    """
    One instance from the pieces of one object (the paragraph "One instance per group" of the
    module docstring).

    Args:
        group: pieces of one class, at most one of them from the whole-image pass.
        whole_side: see :data:`WHOLE_SIDE`.

    Returns:
        a piece whose window is the hull of the group's windows, ``whole`` False, mask cut to
        its box.
    """
    windows = np.array([p.window for p in group])
    window = (*windows[:, :2].min(axis=0).tolist(), *windows[:, 2:].max(axis=0).tolist())
    score = max(p.score for p in group)
    resolved = resolved_whole(group, whole_side)
    if resolved is not None:
        merged = make_piece(resolved.mask, resolved.box, False, resolved.category, score)
        merged.window = window
        return merged
    boxes = np.array([p.box for p in group])
    hull = (*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist())
    canvas = np.zeros((hull[3] - hull[1], hull[2] - hull[0]), bool)
    seen = [p.window for p in group if not p.whole]
    for p in group:
        if p.whole:  # where a slice detected the object, its mask is kept
            fill = p.mask.copy()
            for w in seen:
                inside = _intersect(p.box, w)
                if inside is not None:
                    x0, y0, x1, y1 = inside
                    fill[y0 - p.y0 : y1 - p.y0, x0 - p.x0 : x1 - p.x0] = False
            p = replace(p, mask=fill)
        p.paste(canvas, hull[0], hull[1])
    merged = make_piece(canvas, hull, False, group[0].category, score)
    merged.window = window
    return merged


def _inside(a: Piece, b: Piece) -> float:
    """Intersection of the masks of ``a`` and ``b`` over the mask of ``a``."""
    return _overlap(a, b) / a.area


def merge_pieces(
    pieces: Sequence[Piece],
    edge_iou: float = EDGE_IOU,
    ios: float = IOS,
    whole_side: float = WHOLE_SIDE,
) -> List[Piece]:
    """
    The merge rule of the module docstring: pieces of every pass -> one piece per object.

    Args:
        pieces: the pieces of every pass over one image.
        edge_iou, ios: the pairing thresholds (``ios`` also finds the fragments).
        whole_side: see :data:`WHOLE_SIDE`.

    Returns:
        one piece per object, highest score first (ties: in the order of their first piece).
    """
    groups = [[pieces[i] for i in g] for g in group_pieces(pieces, edge_iou, ios)]
    merged = [unite(g, whole_side) for g in groups]
    resolved = [m for m, g in zip(merged, groups) if resolved_whole(g, whole_side) is not None]
    fragments = {
        k
        for k, (m, g) in enumerate(zip(merged, groups))
        if not any(p.whole for p in g)
        and any(r.category == m.category and _inside(m, r) >= ios for r in resolved)
    }
    kept = [m for k, m in enumerate(merged) if k not in fragments]
    return sorted(kept, key=lambda p: -p.score)
