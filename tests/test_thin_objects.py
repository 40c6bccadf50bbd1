"""Object widths at the training size (data summary) and the thin-object warning."""

import logging

import numpy as np
import pytest
from conftest import write_tiny_export
from tiny_model import write_tiny_config

from trashpole.config import load_config
from trashpole.data.summary import object_widths, summarize_dataset, thin_object_warning


def _record(boxes, height=100, width=200, crowd=()):
    annotations = [
        {"bbox": list(b), "category_id": 0, "iscrowd": int(i in crowd)} for i, b in enumerate(boxes)
    ]
    return {"height": height, "width": width, "annotations": annotations}


def test_object_widths_are_the_shorter_box_side_at_the_training_size():
    dicts = [_record([(0, 0, 10, 40), (5, 5, 30, 6), (0, 0, 2, 2)], crowd=(2,))]
    # the 100 x 200 image is trained at half size: widths 10/2 and 6/2; the crowd box is left out
    widths = object_widths(dicts, lambda h, w: 0.5)
    assert widths == pytest.approx([5.0, 3.0])


def test_warning_suggests_the_size_that_keeps_objects():
    widths = np.array([2.0, 4.0, 10.0, 20.0])
    # half of them are under 8 px; the 25% quantile is 2 + 0.75 * 2 = 3.5 px, so 384 px grows by
    # 8 / 3.5 to 877.7 px, rounded up to a multiple of 32: 896
    message = thin_object_warning(widths, 384, min_width=8, max_share=0.25)
    assert "50% of the train objects are under 8 px" in message
    assert "about 896 px" in message
    assert thin_object_warning(widths, 384, min_width=8, max_share=0.5) is None
    assert thin_object_warning(widths, 384, min_width=2, max_share=0.0) is None
    assert thin_object_warning(np.zeros(0), 384, min_width=8, max_share=0.1) is None


def test_summary_and_setup_report_widths(tmp_path, clean_catalogs, caplog):
    from trashpole.engine import derive_from_data, register_datasets

    export = write_tiny_export(tmp_path / "export", splits=("train", "valid"))
    cfg = load_config(write_tiny_config(tmp_path), ["TRASHPOLE.DATASET_ROOT", str(export)])
    splits = register_datasets(cfg)
    # the tiny export's boxes are 20 px wide in 64 px images; trained at 32 px they are 10 px
    summary = summarize_dataset([splits["train"]], scale_of=lambda h, w: 0.5)
    widths = summary["splits"][splits["train"]]["object_widths"]
    assert widths == {"p10": 10.0, "median": 10.0, "p90": 10.0}
    assert "object_widths" not in summarize_dataset([splits["train"]])["splits"][splits["train"]]
    cfg.TRASHPOLE.TRAIN.MIN_OBJECT_WIDTH = 24  # at 64 px every object (20 px) is narrower
    with caplog.at_level(logging.WARNING, logger="trashpole"):
        derive_from_data(cfg, splits, training=True)
    # 64 * 24 / 20 = 76.8 -> 96
    assert "100% of the train objects are under 24 px" in caplog.text
    assert "about 96 px" in caplog.text
