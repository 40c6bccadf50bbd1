"""Sliced inference: the grid, the auto rule, the merge rule on hand-made pieces, and
predict_sliced end to end over a fake backend that finds coloured rectangles exactly."""

import cv2
import numpy as np
import pytest
import torch
from detectron2.structures import Instances

from trashpole.config import load_config
from trashpole.errors import UserError
from trashpole.predict.merge import make_piece, merge_pieces, pair_values
from trashpole.predict.slicing import (
    decide_slicing,
    predict_sliced,
    slice_grid,
    slice_settings,
    to_instances,
    zeroed_masks,
)

POLE, BIN = 0, 1


def piece(window, rect, category=BIN, score=0.9, whole=False):
    """A piece whose mask is rectangle ``rect`` (x0, y0, x1, y1 in the image) seen in ``window``."""
    wx0, wy0, wx1, wy1 = window
    mask = np.zeros((wy1 - wy0, wx1 - wx0), bool)
    x0, y0, x1, y1 = rect
    mask[max(y0 - wy0, 0) : max(y1 - wy0, 0), max(x0 - wx0, 0) : max(x1 - wx0, 0)] = True
    return make_piece(mask, window, whole, category, score)


def full_mask(p, height, width):
    out = np.zeros((height, width), bool)
    x0, y0, x1, y1 = p.box
    out[y0:y1, x0:x1] = p.mask
    return out


def rect_mask(rect, height, width):
    out = np.zeros((height, width), bool)
    out[rect[1] : rect[3], rect[0] : rect[2]] = True
    return out


# ---- the grid and the auto rule


def test_grid_of_a_phone_photo():
    grid = slice_grid(3024, 4032, 800, 0.2)
    # 4032: stride 800 - 160 = 640 -> ceil(3232 / 640) + 1 = 7 columns, starts i * 3232 // 6;
    # 3024: ceil(2224 / 640) + 1 = 5 rows, starts i * 2224 // 4
    assert len(grid) == 35
    assert sorted({w[0] for w in grid}) == [0, 538, 1077, 1616, 2154, 2693, 3232]
    assert sorted({w[1] for w in grid}) == [0, 556, 1112, 1668, 2224]
    assert all(x1 - x0 == 800 and y1 - y0 == 800 for x0, y0, x1, y1 in grid)


@pytest.mark.parametrize(
    "height, width, size, overlap, count",
    [(250, 330, 100, 0.25, 15), (200, 300, 100, 0.0, 6), (101, 100, 100, 0.5, 2)],
)
def test_grid_covers_every_pixel_with_the_stated_overlap(height, width, size, overlap, count):
    grid = slice_grid(height, width, size, overlap)
    assert len(grid) == count
    cover = np.zeros((height, width), int)
    for x0, y0, x1, y1 in grid:
        cover[y0:y1, x0:x1] += 1
    assert cover.min() >= 1
    least = int(np.ceil(overlap * size))
    for axis in (0, 1):  # neighbours along each axis share at least `least` pixels
        starts = sorted({w[axis] for w in grid})
        assert starts[0] == 0 and starts[-1] + size == (width, height)[axis]
        assert all(size - (b - a) >= least for a, b in zip(starts, starts[1:]))
    if overlap == 0:  # no overlap: the slices tile the image
        assert cover.max() == 1


def test_grid_of_an_image_smaller_than_a_slice():
    assert slice_grid(50, 70, 100, 0.2) == [(0, 0, 70, 50)]
    assert slice_grid(50, 170, 100, 0.2) == [(0, 0, 100, 50), (70, 0, 170, 50)]


def test_grid_refuses_a_bad_overlap():
    with pytest.raises(UserError, match="overlap"):
        slice_grid(100, 100, 50, 1.0)


