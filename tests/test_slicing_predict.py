"""Sliced inference wherever prediction goes, with a tiny trained model (tiny_model.train_tiny_run:
64 px test size, trained on two 64 px images of 4 objects each).

The high-resolution image is those two images tiled 2 x 2 (128 x 128, 16 objects): the whole-
image pass shrinks it 2x and loses the thin poles, 64 px slices see each tile at the size the
model was trained at. Checked: the predictor on both backends (slices in batches through the
backend, then the whole image), ``auto`` and its log, tools/predict.py's flags (folder,
detections.geojson), ``--track`` with stable IDs, and ``--eval-only`` with slicing."""

import json
import logging
import os
import runpy
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from conftest import save_json
from detectron2.structures import BitMasks, Instances
from test_geo import gps_tags, write_photo
from tiny_model import REPO, train_tiny_run, write_tiny_config

from benchmarks.training import synthetic_samples
from synthetic import CLASS_NAMES
from trashpole.config import load_config
from trashpole.errors import UserError
from trashpole.predict import TrashPolePredictor, load_predictor, track_paths
from trashpole.predict.sliced_model import SlicedModel
from trashpole.predict.slicing import slice_opts
from trashpole.predict.track import match_to_truth
from trashpole.run import backend_opts, open_run

# the two tiles of each row of the 2 x 2 image
LAYOUT = ((0, 1), (1, 0))
SLICE = {"slice": 64, "overlap": 0.25}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    """A tiny run trained on ``synthetic_samples(64, 2, seed=0)``."""
    tmp = tmp_path_factory.mktemp("sliced_run")
    train_tiny_run(tmp)
    return str(tmp)


def tiled(layout=LAYOUT):
    """(image [128, 128, 3] BGR, true boxes Tensor[16, 4] XYXY, true classes [16])."""
    samples = synthetic_samples(64, num_images=2, seed=0)
    rows, boxes, classes = [], [], []
    for r, row in enumerate(layout):
        rows.append(np.concatenate([samples[k]["image"] for k in row], axis=1))
        for c, k in enumerate(row):
            boxes.append(samples[k]["boxes"] + np.float32([64 * c, 64 * r] * 2))
            classes += samples[k]["classes"].tolist()
    return np.concatenate(rows, axis=0), torch.from_numpy(np.concatenate(boxes)), classes


def found(instances, boxes, classes, min_score=0.5) -> int:
    """True objects matched one to one (same class, box IoU >= 0.4: the tiny model's boxes of
    4 px wide poles are loose) by a detection scoring at least ``min_score``."""
    keep = instances.scores >= min_score
    boxes_found, classes_found = instances.pred_boxes.tensor[keep], instances.pred_classes[keep]
    pairs = match_to_truth(boxes_found, classes_found.tolist(), boxes, classes, iou_thresh=0.4)
    return len(pairs)


