"""Registration of Roboflow exports: split discovery, classes, metadata, idempotency."""

import logging
import os
import re
import shutil

import pytest
import torch
from conftest import ANNOTATION_FILE, edit_json, object_box, write_tiny_export
from detectron2.data import DatasetCatalog, MetadataCatalog

from trashpole.data import DatasetError, get_class_names, register_roboflow_splits

pytestmark = pytest.mark.usefixtures("clean_catalogs")


def test_registers_every_split_with_metadata(tiny_export):
    names = register_roboflow_splits("tp", str(tiny_export))
    assert names == {"train": "tp_train", "valid": "tp_valid", "test": "tp_test"}
    meta = MetadataCatalog.get("tp_valid")
    assert meta.thing_classes == ["pole", "trash-can"]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1}
    assert meta.evaluator_type == "coco"
    assert meta.source_json == str(tiny_export / "valid" / ANNOTATION_FILE)
    assert meta.image_root == str(tiny_export / "valid")
    assert meta.dataset_root == str(tiny_export)
    # COCOEvaluator would use json_file as ground truth and see the superclass as a class
    assert not hasattr(meta, "json_file")
    dicts = DatasetCatalog.get("tp_train")
    assert len(dicts) == 3
    assert all(os.path.isabs(d["file_name"]) for d in dicts)
    assert {a["category_id"] for d in dicts for a in d["annotations"]} == {0, 1}


@pytest.mark.parametrize("folder", ["val", "validation"])
def test_val_folder_names_register_as_valid(tmp_path, folder):
    root = write_tiny_export(tmp_path, splits=("train", folder))
    names = register_roboflow_splits("tp", str(root))
    assert names == {"train": "tp_train", "valid": "tp_valid"}
    assert len(DatasetCatalog.get("tp_valid")) == 3


def test_missing_test_split_is_fine_and_logged(tmp_path, caplog):
    root = write_tiny_export(tmp_path, splits=("train", "valid"))
    with caplog.at_level(logging.INFO, logger="trashpole"):
        names = register_roboflow_splits("tp", str(root))
    assert "test" not in names and "tp_test" not in DatasetCatalog.list()
    assert "no ['test'] split" in caplog.text


def test_split_folder_without_json_is_an_error_naming_it(tiny_export):
    os.remove(tiny_export / "test" / ANNOTATION_FILE)
    with pytest.raises(DatasetError, match=f"{tiny_export / 'test'}: split folder without"):
        register_roboflow_splits("tp", str(tiny_export))


def test_other_json_name_is_used_when_it_is_the_only_one(tiny_export):
    os.rename(tiny_export / "test" / ANNOTATION_FILE, tiny_export / "test" / "instances.json")
    register_roboflow_splits("tp", str(tiny_export))
    assert MetadataCatalog.get("tp_test").source_json.endswith("instances.json")


def test_two_folders_for_one_split_are_an_error(tmp_path):
    root = write_tiny_export(tmp_path, splits=("train", "valid", "val"))
    with pytest.raises(DatasetError, match=r"\['valid', 'val'\] all look like the valid split"):
        register_roboflow_splits("tp", str(root))


def test_missing_root_and_split_folder_given_as_root(tiny_export):
    with pytest.raises(DatasetError, match="dataset root not found"):
        register_roboflow_splits("tp", str(tiny_export / "nope"))
    with pytest.raises(DatasetError, match="pass its parent folder"):
        register_roboflow_splits("tp", str(tiny_export / "train"))


def test_registration_is_lazy(tiny_export):
    for name in os.listdir(tiny_export / "train"):
        if name.endswith(".jpg"):
            os.remove(tiny_export / "train" / name)
    register_roboflow_splits("tp", str(tiny_export))  # images are not looked at here
    with pytest.raises(DatasetError, match="image_missing: 3"):
        DatasetCatalog.get("tp_train")


def test_registering_twice_is_harmless_and_another_root_replaces(tmp_path):
    first = write_tiny_export(tmp_path / "a", num_images=2)
    second = write_tiny_export(tmp_path / "b", splits=("train", "valid"), num_images=4)
    register_roboflow_splits("tp", str(first))
    assert register_roboflow_splits("tp", str(first))["test"] == "tp_test"
    assert len(DatasetCatalog.get("tp_train")) == 2
    register_roboflow_splits("tp", str(second))
    assert len(DatasetCatalog.get("tp_train")) == 4
    assert MetadataCatalog.get("tp_train").dataset_root == str(second)
    assert "tp_test" not in DatasetCatalog.list()  # the old root's split is gone