def test_auto_slices_only_images_much_larger_than_the_test_size():
    sliced, why = decide_slicing("auto", 3024, 4032, 800, 1333)
    assert sliced and why == (
        "slicing (auto): a 4032x3024 image, shrunk 3.8x by the whole-image pass, at least 2x"
    )
    sliced, why = decide_slicing("auto", 960, 1280, 800, 1333)
    assert not sliced and "shrunk 1.2x" in why and "under 2x" in why
    # the long side can decide: 1600 / 800 = 2.0 although the short side is at the test size
    assert decide_slicing("auto", 384, 1600, 384, 800)[0]
    assert decide_slicing("on", 100, 100, 800, 1333)[0]
    assert not decide_slicing("off", 4000, 4000, 800, 1333)[0]
    with pytest.raises(UserError, match="slice mode"):
        decide_slicing("always", 100, 100, 800, 1333)


def test_slice_settings_from_the_config():
    cfg = load_config("configs/mask_rcnn_R_18_FPN_cpu_quick.yaml")
    s = slice_settings(cfg)
    assert (s.mode, s.size, s.overlap, s.whole_image, s.batch) == ("off", 384, 0.2, True, 4)
    cfg.TRASHPOLE.INFERENCE.SLICE.SIZE = 512
    cfg.TRASHPOLE.INFERENCE.SLICE.MODE = "AUTO"
    assert (slice_settings(cfg).size, slice_settings(cfg).mode) == (512, "auto")
    cfg.TRASHPOLE.INFERENCE.SLICE.MODE = "sometimes"
    with pytest.raises(UserError, match="SLICE.MODE 'sometimes'"):
        slice_settings(cfg)


# ---- the merge rule on hand-made pieces


def test_a_pole_crossing_a_slice_edge_is_one_instance():
    # image 200 high, 100 wide; slices A (rows 0-119) and B (rows 80-199); pole x 40-49, y 10-189
    a, b = (0, 0, 100, 120), (0, 80, 100, 200)
    pole = (40, 10, 50, 190)
    pieces = [piece(a, pole, POLE, 0.6), piece(b, pole, POLE, 0.8)]
    # in the band both slices see (rows 80-119) the pieces agree: edge IoU 1; but each piece has
    # 110 rows x 10 px, and they share 40 rows: IoS 400 / 1100 would not pair them
    assert pair_values(*pieces) == (1.0, pytest.approx(400 / 1100))
    (merged,) = merge_pieces(pieces)
    assert merged.box == pole and merged.mask.all()
    assert (merged.category, merged.score) == (POLE, 0.8)


def test_two_bins_side_by_side_at_a_slice_edge_stay_two():
    # slices A (x 0-119) and B (x 80-199); bins touch at x = 100, inside the overlap band
    a, b, whole = (0, 0, 120, 100), (80, 0, 200, 100), (0, 0, 200, 100)
    left, right = (70, 40, 100, 70), (100, 40, 130, 70)
    pieces = [
        piece(a, left, score=0.9),
        piece(a, right, score=0.5),  # cut by A's edge at x = 120
        piece(b, left, score=0.6),  # cut by B's edge at x = 80
        piece(b, right, score=0.7),
    ]
    merged = merge_pieces(pieces)
    assert len(merged) == 2
    assert [(p.box, p.score) for p in merged] == [(left, 0.9), (right, 0.7)]
    assert all(p.mask.all() for p in merged)
    # the whole pass sees them apart too (coarser, 2 px too large): still two, its masks now
    coarse = [(68, 38, 101, 72), (99, 38, 132, 72)]
    wholes = [piece(whole, c, score=0.8, whole=True) for c in coarse]
    merged = merge_pieces(pieces + wholes)
    assert [(p.box, p.score) for p in merged] == [(coarse[0], 0.9), (coarse[1], 0.8)]


def test_a_whole_image_blob_over_two_touching_bins_wins_where_it_resolves_them():
    # the limit of the rule: the whole-image pass resolved one blob (30 px thick, >= 0.1 x the
    # 120 px slices) over the two bins that the slices kept apart. Its group takes the blob's
    # mask; the other bin lies inside it and is dropped as a fragment (docs/slicing.md says why
    # the whole pass wins: large-object AP on the high-resolution set)
    a, b, whole = (0, 0, 120, 100), (80, 0, 200, 100), (0, 0, 200, 100)
    left, right = (70, 40, 100, 70), (100, 40, 130, 70)
    pieces = [piece(a, left, score=0.9), piece(a, right, score=0.5)]
    pieces += [piece(b, left, score=0.6), piece(b, right, score=0.7)]
    pieces.append(piece(whole, (70, 40, 130, 70), score=0.8, whole=True))
    assert [(p.box, p.score) for p in merge_pieces(pieces)] == [((70, 40, 130, 70), 0.9)]
    # with the whole pass trusted only for objects as thick as the slices, the slices decide
    kept = merge_pieces(pieces, whole_side=1.0)
    assert [(p.box, p.score) for p in kept] == [(left, 0.9), (right, 0.7)]