class Recorder:
    """Wraps the backend under a SlicedModel and records each call's input sizes."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.description = inner.description

    def __call__(self, inputs):
        self.calls.append([(i["height"], i["width"], *i["image"].shape[1:]) for i in inputs])
        return self.inner(inputs)


@pytest.mark.parametrize("backend", ["pytorch", "openvino"])
def test_sliced_prediction_through_the_backend_finds_the_small_objects(trained, backend):
    image, boxes, classes = tiled()
    plain = load_predictor(trained, score_thresh=0.5, backend=backend)(image)["instances"]
    predictor = load_predictor(trained, score_thresh=0.5, backend=backend, **SLICE)
    streams = " on 2 streams" if backend == "openvino" else ""  # WORKERS 2
    assert predictor.backend.endswith(f"sliced on 64px overlap 0.25 batch 4{streams} +whole")
    recorder = predictor.model.inner = Recorder(predictor.model.inner)
    out = predictor(image)["instances"]
    # 128 px, 64 px slices, overlap 0.25: stride 48, 3 x 3 slices at 0, 32, 64; in batches of 4
    # at scale 1, then the whole image resized to the 64 px test size
    slice_call = (64, 64, 64, 64)
    if backend == "pytorch":
        assert recorder.calls == [
            [slice_call] * 4,
            [slice_call] * 4,
            [slice_call],
            [(128, 128, 64, 64)],
        ]
    else:  # OpenVINO takes a batch's slices one image a call, WORKERS of them in flight
        assert recorder.calls == [[slice_call]] * 9 + [[(128, 128, 64, 64)]]
    assert out.image_size == (128, 128) and out.pred_masks.shape == (len(out), 128, 128)
    assert found(plain, boxes, classes) <= 2  # shrunk 2x, the poles are 2 px wide
    assert found(out, boxes, classes) >= 15  # of 16
    # each mask lies in its box, which is the box of the mask
    for box, mask in zip(out.pred_boxes.tensor.int().tolist(), out.pred_masks):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box


def test_openvino_runs_the_slices_of_a_batch_together_with_the_same_result(trained):
    import threading

    image, _, _ = tiled()
    outputs, most = {}, {}
    for workers in (1, 2):
        opts = ["TRASHPOLE.INFERENCE.BF16", "False", "TRASHPOLE.INFERENCE.WORKERS", str(workers)]
        predictor = load_predictor(
            trained, score_thresh=0.5, backend="openvino", opts=opts, **SLICE
        )
        inner, lock, now = predictor.model.inner, threading.Lock(), [0]
        most[workers] = 0

        def recorded(inputs, inner=inner, lock=lock, now=now, workers=workers):
            with lock:
                now[0] += 1
                most[workers] = max(most[workers], now[0])
            try:
                return inner(inputs)
            finally:
                with lock:
                    now[0] -= 1

        recorded.description = inner.description
        predictor.model.inner = recorded
        outputs[workers] = predictor(image)["instances"]
    # at most WORKERS slices in flight (2 of a batch of 4 were seen together on 2 cores)
    assert most[1] == 1 and most[2] == 2
    one, two = outputs[1], outputs[2]
    assert len(one) >= 15 and len(two) == len(one)
    assert torch.equal(one.pred_boxes.tensor, two.pred_boxes.tensor)
    assert torch.equal(one.scores, two.scores) and torch.equal(one.pred_masks, two.pred_masks)


def test_openvino_runs_a_batch_of_slices_on_a_copy_compiled_for_streams(trained):
    """WORKERS 2 on OpenVINO: the slices of a batch run on the backend compiled for 2 streams
    (made once, at the first sliced image), the whole image on the backend itself; the result
    is the one of one slice at a time on the backend (WORKERS 1), in f32."""
    image, _, _ = tiled()
    outputs, models = {}, {}
    for workers in (1, 2):
        opts = ["TRASHPOLE.INFERENCE.BF16", "False", "TRASHPOLE.INFERENCE.WORKERS", str(workers)]
        predictor = load_predictor(trained, backend="openvino", opts=opts, **SLICE)
        outputs[workers] = predictor(image)["instances"]
        models[workers] = predictor.model
    assert models[1].streamed_model() is models[1].inner  # one at a time: the backend itself
    streamed = models[2].streamed_model()
    assert streamed is not models[2].inner and streamed is models[2].streamed_model()
    assert streamed.description == "openvino f32 on 2 streams"
    assert streamed.stages["features"].compiled.get_property("NUM_STREAMS") == 2
    assert models[2].inner.stages["features"].compiled.get_property("NUM_STREAMS") == 1
    one, two = outputs[1], outputs[2]
    assert len(one) >= 15 and len(two) == len(one)
    assert torch.allclose(one.pred_boxes.tensor, two.pred_boxes.tensor, atol=1e-3)
    assert torch.allclose(one.scores, two.scores, atol=1e-4)
    assert (one.pred_masks != two.pred_masks).sum() <= 2 * len(one)
    off = ["TRASHPOLE.INFERENCE.STREAMS", "False"]  # the slices share the latency model
    shared = load_predictor(trained, backend="openvino", opts=off, **SLICE).model
    assert shared.streamed_model() is shared.inner
    assert shared.description.endswith("batch 4 +whole")


def test_auto_slices_only_large_images_and_says_so_once_per_size(trained, caplog):
    image, _, _ = tiled()
    small = cv2.resize(image, (96, 96))  # shrunk 1.5x by the 64 px test size: left whole
    plain = load_predictor(trained, backend="pytorch")
    auto = load_predictor(trained, backend="pytorch", slice="auto")
    with caplog.at_level(logging.INFO, logger="trashpole.predict.sliced_model"):
        outputs = auto.predict_batch([image, small, image, small, image], batch_size=2)
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("sliced_model")]
    assert lines == [
        "slicing (auto): a 128x128 image, shrunk 2.0x by the whole-image pass, at least 2x: "
        "9 slices of 64 px (overlap 0.2) + the whole image",
        "not slicing (auto): a 96x96 image, shrunk 1.5x by the whole-image pass, under 2x",
    ]
    expected = plain(small)["instances"]
    for k in (1, 3):  # run whole, exactly as without slicing
        got = outputs[k]["instances"]
        assert torch.equal(got.pred_boxes.tensor, expected.pred_boxes.tensor)
        assert torch.equal(got.pred_masks, expected.pred_masks)
    assert len(outputs[0]["instances"]) > len(plain(image)["instances"])


def test_slice_opts_and_the_config():
    mode, size, overlap = (f"TRASHPOLE.INFERENCE.SLICE.{k}" for k in ("MODE", "SIZE", "OVERLAP"))
    assert slice_opts() == []
    assert slice_opts("auto", 0.3) == [mode, "auto", overlap, "0.3"]
    assert slice_opts(800) == slice_opts("800") == [mode, "on", size, "800"]
    assert slice_opts(True) == [mode, "on"] and slice_opts("OFF") == [mode, "off"]
    with pytest.raises(UserError, match="give off, on, auto, or a slice side"):
        slice_opts("big")
    with pytest.raises(UserError, match=r"in \[0, 1\)"):
        slice_opts(overlap=1.5)


@pytest.fixture(scope="module")
def predict_tool():
    return SimpleNamespace(**runpy.run_path(str(REPO / "tools" / "predict.py")))


def test_predict_tool_slices_a_folder_with_gps(trained, tmp_path, predict_tool, capsys):
    image, boxes, classes = tiled()
    photos = tmp_path / "photos"
    photos.mkdir()
    write_photo(photos / "street.png", gps_tags("oslo"), pixels=image[:, :, ::-1])
    out = tmp_path / "out"
    argv = ["--run", trained, "--input", str(photos), "--output", str(out)]
    counts = predict_tool.main(argv + ["--slice", "64", "--overlap", "0.25"])
    records = json.loads((out / "street.json").read_text())["predictions"]
    assert counts["detections"] == len(records) >= 15 and counts["images_with_gps"] == 1
    geo = json.loads((out / "detections.geojson").read_text())
    assert len(geo["features"]) == len(records)
    whole = predict_tool.main(argv + ["--slice", "off", "--no-overlays"])
    assert whole["detections"] <= 2
    for bad in (["--slice", "big"], ["--overlap", "1.5"]):
        with pytest.raises(SystemExit) as exit_info:
            predict_tool.parse_args(argv + bad)
        assert exit_info.value.code == 2
    assert "give off, on, auto, or a slice side" in capsys.readouterr().err


def test_track_ids_are_stable_with_slicing(trained, tmp_path):
    """Five frames of the tiled scene moving 1 px right a frame, across the slice edges: the
    tracker follows every object, and most keep one ID.

    The tiny 64 px model detects some objects twice in a frame (19 detections of the 16 objects
    in the first frame), and the tracker then hands two of them a second ID in f32 (three with
    the PyTorch backend). OpenVINO runs f32 here: at bf16 the result depends on the CPU's
    rounding (0 to 4 objects with a second ID were seen), and on a CPU without bf16 it is f32
    anyway. That the merge and the tracker keep every ID across slice edges when the detections
    are exact is checked by the next test."""
    image, boxes, classes = tiled()
    padded = cv2.copyMakeBorder(image, 0, 0, 10, 0, cv2.BORDER_REPLICATE)
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(5):  # the scene shifts right: the window moves left
        cv2.imwrite(str(frames / f"frame_{k}.png"), padded[:, 10 - k : 138 - k])
    f32 = ["TRASHPOLE.INFERENCE.BF16", "False"]
    predictor = load_predictor(trained, score_thresh=0.5, backend="openvino", opts=f32, **SLICE)
    out = tmp_path / "out"
    # count_score 0: the tiny model's scores stay under the default count score
    summary = track_paths(predictor, str(frames), str(out), 3, False, count_score=0.0)
    assert summary["frames"] == 5
    ids = {}  # true object -> track IDs matched to it
    for k, frame in enumerate(json.loads((out / "frames_tracks.json").read_text())["frames"]):
        records = frame["predictions"]
        det = torch.tensor([r["bbox_xyxy"] for r in records], dtype=torch.float32).view(-1, 4)
        det_classes = [r["category_id"] for r in records]
        truth = boxes + torch.tensor([1.0 * k, 0, 1.0 * k, 0])
        for d, t in match_to_truth(det, det_classes, truth.clamp(max=128), classes, 0.4):
            ids.setdefault(t, set()).add(records[d]["track_id"])
    assert len(ids) >= 15
    switched = [t for t, v in ids.items() if len(v) > 1]
    assert len(switched) <= 2 and all(len(ids[t]) == 2 for t in switched), ids
    assert sum(summary["objects"].values()) >= 15


class RectangleFinder:
    """A backend that finds each object of :func:`_moving_scene` exactly (grey level 10 * (k + 1)
    in every channel) in an image at scale 1, and nothing in a resized one: the small objects
    a whole-image pass loses."""

    description = "rectangles"

    def __call__(self, inputs):
        outputs = []
        for item in inputs:
            height, width = item["height"], item["width"]
            labels = item["image"][0].round().to(torch.int64)
            found = [k for k in range(3) if (labels == 10 * (k + 1)).any()]
            if tuple(labels.shape) != (height, width):
                found = []
            masks = torch.zeros((len(found), height, width), dtype=torch.bool)
            for j, k in enumerate(found):
                masks[j] = labels == 10 * (k + 1)
            out = Instances((height, width))
            out.pred_masks = masks
            out.pred_boxes = BitMasks(masks).get_bounding_boxes()
            out.scores = torch.full((len(found),), 0.9)
            out.pred_classes = torch.tensor([k % 2 for k in found], dtype=torch.int64)
            outputs.append({"instances": out})
        return outputs


def _moving_scene(k):
    """Frame k of a 160 x 160 scene crossing the edges of 64 px slices (x and y at 0, 48, 96):
    a pole crossing x = 64, a bin crossing x = 112 and y = 48, a long pole across every row."""
    image = np.zeros((160, 160, 3), np.uint8)
    image[20:60, 58 + k : 64 + k] = 10  # pole, moves right
    image[40 + k : 52 + k, 104 + k : 116 + k] = 20  # bin, moves down and right
    image[10:150, 20 + k : 28 + k] = 30  # long pole, moves right
    return image


def test_track_ids_are_exact_with_slicing_over_a_backend_that_sees_exactly(tmp_path, trained):
    cfg = open_run(trained, opts=slice_opts(64, 0.25) + backend_opts("pytorch")).cfg
    predictor = TrashPolePredictor(cfg, model=SlicedModel(RectangleFinder(), cfg))
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(8):
        cv2.imwrite(str(frames / f"frame_{k}.png"), _moving_scene(k))
    out = tmp_path / "out"
    summary = track_paths(predictor, str(frames), str(out), min_frames=2, save_overlays=False)
    assert summary["sequences"]["frames"]["tracks"] == 3
    assert summary["objects"] == {"pole": 2, "trash-can": 1}
    tracks = json.loads((out / "frames_tracks.json").read_text())["frames"]
    ids = {r["bbox_xyxy"][0]: r["track_id"] for r in tracks[0]["predictions"]}
    long_pole, bin_, pole = ids[20.0], ids[104.0], ids[58.0]
    for k, frame in enumerate(tracks):  # each object whole, once, under its first ID
        boxes = {r["track_id"]: r["bbox_xyxy"] for r in frame["predictions"]}
        assert boxes == {
            long_pole: [20.0 + k, 10.0, 28.0 + k, 150.0],
            bin_: [104.0 + k, 40.0 + k, 116.0 + k, 52.0 + k],
            pole: [58.0 + k, 20.0, 64.0 + k, 60.0],
        }


def test_sliced_model_takes_images_at_their_original_size(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path), slice_opts(64, 0.25))
    model = SlicedModel(RectangleFinder(), cfg)
    path = str(tmp_path / "scene.png")
    cv2.imwrite(path, _moving_scene(0))
    # the evaluation's mapper keeps the 160 px image (the default one would resize it to 64 px)
    mapped = model.test_mapper()({"file_name": path, "height": 160, "width": 160, "image_id": 0})
    assert tuple(mapped["image"].shape) == (3, 160, 160) and mapped["image"].dtype == torch.uint8
    from_loader = model([mapped])[0]["instances"]
    as_float = model([{"image": mapped["image"].float()}])[0]["instances"]
    boxes = sorted(from_loader.pred_boxes.tensor.tolist())
    assert boxes == sorted(as_float.pred_boxes.tensor.tolist())
    assert boxes == [
        [20.0, 10.0, 28.0, 150.0],
        [58.0, 20.0, 64.0, 60.0],
        [104.0, 40.0, 116.0, 52.0],
    ]
    resized = {"image": torch.zeros((3, 64, 64), dtype=torch.uint8), "height": 160, "width": 160}
    with pytest.raises(ValueError, match=r"got 64x64 for an image of 160x160; .*test_mapper"):
        model([resized])


def _write_export(root):
    """A test split of the two tiled images (both layouts), boxes as polygons."""
    folder = root / "test"
    folder.mkdir(parents=True)
    images, annotations = [], []
    for i, layout in enumerate((LAYOUT, LAYOUT[::-1])):
        image, boxes, classes = tiled(layout)
        cv2.imwrite(str(folder / f"tiled_{i}.png"), image)
        images.append({"id": i, "file_name": f"tiled_{i}.png", "height": 128, "width": 128})
        for (x0, y0, x1, y1), c in zip(boxes.tolist(), classes):
            polygon = [x0, y0, x1, y0, x1, y1, x0, y1]
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": i,
                    "category_id": c + 1,
                    "iscrowd": 0,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "segmentation": [polygon],
                }
            )
    categories = [{"id": 0, "name": "trash-poles", "supercategory": "none"}]
    categories += [
        {"id": k + 1, "name": n, "supercategory": "trash-poles"} for k, n in enumerate(CLASS_NAMES)
    ]
    save_json(
        folder / "_annotations.coco.json",
        {"images": images, "annotations": annotations, "categories": categories},
    )
    return root


def test_eval_only_with_slicing_measures_the_sliced_model(trained, tmp_path):
    """tools/train_net.py --eval-only with SLICE.MODE off and on, in subprocesses (its logger
    setup would outlive the test here)."""
    export = _write_export(tmp_path / "export")
    results = {}
    for mode in ("off", "on"):
        out = tmp_path / mode
        argv = ["--config-file", os.path.join(trained, "config.yaml"), "--eval-only"]
        argv += ["--eval-split", "test", "--dataset-root", str(export)]
        argv += ["MODEL.WEIGHTS", os.path.join(trained, "model_final.pth"), "OUTPUT_DIR", str(out)]
        argv += slice_opts(64, 0.25) if mode == "on" else slice_opts("off")
        # the OpenVINO model converted by the tests above
        argv += ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.5"]
        proc = subprocess.run(
            [sys.executable, str(REPO / "tools" / "train_net.py"), *argv],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=str(REPO),
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results[mode] = json.loads((out / "eval" / "test" / "metrics.json").read_text())
    assert results["off"]["backend"] in ("openvino bf16", "openvino f32")
    assert results["on"]["backend"].endswith(
        ", sliced on 64px overlap 0.25 batch 4 on 2 streams +whole"
    )
    off, on = results["off"]["results"], results["on"]["results"]
    assert on["segm"]["AP"] >= 20 and off["segm"]["AP"] <= 5  # COCO AP in percent
    assert on["trashpole"]["recall"] >= 0.9 > 0.2 >= off["trashpole"]["recall"]


def test_slice_picture_tool_draws_an_object_merged_from_slices(trained, tmp_path):
    tool = runpy.run_path(str(REPO / "tools" / "slice_picture.py"))
    image, _, _ = tiled()
    path = tmp_path / "tiled.png"
    cv2.imwrite(str(path), image)
    out = tmp_path / "pic" / "merged.png"
    argv = ["--run", trained, "--image", str(path), "--output", str(out), "--height", "120"]
    result = tool["main"](argv + ["--slice", "64", "--overlap", "0.25", "--class-name", "pole"])
    assert result["slices"] >= 2 and result["pieces"] >= result["slices"]
    picture = cv2.imread(str(out))
    assert picture.shape[0] == 120 and picture.shape[1] > 2 * 8
    code = tool["run_tool"](tool["main"], argv + ["--class-name", "hydrant"])
    assert code == 2
