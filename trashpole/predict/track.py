"""
Identities across video frames: detectron2's IoU-weighted Hungarian tracker, one record per
track, and the counts of distinct objects that make an inventory.

The tracker is detectron2's :class:`~detectron2.tracking.IOUWeightedHungarianBBoxIOUTracker`.
Of detectron2's three trackers it is the one meant to pair the boxes of two frames by the largest
*total* IoU (scipy's ``linear_sum_assignment`` on ``-IoU``), which is what keeps a trash can
standing in front of a pole, or two bins side by side, apart when their boxes overlap:

- ``BBoxIOUTracker`` is greedy and walks the pairs in index order (not by IoU), so the outcome
  depends on the order of the detections;
- ``VanillaHungarianBBoxIOUTracker`` gives every pair above the threshold the same cost, so
  among overlapping candidates the choice is arbitrary.

:class:`ClassAwareHungarianTracker` keeps detectron2's assignment and its handling of new and
lost tracks (a missed object's last box is carried forward for ``max_lost_frame_count`` frames),
on state of its own (it relies on detectron2's public ``BaseTracker`` alone), and changes what
counting needs:

1. the cost matrix is float: detectron2 fills an int64 one, so every ``-IoU`` becomes 0 and the
   IoU-weighted tracker ties like the vanilla one (tested);
2. a pair below the thresholds is no match: the assignment covers every row or column, so
   detectron2 hands a previous ID even to a box that overlaps nothing (tested);
3. a detection only continues a track of its own class;
4. a box mostly inside a track's box also continues it (``contain_threshold``): an object
   leaving the frame or going behind another shrinks to part of its box;
5. each track's box is moved by its recent motion before matching, so that a thin pole that
   moves more than its width between frames, or is missed for a frame or two, keeps its ID.

Each track's ``frames_seen`` counts only the frames it was detected in.
"""

import copy
import logging
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.structures import Boxes, Instances
from detectron2.structures.boxes import pairwise_intersection, pairwise_iou
from detectron2.tracking import BaseTracker
from detectron2.tracking.utils import LARGE_COST_VALUE
from scipy.optimize import linear_sum_assignment

# match_to_truth was defined here first; it stays importable from this module
from trashpole.predict.truth import match_to_truth  # noqa: F401

logger = logging.getLogger(__name__)

# the name written in outputs and docs
TRACKER_NAME = "detectron2 IOUWeightedHungarianBBoxIOUTracker (class-aware)"