def test_a_small_object_seen_in_two_overlapping_slices_is_one_instance():
    a, b = (0, 0, 120, 100), (80, 0, 200, 100)
    can = (90, 30, 110, 50)
    (merged,) = merge_pieces([piece(a, can, score=0.55), piece(b, can, score=0.75)])
    assert (merged.box, merged.score) == (can, 0.75) and merged.mask.all()


def test_objects_of_two_classes_are_never_merged():
    a, b = (0, 0, 120, 100), (80, 0, 200, 100)
    merged = merge_pieces([piece(a, (90, 30, 110, 50), POLE), piece(b, (90, 30, 110, 50), BIN)])
    assert sorted(p.category for p in merged) == [POLE, BIN]


LARGE_SLICES = [(0, 0, 120, 120), (80, 0, 200, 120), (0, 80, 120, 200), (80, 80, 200, 200)]
LARGE = (20, 30, 180, 170)  # 160 x 140 px, larger than a slice
COARSE = (16, 26, 184, 174)  # the whole-image pass's mask, 4 px too large all round


def test_a_large_object_seen_whole_and_in_pieces_is_one_instance_with_the_whole_image_mask():
    pieces = [piece(w, LARGE, score=0.5) for w in LARGE_SLICES]
    pieces.append(piece((0, 0, 200, 200), COARSE, score=0.9, whole=True))
    (merged,) = merge_pieces(pieces)
    # the whole pass resolved it (shorter side 148 px >= 0.1 x the 120 px slices): its mask and
    # box, not the union of the slices' parts
    assert (merged.box, merged.score) == (COARSE, 0.9) and merged.mask.all()
    # below that share of a slice, the slices' masks are kept and the whole mask adds nothing
    (kept,) = merge_pieces(pieces, whole_side=1.5)
    assert (kept.box, kept.score) == (LARGE, 0.9) and kept.mask.all()


def test_parts_of_a_resolved_object_that_one_slice_kept_apart_are_dropped():
    # slice A returned two detections inside the large object: they cannot merge with each
    # other (one pass kept them apart); one joins the whole-image piece, the other is a fragment
    a = LARGE_SLICES[0]
    top, bottom = piece(a, (20, 30, 120, 70), score=0.95), piece(a, (20, 70, 120, 120), score=0.6)
    whole = piece((0, 0, 200, 200), COARSE, score=0.9, whole=True)
    (merged,) = merge_pieces([top, bottom, whole])
    assert (merged.box, merged.score) == (COARSE, 0.95)
    # a bin next to the object (not inside it) stays
    other = piece(LARGE_SLICES[3], (186, 180, 198, 196), score=0.7)
    assert sorted(p.box for p in merge_pieces([top, bottom, whole, other])) == sorted(
        [COARSE, (186, 180, 198, 196)]
    )


def test_the_whole_image_mask_fills_in_where_no_slice_saw_a_thin_object():
    # a pole 8 px wide (x 40-47, y 10-189); slice A (rows 0-119) saw it, slice C (rows 80-199)
    # missed it; the whole pass saw it 10 px wide (x 39-48, y 8-191): under 0.1 x 120 = 12 px,
    # so not resolved: slice A's mask is kept, the whole mask fills in below row 120
    pole, coarse = (40, 10, 48, 190), (39, 8, 49, 192)
    pieces = [piece(LARGE_SLICES[0], pole, POLE, 0.5)]
    pieces.append(piece((0, 0, 200, 200), coarse, POLE, score=0.9, whole=True))
    (merged,) = merge_pieces(pieces)
    expected = rect_mask((40, 10, 48, 120), 200, 200) | rect_mask((39, 120, 49, 192), 200, 200)
    np.testing.assert_array_equal(full_mask(merged, 200, 200), expected)
    assert merged.mask.sum() == 8 * 110 + 10 * 72
    assert merged.box == (39, 10, 49, 192) and merged.score == 0.9


