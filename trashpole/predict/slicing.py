"""
Sliced inference for high-resolution photos, over any backend.

A 4032x3024 phone photo is shrunk to the model's test size (an 800 px short side for the
reference recipe), and a pole 15 px wide down the street ends up 3-4 px wide. Sliced inference
cuts the image into overlapping slices at the model's native input size, runs them in batches,
runs the whole image once more for the objects too large for a slice, and merges the pieces into
one set of instances with the rule of :mod:`trashpole.predict.merge` (each object once, its mask
pieces united across slice edges).

- :func:`slice_grid`: the slices, overlapping by at least the stated share, the last ones flush
  with the image border;
- :func:`decide_slicing`: ``off``, ``on`` or ``auto`` (slice only when the whole-image pass would
  shrink the image by at least ``AUTO_MIN_SHRINK``), with the reason to log;
- :func:`predict_sliced`: the whole job over a ``run_batch`` function, the backend's batched
  prediction;
- :func:`slice_settings`: ``cfg.TRASHPOLE.INFERENCE.SLICE`` read and checked;
- :func:`slice_opts`: the config overrides of ``--slice`` / ``--overlap``.

:class:`trashpole.predict.sliced_model.SlicedModel` runs this over an inference model, for the
predictor and the evaluation alike.

The backend is any function ``run_batch(images) -> instances``: a list of BGR uint8 images in,
one detectron2 ``Instances`` per image out, at that image's size, with ``pred_classes``,
``scores`` and ``pred_masks`` (Tensor[N, h, w] of bool). The predictor resizes each image to its
test size as usual; a slice of ``MIN_SIZE_TEST`` pixels then runs at scale 1.
"""

import logging
import math
import mmap
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.structures import Boxes, Instances

from trashpole.errors import UserError
from trashpole.predict.merge import EDGE_IOU, IOS, Piece, Window, make_piece, merge_pieces
from trashpole.predict.stages import Laps

logger = logging.getLogger(__name__)

MODES = ("off", "on", "auto")
# auto slices when the whole-image pass shrinks the image by at least this factor (short side
# over MIN_SIZE_TEST, or long side over MAX_SIZE_TEST, whichever is larger).
AUTO_MIN_SHRINK = 2.0

RunBatch = Callable[[List[np.ndarray]], List[Instances]]


@dataclass(frozen=True)
class SliceSettings:
    """``cfg.TRASHPOLE.INFERENCE.SLICE`` with the slice size resolved (see config.py)."""

    mode: str  # "off", "on" or "auto"
    size: int  # slice side, px
    overlap: float  # least share of a slice's side that neighbouring slices share
    whole_image: bool  # also run the whole image once
    batch: int  # slices per call of the backend
    auto_min_shrink: float  # auto's threshold


def _check(size: int, overlap: float, batch: int = 1) -> None:
    if size < 1:
        raise UserError(f"slice size must be at least 1 px, got {size}")
    if not 0.0 <= overlap < 1.0:
        raise UserError(f"slice overlap must be a share in [0, 1), e.g. 0.2; got {overlap}")
    if batch < 1:
        raise UserError(f"slices per batch must be at least 1, got {batch}")


def slice_settings(cfg: CfgNode) -> SliceSettings:
    """
    Read ``cfg.TRASHPOLE.INFERENCE.SLICE``.

    Args:
        cfg: a config with trashpole's keys.

    Returns:
        the settings, ``SIZE`` 0 replaced by ``INPUT.MIN_SIZE_TEST``.
    """
    node = cfg.TRASHPOLE.INFERENCE.SLICE
    mode = str(node.MODE).lower()
    if mode not in MODES:
        raise UserError(f"TRASHPOLE.INFERENCE.SLICE.MODE {node.MODE!r} is not one of {list(MODES)}")
    size = int(node.SIZE) or int(cfg.INPUT.MIN_SIZE_TEST)
    _check(size, float(node.OVERLAP), int(node.BATCH))
    if node.AUTO_MIN_SHRINK <= 1.0:
        raise UserError(
            f"TRASHPOLE.INFERENCE.SLICE.AUTO_MIN_SHRINK must be above 1, got {node.AUTO_MIN_SHRINK}"
        )
    return SliceSettings(
        mode,
        size,
        float(node.OVERLAP),
        bool(node.WHOLE_IMAGE),
        int(node.BATCH),
        float(node.AUTO_MIN_SHRINK),
    )


