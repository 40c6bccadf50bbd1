"""Data summary, label plots, ground-truth overlays, the visualize_data tool and the benchmark."""

import importlib.util
import json
import logging
import os
from pathlib import Path

import pytest
from conftest import ANNOTATION_FILE, edit_json, write_tiny_export
from detectron2.data import DatasetCatalog
from PIL import Image

from benchmarks import data as data_benchmark
from trashpole.data import (
    register_roboflow_splits,
    summarize_dataset,
    write_data_summary,
)
from trashpole.data.visualize import visualize_dataset
from trashpole.errors import UserError

pytestmark = pytest.mark.usefixtures("clean_catalogs")
TOOL = Path(__file__).resolve().parents[1] / "tools" / "visualize_data.py"


@pytest.fixture
def export(tmp_path):
    """train: 3 annotated images + 1 empty, one crowd; valid: 3 images, one missing on disk.

    In 64 px images the pole box is 20 x 52 (area 1040: medium) and the trash can 20 x 32
    (area 640: small).
    """
    root = write_tiny_export(tmp_path / "export", splits=("train", "valid"), empty_images=1)
    edit_json(root / "train" / ANNOTATION_FILE, lambda d: d["annotations"][5].update(iscrowd=1))
    edit_json(root / "valid" / ANNOTATION_FILE, lambda d: d["images"].pop())  # the empty one
    os.remove(root / "valid" / "valid_002.jpg")
    return root


def test_summary_counts_by_hand(export):
    names = register_roboflow_splits("tp", str(export))
    summary = summarize_dataset([names["train"], names["valid"]])
    assert summary["classes"] == ["pole", "trash-can"]
    train = summary["splits"]["tp_train"]
    assert train["images"] == 4 and train["images_without_annotations"] == 1
    assert train["instances"] == 5 and train["crowd_instances"] == 1
    assert train["instances_per_image"] == {"mean": 1.25, "median": 1.5, "max": 2}
    assert train["per_class"]["pole"] == {
        "images": 3,
        "instances": 3,
        "small": 0,
        "medium": 3,
        "large": 0,
    }
    assert train["per_class"]["trash-can"]["instances"] == 2  # the third is a crowd
    assert train["per_class"]["trash-can"]["images"] == 3
    assert train["object_sizes"] == {"small": 2, "medium": 3, "large": 0}
    assert train["image_sizes"] == {"64x64": 4}
    assert train["problems"] == {}
    valid = summary["splits"]["tp_valid"]
    assert valid["images"] == 2 and valid["instances"] == 4
    assert valid["problems"] == {"image_missing": 1}
    assert "image 2 (valid_002.jpg) is not on disk" in valid["problem_details"][0]
    assert valid["kept"]["annotations_of_skipped_images"] == 2


def test_summary_of_a_data_set_registered_elsewhere(export):
    dicts = register_roboflow_splits("tp", str(export))
    DatasetCatalog.register("other_train", lambda: DatasetCatalog.get(dicts["train"]))
    summary = summarize_dataset(["other_train"])
    assert summary["classes"] == ["0", "1"]  # no metadata: contiguous ids
    assert summary["splits"]["other_train"]["instances"] == 5


def test_write_data_summary_files(export, tmp_path):
    names = register_roboflow_splits("tp", str(export))
    out = tmp_path / "out"
    summary = write_data_summary(list(names.values()), str(out))
    assert json.loads((out / "data_summary.json").read_text()) == summary
    text = (out / "data_summary.txt").read_text()
    assert "| tp_train |" in text and "image_missing: 1 (skipped image)" in text
    with Image.open(out / "labels.png") as image:
        assert image.format == "PNG" and image.width > 500


def test_overlays_plain_and_augmented(export, tmp_path):
    names = register_roboflow_splits("tp", str(export))
    paths = visualize_dataset(names["train"], str(tmp_path / "vis"), num=2)
    assert len(paths) == 2 and all(os.path.isfile(p) for p in paths)
    paths = visualize_dataset(names["train"], str(tmp_path / "aug"), num=None, augmented=True)
    assert len(paths) == 4 and paths[0].endswith("_augmented.jpg")
    with Image.open(paths[0]) as image:  # detectron2's default train resize: short edge 800
        assert image.size == (800, 800)


def _tool():
    spec = importlib.util.spec_from_file_location("visualize_data", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_visualize_data_tool(export, tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text("INPUT:\n  MIN_SIZE_TRAIN: (96,)\n  MAX_SIZE_TRAIN: 200\n")
    tool = _tool()
    out = tmp_path / "out"
    argv = ["--dataset-root", str(export), "--split", "val", "--output", str(out)]
    paths = tool.main(tool.parse_args(argv + ["--all", "--stats"]))
    assert len(paths) == 2 and (out / "labels.png").is_file()
    assert (out / "data_summary.txt").is_file()
    argv[3] = "train"
    argv += ["--num", "1", "--augmented", "--config-file", str(config)]
    paths = tool.main(tool.parse_args(argv))
    with Image.open(paths[0]) as image:  # enlarged for readability from the 96 px input
        assert image.size == (512, 512)


def test_visualize_data_tool_rejects_a_missing_split(export, tmp_path):
    tool = _tool()
    argv = ["--dataset-root", str(export), "--split", "test", "--output", str(tmp_path)]
    with pytest.raises(UserError, match="no test split"):
        tool.main(tool.parse_args(argv))


def test_data_benchmark_runs(tmp_path):
    result = data_benchmark.run(str(tmp_path), num_images=20)
    assert result["num_images"] == 20 and result["num_annotations"] == 60
    assert result["dataset_get_s"] > 0 and result["register_s"] > 0
    assert json.loads((tmp_path / "data" / "data_benchmark.json").read_text()) == result
    assert not [n for n in DatasetCatalog.list() if n.startswith("trashpole_benchmark")]


# --- found with real Roboflow exports (docs/real_exports.md) ---------------------------------


def _mixed(d):
    """Box-only annotations beside polygons, as in Roboflow projects that mix both tools."""
    for a in d["annotations"][::2]:
        a["segmentation"] = []


def test_summary_and_overlays_of_a_box_model_export(export, tmp_path):
    edit_json(export / "train" / ANNOTATION_FILE, _mixed)
    names = register_roboflow_splits("tp", str(export), masks=False)
    summary = summarize_dataset([names["train"]])
    stats = summary["splits"]["tp_train"]
    assert stats["instances"] == 5 and stats["crowd_instances"] == 1
    # box-only instances are sized by their box: the pole 20 x 52 is medium, the can small
    assert stats["object_sizes"] == {"small": 2, "medium": 3, "large": 0}
    paths = visualize_dataset(names["train"], str(tmp_path / "vis"), num=None)
    assert len(paths) == 4 and all(os.path.isfile(p) for p in paths)


def test_summary_reuses_the_check_of_the_loader(export, caplog):
    names = register_roboflow_splits("tp", str(export))
    with caplog.at_level(logging.WARNING, logger="trashpole"):
        DatasetCatalog.get(names["valid"])
        summary = summarize_dataset([names["valid"]])
    assert summary["splits"]["tp_valid"]["problems"] == {"image_missing": 1}
    assert caplog.text.count("valid/_annotations.coco.json: kept 2/3 images") == 1