def test_to_instances_pastes_masks_and_boxes_at_full_size():
    pieces = [piece((0, 0, 50, 40), (5, 6, 15, 20), POLE, 0.7)]
    out = to_instances(pieces, 40, 50)
    assert out.image_size == (40, 50)
    assert out.pred_boxes.tensor.tolist() == [[5.0, 6.0, 15.0, 20.0]]
    assert out.pred_masks.shape == (1, 40, 50) and out.pred_masks.sum() == 140
    assert out.pred_classes.tolist() == [POLE] and out.scores.tolist() == [pytest.approx(0.7)]
    empty = to_instances([], 40, 50)
    assert len(empty) == 0 and empty.pred_masks.shape == (0, 40, 50)


def test_zeroed_masks_are_false_writable_and_outlive_their_maker():
    import gc

    masks = zeroed_masks(3, 700, 900)  # 1.9 MB: one map for all three
    assert masks.shape == (3, 700, 900) and masks.dtype == bool and not masks.any()
    masks[1, 10:20, 30:35] = True
    tensor = torch.from_numpy(masks)
    del masks
    gc.collect()
    assert int(tensor.sum()) == 50 and bool(tensor[1, 19, 34]) and not tensor[0].any()
    assert zeroed_masks(0, 5, 6).shape == (0, 5, 6)


# ---- predict_sliced end to end


# (class, score, (x0, y0, x1, y1)) of the objects drawn in a 300 x 400 image, each in its own
# colour: the fake backend finds exactly the pixels of each colour it sees.
OBJECTS = [
    (POLE, 0.9, (50, 10, 58, 290)),  # a pole crossing every row of slices
    (BIN, 0.8, (110, 240, 150, 280)),  # two bins touching at x = 150, inside the band that
    (BIN, 0.7, (150, 240, 190, 280)),  # the first two slice columns share (x 120-159)
    (BIN, 0.6, (125, 100, 137, 112)),  # a small bin seen whole by four slices
    (POLE, 0.5, (180, 20, 390, 200)),  # a pole larger than a slice, cut by every slice edge
]


def _scene():
    image = np.zeros((300, 400, 3), np.uint8)
    for k, (_, _, (x0, y0, x1, y1)) in enumerate(OBJECTS):
        image[y0:y1, x0:x1] = (10 * (k + 1), 255, 0)
    return image


def _fake_backend(calls):
    def run_batch(images):
        calls.append([im.shape[:2] for im in images])
        outputs = []
        for im in images:
            found = [(k, im[:, :, 0] == 10 * (k + 1)) for k in range(len(OBJECTS))]
            found = [(k, m) for k, m in found if m.any()]
            out = Instances(im.shape[:2])
            out.pred_masks = torch.from_numpy(np.array([m for _, m in found], bool)).view(
                -1, *im.shape[:2]
            )
            out.pred_classes = torch.tensor([OBJECTS[k][0] for k, _ in found], dtype=torch.int64)
            # a slice sees an object better than the whole image does: it scores higher there
            bonus = 0.05 if im.shape[:2] != (300, 400) else 0.0
            out.scores = torch.tensor([OBJECTS[k][1] + bonus for k, _ in found])
            outputs.append(out)
        return outputs

    return run_batch


def test_predict_sliced_finds_every_object_once_with_its_whole_mask():
    calls = []
    out = predict_sliced(_fake_backend(calls), _scene(), 160, 0.25, batch_size=4)
    # 400 px: stride 120, ceil(240 / 120) + 1 = 3 columns at x 0, 120, 240; 300 px:
    # ceil(140 / 120) + 1 = 3 rows at y 0, 70, 140; 160 px each
    assert [len(c) for c in calls] == [4, 4, 1, 1]
    assert calls[-1] == [(300, 400)]  # the whole-image pass comes last, alone
    assert len(out) == len(OBJECTS)
    masks = out.pred_masks.numpy()
    for category, score, rect in OBJECTS:
        truth = rect_mask(rect, 300, 400)
        iou = [(m & truth).sum() / (m | truth).sum() for m in masks]
        k = int(np.argmax(iou))
        assert iou[k] == 1.0, rect
        assert out.pred_classes[k] == category
        assert out.pred_boxes.tensor[k].tolist() == list(map(float, rect))
        assert out.scores[k].item() == pytest.approx(score + 0.05)  # the best piece's score
    assert out.scores.tolist() == sorted(out.scores.tolist(), reverse=True)