class ClassAwareHungarianTracker(BaseTracker):
    """
    detectron2's IoU-weighted Hungarian box tracker with float costs, no match below the
    thresholds, class gating, containment and motion (points 1-5 of the module docstring).
    The assignment and the handling of new and lost tracks are those of detectron2's
    ``BaseHungarianTracker``, on state kept here (the previous frame, the next free ID).

    Args:
        video_height, video_width: the frame's size (pixels).
        max_lost_frame_count: frames a track may go undetected and still be carried over.
        min_box_rel_dim, min_instance_period: a lost track is dropped when its box is narrower
            or lower than this share of the frame, or when it was matched in this many frames
            or fewer.
        track_iou_threshold: IoU from which a detection may continue a track.
        contain_threshold: a pair whose IoU is under ``track_iou_threshold`` still matches
            when this share of the smaller box lies inside the other (0: off).
        motion: move each track's box by its recent motion before matching.
    """

    def __init__(
        self,
        *,
        video_height: int,
        video_width: int,
        max_lost_frame_count: int = 0,
        min_box_rel_dim: float = 0.02,
        min_instance_period: int = 1,
        track_iou_threshold: float = 0.5,
        contain_threshold: float = 0.0,
        motion: bool = True,
    ):
        super().__init__()
        self.video_height, self.video_width = video_height, video_width
        self.max_lost_frame_count = max_lost_frame_count
        self.min_box_rel_dim = min_box_rel_dim
        self.min_instance_period = min_instance_period
        self.track_iou_threshold = track_iou_threshold
        self._contain_threshold = contain_threshold
        self._motion = motion
        self._previous: Optional[Instances] = None  # the last output, lost tracks included
        self._next_id = 0
        self._frame = 0
        # per track ID: box shift per frame (Tensor[4]), and the last detected box and frame
        self._velocity: Dict[int, torch.Tensor] = {}
        self._observed: Dict[int, Tuple[torch.Tensor, int]] = {}

    def build_cost_matrix(self, instances: Instances, prev_instances: Instances) -> np.ndarray:
        """
        Args:
            instances: the current frame's detections (N).
            prev_instances: the previous frame's detections and carried-over lost ones (M).

        Returns:
            ndarray[N, M] of float: ``-IoU`` for pairs of one class at or above the IoU
            threshold (or the containment threshold), ``LARGE_COST_VALUE`` for the others.
        """
        boxes, prev = instances.pred_boxes, prev_instances.pred_boxes
        iou = pairwise_iou(boxes, prev).numpy().astype(np.float64)
        eligible = iou >= self.track_iou_threshold
        if self._contain_threshold > 0:
            inter = pairwise_intersection(boxes, prev).numpy()
            smaller = np.minimum(boxes.area().numpy()[:, None], prev.area().numpy()[None, :])
            eligible |= (inter >= self._contain_threshold * smaller) & (inter > 0)
        classes = np.asarray(instances.pred_classes).reshape(-1, 1)
        eligible &= classes == np.asarray(prev_instances.pred_classes).reshape(1, -1)
        # a float matrix: detectron2 fills an int64 one, which truncates every -IoU to 0
        return np.where(eligible, -iou, float(LARGE_COST_VALUE))

    def update(self, instances: Instances) -> Instances:
        """
        Give each detection of the frame an ID.

        Args:
            instances: the frame's ``pred_boxes``, ``scores`` and ``pred_classes`` (N), and
                optionally ``pred_masks``.

        Returns:
            Instances whose first N rows are ``instances`` with ``ID`` (list of int),
            ``ID_period`` (frames the track has been matched in) and ``lost_frame_count`` set,
            followed by the lost tracks carried over (``lost_frame_count`` > 0).
        """
        if instances.has("pred_keypoints"):
            raise NotImplementedError("ClassAwareHungarianTracker does not track keypoints")
        self._frame += 1
        instances = self._add_track_fields(instances)
        prev = self._previous
        if prev is not None:
            if self._motion:
                self._predict_boxes(prev)
            cost = self.build_cost_matrix(instances, prev)
            rows, cols = linear_sum_assignment(cost)
            # unlike detectron2's update: a pair below the thresholds is no match
            real = cost[rows, cols] < LARGE_COST_VALUE
            rows, cols = rows[real], cols[real]
            self._continue_tracks(instances, prev, rows, cols)
            self._start_tracks(instances, rows)
            instances = Instances.cat([instances, self._carry_lost(instances, prev, cols)])
        if self._motion:
            self._measure_motion(instances)
        self._previous = copy.deepcopy(instances)
        return instances

    def _add_track_fields(self, instances: Instances) -> Instances:
        """The fields ``ID``, ``ID_period`` and ``lost_frame_count``; on the first frame every
        detection starts a track (IDs 0..N-1)."""
        n = len(instances)
        for name in ("ID", "ID_period", "lost_frame_count"):
            if not instances.has(name):
                instances.set(name, [None] * n)
        if self._previous is None:
            instances.ID = list(range(n))
            instances.ID_period = [1] * n
            instances.lost_frame_count = [0] * n
            self._next_id += n
        return instances

    @staticmethod
    def _continue_tracks(
        instances: Instances, prev: Instances, rows: np.ndarray, cols: np.ndarray
    ) -> None:
        """Detection ``rows[k]`` takes over the track of previous row ``cols[k]``."""
        for row, col in zip(rows, cols):
            instances.ID[row] = prev.ID[col]
            instances.ID_period[row] = prev.ID_period[col] + 1
            instances.lost_frame_count[row] = 0

    def _start_tracks(self, instances: Instances, rows: np.ndarray) -> None:
        """Every detection not in ``rows`` starts a track with the next free ID."""
        # walked in the order of a set, as detectron2 does, so that the IDs come out the same
        for row in set(range(len(instances))).difference(set(rows)):
            instances.ID[row] = self._next_id
            self._next_id += 1
            instances.ID_period[row] = 1
            instances.lost_frame_count[row] = 0

    def _carry_lost(self, instances: Instances, prev: Instances, cols: np.ndarray) -> Instances:
        """The previous rows that no detection continued and that may still come back, one
        frame more lost, in the fields of ``instances``."""
        with_masks = instances.has("pred_masks")
        names = ("boxes", "classes", "scores", "masks", "ID", "ID_period", "lost_frame_count")
        kept: Dict[str, list] = {k: [] for k in names}
        # walked in the order of a set, as detectron2 does, so that the rows come out the same
        for index in set(range(len(prev))).difference(set(cols)):
            box = prev.pred_boxes.tensor[index]
            x0, y0, x1, y1 = box  # compared in the box's dtype, as detectron2 compares them
            if (
                bool((x1 - x0) / self.video_width < self.min_box_rel_dim)
                or bool((y1 - y0) / self.video_height < self.min_box_rel_dim)
                or prev.lost_frame_count[index] >= self.max_lost_frame_count
                or prev.ID_period[index] <= self.min_instance_period
            ):
                continue
            kept["boxes"].append(box.tolist())
            kept["classes"].append(int(prev.pred_classes[index]))
            kept["scores"].append(float(prev.scores[index]))
            kept["ID"].append(prev.ID[index])
            kept["ID_period"].append(prev.ID_period[index])
            kept["lost_frame_count"].append(prev.lost_frame_count[index] + 1)
            if with_masks:
                kept["masks"].append(prev.pred_masks[index].numpy().astype(np.uint8))
        fields = dict(
            pred_boxes=Boxes(torch.tensor(kept["boxes"], dtype=torch.float32).reshape(-1, 4)),
            pred_classes=torch.tensor(kept["classes"], dtype=torch.int32),
            scores=torch.tensor(kept["scores"], dtype=torch.float32),
            ID=kept["ID"],
            ID_period=kept["ID_period"],
            lost_frame_count=kept["lost_frame_count"],
        )
        if with_masks:
            masks = np.asarray(kept["masks"], dtype=np.uint8)
            fields["pred_masks"] = torch.as_tensor(masks, dtype=torch.int32)
        return Instances(instances.image_size, **fields)

    def _predict_boxes(self, prev: Instances) -> None:
        """Move the previous frame's boxes (and the carried-over lost ones) one frame on."""
        if len(prev):
            zero = torch.zeros(4)
            shift = torch.stack([self._velocity.get(int(i), zero) for i in prev.ID])
            prev.pred_boxes = Boxes(prev.pred_boxes.tensor.float() + shift)

    def _measure_motion(self, instances: Instances) -> None:
        """
        Update each detected track's velocity: the shift per frame of its box since it was
        last detected, averaged with the previous estimate (boxes are noisy). The box moves as
        a whole, by what both its edges agree on (see :func:`_common_shift`).
        """
        alive = set()
        for k, (track_id, lost) in enumerate(zip(instances.ID, instances.lost_frame_count)):
            alive.add(track_id)
            if lost:
                continue
            box = instances.pred_boxes.tensor[k].detach().float().clone()
            if track_id in self._observed:
                old_box, old_frame = self._observed[track_id]
                d = ((box - old_box) / (self._frame - old_frame)).tolist()
                dx, dy = _common_shift(d[0], d[2]), _common_shift(d[1], d[3])
                step = torch.tensor([dx, dy, dx, dy])
                old = self._velocity.get(track_id)
                self._velocity[track_id] = step if old is None else (old + step) / 2
            self._observed[track_id] = (box, self._frame)
        for table in (self._velocity, self._observed):
            for track_id in set(table) - alive:
                del table[track_id]


