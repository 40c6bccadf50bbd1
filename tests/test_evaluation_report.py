"""write_report, the run comparison (package and tools/compare_runs.py) and the benchmark, on a
four-image data set of 64x96 pictures made in the test."""

import importlib.util
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from box_data import BoxModel, evaluate_and_write, write_box_dataset
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import Boxes, Instances

from benchmarks.evaluation import measure_evaluator
from benchmarks.evaluation import run as run_benchmark
from trashpole.evaluation import (
    compare_runs,
    format_table,
)
from trashpole.evaluation.notes import accuracy_note
from trashpole.visualization.charts import plot_comparison

H, W = 64, 96
REPO = Path(__file__).resolve().parents[1]
# Per image: ground truth [(class, x0, y0, x1, y1)] and predictions [(class, box, score)].
IMAGES = [
    (
        [(0, 10, 5, 18, 60), (1, 40, 20, 70, 55)],
        [(0, (10, 5, 18, 60), 0.9), (1, (42, 22, 70, 55), 0.8)],
    ),
    ([(1, 5, 10, 35, 50)], [(0, (5, 10, 35, 50), 0.7)]),  # right mask, wrong class
    ([(0, 60, 2, 68, 62)], []),  # missed
    ([], [(1, (20, 20, 40, 40), 0.6)]),  # false detection on an empty image
]


def write_dataset(root: Path) -> Path:
    return write_box_dataset(root, IMAGES, H, W)


def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity, as JavaScript's JSON.parse does."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


class NothingModel(torch.nn.Module):
    """Predicts nothing on every image."""

    def forward(self, inputs):
        empty = dict(
            pred_masks=torch.zeros((0, H, W), dtype=torch.bool),
            pred_boxes=Boxes(torch.zeros((0, 4))),
            pred_classes=torch.zeros(0, dtype=torch.int64),
            scores=torch.zeros(0),
        )
        return [{"instances": Instances((H, W), **empty)} for _ in inputs]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """(results, evaluators, eval folder) after inference_on_dataset and write_report."""
    root = tmp_path_factory.mktemp("data")
    name = f"test_report_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, str(write_dataset(root)), str(root))
    out = root / "run_a" / "eval"
    results, ours = evaluate_and_write(BoxModel(IMAGES, H, W), name, root / "inference", out)
    yield results, ours, out
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_report_files_exist(evaluated):
    _, _, out = evaluated
    for f in (
        "metrics.json",
        "per_image.json",
        "report.md",
        "confusion_matrix.png",
        "pr_curves.png",
        "gallery_worst.png",
        "gallery_best.png",
    ):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f


def test_report_numbers(evaluated):
    results, ev, out = evaluated
    m = results["trashpole"]
    # 4 objects; hits: the pole (IoU 1) and the can (IoU 28*33/(30*35)) of image 0, the
    # wrong-class can of image 1 (IoU 1); the pole of image 2 is missed.
    iou_can = 28 * 33 / (30 * 35)
    assert m["mIoU"] == pytest.approx(100 * (1 + iou_can + 1 + 0) / 4)
    assert m["accuracy"] == pytest.approx(100 * 2 / 3)
    assert (m["TP"], m["FP"], m["FN"]) == (2, 2, 2)
    np.testing.assert_array_equal(ev.confusion_matrix, [[1, 0, 1], [1, 1, 0], [0, 1, 0]])

    metrics = strict_loads((out / "metrics.json").read_text())
    assert metrics["results"]["trashpole"]["mIoU"] == pytest.approx(m["mIoU"])
    assert metrics["results"]["segm"]["AP"] == pytest.approx(results["segm"]["AP"])
    assert metrics["confusion_matrix"]["labels"] == ["pole", "trash-can", "background"]
    per_image = strict_loads((out / "per_image.json").read_text())
    assert [r["mIoU"] for r in per_image][2:] == [0.0, None]

    report = (out / "report.md").read_text()
    for value in (
        m["mIoU"],
        m["accuracy"],
        m["precision"],
        m["recall"],
        m["F1"],
        m["pixel_mIoU"],
        m["pixel_accuracy"],
        results["segm"]["AP"],
        results["bbox"]["AP50"],
        results["segm"]["AP-pole"],
        results["segm"]["APs"],  # COCO's object sizes, from COCOEvaluator
    ):
        assert f"{value:.2f}" in report, value
    assert all(f"| {key} |" in report for key in ("APs", "APm", "APl"))
    assert "How to read this" in report and "| true pole | 1 | 0 | 1 |" in report
    # the 64x96 images hold no object of COCO's "large" size: APl is undefined, and says why
    large = "no ground-truth large objects (area > 96^2 pixels) in this split"
    assert metrics["results"]["segm"]["APl"] is None
    assert metrics["undefined"] == {"bbox/APl": large, "segm/APl": large}
    assert f"- `segm/APl`: {large}" in report
    # the one matching rule is explained, and what accuracy says here
    assert "**Matching.**" in report and "the most hits with the right class" in report
    assert m["hits"] == 3 and (
        "Accuracy is below 100: 1 of 3 objects found with a good mask were found only by a "
        "prediction of another class" in report
    )


