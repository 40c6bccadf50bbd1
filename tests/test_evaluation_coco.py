"""
Cross-check: detectron2's COCOEvaluator (as used by build_evaluators) against pycocotools'
COCOeval run directly on the same ground-truth JSON and a detections JSON written here, and our
mask AP50 against COCO's.
"""

import contextlib
import io
import json
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from synthetic import CLASS_NAMES
from trashpole.evaluation import TrashPoleEvaluator, build_evaluators

H, W = 96, 128
CLASSES = list(CLASS_NAMES)
ROBOFLOW_IDS = {0: 1, 1: 2}  # contiguous id -> category id in the JSON
STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl"]


def polygon(cls, x0, y0, x1, y1):
    """Poles are rectangles; trash cans are octagons (corners cut by 6 px), so segm != bbox."""
    if cls == 0:
        points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    else:
        c = 6
        points = [
            (x0 + c, y0),
            (x1 - c, y0),
            (x1, y0 + c),
            (x1, y1 - c),
            (x1 - c, y1),
            (x0 + c, y1),
            (x0, y1 - c),
            (x0, y0 + c),
        ]
    return [float(v) for point in points for v in point]


# Per image: ground truth (class, polygon box x0, y0, x1, y1) and predictions
# (class, pixel box x0, y0, x1, y1 with x1/y1 exclusive, score). Distinct scores keep the ranking
# free of ties.
# Areas span COCO's small (< 32^2) and medium sizes.
IMAGES = [
    {
        "gt": [(0, (8, 8, 28, 80)), (1, (60, 20, 100, 68))],
        "pred": [
            (0, (10, 8, 28, 80), 0.95),
            (1, (62, 24, 100, 60), 0.81),
            (1, (4, 4, 18, 18), 0.42),
        ],
    },
    {
        "gt": [(1, (20, 20, 52, 60)), (1, (80, 10, 120, 50)), (0, (40, 60, 46, 76))],
        "pred": [
            (1, (20, 20, 48, 60), 0.88),
            (0, (80, 10, 120, 50), 0.77),
            (0, (41, 61, 46, 76), 0.66),
            (1, (88, 16, 116, 44), 0.3),
        ],
    },
    {
        "gt": [(0, (100, 4, 116, 88))],
        "pred": [(0, (96, 12, 120, 80), 0.71), (1, (10, 10, 40, 40), 0.55)],
    },
]


def coco_json(path):
    images, annotations = [], []
    for i, image in enumerate(IMAGES):
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "height": H, "width": W})
        for cls, (x0, y0, x1, y1) in image["gt"]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": ROBOFLOW_IDS[cls],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float((x1 - x0) * (y1 - y0)),
                    "segmentation": [polygon(cls, x0, y0, x1, y1)],
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": ROBOFLOW_IDS[k], "name": n, "supercategory": "none"} for k, n in enumerate(CLASSES)
    ]
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


def box_mask(x0, y0, x1, y1):
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def model_outputs():
    outputs = []
    for i, image in enumerate(IMAGES):
        preds = image["pred"]
        instances = Instances((H, W))
        instances.pred_masks = torch.as_tensor(np.stack([box_mask(*b) for _, b, _ in preds]))
        instances.pred_boxes = Boxes(torch.tensor([b for _, b, _ in preds], dtype=torch.float32))
        instances.pred_classes = torch.tensor([c for c, _, _ in preds])
        instances.scores = torch.tensor([s for _, _, s in preds])
        inputs = {"image_id": i + 1, "file_name": f"{i}.jpg", "height": H, "width": W}
        outputs.append((inputs, {"instances": instances}))
    return outputs


