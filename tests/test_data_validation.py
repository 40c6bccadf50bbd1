"""Loading one annotation file: the round trip, masks, and every kind of bad record."""

import logging
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from conftest import ANNOTATION_FILE, edit_json, load_json, write_tiny_export
from detectron2.structures import BoxMode
from PIL import Image

from synthetic import CLASS_NAMES
from trashpole.data import DatasetError, load_roboflow_json, validate_coco_json
from trashpole.data.validation import required_mask_format


@pytest.fixture
def split(tmp_path):
    """The train split folder of a tiny export (3 images, 2 objects each, 64 px)."""
    return write_tiny_export(tmp_path, splits=("train",)) / "train"


def load(folder, **kwargs):
    """(dicts, report) of a split folder."""
    return validate_coco_json(str(folder / ANNOTATION_FILE), str(folder), **kwargs)


def edit(folder, fn):
    return edit_json(folder / ANNOTATION_FILE, fn)


def messages(report, kind):
    return [p.message for p in report.problems if p.kind == kind]


def test_round_trip_matches_source_json(split):
    dicts, report = load(split)
    data = load_json(split / ANNOTATION_FILE)
    assert report.problems == []
    assert [d["image_id"] for d in dicts] == [img["id"] for img in data["images"]]
    for d, img in zip(dicts, data["images"]):
        assert d["file_name"] == str(split / img["file_name"])
        assert (d["width"], d["height"]) == (img["width"], img["height"])
        source = [a for a in data["annotations"] if a["image_id"] == img["id"]]
        assert len(d["annotations"]) == len(source)
        for a, s in zip(d["annotations"], source):
            assert a["bbox"] == s["bbox"] and a["bbox_mode"] == BoxMode.XYWH_ABS
            assert a["segmentation"] == s["segmentation"]
            assert a["category_id"] == s["category_id"] - 1  # Roboflow ids 1, 2 -> 0, 1
            assert a["iscrowd"] == 0


def test_several_polygons_per_instance_are_kept(split):
    second = [2, 2, 5, 2, 5, 5, 2, 5]
    edit(split, lambda d: d["annotations"][0]["segmentation"].append(second))
    dicts, report = load(split)
    assert report.problems == []
    assert dicts[0]["annotations"][0]["segmentation"][1] == second


def _mask(size=64):
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[10:30, 20:25] = 1
    mask[12:14, 40:50] = 1  # two parts
    return mask