def slice_opts(
    slice: Union[None, bool, int, str] = None, overlap: Optional[float] = None
) -> List[str]:
    """
    Config overrides for a slicing choice (``tools/predict.py --slice --overlap``,
    ``load_predictor(slice=, overlap=)``).

    Args:
        slice: None (the config's ``SLICE.MODE`` and ``SIZE``); ``"off"``, ``"on"`` or
            ``"auto"`` (that mode, the config's size); a slice side in px (an int or its digits:
            ``on`` at that size); True / False for ``"on"`` / ``"off"``.
        overlap: ``SLICE.OVERLAP`` (None: the config's).

    Returns:
        ``[KEY, VALUE, ...]`` for ``merge_from_list``.
    """
    opts: List[str] = []
    if isinstance(slice, bool):
        slice = "on" if slice else "off"
    if slice is not None:
        text = str(slice).strip().lower()
        if text.isdigit():
            _check(int(text), 0.0)
            opts += ["TRASHPOLE.INFERENCE.SLICE.MODE", "on", "TRASHPOLE.INFERENCE.SLICE.SIZE", text]
        elif text in MODES:
            opts += ["TRASHPOLE.INFERENCE.SLICE.MODE", text]
        else:
            raise UserError(
                f"--slice {slice!r}: give off, on, auto, or a slice side in px (e.g. 800)"
            )
    if overlap is not None:
        _check(1, float(overlap))
        opts += ["TRASHPOLE.INFERENCE.SLICE.OVERLAP", str(float(overlap))]
    return opts