def detections(task):
    """COCO results written here, independently of detectron2's instances_to_coco_json."""
    dets = []
    for i, image in enumerate(IMAGES):
        for cls, (x0, y0, x1, y1), score in image["pred"]:
            det = {"image_id": i + 1, "category_id": ROBOFLOW_IDS[cls], "score": score}
            if task == "bbox":
                det["bbox"] = [x0, y0, x1 - x0, y1 - y0]
            else:
                rle = mask_util.encode(np.asfortranarray(box_mask(x0, y0, x1, y1), np.uint8))
                det["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            dets.append(det)
    return dets


def cocoeval_direct(json_file, task):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(json_file)
        ev = COCOeval(gt, gt.loadRes(detections(task)), task)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # detectron2 reports COCO's -1 (no object of that size) as NaN.
    stats = {n: 100 * ev.stats[k] if ev.stats[k] >= 0 else np.nan for k, n in enumerate(STAT_NAMES)}
    precision = ev.eval["precision"]  # [IoU, recall, class, area, max dets]
    for k, name in enumerate(CLASSES):
        p = precision[:, :, k, 0, -1]
        stats[f"AP-{name}"] = 100 * p[p > -1].mean()
    p50 = precision[0, :, :, 0, -1]
    stats["AP50-per-class"] = [100 * p50[:, k][p50[:, k] > -1].mean() for k in range(2)]
    return stats


@pytest.fixture
def dataset(tmp_path):
    name = f"test_coco_{uuid.uuid4().hex[:8]}"
    json_file = tmp_path / "annotations.json"
    coco_json(json_file)
    register_coco_instances(name, {}, str(json_file), str(tmp_path))
    DatasetCatalog.get(name)  # fills thing_classes and the id mapping, as a data loader would
    yield name, str(json_file)
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def run(evaluator):
    evaluator.reset()
    for inputs, outputs in model_outputs():
        evaluator.process([inputs], [outputs])
    return evaluator.evaluate()


def test_coco_evaluator_matches_pycocotools(dataset, tmp_path):
    name, json_file = dataset
    assert MetadataCatalog.get(name).thing_classes == CLASSES
    results = run(
        COCOEvaluator(
            name, tasks=("bbox", "segm"), distributed=False, output_dir=str(tmp_path / "coco")
        )
    )
    for task in ("bbox", "segm"):
        expected = cocoeval_direct(json_file, task)
        for key in STAT_NAMES + [f"AP-{c}" for c in CLASSES]:
            assert results[task][key] == pytest.approx(expected[key], abs=1e-6, nan_ok=True), (
                task,
                key,
            )
    # The case is not degenerate: AP is neither 0 nor 100.
    assert 10 < results["segm"]["AP"] < 90


def test_our_mask_ap50_matches_coco(dataset):
    name, json_file = dataset
    ours = run(TrashPoleEvaluator(name, distributed=False))["trashpole"]
    coco = cocoeval_direct(json_file, "segm")
    for k, cls in enumerate(CLASSES):
        assert ours[f"AP50-{cls}"] == pytest.approx(coco["AP50-per-class"][k], abs=1e-6), cls
    assert ours["AP50"] == pytest.approx(coco["AP50"], abs=1e-6)


def _trashpole_cfg():
    from trashpole.config import add_trashpole_config

    cfg = get_cfg()
    add_trashpole_config(cfg)
    cfg.MODEL.MASK_ON = True  # as in every trashpole recipe (detectron2's default is False)
    return cfg


def test_box_only_model_gets_box_ap_only(dataset, tmp_path):
    name, _ = dataset
    cfg = _trashpole_cfg()
    cfg.MODEL.MASK_ON = False
    (coco,) = build_evaluators(cfg, name, str(tmp_path))._evaluators
    assert isinstance(coco, COCOEvaluator) and coco._tasks == ("bbox",)


def test_build_evaluators_reads_the_thresholds(dataset, tmp_path):
    name, _ = dataset
    cfg = _trashpole_cfg()
    evaluators = build_evaluators(cfg, name, str(tmp_path))
    assert isinstance(evaluators, DatasetEvaluators)
    coco, ours = evaluators._evaluators
    assert isinstance(coco, COCOEvaluator) and isinstance(ours, TrashPoleEvaluator)
    assert coco._tasks == ("bbox", "segm")
    assert (ours.score_thresh, ours.iou_thresh) == (0.5, 0.5)

    cfg.TRASHPOLE.EVAL.SCORE_THRESH = 0.7
    cfg.TRASHPOLE.EVAL.IOU_THRESH = 0.75
    ours = build_evaluators(cfg, name, str(tmp_path))._evaluators[1]
    assert (ours.score_thresh, ours.iou_thresh) == (0.7, 0.75)


def test_build_evaluators_rejects_a_json_with_the_superclass(dataset, tmp_path):
    name, json_file = dataset
    with open(json_file) as f:
        data = json.load(f)
    data["categories"].insert(0, {"id": 0, "name": "trash-pole", "supercategory": "none"})
    raw = tmp_path / "roboflow.json"
    raw.write_text(json.dumps(data))
    # Registered like trashpole.data does (superclass dropped from the classes), but with the
    # raw export as json_file.
    raw_name = name + "_raw"
    DatasetCatalog.register(raw_name, lambda: DatasetCatalog.get(name))
    MetadataCatalog.get(raw_name).set(thing_classes=list(CLASSES), json_file=str(raw))
    try:
        with pytest.raises(ValueError, match=r"roboflow.json: has categories \[0, 1, 2\]"):
            build_evaluators(_trashpole_cfg(), raw_name, str(tmp_path))
    finally:
        DatasetCatalog.remove(raw_name)
        MetadataCatalog.remove(raw_name)
