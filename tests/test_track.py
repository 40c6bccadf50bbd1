"""Tracking logic on hand-made boxes and on a synthetic video whose identities are known: the
tracker is fed the true boxes (with dropped and spurious detections), not a model's."""

import functools
import json
import os

import cv2
import pytest
import torch
from detectron2.structures import Boxes, Instances
from detectron2.tracking import IOUWeightedHungarianBBoxIOUTracker
from tiny_model import CPU_RECIPE

from benchmarks.synthetic_video import (
    pan_zoom_video,
    score_tracking,
    truth_as_predictions,
)
from synthetic import CLASS_NAMES
from trashpole.config import load_config
from trashpole.predict import (
    InstanceTracker,
    count_id_switches,
    count_objects,
    is_counted,
    match_to_truth,
    track_predictions,
)
from trashpole.predict.outputs import track_rows
from trashpole.predict.track import ClassAwareHungarianTracker, _common_shift

NAMES = list(CLASS_NAMES)


def frame(boxes, classes, scores=None, size=(100, 100)) -> Instances:
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    scores = torch.ones(len(boxes)) if scores is None else torch.tensor(scores)
    classes = torch.tensor(classes, dtype=torch.int64)
    return Instances(size, pred_boxes=Boxes(boxes), scores=scores, pred_classes=classes)


def test_a_box_overlapping_nothing_starts_a_new_track():
    frames = [frame([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0])]
    frames.append(frame([[0, 0, 10, 10], [80, 80, 90, 90]], [0, 0]))
    # detectron2's tracker hands the (80, 80) box the ID of the (50, 50) box: IoU 0
    d2 = IOUWeightedHungarianBBoxIOUTracker(video_height=100, video_width=100)
    d2.update(frame([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0]))
    assert d2.update(frame([[0, 0, 10, 10], [80, 80, 90, 90]], [0, 0])).ID[:2] == [0, 1]
    assert track_predictions(frames).ids == [[0, 1], [0, 2]]


def test_the_largest_total_iou_wins():
    # P [0, 10] and Q [6, 16] move right by one pixel; the new boxes come in the order Q', P'.
    # IoU(P', P) = IoU(Q', Q) = 180/220 = 0.82; IoU(Q', P) = 60/340 = 0.18; IoU(P', Q) = 0.33
    f0 = [[0, 0, 10, 20], [6, 0, 16, 20]]
    f1 = [[7, 0, 17, 20], [1, 0, 11, 20]]
    result = track_predictions([frame(f0, [0, 0]), frame(f1, [0, 0])], iou_thresh=0.1)
    assert result.ids == [[0, 1], [1, 0]]
    # detectron2 fills its cost matrix as int64, every -IoU becomes 0, and the tie swaps them
    d2 = IOUWeightedHungarianBBoxIOUTracker(
        video_height=100, video_width=100, track_iou_threshold=0.1
    )
    d2.update(frame(f0, [0, 0]))
    assert d2.update(frame(f1, [0, 0])).ID[:2] == [0, 1]


def test_a_track_keeps_its_class():
    frames = [frame([[0, 0, 10, 40]], [0]), frame([[0, 0, 10, 40]], [1])]
    assert track_predictions(frames).ids == [[0], [1]]


def test_a_box_shrinking_inside_its_last_box_keeps_the_id():
    # a pole leaving the frame: [0, 0, 8, 100] -> only its sign [0, 0, 8, 12] stays visible.
    # IoU 0.12 < 0.3, but the new box lies wholly inside the old one
    frames = [frame([[0, 0, 8, 100]], [0]), frame([[0, 0, 8, 12]], [0])]
    assert track_predictions(frames, contain_thresh=0.8).ids == [[0], [0]]
    assert track_predictions(frames, contain_thresh=0.0).ids == [[0], [1]]


def test_common_shift_by_hand():
    assert _common_shift(-3.0, -2.0) == -2.0  # a pan: both edges move left
    assert _common_shift(0.0, -2.0) == 0.0  # one edge stuck at the frame's border
    assert _common_shift(-1.0, 1.5) == 0.0  # a zoom: the edges move apart
    assert _common_shift(46.0, 0.5) == 0.5  # an occluder uncovers the left edge