def _uncompressed_rle(mask):
    """COCO's uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": list(mask.shape), "counts": runs}


@pytest.mark.parametrize("compressed", [False, True])
def test_rle_masks_load_as_compressed_rle(split, compressed):
    mask = _mask()
    if compressed:
        rle = mask_util.encode(np.asfortranarray(mask))
        rle = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    else:
        rle = _uncompressed_rle(mask)
    edit(split, lambda d: d["annotations"][0].update(segmentation=rle))
    dicts, report = load(split)
    assert report.problems == []
    segm = dicts[0]["annotations"][0]["segmentation"]
    assert isinstance(segm["counts"], str)
    decoded = mask_util.decode({"size": segm["size"], "counts": segm["counts"].encode()})
    np.testing.assert_array_equal(decoded, mask)
    assert required_mask_format(dicts) == "bitmask"


def test_rle_of_the_wrong_size_is_dropped(split):
    rle = _uncompressed_rle(_mask(32))
    edit(split, lambda d: d["annotations"][0].update(segmentation=rle))
    dicts, report = load(split)
    assert len(dicts[0]["annotations"]) == 1
    assert messages(report, "rle_invalid") == [
        "train/_annotations.coco.json: annotation 0 has RLE size [32, 32]; "
        "the image is [height, width] = [64, 64]"
    ]


def test_crowd_annotations_are_kept_as_crowd(split):
    rle = _uncompressed_rle(_mask())
    edit(split, lambda d: d["annotations"][1].update(iscrowd=1, segmentation=rle))
    dicts, _ = load(split)
    assert [a["iscrowd"] for a in dicts[0]["annotations"]] == [0, 1]
    assert required_mask_format(dicts) == "polygon"  # crowd masks are not trained on


def test_images_without_annotations_are_kept(tmp_path):
    folder = write_tiny_export(tmp_path, splits=("train",), empty_images=2) / "train"
    dicts, report = load(folder)
    assert len(dicts) == 5 and [len(d["annotations"]) for d in dicts] == [2, 2, 2, 0, 0]
    assert report.problems == []


def test_missing_image_is_skipped_with_one_warning(split, caplog):
    os.remove(split / "train_001.jpg")
    with caplog.at_level(logging.INFO, logger="trashpole"):
        dicts = load_roboflow_json(str(split / ANNOTATION_FILE), str(split))
    assert [d["image_id"] for d in dicts] == [0, 2]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "kept 2/3 images and 4/6 annotations; skipped image (image_missing: 1)" in (
        warnings[0].getMessage()
    )
    assert "2 annotations went with skipped images" in warnings[0].getMessage()
    assert f"image 1 (train_001.jpg) is not on disk at {split / 'train_001.jpg'}" in caplog.text


def test_strict_raises_listing_the_problems(split):
    os.remove(split / "train_001.jpg")
    edit(split, lambda d: d["annotations"][0].update(category_id=5))
    with pytest.raises(DatasetError) as info:
        load_roboflow_json(str(split / ANNOTATION_FILE), str(split), strict=True)
    text = str(info.value)
    assert "2 problems (strict mode)" in text
    assert "train/_annotations.coco.json: image 1 (train_001.jpg) is not on disk" in text
    assert (
        "train/_annotations.coco.json: annotation 0 refers to category 5, "
        "which is not in categories [0, 1, 2]" in text
    )


def test_notes_do_not_fail_strict_loading(split):
    edit(split, lambda d: [img.pop("width") for img in d["images"]])
    edit(split, lambda d: [img.pop("height") for img in d["images"]])
    dicts = load_roboflow_json(str(split / ANNOTATION_FILE), str(split), strict=True)
    assert dicts[0]["width"] == 64 and dicts[0]["height"] == 64


@pytest.mark.parametrize(
    "content, large",
    [(b"not an image", False), (b"", False), ("truncated", False), ("truncated", True)],
)
def test_unreadable_and_truncated_images_are_skipped(split, content, large):
    path = split / "train_002.jpg"
    if large:  # noise does not compress: a file big enough to be checked by its end marker
        noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).resize((256, 256)).save(path, quality=95)
        edit(split, lambda d: d["images"][2].update(width=256, height=256))
        assert load(split)[1].problems == []  # complete: fine
    if content == "truncated":
        content = path.read_bytes()[: os.path.getsize(path) // 2]
    path.write_bytes(content)
    dicts, report = load(split)
    assert len(dicts) == 2
    assert len(messages(report, "image_unreadable")) == 1


def test_truncated_png_is_skipped(tmp_path):
    folder = write_tiny_export(tmp_path, splits=("train",), image_ext="png") / "train"
    path = folder / "train_000.png"
    path.write_bytes(path.read_bytes()[:-30])
    _, report = load(folder)
    assert list(report.counts()) == ["image_unreadable"]


def test_size_mismatch_is_skipped(split):
    edit(split, lambda d: d["images"][0].update(width=640))
    dicts, report = load(split)
    assert len(dicts) == 2
    assert messages(report, "image_size_mismatch") == [
        "train/_annotations.coco.json: image 0 (train_000.jpg) is 64x64 on disk but 640x64 "
        "in the JSON"
    ]


@pytest.mark.parametrize("file_name", ["../escape.jpg", "/etc/passwd", "sub/../../x.jpg"])
def test_file_names_that_leave_the_split_folder_are_skipped(split, file_name):
    (split.parent / "escape.jpg").write_bytes((split / "train_000.jpg").read_bytes())
    edit(split, lambda d: d["images"][0].update(file_name=file_name))
    dicts, report = load(split)
    assert [d["image_id"] for d in dicts] == [1, 2]
    assert report.counts() == {"image_path_outside": 1}


def test_file_names_in_subfolders_are_fine(split):
    os.makedirs(split / "images")
    os.rename(split / "train_000.jpg", split / "images" / "train_000.jpg")
    edit(split, lambda d: d["images"][0].update(file_name="images/train_000.jpg"))
    dicts, report = load(split)
    assert report.problems == [] and dicts[0]["file_name"] == str(split / "images/train_000.jpg")


def test_duplicate_image_ids(split):
    def duplicate(d):
        d["images"].append(dict(d["images"][0]))  # the same record twice: keep one
        d["images"].append(dict(d["images"][1], file_name="train_002.jpg"))  # ambiguous

    edit(split, duplicate)
    dicts, report = load(split)
    assert [d["image_id"] for d in dicts] == [0, 2]
    assert report.counts() == {"duplicate_image_id": 3}
    assert report.stats["annotations_of_skipped_images"] == 2


def test_duplicate_annotation_ids(split):
    def duplicate(d):
        d["annotations"].append(dict(d["annotations"][0]))  # repeat: dropped
        d["annotations"].append(dict(d["annotations"][2], id=1))  # other object, same id: kept

    edit(split, duplicate)
    dicts, report = load(split)
    assert [len(d["annotations"]) for d in dicts] == [2, 3, 2]
    assert report.counts() == {"duplicate_annotation": 1, "duplicate_annotation_id": 1}


def test_unknown_images_and_categories_are_dropped(split):
    def break_refs(d):
        d["annotations"][0]["image_id"] = 99
        d["annotations"][1]["category_id"] = 5

    edit(split, break_refs)
    dicts, report = load(split)
    assert [len(d["annotations"]) for d in dicts] == [0, 2, 2]
    source = "train/_annotations.coco.json"
    assert messages(report, "unknown_image") == [
        f"{source}: annotation 0 refers to image 99, which is not listed"
    ]
    assert messages(report, "unknown_category") == [
        f"{source}: annotation 1 refers to category 5, which is not in categories [0, 1, 2]"
    ]


def test_annotations_on_the_superclass_make_it_a_class(split):
    edit(split, lambda d: d["annotations"][0].update(category_id=0))
    assert load(split)[0][0]["annotations"][0]["category_id"] == 0  # its own classes: 3
    with pytest.raises(DatasetError, match="category 0 'trash-poles' .*is used by 1 annotations"):
        load(split, class_names=list(CLASS_NAMES))


def test_degenerate_polygons_are_dropped(split):
    def degenerate(d):
        anns = d["annotations"]
        anns[0]["segmentation"].insert(0, [1, 1, 5, 5])  # 2 points; the good one stays
        anns[1]["segmentation"] = [[1, 1, 5, 5, 9, 9]]  # collinear: zero area
        anns[2]["segmentation"] = [[1, 1, 5, 5, 9]]  # odd length
        anns[3]["segmentation"] = [[100, 100, 120, 100, 120, 120]]  # outside the image

    edit(split, degenerate)
    dicts, report = load(split)
    assert [len(d["annotations"]) for d in dicts] == [1, 0, 2]
    assert len(dicts[0]["annotations"][0]["segmentation"]) == 1
    assert report.counts() == {
        "segmentation_empty": 3,
        "polygon_degenerate": 3,
        "polygon_outside": 1,
    }
    assert "annotation 0 polygon 0 has 2 points; needs at least 3" in report.problems[0].message


def test_boxes_are_clipped_or_dropped(split):
    def move(d):
        anns = d["annotations"]
        anns[0]["bbox"] = [-10, 6, 36, 52]  # 10 px outside: clipped
        anns[1]["bbox"] = [38, 26, 20.5, 38.5]  # 0.5 px outside: rounding, clipped silently
        anns[2]["bbox"] = [70, 6, 20, 52]  # nothing left: dropped
        anns[3]["bbox"] = [1, 2, 0, 5]  # empty: rebuilt from the polygon
        anns[4].pop("bbox")

    edit(split, move)
    dicts, report = load(split)
    assert report.counts() == {"bbox_outside": 1, "bbox_invalid": 2, "bbox_clipped": 1}
    assert dicts[0]["annotations"][0]["bbox"] == [0.0, 6.0, 26.0, 52.0]
    assert dicts[0]["annotations"][1]["bbox"] == [38.0, 26.0, 20.5, 38.0]
    assert len(dicts[1]["annotations"]) == 1
    polygon = dicts[1]["annotations"][0]["segmentation"][0]
    x0, y0, x1, y1 = min(polygon[0::2]), min(polygon[1::2]), max(polygon[0::2]), max(polygon[1::2])
    assert dicts[1]["annotations"][0]["bbox"] == [x0, y0, x1 - x0, y1 - y0]


def test_annotations_without_masks_are_dropped_and_flat_polygons_wrapped(split):
    def change(d):
        d["annotations"][0]["segmentation"] = []
        d["annotations"][1]["segmentation"] = d["annotations"][1]["segmentation"][0]

    edit(split, change)
    dicts, report = load(split)
    assert report.counts() == {"segmentation_missing": 1, "segmentation_flat": 1}
    assert len(dicts[0]["annotations"]) == 1
    assert isinstance(dicts[0]["annotations"][0]["segmentation"][0], list)


def test_nothing_left_is_an_error(split):
    edit(split, lambda d: [a.update(category_id=7) for a in d["annotations"]])
    with pytest.raises(DatasetError, match="Nothing usable is left"):
        load(split)


def test_bad_json_and_bad_categories_are_clear_errors(split):
    (split / ANNOTATION_FILE).write_text("{not json")
    with pytest.raises(DatasetError, match="train/_annotations.coco.json: not valid JSON"):
        load(split)
    (split / ANNOTATION_FILE).write_text('{"images": [], "categories": [{"id": 1}]}')
    with pytest.raises(DatasetError, match="needs an integer 'id' and a 'name'"):
        load(split)


def test_validation_without_file_checks_trusts_the_json(split):
    os.remove(split / "train_000.jpg")
    dicts, report = load(split, check_images=False)
    assert len(dicts) == 3 and report.problems == []


# --- quirks of real Roboflow exports (docs/real_exports.md) ---------------------------------


def _box_only(d, keep_polygon_of=()):
    """Turn every annotation (but those listed) into Roboflow's box-only form."""
    for k, a in enumerate(d["annotations"]):
        if k not in keep_polygon_of:
            a["segmentation"] = []