def _starts(length: int, size: int, overlap: float) -> List[int]:
    """First pixels of the slices along one axis: evenly spread, the last one flush."""
    if length <= size:
        return [0]
    stride = max(1, size - math.ceil(overlap * size))
    n = math.ceil((length - size) / stride) + 1
    # integer division spreads the slices evenly; each gap is at most ``stride``
    return [i * (length - size) // (n - 1) for i in range(n)]


def slice_grid(height: int, width: int, slice_size: int, overlap: float) -> List[Window]:
    """
    The slices of an image.

    Slices are squares of ``slice_size`` (cut to the image where it is smaller), spread evenly
    so that the first starts at 0 and the last ends at the border, and neighbouring slices share
    at least ``ceil(overlap * slice_size)`` pixels (more where the image does not divide evenly).

    Args:
        height, width: the image size, px.
        slice_size: slice side, px.
        overlap: least share (0 <= overlap < 1) of the slice side shared by neighbours.

    Returns:
        [(x0, y0, x1, y1), ...] row by row, x1 and y1 excluded.
    """
    _check(slice_size, overlap)
    sw, sh = min(slice_size, width), min(slice_size, height)
    return [
        (x, y, x + sw, y + sh)
        for y in _starts(height, slice_size, overlap)
        for x in _starts(width, slice_size, overlap)
    ]


def decide_slicing(
    mode: str,
    height: int,
    width: int,
    min_size_test: int,
    max_size_test: int,
    auto_min_shrink: float = AUTO_MIN_SHRINK,
) -> Tuple[bool, str]:
    """
    Whether to slice an image, and why.

    ``auto`` slices when the whole-image pass would shrink the image by at least
    ``auto_min_shrink``: the model sees the image with its short side at ``min_size_test``, or its
    long side at ``max_size_test`` if that is smaller (detectron2's ``ResizeShortestEdge``), so
    the shrink factor is ``max(short / min_size_test, long / max_size_test)``. With the default 2
    and an 800 px test size, a 4032x3024 photo (3.8x) is sliced and a 1280x960 one (1.2x) is not.

    Args:
        mode: "off", "on" or "auto".
        height, width: the image size, px.
        min_size_test, max_size_test: the model's ``INPUT.MIN_SIZE_TEST`` and ``MAX_SIZE_TEST``.
        auto_min_shrink: auto's threshold.

    Returns:
        (slice or not, one line saying why, for the log).
    """
    if mode not in MODES:
        raise UserError(f"slice mode {mode!r} is not one of {list(MODES)}")
    shrink = max(min(height, width) / min_size_test, max(height, width) / max_size_test)
    seen = f"a {width}x{height} image, shrunk {shrink:.1f}x by the whole-image pass"
    if mode != "auto":
        return mode == "on", f"slicing {mode}: {seen}"
    if shrink >= auto_min_shrink:
        return True, f"slicing (auto): {seen}, at least {auto_min_shrink:g}x"
    return False, f"not slicing (auto): {seen}, under {auto_min_shrink:g}x"


def to_pieces(instances: Instances, window: Window, whole: bool) -> List[Piece]:
    """
    The detections of one pass as pieces in full-image coordinates.

    Args:
        instances: the pass's output at the window's size, with ``pred_masks``,
            ``pred_classes`` and ``scores``.
        window: (x0, y0, x1, y1) of the pass in the image.
        whole: True for the whole-image pass.

    Returns:
        one piece per detection with a mask pixel.
    """
    if not instances.has("pred_masks"):
        raise ValueError("sliced inference needs pred_masks (a model with a mask head)")
    masks = instances.pred_masks.to("cpu").numpy()
    shape = (window[3] - window[1], window[2] - window[0])
    if masks.shape[1:] != shape:
        raise ValueError(f"run_batch returned masks of {masks.shape[1:]} for a slice of {shape}")
    classes = instances.pred_classes.tolist()
    scores = instances.scores.tolist()
    pieces = [make_piece(m, window, whole, c, s) for m, c, s in zip(masks, classes, scores)]
    return [p for p in pieces if p is not None]


def zeroed_masks(count: int, height: int, width: int) -> np.ndarray:
    """
    ``count`` all-False masks of ``height`` x ``width``, writable, whose memory is touched only
    where a mask is written: an anonymous memory map, in 4 KiB pages. N full-size masks then
    cost what their boxes cost. ``torch.zeros`` writes every byte, and numpy asks the kernel
    for huge (2 MiB) pages for arrays over 4 MiB, each zeroed whole at its first write, so a
    mask's box would cost a huge page of zeroing (docs/slicing.md, "What it costs").

    Returns:
        ndarray[count, height, width] of bool, all False.
    """
    size = count * height * width
    buffer = mmap.mmap(-1, max(size, 1))  # the array keeps the map alive; unmapped with it
    return np.frombuffer(buffer, dtype=bool, count=size).reshape(count, height, width)


def to_instances(pieces: Sequence[Piece], height: int, width: int) -> Instances:
    """
    Merged pieces as detectron2 ``Instances`` at the image's size.

    Returns:
        ``Instances`` with ``pred_boxes`` (Boxes of float32 XYXY, the box of each mask),
        ``scores`` (Tensor[N] of float32), ``pred_classes`` (Tensor[N] of int64) and
        ``pred_masks`` (Tensor[N, height, width] of bool).
    """
    canvas = zeroed_masks(len(pieces), height, width)
    for k, p in enumerate(pieces):
        p.paste(canvas[k])
    masks = torch.from_numpy(canvas)
    out = Instances((height, width))
    out.pred_boxes = Boxes(torch.tensor([p.box for p in pieces], dtype=torch.float32).view(-1, 4))
    out.scores = torch.tensor([p.score for p in pieces], dtype=torch.float32)
    out.pred_classes = torch.tensor([p.category for p in pieces], dtype=torch.int64)
    out.pred_masks = masks
    return out


def _run(run_batch: RunBatch, images: List[np.ndarray]) -> List[Instances]:
    outputs = run_batch(images)
    if len(outputs) != len(images):
        raise ValueError(f"run_batch returned {len(outputs)} results for {len(images)} images")
    return outputs


def sliced_pieces(
    run_batch: RunBatch,
    image_bgr: np.ndarray,
    slice_size: int,
    overlap: float,
    whole_image: bool = True,
    batch_size: int = 4,
    laps: Optional[Laps] = None,
) -> Tuple[List[Window], List[Piece]]:
    """
    The passes of :func:`predict_sliced` before the merge: the slices (``batch_size`` at a time)
    and, with ``whole_image``, the whole image, skipped when one slice is the whole image.
    ``laps`` (benchmarks) adds up the time of the passes and of cutting their masks into pieces.

    Returns:
        (the slice windows, every pass's pieces in image coordinates).
    """
    laps = laps or Laps.off()
    height, width = image_bgr.shape[:2]
    grid = slice_grid(height, width, slice_size, overlap)
    pieces: List[Piece] = []
    for start in range(0, len(grid), batch_size):
        windows = grid[start : start + batch_size]
        crops = [np.ascontiguousarray(image_bgr[y0:y1, x0:x1]) for x0, y0, x1, y1 in windows]
        outputs = _run(run_batch, crops)
        laps.lap("passes")
        for window, instances in zip(windows, outputs):
            pieces += to_pieces(instances, window, whole=False)
        laps.lap("cut into pieces")
    whole = (0, 0, width, height)
    if whole_image and grid != [whole]:
        output = _run(run_batch, [image_bgr])[0]
        laps.lap("passes")
        pieces += to_pieces(output, whole, whole=True)
        laps.lap("cut into pieces")
    return grid, pieces


def predict_sliced(
    run_batch: RunBatch,
    image_bgr: np.ndarray,
    slice_size: int,
    overlap: float,
    whole_image: bool = True,
    batch_size: int = 4,
    edge_iou: float = EDGE_IOU,
    ios: float = IOS,
    laps: Optional[Laps] = None,
) -> Instances:
    """
    Predict on overlapping slices of an image (plus the whole image) and merge the pieces.

    Slices go to ``run_batch`` ``batch_size`` at a time, the whole image alone. Each pass's
    masks are kept cut to their boxes until the merged instances are pasted at full size.

    Args:
        run_batch: the backend: a list of BGR uint8 images -> one ``Instances`` per image, at its
            size, with ``pred_masks`` (Tensor[N, h, w] of bool), ``pred_classes``, ``scores``.
        image_bgr: uint8 array [H, W, 3] in BGR order.
        slice_size: slice side, px (the model's ``MIN_SIZE_TEST`` runs slices at scale 1).
        overlap: least share of the slice side that neighbouring slices share (see
            :func:`slice_grid`).
        whole_image: also run the whole image once, for objects larger than a slice. Skipped
            when one slice is the whole image.
        batch_size: slices per call of ``run_batch``.
        edge_iou, ios: the merge rule's thresholds (:mod:`trashpole.predict.merge`).
        laps: where to add up the time of each step (the passes, cutting their masks into
            pieces, the merge, the result's full-size masks), for the benchmarks.

    Returns:
        ``Instances`` at the image's size: ``pred_boxes`` (Boxes of float32 XYXY, the box of each
        mask), ``scores`` (Tensor[N] of float32, the highest of the merged pieces),
        ``pred_classes`` (Tensor[N] of int64), ``pred_masks`` (Tensor[N, H, W] of bool); highest
        score first.
    """
    _check(slice_size, overlap, batch_size)
    laps = laps or Laps.off()
    laps.start()
    height, width = image_bgr.shape[:2]
    grid, pieces = sliced_pieces(
        run_batch, image_bgr, slice_size, overlap, whole_image, batch_size, laps
    )
    merged = merge_pieces(pieces, edge_iou, ios)
    laps.lap("merge")
    logger.debug(
        "%dx%d image: %d slices of %d px%s, %d pieces merged into %d instances",
        width,
        height,
        len(grid),
        slice_size,
        " + the whole image" if whole_image else "",
        len(pieces),
        len(merged),
    )
    instances = to_instances(merged, height, width)
    laps.lap("result masks")
    return instances