def test_name_taken_by_a_foreign_data_set_is_an_error(tiny_export):
    DatasetCatalog.register("tp_train", lambda: [])
    with pytest.raises(DatasetError, match="already registered by something else"):
        register_roboflow_splits("tp", str(tiny_export))


def test_roboflow_superclass_is_not_a_class(tiny_export):
    assert get_class_names(str(tiny_export)) == ["pole", "trash-can"]


def test_categories_one_to_n_without_superclass(tmp_path):
    root = write_tiny_export(tmp_path, superclass=None)
    assert get_class_names(str(root)) == ["pole", "trash-can"]
    register_roboflow_splits("tp", str(root))
    assert MetadataCatalog.get("tp_train").thing_dataset_id_to_contiguous_id == {1: 0, 2: 1}


def _renumber(mapping, supercategory="none"):
    """An edit that renumbers the categories {old id: new id} (and drops the rest)."""

    def edit(data):
        names = {c["id"]: c["name"] for c in data["categories"]}
        data["categories"] = [
            {"id": new, "name": names[old], "supercategory": supercategory}
            for old, new in mapping.items()
        ]
        for a in data["annotations"]:
            a["category_id"] = mapping[a["category_id"]]

    return edit


def test_plain_coco_ids_from_zero_with_annotations_on_zero(tmp_path):
    root = write_tiny_export(tmp_path, splits=("train",), superclass=None)
    edit_json(root / "train" / ANNOTATION_FILE, _renumber({1: 0, 2: 1}))
    assert get_class_names(str(root)) == ["pole", "trash-can"]
    register_roboflow_splits("tp", str(root))
    dicts = DatasetCatalog.get("tp_train")
    assert [a["category_id"] for a in dicts[0]["annotations"]] == [0, 1]


def test_valid_orders_and_numbers_categories_differently(tiny_export):
    def edit(data):  # valid lists trash-can first, with other ids
        data["categories"] = [
            {"id": 0, "name": "trash-poles", "supercategory": "none"},
            {"id": 3, "name": "trash-can", "supercategory": "trash-poles"},
            {"id": 7, "name": "pole", "supercategory": "trash-poles"},
        ]
        for a in data["annotations"]:
            a["category_id"] = {1: 7, 2: 3}[a["category_id"]]

    edit_json(tiny_export / "valid" / ANNOTATION_FILE, edit)
    register_roboflow_splits("tp", str(tiny_export))
    assert MetadataCatalog.get("tp_valid").thing_dataset_id_to_contiguous_id == {7: 0, 3: 1}
    for d in DatasetCatalog.get("tp_valid"):
        for a in d["annotations"]:  # the object drawn for class k must get class k
            x0, y0, x1, y1 = object_box(a["category_id"], 2, d["image_id"], 64)
            assert a["bbox"] == [x0, y0, x1 - x0, y1 - y0]


def test_class_that_train_lacks_is_a_clear_error(tiny_export):
    def edit(data):
        data["categories"][2]["name"] = "Trash-Can"

    edit_json(tiny_export / "valid" / ANNOTATION_FILE, edit)
    message = (
        "valid/_annotations.coco.json: category 2 'Trash-Can' (did you mean 'trash-can'?) "
        "is used by 3 annotations but is not one of the classes ['pole', 'trash-can']"
    )
    with pytest.raises(DatasetError, match=re.escape(message)):
        register_roboflow_splits("tp", str(tiny_export))


def test_split_without_one_class_still_maps_every_class(tiny_export):
    def edit(data):
        data["categories"] = [c for c in data["categories"] if c["name"] != "pole"]
        data["annotations"] = [a for a in data["annotations"] if a["category_id"] != 1]

    edit_json(tiny_export / "test" / ANNOTATION_FILE, edit)
    register_roboflow_splits("tp", str(tiny_export))
    # COCOEvaluator needs a one-to-one mapping that covers every class
    assert MetadataCatalog.get("tp_test").thing_dataset_id_to_contiguous_id == {3: 0, 2: 1}
    dicts = DatasetCatalog.get("tp_test")
    assert {a["category_id"] for d in dicts for a in d["annotations"]} == {1}


def test_strict_registration_fails_on_load(tiny_export):
    shutil.copyfile(tiny_export / "train" / "train_000.jpg", tiny_export / "train" / "extra.jpg")
    os.remove(tiny_export / "train" / "train_001.jpg")
    register_roboflow_splits("tp", str(tiny_export), strict=True)
    with pytest.raises(DatasetError, match="image 1 \\(train_001.jpg\\) is not on disk"):
        DatasetCatalog.get("tp_train")