def _common_shift(a: float, b: float) -> float:
    """
    The motion two opposite edges of a box agree on: the smaller shift when both move the same
    way, else none. An edge that jumps alone is the visible part changing (the object going
    behind another, or out of the frame), and edges moving apart are a zoom, not a motion.
    """
    if a * b <= 0:
        return 0.0
    return a if abs(a) < abs(b) else b


@dataclass
class Track:
    """
    One tracked object.

    Attributes:
        id: track ID, unique within its sequence.
        class_id: contiguous class id (a track never changes class).
        first_frame, last_frame: first and last frame index it was detected in.
        frames_seen: frames it was detected in (frames it was lost in are not counted).
        best_score: its highest detection score.
        best_frame: the frame of that score.
        best_box: its box [x0, y0, x1, y1] (pixels) in that frame.
    """

    id: int
    class_id: int
    first_frame: int
    last_frame: int
    frames_seen: int
    best_score: float
    best_frame: int
    best_box: List[float]

    def add(self, frame: int, score: float, box: Sequence[float]) -> None:
        """Record one more detection of this object."""
        self.last_frame = frame
        self.frames_seen += 1
        if score > self.best_score:
            self.best_score, self.best_frame, self.best_box = score, frame, list(box)


class InstanceTracker:
    """
    Track IDs for a stream of per-frame predictions, and one :class:`Track` per object.

    Only boxes, classes and scores go to detectron2's tracker (it matches boxes; copying masks
    every frame would cost time for nothing).

    Args:
        iou_thresh: box IoU with an object's predicted box (its last box moved by its recent
            motion) at which a detection of the same class continues that object's track.
        max_lost_frames: frames an object may go undetected and still keep its ID.
        contain_thresh: a detection with a lower IoU also continues a track when this share of
            the smaller of the two boxes lies inside the other (an object that leaves the frame
            or goes behind another shrinks to a part of its box); 0 turns it off.
    """

    def __init__(
        self, iou_thresh: float = 0.3, max_lost_frames: int = 3, contain_thresh: float = 0.8
    ):
        self.iou_thresh = iou_thresh
        self.max_lost_frames = max_lost_frames
        self.contain_thresh = contain_thresh
        self._tracker: Optional[ClassAwareHungarianTracker] = None
        self._tracks: Dict[int, Track] = {}
        self._frame = -1

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "InstanceTracker":
        """The tracker of ``cfg.TRASHPOLE.TRACK``."""
        track = cfg.TRASHPOLE.TRACK
        return cls(track.IOU_THRESH, track.MAX_LOST_FRAMES, track.CONTAIN_THRESH)

    def update(self, instances: Instances, frame: Optional[int] = None) -> torch.Tensor:
        """
        Assign IDs to one frame's detections and update the tracks.

        Args:
            instances: the frame's predictions with ``pred_boxes``, ``scores`` and
                ``pred_classes`` (N), on any device.
            frame: the frame index (default: one more than the previous call's).

        Returns:
            Tensor[N] of int64: the track ID of each detection, in the order given.
        """
        self._frame = self._frame + 1 if frame is None else int(frame)
        boxes = instances.pred_boxes.tensor.detach().float().cpu()
        scores = instances.scores.detach().float().cpu()
        classes = instances.pred_classes.detach().cpu().long()
        if self._tracker is None:
            height, width = instances.image_size
            self._tracker = ClassAwareHungarianTracker(
                video_height=height,
                video_width=width,
                max_lost_frame_count=self.max_lost_frames,
                # detectron2's default (2% of the frame) would never carry a thin pole over a gap
                min_box_rel_dim=0.0,
                # detectron2's default (1) drops a track seen in one frame as soon as it is
                # missed; an object detected in frames 0 and 2 would make two one-frame tracks
                min_instance_period=0,
                track_iou_threshold=self.iou_thresh,
                contain_threshold=self.contain_thresh,
            )
        light = Instances(
            instances.image_size, pred_boxes=Boxes(boxes), scores=scores, pred_classes=classes
        )
        ids = torch.as_tensor(self._tracker.update(light).ID[: len(boxes)], dtype=torch.int64)
        for track_id, cls, score, box in zip(
            ids.tolist(), classes.tolist(), scores.tolist(), boxes.tolist()
        ):
            self._record(track_id, cls, score, box)
        return ids

    def _record(self, track_id: int, cls: int, score: float, box: List[float]) -> None:
        track = self._tracks.get(track_id)
        if track is None:
            self._tracks[track_id] = Track(
                track_id, cls, self._frame, self._frame, 1, score, self._frame, box
            )
        else:
            track.add(self._frame, score, box)

    @property
    def tracks(self) -> List[Track]:
        """Every track so far, by ID."""
        return [self._tracks[k] for k in sorted(self._tracks)]