def test_predict_sliced_times_each_step_when_given_laps():
    """The benchmarks' step times: the passes hold the backend's time (a backend that takes
    30 ms a call; 4 calls), the other steps the rest; without laps the result is the same."""
    import time

    from trashpole.predict.stages import Laps

    backend = _fake_backend([])

    def slow(images):
        time.sleep(0.03)
        return backend(images)

    laps = Laps()
    out = predict_sliced(slow, _scene(), 160, 0.25, batch_size=4, laps=laps)
    assert set(laps.seconds) == {"passes", "cut into pieces", "merge", "result masks"}
    assert 4 * 0.03 <= laps.seconds["passes"] < 4 * 0.03 + 0.5
    assert all(v >= 0 for v in laps.seconds.values())
    plain = predict_sliced(backend, _scene(), 160, 0.25, batch_size=4)
    assert (
        torch.equal(out.pred_masks, plain.pred_masks)
        and out.scores.tolist() == plain.scores.tolist()
    )


def test_predict_sliced_without_the_whole_image_pass():
    calls = []
    out = predict_sliced(_fake_backend(calls), _scene(), 160, 0.25, whole_image=False)
    assert [len(c) for c in calls] == [4, 4, 1]
    # without the whole-image pass, the overlaps alone join the six pieces of the large pole
    assert len(out) == len(OBJECTS)
    assert out.pred_masks.sum().item() == sum((r[2] - r[0]) * (r[3] - r[1]) for *_, r in OBJECTS)


def test_predict_sliced_on_an_image_no_larger_than_a_slice_runs_it_once():
    calls = []
    out = predict_sliced(_fake_backend(calls), _scene(), 400, 0.2)
    assert calls == [[(300, 400)]] and len(out) == len(OBJECTS)


def test_predict_sliced_checks_what_the_backend_returns():
    with pytest.raises(ValueError, match="returned 0 results for 4 images"):
        predict_sliced(lambda images: [], _scene(), 160, 0.25)

    def upside_down(images):  # masks of the wrong size
        out = _fake_backend([])(images)
        return [Instances((1, 1), **{**o.get_fields(), "pred_masks": o.pred_masks.mT}) for o in out]

    with pytest.raises(ValueError, match=r"masks of \(400, 300\) for a slice of \(300, 400\)"):
        predict_sliced(upside_down, _scene(), 500, 0.2)