def test_coco_evaluator_sees_only_the_real_classes(tiny_export, tmp_path):
    """Registered metadata (no json_file) lets COCOEvaluator build its ground truth from our
    dicts: perfect predictions score AP 100 on both classes."""
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import Boxes, BoxMode, Instances, PolygonMasks

    register_roboflow_splits("tp", str(tiny_export))
    evaluator = COCOEvaluator("tp_valid", output_dir=str(tmp_path), allow_cached_coco=False)
    evaluator.reset()
    for d in DatasetCatalog.get("tp_valid"):
        annos = d["annotations"]
        pred = Instances((d["height"], d["width"]))
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
        pred.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
        pred.scores = torch.ones(len(annos))
        pred.pred_classes = torch.tensor([a["category_id"] for a in annos])
        masks = PolygonMasks([a["segmentation"] for a in annos])
        pred.pred_masks = torch.stack(
            [torch.from_numpy(m) for m in _rasterize(masks, d["height"], d["width"])]
        )
        evaluator.process([{"image_id": d["image_id"]}], [{"instances": pred}])
    results = evaluator.evaluate()
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["segm"]["AP"] == pytest.approx(100.0)
    assert set(k for k in results["segm"] if k.startswith("AP-")) == {"AP-pole", "AP-trash-can"}


def _rasterize(masks, height, width):
    from detectron2.structures.masks import polygons_to_bitmask

    return [polygons_to_bitmask(p, height, width) for p in masks.polygons]


# --- found with real Roboflow exports (docs/real_exports.md) ---------------------------------


def test_split_is_checked_once_and_reported_once(tiny_export, caplog):
    os.remove(tiny_export / "train" / "train_001.jpg")
    register_roboflow_splits("tp", str(tiny_export))
    with caplog.at_level(logging.INFO, logger="trashpole"):
        first = DatasetCatalog.get("tp_train")
        first[0]["annotations"].clear()  # callers may change what they get
        second = DatasetCatalog.get("tp_train")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "image_missing: 1" in warnings[0].getMessage()
    assert [d["image_id"] for d in second] == [0, 2]
    assert len(second[0]["annotations"]) == 2


def test_split_is_checked_again_when_its_json_changes(tiny_export):
    register_roboflow_splits("tp", str(tiny_export))
    assert len(DatasetCatalog.get("tp_train")) == 3
    # a different size, so the change shows even where mtime resolution is coarse
    edit_json(tiny_export / "train" / ANNOTATION_FILE, lambda d: d["images"].pop())
    assert len(DatasetCatalog.get("tp_train")) == 2


def test_strict_registration_fails_on_every_load(tiny_export):
    os.remove(tiny_export / "train" / "train_001.jpg")
    register_roboflow_splits("tp", str(tiny_export), strict=True)
    for _ in range(2):
        with pytest.raises(DatasetError, match="1 problems"):
            DatasetCatalog.get("tp_train")


def test_box_only_export_registers_for_a_box_model(tmp_path):
    root = write_tiny_export(tmp_path, splits=("train", "valid"))
    for split in ("train", "valid"):
        edit_json(
            root / split / ANNOTATION_FILE,
            lambda d: [a.update(segmentation=[]) for a in d["annotations"]],
        )
    register_roboflow_splits("tp", str(root), masks=False)
    assert MetadataCatalog.get("tp_train").masks is False
    dicts = DatasetCatalog.get("tp_train")
    assert sum(len(d["annotations"]) for d in dicts) == 6
    assert all("segmentation" not in a for d in dicts for a in d["annotations"])
    register_roboflow_splits("tp", str(root))  # a mask model: the same export is refused
    with pytest.raises(DatasetError, match="boxes without a mask"):
        DatasetCatalog.get("tp_train")


def test_missing_train_split_warns_how_to_train(tmp_path, caplog):
    root = write_tiny_export(tmp_path, splits=("valid", "test"))
    with caplog.at_level(logging.WARNING, logger="trashpole"):
        names = register_roboflow_splits("tp", str(root))
    assert names == {"valid": "tp_valid", "test": "tp_test"}
    assert "has no train/ split (only ['test', 'valid'])" in caplog.text
    assert "DATASETS.TRAIN \"('tp_valid',)\"" in caplog.text