@dataclass
class TrackingResult:
    """
    What :func:`track_predictions` returns.

    Attributes:
        ids: per frame, the track ID of each detection (in the order of the predictions).
        tracks: every track, by ID.
        min_frames: detected frames a track needs to be counted.
        class_names: names by contiguous class id.
        count_score: least best score of a counted track (see :func:`is_counted`).
    """

    ids: List[List[int]]
    tracks: List[Track]
    min_frames: int
    class_names: List[str] = field(default_factory=list)
    count_score: float = 0.0

    @property
    def counted(self) -> List[Track]:
        """The tracks that count as objects (:func:`is_counted`)."""
        return [t for t in self.tracks if is_counted(t, self.min_frames, self.count_score)]

    @property
    def counts(self) -> Dict[str, int]:
        """Distinct objects per class name (every class, 0 included)."""
        return count_objects(self.tracks, self.min_frames, self.class_names, self.count_score)


def is_counted(track: Track, min_frames: int, count_score: float = 0.0) -> bool:
    """
    Whether a track counts as an object: detected in at least ``min_frames`` frames (shorter
    tracks are flickers) and at least once with a score of ``count_score`` or more. Detections
    under ``count_score`` (down to the predictor's threshold) still continue a track, so that
    an object keeps its ID through frames where it is seen less clearly; a track made only of
    such detections is a doubtful sighting (a double detection, a part of another object) and is
    not counted. Scores are float32, so the threshold is compared as one: a detection scored 0.7
    reaches a ``count_score`` of 0.7.
    """
    threshold = float(np.float32(count_score))
    return track.frames_seen >= min_frames and track.best_score >= threshold


