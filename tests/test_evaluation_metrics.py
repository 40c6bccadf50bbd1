"""TrashPoleEvaluator against hand-worked cases on tiny 16x16 (and 4x4) images."""

import math
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode, Instances
from detectron2.utils import comm

from synthetic import CLASS_NAMES
from trashpole.evaluation import EvaluationDetail, TrashPoleEvaluator
from trashpole.evaluation.matching import (
    GroundTruth,
    masks_to_rles,
    match_instances,
    paint_class_map,
    paint_ground_truth,
    ranked_hits,
)
from trashpole.evaluation.metrics import interpolated_ap, precision_recall_curve

CLASSES = list(CLASS_NAMES)
POLE, CAN = 0, 1
SIZE = 16


def square(y: int, x: int, h: int = 4, w: int = 4, size: int = SIZE) -> np.ndarray:
    """Bool mask [size, size] with rows y..y+h-1 and columns x..x+w-1 set."""
    mask = np.zeros((size, size), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask


def gt(mask: np.ndarray, cls: int, crowd: int = 0) -> dict:
    """Annotation in detectron2 format with an exact RLE segmentation."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys, xs = np.nonzero(mask)
    return {
        "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": cls,
        "segmentation": rle,
        "iscrowd": crowd,
    }


def pred(*items, size: int = SIZE) -> Instances:
    """Instances from (mask, class, score) triples."""
    masks = [m for m, _, _ in items]
    return Instances(
        (size, size),
        pred_masks=torch.as_tensor(np.stack(masks)) if masks else torch.zeros(0, size, size).bool(),
        pred_classes=torch.as_tensor([c for _, c, _ in items], dtype=torch.int64),
        scores=torch.as_tensor([s for _, _, s in items], dtype=torch.float32),
    )


class Evaluate:
    """``evaluate(images, **kw)``: images = [(annotations, Instances)] registered as a data set
    and evaluated; returns (metrics, the EvaluationDetail the evaluator wrote to its output
    folder and that is read back from there). ``build(images, **kw)``: the evaluator after
    ``process``, before ``evaluate``."""

    def __init__(self, tmp_path):
        self.tmp_path, self.names = tmp_path, []

    def build(self, images, size=SIZE, **kwargs) -> TrashPoleEvaluator:
        name = f"test_eval_{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        records = [
            {
                "file_name": f"/nonexistent/{i}.png",
                "image_id": i,
                "height": size,
                "width": size,
                "annotations": annos,
            }
            for i, (annos, _) in enumerate(images)
        ]
        DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).thing_classes = list(CLASSES)
        kwargs.setdefault("distributed", False)
        kwargs.setdefault("output_dir", str(self.tmp_path / name))
        evaluator = TrashPoleEvaluator(name, **kwargs)
        evaluator.reset()
        for i, (_, instances) in enumerate(images):
            inputs = [
                {"image_id": i, "file_name": f"/nonexistent/{i}.png", "height": size, "width": size}
            ]
            evaluator.process(inputs, [{"instances": instances}])
        return evaluator

    def __call__(self, images, size=SIZE, **kwargs):
        evaluator = self.build(images, size, **kwargs)
        metrics = evaluator.evaluate()["trashpole"]
        return metrics, EvaluationDetail.load(str(self.tmp_path / self.names[-1]))


@pytest.fixture
def evaluate(tmp_path):
    ev = Evaluate(tmp_path)
    yield ev
    for name in ev.names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def assert_metrics(metrics: dict, expected: dict) -> None:
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(metrics[key]), f"{key}: {metrics[key]} is not NaN"
        else:
            assert metrics[key] == pytest.approx(value, abs=1e-9), key


NAN = float("nan")


def test_perfect_prediction(evaluate):
    a, b = square(0, 0), square(8, 8)
    m, ev = evaluate([([gt(a, POLE), gt(b, CAN)], pred((a, POLE, 0.9), (b, CAN, 0.8)))])
    assert_metrics(
        m,
        {
            "mIoU": 100.0,
            "mIoU-pole": 100.0,
            "mIoU-trash-can": 100.0,
            "accuracy": 100.0,
            "precision": 100.0,
            "recall": 100.0,
            "F1": 100.0,
            "AP50": 100.0,
            "AP50-pole": 100.0,
            "pixel_mIoU": 100.0,
            "pixel_accuracy": 100.0,
            "TP": 2,
            "FP": 0,
            "FN": 0,
        },
    )
    np.testing.assert_array_equal(ev.confusion_matrix, [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    # 16 pole pixels, 16 trash-can pixels, 256 - 32 background pixels.
    np.testing.assert_array_equal(ev.pixel_confusion_matrix, [[16, 0, 0], [0, 16, 0], [0, 0, 224]])


def test_empty_prediction(evaluate):
    m, ev = evaluate([([gt(square(0, 0), POLE), gt(square(8, 8), CAN)], pred())])
    assert_metrics(
        m,
        {
            "mIoU": 0.0,
            "accuracy": NAN,
            "precision": NAN,
            "recall": 0.0,
            "F1": 0.0,
            "AP50": 0.0,
            "pixel_IoU-pole": 0.0,
            "pixel_mIoU": 0.0,
            "pixel_accuracy": 100 * 224 / 256,
            "num_pred": 0,
            "FN": 2,
        },
    )
    np.testing.assert_array_equal(ev.confusion_matrix, [[0, 0, 1], [0, 0, 1], [0, 0, 0]])


def test_empty_ground_truth(evaluate):
    m, ev = evaluate([([], pred((square(0, 0), POLE, 0.9)))])
    assert_metrics(
        m,
        {
            "mIoU": NAN,
            "mIoU-pole": NAN,
            "accuracy": NAN,
            "precision": 0.0,
            "recall": NAN,
            "F1": 0.0,
            "AP50": NAN,
            "pixel_IoU-pole": 0.0,
            "pixel_IoU-trash-can": NAN,
            "pixel_mIoU": 0.0,
            "pixel_accuracy": 100 * 240 / 256,
            "num_gt": 0,
            "FP": 1,
        },
    )
    np.testing.assert_array_equal(ev.confusion_matrix, [[0, 0, 0], [0, 0, 0], [1, 0, 0]])
    assert ev.records[0].to_dict(0.5)["mIoU"] is None
    assert ev.gallery["worst"][0].rank_key == 0.0  # false detections on an empty image rank last


def test_wrong_class_on_perfect_mask(evaluate):
    a = square(2, 2)
    m, ev = evaluate([([gt(a, POLE)], pred((a, CAN, 0.9)))])
    # The mask is perfect, so mIoU (class-agnostic) is 100, but nothing is a true positive.
    assert_metrics(
        m,
        {
            "mIoU": 100.0,
            "mIoU-pole": 100.0,
            "accuracy": 0.0,
            "precision": 0.0,
            "recall": 0.0,
            "F1": 0.0,
            "recall-pole": 0.0,
            "precision-trash-can": 0.0,
            "precision-pole": NAN,
            "pixel_mIoU": 0.0,
            "pixel_accuracy": 100 * 240 / 256,
            "num_matched": 1,
        },
    )
    np.testing.assert_array_equal(ev.confusion_matrix, [[0, 1, 0], [0, 0, 0], [0, 0, 0]])


def test_two_overlapping_instances(evaluate):
    # A: pole, columns 0-3; B: trash can, columns 2-5 (8 pixels shared). P1 covers A and B
    # (24 pixels): IoU(P1, A) = IoU(P1, B) = 16/24; P2 = B: IoU(P2, A) = 8/24, IoU(P2, B) = 1.
    # Maximum summed IoU pairs P1-A and P2-B: mIoU = (2/3 + 1) / 2.
    a, b, p1 = square(0, 0, 4, 4), square(0, 2, 4, 4), square(0, 0, 4, 6)
    annos = [gt(a, POLE), gt(b, CAN)]
    m, ev = evaluate([(annos, pred((p1, POLE, 0.9), (b, CAN, 0.8)))])
    assert_metrics(
        m,
        {
            "mIoU": 100 * 5 / 6,
            "mIoU-pole": 100 * 2 / 3,
            "mIoU-trash-can": 100.0,
            "accuracy": 100.0,
            "precision": 100.0,
            "recall": 100.0,
            "AP50": 100.0,
        },
    )
    # Pixels: P1 (0.9) is painted over P2 (0.8), so all 24 predicted pixels are pole; the truth
    # has B over A: columns 0-1 pole (8 px), columns 2-5 trash can (16 px).
    np.testing.assert_array_equal(ev.pixel_confusion_matrix, [[8, 0, 0], [16, 0, 0], [0, 0, 232]])
    assert_metrics(
        m,
        {
            "pixel_IoU-pole": 100 / 3,
            "pixel_IoU-trash-can": 0.0,
            "pixel_mIoU": 100 / 6,
            "pixel_accuracy": 100 * 240 / 256,
        },
    )


def test_higher_score_wins_the_pixels(evaluate):
    a, b, p1 = square(0, 0, 4, 4), square(0, 2, 4, 4), square(0, 0, 4, 6)
    m, ev = evaluate([([gt(a, POLE), gt(b, CAN)], pred((p1, POLE, 0.8), (b, CAN, 0.9)))])
    np.testing.assert_array_equal(ev.pixel_confusion_matrix, [[8, 0, 0], [0, 16, 0], [0, 0, 232]])
    assert m["pixel_mIoU"] == pytest.approx(100.0)


def test_crowd_region(evaluate):
    crowd = square(8, 8, 8, 8)  # 64 pixels of trash cans, iscrowd 1
    annos = [gt(square(0, 0), POLE), gt(crowd, CAN, crowd=1)]
    preds = pred(
        (square(0, 0), POLE, 0.9),  # exact hit
        (square(9, 9), CAN, 0.9),  # fully inside the crowd: ignored
        (square(6, 8), CAN, 0.9),  # 8 of 16 pixels inside: exactly half, ignored
        (square(6, 6), CAN, 0.9),  # 4 of 16 pixels inside: a false detection
    )
    m, ev = evaluate([(annos, preds)])
    assert_metrics(
        m,
        {
            "num_gt": 1,
            "num_pred": 2,
            "num_ignored": 2,
            "TP": 1,
            "FP": 1,
            "FN": 0,
            "mIoU": 100.0,
            "precision": 50.0,
            "recall": 100.0,
            "F1": 100 * 2 / 3,
            "AP50-pole": 100.0,
            "AP50-trash-can": NAN,
            "AP50": 100.0,
        },
    )
    np.testing.assert_array_equal(ev.confusion_matrix, [[1, 0, 0], [0, 0, 0], [0, 1, 0]])


def test_score_threshold(evaluate):
    a = square(0, 0)
    images = [([gt(a, POLE)], pred((a, POLE, 0.49), (square(8, 8), POLE, 0.5)))]
    m, _ = evaluate(images)
    # 0.49 does not count, 0.5 does (and is a false detection).
    assert_metrics(m, {"num_pred": 1, "mIoU": 0.0, "TP": 0, "FP": 1, "FN": 1, "precision": 0.0})
    # The PR curve ranks every prediction: FP at 0.5, then TP at 0.49 -> precision 1/2 at
    # recall 1, so all 101 sampled precisions are 0.5.
    assert m["AP50-pole"] == pytest.approx(50.0)
    m, _ = evaluate(images, score_thresh=0.4)
    assert_metrics(m, {"num_pred": 2, "mIoU": 100.0, "TP": 1, "FP": 1, "precision": 50.0})


def test_small_hand_computed_iou(evaluate):
    # Image 0: 4x4 squares offset by one pixel on both axes: intersection 3x3 = 9, union
    # 16 + 16 - 9 = 23, IoU 9/23 < 0.5 (a miss plus a false detection). Image 1: offset by one
    # column: intersection 12, union 20, IoU 3/5 (a hit).
    images = [
        ([gt(square(2, 2), POLE)], pred((square(3, 3), POLE, 0.9))),
        ([gt(square(2, 2), POLE)], pred((square(2, 3), POLE, 0.9))),
    ]
    m, ev = evaluate(images)
    assert ev.records[0].gt_ious[0] == pytest.approx(9 / 23, abs=1e-12)
    assert ev.records[1].gt_ious[0] == pytest.approx(3 / 5, abs=1e-12)
    assert_metrics(
        m,
        {
            "mIoU": 100 * (9 / 23 + 3 / 5) / 2,
            "accuracy": 100.0,
            "precision": 50.0,
            "recall": 50.0,
            "F1": 50.0,
            "TP": 1,
            "FP": 1,
            "FN": 1,
        },
    )
    np.testing.assert_array_equal(ev.confusion_matrix, [[1, 0, 1], [0, 0, 0], [1, 0, 0]])
    # With a looser IoU threshold both pairs are hits; mIoU does not depend on it.
    m, ev = evaluate(images, iou_thresh=0.3)
    assert_metrics(m, {"mIoU": 100 * (9 / 23 + 3 / 5) / 2, "TP": 2, "FP": 0, "precision": 100.0})
    np.testing.assert_array_equal(ev.confusion_matrix, [[2, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_gathering_two_ranks_equals_one_process(evaluate, monkeypatch, tmp_path):
    # Six images with per-image IoU 1, 0.6, 9/23, 0 (missed), 1, 0.6; two "ranks" take three
    # each. gallery_size=1 with 6 images also exercises the pruning of gallery candidates.
    images = [
        ([gt(square(2, 2), POLE)], pred((square(y, x), POLE, 0.9)))
        for y, x in ((2, 2), (2, 3), (3, 3), (10, 10), (2, 2), (2, 3))
    ]
    single, _ = evaluate(images, gallery_size=1)
    states = []
    for part in (images[:3], images[3:]):
        states.append(evaluate.build(part, gallery_size=1)._state())
    # Image ids restart at 0 in each part; shift the second part's to keep them unique.
    for rec in states[1]["records"]:
        rec.image_id += 3
    for item in states[1]["gallery"]:
        item.image_id += 3
    out = tmp_path / "gathered"
    ev = evaluate.build([], gallery_size=1, distributed=True, output_dir=str(out))
    monkeypatch.setattr(comm, "all_gather", lambda data, group=None: states)
    merged = ev.evaluate()["trashpole"]  # gathers in evaluate()
    assert merged["num_images"] == 6
    for key, value in single.items():
        assert merged[key] == pytest.approx(value, nan_ok=True), key
    detail = EvaluationDetail.load(str(out))
    assert [r.image_id for r in detail.records] == [0, 1, 2, 3, 4, 5]
    assert [g.image_id for g in detail.gallery["worst"]] == [3]
    assert [g.image_id for g in detail.gallery["best"]] == [0]


def test_not_main_process_writes_nothing(evaluate, monkeypatch, tmp_path):
    ev = evaluate.build([([gt(square(2, 2), POLE)], pred())], output_dir=str(tmp_path / "r1"))
    ev._distributed = True
    monkeypatch.setattr(comm, "all_gather", lambda data, group=None: [data, data])
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert ev.evaluate() == {}
    assert not (tmp_path / "r1").exists()


def test_pixel_metrics_hand_drawn(evaluate):
    # 4x4 image.   truth      prediction (P pole 0.9, C can 0.8)
    #              P P . .    P P P .
    #              P P . .    P P P .
    #              . . C C    . . . .
    #              . . C C    . C C C
    # pole: 4 right; can: 2 right, 2 missed; background: 2 called pole, 1 called can, 5 right.
    truth_pole, truth_can = square(0, 0, 2, 2, 4), square(2, 2, 2, 2, 4)
    pred_pole, pred_can = square(0, 0, 2, 3, 4), square(3, 1, 1, 3, 4)
    images = [
        (
            [gt(truth_pole, POLE), gt(truth_can, CAN)],
            pred((pred_pole, POLE, 0.9), (pred_can, CAN, 0.8), size=4),
        )
    ]
    m, ev = evaluate(images, size=4)
    np.testing.assert_array_equal(ev.pixel_confusion_matrix, [[4, 0, 0], [0, 2, 2], [2, 1, 5]])
    assert_metrics(
        m,
        {
            "pixel_IoU-pole": 100 * 4 / 6,
            "pixel_IoU-trash-can": 100 * 2 / 5,
            "pixel_IoU-background": 100 * 5 / 10,
            "pixel_mIoU": 100 * (4 / 6 + 2 / 5) / 2,
            "pixel_accuracy": 100 * 11 / 16,
        },
    )


def test_polygon_ground_truth_matches_rle(evaluate):
    # The polygon of the square [2, 6) x [2, 6) rasterizes to the same 16 pixels.
    polygon = {
        "bbox": [2, 2, 4, 4],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": POLE,
        "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]],
        "iscrowd": 0,
    }
    m, _ = evaluate([([polygon], pred((square(3, 3), POLE, 0.9)))])
    assert m["mIoU"] == pytest.approx(100 * 9 / 23)


def test_unknown_image_id_names_the_data_set(evaluate):
    ev = evaluate.build([([gt(square(0, 0), POLE)], pred())])
    with pytest.raises(KeyError, match="image_id 99 is not in data set"):
        ev.process(
            [{"image_id": 99, "file_name": "x.png", "height": SIZE, "width": SIZE}],
            [{"instances": pred()}],
        )


def test_hungarian_beats_greedy():
    # Greedy on the best IoU would take P0-G0 (0.9) and leave P1 with G1 at 0.1 (sum 1.0);
    # the assignment takes P0-G1 and P1-G0 (sum 1.6).
    iou = np.array([[0.9, 0.8], [0.8, 0.1]])
    assert match_instances(iou) == [(1, 0), (0, 1)]
    assert match_instances(np.array([[0.0, 0.5]])) == [(0, 1)]
    assert match_instances(np.array([[0.0]])) == []


def cols(x0: int, x1: int) -> np.ndarray:
    """Rows 0-3, columns x0..x1-1: a 4-row band, so IoUs are ratios of column counts."""
    return square(0, x0, 4, x1 - x0)


def test_a_wrong_class_prediction_does_not_take_the_hit(evaluate):
    # Truth: a pole, columns 0-9 (40 px). A pole prediction, columns 0-6: IoU 28/40 = 0.7; a
    # trash-can prediction, columns 0-7: IoU 32/40 = 0.8. Maximising summed IoU (the old rule)
    # matched the trash can: TP 0, FP 2, FN 1, mIoU 80, accuracy 0. Right-class hits come first:
    # the pole prediction is the match, the trash can a false detection.
    truth, pole, can = cols(0, 10), cols(0, 7), cols(0, 8)
    m, ev = evaluate([([gt(truth, POLE)], pred((pole, POLE, 0.8), (can, CAN, 0.9)))])
    assert_metrics(
        m,
        {
            "TP": 1,
            "FP": 1,
            "FN": 0,
            "hits": 1,
            "precision": 50.0,
            "recall": 100.0,
            "F1": 100 * 2 / 3,
            "mIoU": 70.0,
            "accuracy": 100.0,
            "precision-trash-can": 0.0,
            "AP50-pole": 100.0,
            "AP50-trash-can": NAN,
        },
    )
    assert ev.records[0].gt_ious[0] == pytest.approx(0.7)
    np.testing.assert_array_equal(ev.confusion_matrix, [[1, 0, 0], [0, 0, 0], [0, 1, 0]])


def test_more_hits_beat_a_larger_summed_iou(evaluate):
    # Two poles G1 (columns 0-9) and G2 (columns 2-11); two pole predictions A = G1 (score 0.9)
    # and B (columns 0-5, score 0.8). IoU A-G1 = 1, A-G2 = 32/48 = 2/3, B-G1 = 24/40 = 0.6,
    # B-G2 = 16/48 = 1/3. Summed IoU alone pairs A-G1 and B-G2 (4/3 > 2/3 + 0.6): 1 hit,
    # TP 1, FP 1, FN 1, mIoU (1 + 1/3) / 2. The rule pairs A-G2 and B-G1: 2 hits.
    g1, g2, a, b = cols(0, 10), cols(2, 12), cols(0, 10), cols(0, 6)
    m, ev = evaluate([([gt(g1, POLE), gt(g2, POLE)], pred((a, POLE, 0.9), (b, POLE, 0.8)))])
    assert ev.records[0].gt_ious == pytest.approx([0.6, 2 / 3])
    assert_metrics(
        m,
        {
            "TP": 2,
            "FP": 0,
            "FN": 0,
            "precision": 100.0,
            "recall": 100.0,
            "F1": 100.0,
            "mIoU": 100 * (0.6 + 2 / 3) / 2,
            # after A alone one hit is possible, after B two: precision 1 at recall 0.5 and 1
            # (COCO's greedy rule gives A the object of its best IoU, G1, and B none: 51/101)
            "AP50": 100.0,
        },
    )


def test_the_matching_rule_on_the_issue_iou_matrices():
    # A pole truth, a pole prediction at IoU 0.7, a trash-can prediction at IoU 0.8.
    iou = np.array([[0.7], [0.8]])
    assert match_instances(iou, 0.5, np.array([[True], [False]])) == [(0, 0)]
    assert match_instances(iou, 0.5) == [(1, 0)]  # class-agnostic: one hit either way, IoU 0.8
    # A-G1 0.95, A-G2 0.5, B-G1 0.5, B-G2 0.3: two hits (A-G2, B-G1; summed IoU 1.0) beat one
    # hit with a larger sum (A-G1, B-G2; 1.25).
    iou = np.array([[0.95, 0.5], [0.5, 0.3]])
    assert match_instances(iou, 0.5) == [(1, 0), (0, 1)]
    # below the threshold no pair is a hit: the summed IoU decides
    assert match_instances(iou, 0.96) == [(0, 0), (1, 1)]


def test_ranked_hits_count_the_most_hits_at_each_score():
    # P0 (0.9) overlaps G0 at 0.9 and G1 at 0.6; P1 (0.8) only G0 at 0.7; P2 (0.7) only G0;
    # P3 (0.6) is a trash can on G1. Greedy by score would give P0 G0 and leave P1 without a
    # hit; the most hits after P1 are two (P0-G1, P1-G0). P2 adds none (G0, G1 taken by the
    # best pairing), P3 has the wrong class.
    iou = np.array([[0.9, 0.6], [0.7, 0.0], [0.8, 0.0], [0.0, 1.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    marked = ranked_hits(iou, scores, np.array([0, 0, 0, 1]), np.array([0, 0]), 0.5)
    assert marked.tolist() == [True, True, False, False]
    # the same predictions in another input order: the flags follow the scores, not the order
    order = [3, 2, 1, 0]
    marked = ranked_hits(iou[order], scores[order], np.array([1, 0, 0, 0]), np.array([0, 0]), 0.5)
    assert marked.tolist() == [False, False, True, True]


def test_the_pr_curve_passes_through_precision_and_recall(evaluate):
    # AP50 and P/R/F1 follow one rule: at the score threshold (0.5) the PR curve of a class is at
    # the reported precision and recall. Image 0: the two-hits case; image 1: a pole found at
    # score 0.6, a false pole at 0.55, a pole at 0.4 (below the threshold).
    g1, g2, a, b = cols(0, 10), cols(2, 12), cols(0, 10), cols(0, 6)
    other = square(8, 8)
    images = [
        ([gt(g1, POLE), gt(g2, POLE)], pred((a, POLE, 0.9), (b, POLE, 0.8))),
        (
            [gt(other, POLE), gt(cols(12, 16), POLE)],
            pred((other, POLE, 0.6), (square(12, 0), POLE, 0.55), (cols(12, 16), POLE, 0.4)),
        ),
    ]
    m, ev = evaluate(images)
    assert_metrics(m, {"TP": 3, "FP": 1, "FN": 1, "precision-pole": 75.0, "recall-pole": 75.0})
    curve = ev.pr_curves["pole"]
    at = np.flatnonzero(curve["thresholds"] >= 0.5)[-1]
    assert (curve["precision"][at], curve["recall"][at]) == pytest.approx((0.75, 0.75))


def test_interpolated_ap_on_a_known_curve():
    # Ranked TP, FP, TP with 2 objects: recall 0.5, 0.5, 1; precision 1, 0.5, 2/3. The envelope
    # is 1 up to recall 0.5 (51 samples) and 2/3 above (50 samples).
    recall, precision, _ = precision_recall_curve(
        np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2
    )
    assert interpolated_ap(recall, precision) == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_mask_encoding_matches_pycocotools():
    rng = np.random.default_rng(0)
    masks = rng.random((6, 9, 13)) > 0.6
    masks[0] = False  # empty
    masks[1] = True  # full
    masks[2, :, :] = False
    masks[2, 0, 12] = True  # last column only, first row
    masks[3, :, 1:] = False  # first column only
    masks[3, 8, 0] = True
    expected = [
        mask_util.encode(np.asfortranarray(m[:, :, None], dtype=np.uint8))[0] for m in masks
    ]
    assert masks_to_rles(masks) == expected


def test_ground_truth_painting_fast_path_equals_instance_painting():
    # Same-class overlaps (fast path, merged per class) and a different-class overlap (painted
    # instance by instance, later on top) give the class maps painted instance by instance.
    rles = [
        mask_util.encode(np.asfortranarray(square(y, x).astype(np.uint8)))
        for y, x in ((0, 0), (2, 2), (8, 8))
    ]
    for classes in ([POLE, POLE, CAN], [POLE, CAN, CAN]):
        truth = GroundTruth(rles, np.asarray(classes), [], np.zeros(0, int), SIZE, SIZE)
        np.testing.assert_array_equal(
            paint_ground_truth(truth, background=2),
            paint_class_map(rles, classes, SIZE, SIZE, background=2),
        )