def _coarse(mask, res=14):
    """A mask as Mask R-CNN gives it: res x res over its box, resized back, cut at 0.5."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    small = cv2.resize(
        mask[y0:y1, x0:x1].astype(np.float32), (res, res), interpolation=cv2.INTER_AREA
    )
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) >= 0.5
    return out


def test_predict_sliced_with_coarse_masks_still_finds_every_object_once():
    # round and slanted shapes, masks at 14 x 14 per box; the whole image is seen at a quarter of
    # its resolution; pieces under 30 px are missed: the pieces disagree near their edges
    image = np.zeros((300, 400, 3), np.uint8)
    cv2.line(image, (60, 10), (80, 290), (1, 0, 0), 8)  # a slanted pole across every slice row
    cv2.ellipse(image, (130, 260), (20, 18), 0, 0, 360, (2, 0, 0), -1)  # two round bins touching
    cv2.ellipse(image, (170, 260), (20, 18), 0, 0, 360, (3, 0, 0), -1)  # at x = 150
    cv2.ellipse(image, (131, 106), (6, 6), 0, 0, 360, (4, 0, 0), -1)  # small, in four slices
    large = np.array([[200, 20], [380, 20], [360, 200], [220, 200]])
    cv2.fillPoly(image, [large], (5, 0, 0))  # larger than a slice
    classes = {1: POLE, 2: BIN, 3: BIN, 4: BIN, 5: POLE}

    def run_batch(images):
        outputs = []
        for im in images:
            labels = im[:, :, 0]
            if im.shape[:2] == (300, 400):
                small = cv2.resize(labels, (100, 75), interpolation=cv2.INTER_NEAREST)
                labels = cv2.resize(small, (400, 300), interpolation=cv2.INTER_NEAREST)
            found = [k for k in classes if (labels == k).sum() >= 30]
            masks = [_coarse(labels == k) for k in found]
            out = Instances(im.shape[:2])
            out.pred_masks = torch.from_numpy(np.array(masks, bool).reshape(-1, *im.shape[:2]))
            out.pred_classes = torch.tensor([classes[k] for k in found], dtype=torch.int64)
            out.scores = torch.tensor([0.5 + 0.1 * k for k in found])
            outputs.append(out)
        return outputs

    # the whole pass resolves the bins and the large object (mean thickness >= 0.1 x 160 px) and
    # gives their masks, coarse at a quarter of the resolution; the slices give the thin pole's
    # and the small bin's (which the whole pass misses)
    coarse = {2: 0.8, 3: 0.8, 5: 0.8}
    for whole_image in (True, False):
        out = predict_sliced(run_batch, image, 160, 0.25, whole_image=whole_image)
        assert len(out) == len(classes)
        masks = out.pred_masks.numpy()
        for k, category in classes.items():
            truth = image[:, :, 0] == k
            iou = np.array([(m & truth).sum() / (m | truth).sum() for m in masks])
            least = coarse.get(k, 0.95) if whole_image else 0.95
            assert (iou > 0.1).sum() == 1 and iou.max() >= least, (k, whole_image, iou.max())
            assert out.pred_classes[int(iou.argmax())] == category


# ---- the picture of a merge (tools/slice_picture.py)


def test_merge_picture_shows_each_slice_piece_and_the_merged_mask():
    from trashpole.predict.merge import group_pieces, unite
    from trashpole.visualization.palette import CLASS_COLORS
    from trashpole.visualization.slices import merge_picture, pick_merged_group

    # the pole of the first merge test (two slices) and a bin seen in one slice only
    a, b = (0, 0, 100, 120), (0, 80, 100, 200)
    pole = (40, 10, 50, 190)
    pieces = [piece(a, pole, POLE, 0.6), piece(b, pole, POLE, 0.8), piece(a, (5, 5, 20, 20))]
    groups = group_pieces(pieces)
    chosen = pick_merged_group(pieces, groups, POLE)
    assert sorted(groups[chosen]) == [0, 1]
    assert pick_merged_group(pieces, groups, BIN) is None  # the bin joins no other slice
    image = np.zeros((200, 100, 3), np.uint8)
    members = [pieces[i] for i in groups[chosen]]
    picture = merge_picture(image, members, unite(members), [a, b], height_px=180)
    # the region: the pole's hull (rows 10-189, x 40-49) padded by 0.6 x 180 px, inside the image
    # (200 rows x 100 columns): scaled to 180 px high, two 90 px panels and an 8 px gap
    assert picture.shape == (180, 90 + 8 + 90, 3)
    right = picture[:, 98:]
    merged = np.all(right == np.uint8(np.float32(CLASS_COLORS[POLE]) * 0.6), axis=2)
    # the pole (x 40-49, rows 10-189), scaled 0.9, away from the dashed edges
    assert merged[20:60, 36:45].all() and merged[120:165, 36:45].all()
    assert not merged[:, :30].any()
    # left panel: slice A's piece above the edges (rows 80-119 -> 72-107), slice B's below
    left = picture[:, :90]
    top, bottom = left[30, 40], left[150, 40]
    assert top.any() and bottom.any() and not np.array_equal(top, bottom)
    # dashed white lines at the slice edges y = 80 and 120 (72 and 108 px at 0.9)
    for row in (72, 108):
        assert (left[row] == 255).all(axis=1).sum() >= 30
