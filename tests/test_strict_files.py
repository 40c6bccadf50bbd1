"""Every file trashpole writes for other tools is strict: JSON without NaN (null instead, with the
reason in the report), log.txt without terminal colour codes."""

import json
import logging
import math

import numpy as np
from detectron2.utils.events import EventStorage

from trashpole.engine.writers import StrictJSONWriter, setup_run_logging
from trashpole.evaluation.undefined import undefined_reasons
from trashpole.jsonio import dumps, to_jsonable, write_json


def strict_loads(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity, as JavaScript's JSON.parse does."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_undefined_numbers_become_null(tmp_path):
    obj = {
        "AP": float("nan"),
        1: np.float32(2.5),
        "inf": [float("inf"), -np.inf, np.int64(3)],
        "array": np.array([1.0, np.nan]),
        "tuple": (np.bool_(True), None),
    }
    expected = {"AP": None, "1": 2.5, "inf": [None, None, 3], "array": [1.0, None],
                "tuple": [True, None]}  # fmt: skip
    assert to_jsonable(obj) == expected
    assert strict_loads(dumps(obj)) == expected
    write_json(obj, str(tmp_path / "sub" / "x.json"))
    assert strict_loads((tmp_path / "sub" / "x.json").read_text()) == expected


def test_metrics_json_lines_are_strict(tmp_path):
    path = tmp_path / "metrics.json"
    writer = StrictJSONWriter(str(path))
    with EventStorage(start_iter=0) as storage:
        storage.put_scalar("total_loss", 1.5)
        storage.step()
        storage.put_scalars(**{"bbox/AP": float("nan"), "segm/AP": 12.0}, smoothing_hint=False)
        writer.write()
        storage.step()
        writer.write()  # nothing new: no line
    writer.close()
    lines = [strict_loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"iteration": 0, "total_loss": 1.5},
        {"iteration": 1, "bbox/AP": None, "segm/AP": 12.0},
    ]


def test_log_file_is_plain_text_and_the_terminal_keeps_colours(tmp_path):
    setup_run_logging(str(tmp_path), rank=0)
    red = "\x1b[38;5;197mMODEL\x1b[39m:\x1b[0m"
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    keep = Keep()
    logging.getLogger("detectron2").addHandler(keep)
    try:
        logging.getLogger("detectron2").info("Running with full config:\n" + red)
    finally:
        logging.getLogger("detectron2").removeHandler(keep)
    for handler in logging.getLogger("detectron2").handlers:
        handler.flush()
    text = (tmp_path / "log.txt").read_text()
    assert "Running with full config:\nMODEL:\n" in text and "\x1b" not in text
    assert records == ["Running with full config:\n" + red]  # other handlers are left alone


def test_undefined_reasons_name_the_cause():
    nan = math.nan
    results = {
        "bbox": {"AP": nan, "AP50": nan, "AP75": nan, "APs": nan},
        "segm": {"AP": 10.0, "AP50": 20.0, "AP75": 5.0, "APl": nan, "AP-pole": nan},
        "trashpole": {
            "num_pred": 0, "mIoU": 0.0, "precision": nan, "accuracy": nan, "recall": 0.0,
            "precision-pole": nan, "recall-trash-can": nan, "F1-trash-can": nan,
            "pixel_IoU-background": 50.0, "pixel_IoU-pole": nan,
        },
    }  # fmt: skip
    assert undefined_reasons(results, coco_score=0.05, score=0.5, iou=0.5) == {
        "bbox/AP": "no detections: the model predicted nothing with score >= 0.05 "
        "(MODEL.ROI_HEADS.SCORE_THRESH_TEST) on this split",
        "bbox/AP50": "no detections: the model predicted nothing with score >= 0.05 "
        "(MODEL.ROI_HEADS.SCORE_THRESH_TEST) on this split",
        "bbox/AP75": "no detections: the model predicted nothing with score >= 0.05 "
        "(MODEL.ROI_HEADS.SCORE_THRESH_TEST) on this split",
        "bbox/APs": "no detections: the model predicted nothing with score >= 0.05 "
        "(MODEL.ROI_HEADS.SCORE_THRESH_TEST) on this split",
        "segm/APl": "no ground-truth large objects (area > 96^2 pixels) in this split",
        "segm/AP-pole": "no ground-truth pole objects in this split",
        "trashpole/precision": "no predictions with score >= 0.5",
        "trashpole/accuracy": "no hits: no predictions with score >= 0.5",
        "trashpole/precision-pole": "no pole predictions with score >= 0.5",
        "trashpole/recall-trash-can": "no ground-truth trash-can objects in this split",
        "trashpole/F1-trash-can": "no ground-truth trash-can objects and no trash-can "
        "predictions with score >= 0.5",
        "trashpole/pixel_IoU-pole": "no pole pixels in either the ground truth or the "
        "prediction maps",
    }
    results["trashpole"]["num_pred"] = 3
    assert undefined_reasons(results, iou=0.75)["trashpole/accuracy"] == (
        "no hits: no prediction with score >= 0.5 overlaps an object with mask IoU >= 0.75"
    )
