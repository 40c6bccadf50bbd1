"""Export to TorchScript and ONNX: parity with the eager model, and the standalone example.

One tiny random-weight run (64 px, score threshold 0 so that it detects ~50 things) is exported
once per format; every test compares on an 80x100 image, which the model sees resized to 64x80,
a size it was not traced at.

Tolerances (CPU, fp32): boxes 1e-3 px, scores 1e-4, classes equal, pasted masks agreeing on at
least 99.9% of the pixels of every detection.
"""

import importlib.util
import json
import os
import runpy
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from tiny_model import REPO, write_tiny_config

from synthetic import CLASS_NAMES

EXAMPLE = REPO / "examples" / "run_exported.py"
BOX_ATOL = 1e-3  # px
SCORE_ATOL = 1e-4
MASK_AGREEMENT = 0.999  # fraction of pixels, per detection


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as training leaves it: config.yaml (with class names) and model_final.pth."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from trashpole.config import load_config

    tmp = tmp_path_factory.mktemp("export_run")
    cfg = load_config(write_tiny_config(tmp), ["MODEL.DEVICE", "cpu"])
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.TRASHPOLE.CLASS_NAMES = list(CLASS_NAMES)
    run = tmp / "run"
    run.mkdir()
    (run / "config.yaml").write_text(cfg.dump())
    torch.manual_seed(0)
    DetectionCheckpointer(build_model(cfg), save_dir=str(run)).save("model_final")
    return run


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    """An 80x100 PNG (lossless, so every reader sees the same pixels): noise and two blocks."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 120, (80, 100, 3), dtype=np.uint8)
    image[10:70, 15:35] = (230, 230, 230)
    image[30:75, 55:90] = (30, 180, 60)
    path = tmp_path_factory.mktemp("export_image") / "street.png"
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture(scope="module")
def eager(run_dir):
    """detectron2's DefaultPredictor on the run: the fp32 eager reference."""
    from detectron2.engine import DefaultPredictor

    from trashpole.config import load_config

    cfg = load_config(str(run_dir / "config.yaml"))
    cfg.MODEL.WEIGHTS = str(run_dir / "model_final.pth")
    cfg.MODEL.DEVICE = "cpu"
    return DefaultPredictor(cfg)


@pytest.fixture(scope="module", params=["torchscript", "onnx"])
def export_dir(request, run_dir, tmp_path_factory):
    """The run exported in each format: TorchScript through the CLI, ONNX through the API."""
    fmt = request.param
    out = tmp_path_factory.mktemp(f"export_{fmt}")
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
        from trashpole.export import export_model

        export_model(str(run_dir), str(out), "onnx")
    else:
        export_main = runpy.run_path(str(REPO / "tools" / "export_model.py"))["main"]
        export_main(["--run", str(run_dir), "--format", "torchscript", "--output", str(out)])
    return out


def _assert_same_detections(expected, actual, atol_box=BOX_ATOL):
    """
    expected, actual: dicts of numpy arrays: boxes [N, 4], classes [N], scores [N] and
    masks [N, H, W] of bool.
    """
    assert len(expected["scores"]) > 5, "the tiny model should detect something at threshold 0"
    assert len(actual["scores"]) == len(expected["scores"])
    np.testing.assert_array_equal(actual["classes"], expected["classes"])
    np.testing.assert_allclose(actual["boxes"], expected["boxes"], atol=atol_box, rtol=0)
    np.testing.assert_allclose(actual["scores"], expected["scores"], atol=SCORE_ATOL, rtol=0)
    assert actual["masks"].shape == expected["masks"].shape
    agreement = (actual["masks"] == expected["masks"]).mean(axis=(1, 2))
    assert agreement.min() >= MASK_AGREEMENT, agreement.min()


def _as_arrays(instances):
    return {
        "boxes": instances.pred_boxes.tensor.numpy(),
        "classes": instances.pred_classes.numpy(),
        "scores": instances.scores.numpy(),
        "masks": instances.pred_masks.numpy(),
    }