def test_a_thin_pole_missed_for_a_frame_keeps_its_id_by_its_motion():
    # 4 px wide, 2 px to the left each frame (IoU 2/6 with the last box), missed in frame 3:
    # in frame 4 it is 4 px from its last box, which it no longer overlaps
    poles = [[60 - 2 * k, 10, 64 - 2 * k, 90] for k in range(6)]
    frames = [frame([box], [0]) if k != 3 else frame([], []) for k, box in enumerate(poles)]
    result = track_predictions(frames, NAMES, max_lost_frames=2)
    assert result.ids == [[0], [0], [0], [], [0], [0]]
    assert [(t.first_frame, t.last_frame, t.frames_seen) for t in result.tracks] == [(0, 5, 5)]
    # without motion the tracker looks for it where it was last seen and starts a new track
    still = ClassAwareHungarianTracker(
        video_height=100, video_width=100, max_lost_frame_count=2, track_iou_threshold=0.3,
        min_instance_period=0, motion=False,
    )  # fmt: skip
    assert [still.update(f).ID[:1] for f in frames] == [[0], [0], [0], [0], [1], [1]]


@pytest.mark.parametrize("missed, same_id", [(2, True), (3, False)])
def test_an_object_missed_for_max_lost_frames_keeps_its_id(missed, same_id):
    box = [[20, 20, 40, 60]]
    frames = [frame(box, [1], [0.6]), frame(box, [1], [0.9])]
    frames += [frame([], [])] * missed + [frame(box, [1], [0.7])]
    result = track_predictions(frames, NAMES, max_lost_frames=2, min_frames=2)
    assert result.ids[-1] == ([0] if same_id else [1])
    first = result.tracks[0]
    assert (first.first_frame, first.best_frame, first.best_score) == (0, 1, pytest.approx(0.9))
    if same_id:
        # frames seen: 0, 1 and the last; the missed ones are not counted
        assert (first.last_frame, first.frames_seen) == (2 + missed, 3)
        assert result.counts == {"pole": 0, "trash-can": 1}
    else:
        assert (first.last_frame, first.frames_seen) == (1, 2)
        assert [t.frames_seen for t in result.counted] == [2]  # the late one-frame track is out


def test_count_objects_leaves_out_short_tracks():
    frames = [frame([[0, 0, 10, 10], [50, 0, 60, 30]], [0, 1]) for _ in range(3)]
    frames[1] = frame([[0, 0, 10, 10], [50, 0, 60, 30], [80, 80, 90, 90]], [0, 1, 1])
    result = track_predictions(frames, NAMES, min_frames=2)
    assert result.counts == {"pole": 1, "trash-can": 1}
    assert count_objects(result.tracks, 1, NAMES) == {"pole": 1, "trash-can": 2}
    assert count_objects(result.tracks, 4, NAMES) == {"pole": 0, "trash-can": 0}


def test_a_track_counts_once_one_of_its_detections_reaches_the_count_score():
    # a pole seen at 0.6, 0.95, 0.6; a trash can seen three times at 0.7 only
    scores = [[0.6, 0.7], [0.95, 0.7], [0.6, 0.7]]
    frames = [frame([[0, 0, 10, 40], [50, 0, 60, 30]], [0, 1], s) for s in scores]
    result = track_predictions(frames, NAMES, min_frames=2, count_score=0.9)
    assert result.ids == [[0, 1], [0, 1], [0, 1]]  # weak detections continue their tracks
    assert result.counts == {"pole": 1, "trash-can": 0}
    assert [t.id for t in result.counted] == [0]
    assert track_predictions(frames, NAMES, min_frames=2).counts == {"pole": 1, "trash-can": 1}
    pole, can = result.tracks
    assert is_counted(pole, 3, 0.95) and not is_counted(pole, 4, 0.0)
    assert not is_counted(can, 2, 0.71) and is_counted(can, 2, 0.7)
    rows = track_rows("clip", result.tracks, NAMES, 2, count_score=0.9)
    assert [r["counted"] for r in rows] == [1, 0]
    assert count_objects(result.tracks, 2, NAMES, 0.9) == {"pole": 1, "trash-can": 0}