def test_box_only_export_is_a_clear_error_for_a_mask_model(split):
    edit(split, _box_only)
    with pytest.raises(DatasetError) as info:
        load(split)
    text = str(info.value)
    assert text.startswith("train/_annotations.coco.json: 6 of its 6 annotations are boxes")
    assert "Instance Segmentation" in text and "MODEL.MASK_ON False" in text


def test_box_only_annotations_are_kept_without_masks(split):
    source = edit(split, lambda d: _box_only(d, keep_polygon_of=(1,)))
    dicts, report = load(split, masks=False)
    assert report.problems == []
    first, second = dicts[0]["annotations"]
    assert "segmentation" not in first and first["bbox"] == source["annotations"][0]["bbox"]
    assert second["segmentation"] == source["annotations"][1]["segmentation"]
    assert sum(len(d["annotations"]) for d in dicts) == 6


def test_box_only_annotations_are_counted_with_a_hint_for_a_mask_model(split):
    edit(split, lambda d: _box_only(d, keep_polygon_of=(1,)))
    dicts, report = load(split)
    assert report.counts() == {"segmentation_missing": 5}
    assert sum(len(d["annotations"]) for d in dicts) == 1
    assert "5 of 6 annotations are boxes without a mask" in report.summary()
    assert "MODEL.MASK_ON False" in report.summary()


def test_empty_polygon_list_counts_as_box_only(split):
    edit(split, lambda d: d["annotations"][0].update(segmentation=[[]]))
    _, report = load(split)
    assert report.counts() == {"segmentation_missing": 1}
    dicts, report = load(split, masks=False)
    assert report.problems == [] and "segmentation" not in dicts[0]["annotations"][0]


def test_box_only_annotation_without_a_usable_box_is_dropped(split):
    edit(split, lambda d: d["annotations"][0].update(segmentation=[], bbox=[3, 3, 0, 10]))
    dicts, report = load(split, masks=False)
    assert report.counts() == {"bbox_missing": 1}
    assert len(dicts[0]["annotations"]) == 1


def test_superclass_named_like_the_only_class(split):
    # Roboflow names the dataset-level entry after the project, often the class name itself
    def rename(d):
        d["categories"] = [
            {"id": 0, "name": "car", "supercategory": "none"},
            {"id": 1, "name": "car", "supercategory": "car"},
        ]
        for a in d["annotations"]:
            a["category_id"] = 1

    edit(split, rename)
    dicts, report = load(split)
    assert report.problems == []
    assert {a["category_id"] for d in dicts for a in d["annotations"]} == {0}