def test_export_writes_model_and_meta(export_dir, run_dir):
    from trashpole.export import read_export_meta

    meta = read_export_meta(str(export_dir))
    assert os.path.isfile(export_dir / meta["model_file"])
    assert meta["class_names"] == CLASS_NAMES
    assert meta["outputs"] == ["pred_boxes", "pred_classes", "pred_masks", "scores", "image_size"]
    assert meta["input"]["channel_order"] == "BGR"
    assert (meta["input"]["min_size_test"], meta["input"]["max_size_test"]) == (64, 64)
    assert meta["input"]["traced_size"] == [64, 64]
    assert meta["normalization"]["inside_model"] is True
    assert meta["normalization"]["pixel_std"] == pytest.approx([57.375, 57.12, 58.395])
    assert meta["score_thresh"] == 0.0
    assert meta["source"]["weights"] == str(run_dir / "model_final.pth")


def test_exported_matches_eager(export_dir, eager, image_file):
    """Through trashpole's ExportedPredictor (detectron2's resize and postprocess)."""
    from trashpole.export import ExportedPredictor

    image = cv2.imread(str(image_file))
    expected = _as_arrays(eager(image)["instances"])
    exported = ExportedPredictor(str(export_dir))
    assert exported.class_names == CLASS_NAMES
    actual = _as_arrays(exported(image)["instances"])
    assert actual["masks"].shape[1:] == (80, 100)
    _assert_same_detections(expected, actual)


def _load_example():
    spec = importlib.util.spec_from_file_location("run_exported", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_without_trashpole(export_dir, eager, image_file, tmp_path):
    """The example in a subprocess where importing trashpole or detectron2 fails."""
    meta = json.loads((export_dir / "export_meta.json").read_text())
    model = export_dir / meta["model_file"]
    npz, drawn = tmp_path / "det.npz", tmp_path / "drawn.jpg"
    blocker = (
        "import runpy, sys\n"
        "sys.modules['trashpole'] = sys.modules['detectron2'] = None\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    args = [str(EXAMPLE), "--model", str(model), "--image", str(image_file)]
    args += ["--npz", str(npz), "--draw", str(drawn)]
    proc = subprocess.run(
        [sys.executable, "-c", blocker, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "detections in" in proc.stdout and "trash-can" in proc.stdout
    assert cv2.imread(str(drawn)).shape == (80, 100, 3)

    # Reference: the eager model on the example's own model input (OpenCV resize), postprocessed
    # by detectron2 at the original size.
    image = cv2.imread(str(image_file))
    model_input = torch.from_numpy(_load_example().preprocess(image, meta))
    with torch.no_grad():
        outputs = eager.model([{"image": model_input, "height": 80, "width": 100}])
    with np.load(npz) as actual:
        _assert_same_detections(_as_arrays(outputs[0]["instances"]), dict(actual))


def test_example_mask_paste_matches_detectron2():
    """The example's numpy paste against detectron2's paste_masks_in_image on random masks."""
    from detectron2.layers.mask_ops import paste_masks_in_image

    example = _load_example()
    rng = np.random.default_rng(0)
    probs = rng.random((20, 28, 28), dtype=np.float32)
    # clipped boxes inside a 70x90 image, as the postprocess leaves them, down to half a pixel
    x0y0 = rng.uniform(0, 65, (20, 2))
    x1y1 = np.minimum(x0y0 + rng.uniform(0.5, 60, (20, 2)), [90, 70])
    boxes = np.concatenate([x0y0, x1y1], axis=1).astype(np.float32)
    expected = paste_masks_in_image(torch.from_numpy(probs), torch.from_numpy(boxes), (70, 90))
    for i in range(len(probs)):
        actual = example.paste_mask(probs[i], boxes[i], 70, 90, 0.5)
        assert (actual == expected[i].numpy()).mean() >= MASK_AGREEMENT


def test_unknown_format_is_refused(run_dir, tmp_path):
    from trashpole.export import export_model

    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(str(run_dir), str(tmp_path), "tflite")