def test_tracker_settings_come_from_the_config():
    cfg = load_config(str(CPU_RECIPE))
    assert (cfg.TRASHPOLE.TRACK.IOU_THRESH, cfg.TRASHPOLE.TRACK.MIN_FRAMES) == (0.3, 2)
    cfg.merge_from_list(["TRASHPOLE.TRACK.MAX_LOST_FRAMES", "5"])
    tracker = InstanceTracker.from_config(cfg)
    assert (tracker.iou_thresh, tracker.max_lost_frames, tracker.contain_thresh) == (0.3, 5, 0.8)


def test_id_switches_by_hand():
    # object 7: track 1, 1, 3 (one switch); object 8: 2, 4, unmatched, 4 (one switch; a frame
    # without a match neither switches nor resets)
    frames = [{7: 1, 8: 2}, {7: 1, 8: 4}, {7: 3}, {7: 3, 8: 4}]
    switches, ids = count_id_switches(frames)
    assert switches == 2
    assert ids == {7: [1, 3], 8: [2, 4]}


def test_match_to_truth_is_one_to_one_and_class_aware():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60.0]])
    truth = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60.0]])
    # detection 2 has the wrong class; detection 0 beats detection 1 (IoU 1 against 0.82)
    assert match_to_truth(boxes, [0, 0, 1], truth, [0, 0]) == [(0, 0)]
    assert match_to_truth(boxes, [0, 0, 0], truth, [0, 0]) == [(0, 0), (2, 1)]


@functools.lru_cache(maxsize=None)
def walk(seed: int):
    """60 frames of 256 px panning 30% across a scene and zooming 1.5x. Seed 1: 3 poles and 2
    trash cans, of which 4 leave the frame on the left (a thin pole, a pole whose sign stays
    in view after its shaft has gone...); seed 5: 4 poles and 3 trash cans, one pole entering
    from the right half-way."""
    return pan_zoom_video(seed=seed, num_frames=60, size=256)


def test_the_synthetic_video_pans_and_zooms():
    seen = walk(5).frames_seen()
    always = [o for o, n in seen.items() if n == 60]
    assert len(always) >= 3 and min(seen.values()) < 60  # some stay, some leave
    first = {o["object"]: o["box"] for o in walk(5).truth[0]}
    last = {o["object"]: o["box"] for o in walk(5).truth[-1]}
    inside = [o for o in always if 0 < min(first[o] + last[o]) and max(first[o] + last[o]) < 256]
    assert inside
    for obj in inside:
        (x0, y0, x1, y1), (u0, v0, u1, v1) = first[obj], last[obj]
        assert (v1 - v0) / (y1 - y0) == pytest.approx(1.5, rel=0.1)  # zoom: 1.5x taller
        assert (u0 + u1) / 2 < (x0 + x1) / 2  # the camera pans right: objects move left


def _with_drops_and_a_flicker(video):
    """The true boxes, minus every 5th frame of each object's (but never its first or last)
    visible frames, plus one spurious pole in frame 10."""
    predictions, kept_truth = [], []
    seen = {}
    last_frame = {o["object"]: k for k, f in enumerate(video.truth) for o in f}
    for k, (inst, truth) in enumerate(zip(truth_as_predictions(video), video.truth)):
        keep = []
        for i, obj in enumerate(truth):
            n = seen[obj["object"]] = seen.get(obj["object"], 0) + 1
            if n == 1 or n % 5 or last_frame[obj["object"]] == k:
                keep.append(i)
        inst, truth = inst[keep], [truth[i] for i in keep]
        inst.remove("pred_masks")  # the tracker matches boxes
        if k == 10:
            inst = Instances.cat([inst, frame([[120, 2, 124, 40]], [0], [0.55], (256, 256))])
        predictions.append(inst)
        kept_truth.append(truth)
    return predictions, kept_truth