def count_objects(
    tracks: Iterable[Track],
    min_frames: int,
    class_names: Sequence[str] = (),
    count_score: float = 0.0,
) -> Dict[str, int]:
    """
    Distinct objects per class: the tracks that :func:`is_counted` counts.

    Args:
        tracks: the tracks of one or more sequences.
        min_frames: shorter tracks (one-frame flickers) are not objects.
        class_names: names by contiguous class id; every one gets an entry. Classes beyond them
            are named ``class_<id>``.
        count_score: least best score of a counted track.

    Returns:
        ``{class name: count}``.
    """
    names = list(class_names)
    counts = {name: 0 for name in names}
    for track in tracks:
        if is_counted(track, min_frames, count_score):
            name = names[track.class_id] if track.class_id < len(names) else None
            name = name or f"class_{track.class_id}"
            counts[name] = counts.get(name, 0) + 1
    return counts


def track_predictions(
    predictions: Iterable[Union[Instances, Mapping[str, Instances]]],
    class_names: Sequence[str] = (),
    iou_thresh: float = 0.3,
    max_lost_frames: int = 3,
    min_frames: int = 2,
    contain_thresh: float = 0.8,
    count_score: float = 0.0,
) -> TrackingResult:
    """
    Turn a stream of per-frame predictions into tracks and counts of distinct objects.

    Args:
        predictions: per frame, in order, ``Instances`` (or a predictor's
            ``{"instances": Instances}``) with ``pred_boxes``, ``scores`` and ``pred_classes``.
        class_names: names by contiguous class id, for the counts.
        iou_thresh, max_lost_frames, contain_thresh: see :class:`InstanceTracker`.
        min_frames: detected frames a track needs to be counted.
        count_score: least best score of a counted track (:func:`is_counted`; 0: any).
            ``TRASHPOLE.TRACK.COUNT_SCORE`` is what ``--track`` uses.

    Returns:
        a :class:`TrackingResult` (per-frame IDs, tracks, ``counts``).
    """
    tracker = InstanceTracker(iou_thresh, max_lost_frames, contain_thresh)
    ids = []
    for frame in predictions:
        instances = frame["instances"] if isinstance(frame, Mapping) else frame
        ids.append(tracker.update(instances).tolist())
    return TrackingResult(ids, tracker.tracks, min_frames, list(class_names), count_score)