def test_the_report_says_when_accuracy_is_uninformative():
    assert accuracy_note({"hits": 4, "TP": 4}).startswith(
        "Accuracy is 100 because every hit already has the right class"
    )
    assert accuracy_note({"hits": 0, "TP": 0}) is None  # undefined: explained elsewhere


def test_report_of_a_model_that_predicts_nothing(tmp_path):
    name = f"test_report_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, str(write_dataset(tmp_path)), str(tmp_path))
    try:
        evaluate_and_write(NothingModel(), name, tmp_path / "inference", tmp_path / "eval")
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    metrics = strict_loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["results"]["bbox"]["AP"] is None and metrics["results"]["segm"]["AP50"] is None
    assert metrics["results"]["trashpole"]["precision"] is None
    assert metrics["results"]["trashpole"]["recall"] == 0.0
    reasons = metrics["undefined"]
    assert reasons["segm/AP"] == "no detections: the model predicted nothing on this split"
    assert reasons["trashpole/precision"] == "no predictions with score >= 0.5"
    assert reasons["trashpole/accuracy"] == "no hits: no predictions with score >= 0.5"
    assert "trashpole/recall" not in reasons
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| precision | n/a |" in report
    assert "- `trashpole/precision`: no predictions with score >= 0.5" in report
    strict_loads((tmp_path / "eval" / "per_image.json").read_text())
    strict_loads((tmp_path / "inference" / "trashpole_results.json").read_text())


def test_galleries_rank_images(evaluated):
    _, ev, _ = evaluated
    # Image ids 3 (missed pole) and 4 (no objects, a false detection) both score 0; the false
    # detection breaks the tie. Image 2 (IoU 1, wrong class) is the best.
    assert [g.image_id for g in ev.gallery["worst"][:2]] == [4, 3]
    assert ev.gallery["best"][0].image_id == 2


def test_compare_runs(evaluated, tmp_path, capsys):
    _, _, out = evaluated
    run_a, run_b = tmp_path / "run_a", tmp_path / "run_b"
    shutil.copytree(out, run_a / "eval" / "valid")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["results"]["trashpole"]["mIoU"] = 12.5
    (run_b / "eval" / "valid").mkdir(parents=True)
    (run_b / "eval" / "valid" / "metrics.json").write_text(json.dumps(metrics))
    log = [
        {"iteration": 9, "total_loss": 1.5},
        {"iteration": 19, "total_loss": 0.75, "trashpole/mIoU": 40.0},
    ]
    (run_a / "metrics.json").write_text("\n".join(json.dumps(x) for x in log) + "\n")

    runs = compare_runs([str(run_a), str(run_b)])
    assert [r["name"] for r in runs] == ["run_a", "run_b"]
    assert runs[1]["values"]["trashpole/mIoU"] == 12.5
    assert runs[0]["train"] == {
        "iterations": 20,
        "last total_loss": 0.75,
        "best trashpole/mIoU": 40.0,
    }
    table = format_table(runs)
    assert "12.50" in table and "train: last total_loss" in table
    plot_comparison(runs, str(tmp_path / "cmp.png"))
    assert (tmp_path / "cmp.png").stat().st_size > 0

    spec = importlib.util.spec_from_file_location(
        "compare_runs", REPO / "tools" / "compare_runs.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main([str(run_a), str(run_b), "--output", str(tmp_path / "cli.png")])
    assert "run_b" in capsys.readouterr().out and (tmp_path / "cli.png").is_file()
    with pytest.raises(FileNotFoundError, match="eval/valid/metrics.json does not exist"):
        compare_runs([str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="--eval-only --eval-split test"):
        compare_runs([str(run_a)], split="test")


def test_benchmark_runs_small(tmp_path):
    measured = measure_evaluator(num_images=3, size=(64, 96), instances=4)
    assert measured["num_images"] == 3 and measured["results"]["trashpole"]["num_images"] == 3
    report = run_benchmark(str(tmp_path), num_images=3, size=(64, 96), instances=4)
    assert json.loads((tmp_path / "evaluation_benchmark.json").read_text()) == report
    assert report["num_images"] == 3 and "results" not in report
    assert report["size"] == [64, 96] and report["full_masks_mb"] == 3 * 4 * 64 * 96 / 2**20
    assert report["state_mb"] < 1.0 and report["process_s"] > 0
    assert not any(n.startswith("trashpole_benchmark_eval_") for n in DatasetCatalog.list())