@pytest.mark.parametrize(
    "seed, objects", [(1, {"pole": 3, "trash-can": 2}), (5, {"pole": 4, "trash-can": 3})]
)
def test_tracking_the_synthetic_video_counts_each_object_once(seed, objects):
    video = walk(seed)
    predictions, kept = _with_drops_and_a_flicker(video)
    assert sum(map(len, kept)) < sum(map(len, video.truth))  # some detections were dropped
    result = track_predictions(predictions, NAMES, max_lost_frames=3, min_frames=2)
    assert video.true_counts(min_frames=2) == objects
    assert result.counts == objects
    flicker = [t for t in result.tracks if t.first_frame == 10 and t.best_box[0] == 120]
    assert len(flicker) == 1 and flicker[0].frames_seen == 1
    # every true object keeps one track ID through its dropped frames
    boxes = [p.pred_boxes.tensor for p in predictions]
    classes = [p.pred_classes.tolist() for p in predictions]
    score = score_tracking(video, boxes, classes, result.ids, result.counts, min_frames=2)
    assert score["count_errors"] == {name: 0 for name in NAMES}
    assert score["id_switches"] <= 1 and score["fragmented_objects"] <= 1
    assert score["matched"] == sum(map(len, kept))


def test_a_still_video_gives_tracks_that_span_every_frame():
    still = pan_zoom_video(seed=1, num_frames=12, size=192, zoom=1.0, pan=0.0)
    assert all((f == still.frames[0]).all() for f in still.frames)
    result = track_predictions(truth_as_predictions(still), NAMES)
    assert len(result.tracks) == len(still.truth[0]) == 5
    for track in result.tracks:
        assert (track.first_frame, track.last_frame, track.frames_seen) == (0, 11, 12)
    assert result.counts == still.true_counts() == {"pole": 3, "trash-can": 2}


def test_the_synthetic_check_command_with_the_true_boxes(tmp_path):
    from benchmarks.synthetic_video import main

    picture = tmp_path / "tracked.png"
    argv = ["--out", str(tmp_path), "--oracle", "--seed", "5", "--size", "128", "--frames", "12",
            "--picture", str(picture), "--picture-frame", "3"]  # fmt: skip
    score = main(argv)
    assert score["counted_objects"] == score["true_objects"]
    assert score["id_switches"] == 0 and score["matched"] == score["true_detections"] > 0
    assert sorted(os.listdir(tmp_path / "frames"))[:2] == ["frame_0000.png", "frame_0001.png"]
    assert cv2.imread(str(picture)).shape == (128, 128, 3)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert len(truth["frames"]) == 12 and truth["classes"] == NAMES


def test_counting_suite_chooses_a_count_score_that_drops_a_weak_double_detection():
    """Clips whose true objects are seen at 0.95 plus a weak double detection (a second box at 0.6
    on the first object, 8 frames): without a count score it is counted as an object; the
    setting chosen on clips 2 and 4 drops it, and counts the scored clip 0 exactly."""
    from benchmarks import counting

    def clip(seed):
        video = pan_zoom_video(seed=seed, num_frames=12, size=160)
        frames = truth_as_predictions(video)
        for f in frames:
            f.remove("pred_masks")
            f.scores = torch.full((len(f),), 0.95)
        for k in range(2, 10):
            first = frames[k][:1]
            extra = Instances(first.image_size, pred_boxes=Boxes(first.pred_boxes.tensor + 2))
            extra.scores, extra.pred_classes = torch.tensor([0.6]), first.pred_classes
            frames[k] = Instances.cat([frames[k], extra])
        return video, frames

    track = load_config(str(CPU_RECIPE)).TRASHPOLE.TRACK
    predicted = {"run": {seed: clip(seed) for seed in (0, 2, 4)}}
    (error, worst), chosen = counting.choose_setting(predicted, {"run": track}, [2, 4])
    assert (error, worst) == (0, 0)
    assert chosen["count_score"] > 0.6 or chosen["detection_score"] > 0.6
    scored = counting.score_clip(predicted["run"][0], chosen, track)
    assert scored["count_errors"] == {name: 0 for name in NAMES}
    before = counting.settings_grid()[0]  # count score 0, 2 frames: the double is an object
    assert before["count_score"] == 0 and before["min_frames"] == 2
    assert (
        sum(counting.score_clip(predicted["run"][0], before, track)["count_errors"].values()) == 1
    )
    assert counting.total_error([scored, scored]) == (0, 0)
