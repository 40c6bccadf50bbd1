"""The OpenVINO backend against detectron2's PyTorch model in fp32, on a tiny model trained in the
fixture (tiny_model.train_tiny_run): the stages and their glue, f32, bf16 and int8, the cache,
every input size, the backend switch, and no telemetry.

Tolerances (64 px images, CPU):
- f32: boxes 1e-3 px, scores 1e-4, classes equal, masks differing in at most 2 pixels a detection
  (a pixel flips only where its probability is within rounding of 0.5);
- bf16: the bounds of the PyTorch bf16 path (test_speed_exact): boxes 2 px, scores 0.02, mask IoU
  0.8, on the detections that fp32 scores at least 0.6;
- int8 (calibrated on the two training images only): boxes 4 px, scores 0.25, mask IoU 0.6, and at least 2 of the 3+ confident fp32 detections
  found.
"""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from tiny_model import train_tiny_run, write_tiny_config

from trashpole.predict import load_predictor
from trashpole.predict import openvino as ov_backend
from trashpole.predict.stages import build_stages, run_stages
from trashpole.run import load_weights, open_run, resolve_backend

KEEP = 0.6


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A trained tiny run (config.yaml + model_final.pth) and its two 64 px images (BGR)."""
    tmp = tmp_path_factory.mktemp("ov_trained")
    return str(tmp), train_tiny_run(tmp)


def _instances(run, images, backend, **kwargs):
    predictor = load_predictor(run, score_thresh=0.3, backend=backend, **kwargs)
    return predictor, [predictor(image)["instances"] for image in images]


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def _assert_matches(actual, expected, box_px, score, mask_iou, min_found=None):
    """Each confident fp32 detection has a twin: same class, box corners within ``box_px``,
    score within ``score``, mask IoU at least ``mask_iou``."""
    expected = expected[expected.scores >= KEEP]
    assert len(expected) >= 3
    corners = expected.pred_boxes.tensor[:, None, :] - actual.pred_boxes.tensor[None]
    distance, match = corners.abs().amax(dim=2).min(dim=1)
    found = distance <= box_px
    assert found.sum() >= (min_found or len(expected))
    for i in found.nonzero().flatten().tolist():
        j = int(match[i])
        assert actual.pred_classes[j] == expected.pred_classes[i]
        assert abs(float(actual.scores[j] - expected.scores[i])) <= score
        assert _mask_iou(actual.pred_masks[j], expected.pred_masks[i]) >= mask_iou


def test_pytorch_stages_with_the_glue_are_detectron2_bit_for_bit(trained_run):
    run, images = trained_run
    cfg = open_run(run, score_thresh=0.0).cfg
    model = load_weights(cfg, cfg.MODEL.WEIGHTS)
    stages = build_stages(model)
    image = torch.as_tensor(images[0].transpose(2, 0, 1).astype("float32"))
    inputs = [{"image": image, "height": 80, "width": 100}]  # pasted at another size
    with torch.no_grad():
        expected = model(inputs)[0]["instances"]
    actual = run_stages(model, stages, inputs)[0]["instances"]
    assert len(expected) >= 10 and actual.image_size == (80, 100)
    assert torch.equal(actual.pred_boxes.tensor, expected.pred_boxes.tensor)
    assert torch.equal(actual.scores, expected.scores)
    assert torch.equal(actual.pred_masks, expected.pred_masks)


def test_roialign_reads_features_through_the_exact_layout_hint(trained_run):
    from trashpole.predict.stages import blocked_layout_hint

    features = torch.randn(1, 16, 12, 10)
    assert torch.equal(blocked_layout_hint(features), features)  # exact in fp32
    run, _ = trained_run
    cfg = open_run(run).cfg
    models = ov_backend.convert_stages(load_weights(cfg, cfg.MODEL.WEIGHTS))
    for stage in ("boxes", "masks"):
        aligns = [op for op in models[stage].get_ops() if op.get_type_name() == "ROIAlign"]
        sources = {op.input_value(0).get_node().get_type_name() for op in aligns}
        # one ROIAlign a level, each fed by the 1x1 depthwise convolution, not by a stage input
        assert len(aligns) == 4 and sources == {"GroupConvolution"}, (stage, sources)


def _exec_types(model, precision: str, inputs) -> dict:
    """node name -> the CPU plugin's kernel for it (e.g. ``brgconv_avx512_amx_bf16``)."""
    from trashpole.compat.openvino import core

    compiled = core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERF_COUNT": True}
    )
    request = compiled.create_infer_request()
    request.infer(inputs)
    return {info.node_name: info.exec_type for info in request.get_profiling_info()}


def _two_convs():
    import openvino as ov

    net = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 1))
    torch.manual_seed(0)
    model = ov.convert_model(torch.export.export(net.eval(), (torch.rand(1, 8, 16, 16),)))
    convs = [o.get_friendly_name() for o in model.get_ordered_ops()]
    return model, [n for n in convs if n.endswith("/Convolution")]


def test_keep_in_f32_marks_only_the_named_operations():
    from trashpole.compat.openvino import core, keep_in_f32

    model, convs = _two_convs()
    assert len(convs) == 2
    kept = keep_in_f32(model, [convs[1]])
    marks = {o.get_friendly_name(): len(o.get_rt_info()) for o in kept.get_ordered_ops()}
    assert marks[convs[1]] == 1 and marks[convs[0]] == 0
    x = np.random.default_rng(0).random((1, 8, 16, 16), dtype=np.float32)
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    same = [core().compile_model(m, "CPU", f32)([x])[0] for m in (model, kept)]
    assert np.array_equal(same[0], same[1])  # the same network, weights included
    if not ov_backend.bf16_available():
        pytest.skip("this CPU has no native bf16: everything runs f32 anyway")
    kernels = _exec_types(kept, "bf16", [x])
    assert kernels[convs[0]].endswith("bf16") and kernels[convs[1]].endswith("f32"), kernels


def test_keep_in_f32_is_needed_because_python_rt_info_is_ignored():
    if not ov_backend.bf16_available():
        pytest.skip("this CPU has no native bf16: nothing to keep")
    model, convs = _two_convs()
    for op in model.get_ordered_ops():
        if op.get_friendly_name() == convs[1]:
            for key in ("precise_0", "disable_fp16_compression_0"):
                op.get_rt_info()[key] = ""
    x = np.random.default_rng(0).random((1, 8, 16, 16), dtype=np.float32)
    # set from Python the attribute is only a string: the plugin still runs the layer in bf16
    # (when this fails, OpenVINO honours it and keep_in_f32 could set it directly)
    assert _exec_types(model, "bf16", [x])[convs[1]].endswith("bf16")


def test_roi_stages_keep_their_box_coordinates_in_f32(trained_run):
    run, _ = trained_run
    cfg = open_run(run).cfg
    models = ov_backend.convert_stages(load_weights(cfg, cfg.MODEL.WEIGHTS))
    for stage in ("boxes", "masks"):
        model = models[stage]
        names = set(ov_backend.box_coordinate_ops(model))
        kinds = {o.get_friendly_name(): o.get_type_name() for o in model.get_ordered_ops()}
        # the level assignment (sqrt of the box area, log2) and the gathers of each level's
        # boxes are in; nothing that reads the features is
        assert {"Sqrt", "Gather"} <= {kinds[n] for n in names}, stage
        assert not {"ROIAlign", "Convolution", "GroupConvolution", "MatMul"} & {
            kinds[n] for n in names
        }
        marked = {o.get_friendly_name() for o in model.get_ordered_ops() if o.get_rt_info()}
        assert names <= marked
        aligns = [o for o in model.get_ordered_ops() if o.get_type_name() == "ROIAlign"]
        # each ROIAlign's boxes come from a kept operation
        assert all(a.input_value(1).get_node().get_friendly_name() in names for a in aligns)


def test_openvino_f32_matches_pytorch_fp32(trained_run):
    run, images = trained_run
    _, reference = _instances(run, images, "pytorch", opts=["TRASHPOLE.INFERENCE.BF16", "False"])
    predictor, actual = _instances(
        run, images, "openvino", opts=["TRASHPOLE.INFERENCE.BF16", "False"]
    )
    assert predictor.backend == "openvino f32"
    for got, want in zip(actual, reference):
        assert len(want) >= 3 and len(got) == len(want)
        assert torch.equal(got.pred_classes, want.pred_classes)
        torch.testing.assert_close(got.scores, want.scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(got.pred_boxes.tensor, want.pred_boxes.tensor, atol=1e-3, rtol=0)
        assert (got.pred_masks != want.pred_masks).sum() <= 2 * len(want)


def test_openvino_bf16_stays_close_to_pytorch_fp32(trained_run):
    if not ov_backend.bf16_available():
        pytest.skip("this CPU has no native bf16: OpenVINO runs f32 (previous test)")
    run, images = trained_run
    _, reference = _instances(run, images, "pytorch", opts=["TRASHPOLE.INFERENCE.BF16", "False"])
    predictor, actual = _instances(run, images, "openvino")
    assert predictor.backend == "openvino bf16"
    for got, want in zip(actual, reference):
        _assert_matches(got, want, box_px=2.0, score=0.02, mask_iou=0.8)


def test_openvino_without_native_bf16_runs_f32(trained_run, monkeypatch):
    run, _ = trained_run
    monkeypatch.setattr(ov_backend, "bf16_available", lambda: False)
    predictor = load_predictor(run, backend="openvino")  # BF16 True in the config
    assert predictor.backend == "openvino f32"


def test_int8_runs_within_the_looser_bound_and_is_cached(trained_run, tmp_path):
    run, images = trained_run
    calibration = tmp_path / "train"
    calibration.mkdir()
    for i, image in enumerate(images):
        import cv2

        cv2.imwrite(str(calibration / f"{i}.png"), image)
    opts = ["TRASHPOLE.DATASET_ROOT", str(tmp_path)]
    _, reference = _instances(
        run, images, "pytorch", opts=opts + ["TRASHPOLE.INFERENCE.BF16", "False"]
    )
    predictor, actual = _instances(run, images, "openvino", opts=opts, int8=True)
    assert predictor.backend.endswith("int8 features")
    for got, want in zip(actual, reference):
        _assert_matches(got, want, box_px=4.0, score=0.25, mask_iou=0.6, min_found=2)
    cached = [n for _, _, files in os.walk(os.path.join(run, "openvino")) for n in files]
    assert "features_int8.xml" in cached and "features.xml" in cached


def test_every_image_size_runs_with_the_pytorch_resize(trained_run):
    run, _ = trained_run
    opts = ["TRASHPOLE.INFERENCE.BF16", "False"]
    ov_pred = load_predictor(run, score_thresh=0.0, backend="openvino", opts=opts)
    pt_pred = load_predictor(run, score_thresh=0.0, backend="pytorch", opts=opts)
    rng = np.random.default_rng(0)
    for height, width in [(64, 64), (37, 211), (300, 41), (129, 97)]:
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        got, want = ov_pred(image)["instances"], pt_pred(image)["instances"]
        assert got.image_size == want.image_size == (height, width)
        assert len(got) == len(want) > 0
        torch.testing.assert_close(got.pred_boxes.tensor, want.pred_boxes.tensor, atol=1e-2, rtol=0)


def test_conversion_is_cached_beside_the_weights_and_logged(trained_run, caplog):
    run, images = trained_run
    cfg = open_run(run).cfg
    key = ov_backend.graph_key(cfg, cfg.MODEL.WEIGHTS)
    folder = os.path.join(run, "openvino", key)
    with caplog.at_level(logging.INFO, logger="trashpole.predict.openvino"):
        load_predictor(run, backend="openvino")
    if "Converting" in caplog.text:  # first use in this session: says how long it took
        assert "Converted in" in caplog.text and folder in caplog.text
    assert json.load(open(os.path.join(folder, "source.json")))["key"] == key
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trashpole.predict.openvino"):
        load_predictor(run, backend="openvino")
    assert "from the cache" in caplog.text and "Converting" not in caplog.text


def test_cache_key_follows_weights_and_config(trained_run, tmp_path):
    run, _ = trained_run
    cfg = open_run(run).cfg
    weights = cfg.MODEL.WEIGHTS
    key = ov_backend.graph_key(cfg, weights)
    other = tmp_path / "w.pth"
    other.write_bytes(open(weights, "rb").read() + b"\0")
    assert ov_backend.graph_key(cfg, str(other)) != key
    changed = cfg.clone()
    changed.defrost()
    changed.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 3
    assert ov_backend.graph_key(changed, weights) != key
    # what only the glue reads, and the same file named otherwise (training's last evaluation,
    # --eval-only, predict.py), share the cache; so does a copy of the file elsewhere
    glue = cfg.clone()
    glue.defrost()
    glue.MODEL.WEIGHTS, glue.MODEL.DEVICE = "", "cuda"
    glue.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.9
    glue.MODEL.RPN.POST_NMS_TOPK_TEST = 7
    assert ov_backend.graph_key(glue, weights) == key
    # a config in memory can share one list between keys (the trainer's does); its YAML dump
    # then writes an alias where the run's config.yaml has the values: the same key
    aliased = cfg.clone()
    aliased.defrost()
    box = list(cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS)
    aliased.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = box
    aliased.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = [box] * 3
    assert "&id" in aliased.MODEL.dump()
    plain = aliased.clone()
    plain.defrost()
    plain.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = [list(box) for _ in range(3)]
    assert "&id" not in plain.MODEL.dump()
    assert ov_backend.graph_key(aliased, weights) == ov_backend.graph_key(plain, weights)
    copy = tmp_path / "copy.pth"
    copy.write_bytes(open(weights, "rb").read())
    assert ov_backend.graph_key(cfg, str(copy)) == key
    assert ov_backend.graph_key(cfg, weights) == key


def test_auto_backend_is_openvino_on_cpu_and_pytorch_on_cuda(tmp_path):
    from trashpole.config import load_config
    from trashpole.errors import UserError

    cfg = load_config(write_tiny_config(tmp_path))
    cfg.MODEL.DEVICE = "cpu"
    assert resolve_backend(cfg) == "openvino"
    cfg.MODEL.DEVICE = "cuda"
    assert resolve_backend(cfg) == "pytorch"
    cfg.TRASHPOLE.INFERENCE.BACKEND = "openvino"
    with pytest.raises(UserError, match="runs on the CPU"):
        resolve_backend(cfg)
    cfg.TRASHPOLE.INFERENCE.BACKEND = "tensorrt"
    with pytest.raises(UserError, match="not a backend"):
        resolve_backend(cfg)


TELEMETRY_PROBE = """
import sys
from openvino_telemetry.utils import sender
sent = []
sender.TelemetrySender.send = lambda self, backend, message: sent.append(message)
if sys.argv[1] == "trashpole":
    import trashpole  # declines before openvino is imported
import openvino.tools.ovc  # sends an "import" event when consent is not declined
import openvino_telemetry
print(len(sent), openvino_telemetry.Telemetry().consent)
"""


def _telemetry_probe(first_import: str, home) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(home)  # no consent file there
    result = subprocess.run(
        [sys.executable, "-c", TELEMETRY_PROBE, first_import],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def test_openvino_sends_telemetry_without_trashpole(tmp_path):
    """What trashpole's opt-out is for: with no consent file and outside CI, importing
    OpenVINO's converter queues a usage event (fails when OpenVINO stops doing so)."""
    assert _telemetry_probe("openvino", tmp_path) == ["1", "True"]


def test_trashpole_declines_openvino_telemetry(trained_run, tmp_path):
    """Importing trashpole first: nothing is queued and consent is off. In this process too,
    converting and quantizing queue nothing."""
    from openvino_telemetry.utils import sender

    assert _telemetry_probe("trashpole", tmp_path) == ["0", "False"]
    sent = []
    original = sender.TelemetrySender.send
    sender.TelemetrySender.send = lambda self, backend, message: sent.append(message)
    try:
        run, _ = trained_run
        cfg = open_run(run).cfg
        models = ov_backend.convert_stages(load_weights(cfg, cfg.MODEL.WEIGHTS))
        from trashpole.predict.quantize import quantize_features

        quantize_features(models["features"], [np.zeros((1, 3, 64, 64), np.float32)])
    finally:
        sender.TelemetrySender.send = original
    assert sent == []


# --- export to IR and the example that runs it without trashpole ------------------------------

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "run_openvino.py")


@pytest.fixture(scope="module")
def ov_export(trained_run, tmp_path_factory):
    """The trained run exported by tools/export_model.py --format openvino --int8 (score
    threshold 0.3, calibrated on the two training images)."""
    import runpy

    import cv2

    run, images = trained_run
    out = tmp_path_factory.mktemp("export_ov")
    calibration = tmp_path_factory.mktemp("calibration")
    for i, image in enumerate(images):
        cv2.imwrite(str(calibration / f"{i}.png"), image)
    tool = runpy.run_path(os.path.join(os.path.dirname(EXAMPLE), "..", "tools", "export_model.py"))
    tool["main"](
        ["--run", run, "--format", "openvino", "--output", str(out), "--int8"]
        + ["--calibration-images", str(calibration), "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.3"]
    )
    return out


def test_openvino_export_writes_the_ir_and_matches_eager(ov_export, trained_run):
    from trashpole.export import ExportedPredictor, read_export_meta

    run, images = trained_run
    meta = read_export_meta(str(ov_export))
    assert meta["format"] == "openvino" and meta["class_names"] == ["pole", "trash-can"]
    assert meta["stages"] == {n: f"{n}.xml" for n in ("features", "boxes", "masks")}
    assert meta["stages_int8"] == {"features": "features_int8.xml"}
    for name in ("features", "boxes", "masks", "features_int8"):
        assert os.path.getsize(ov_export / f"{name}.bin") > 1000
    _, reference = _instances(run, images, "pytorch", opts=["TRASHPOLE.INFERENCE.BF16", "False"])
    exported = ExportedPredictor(str(ov_export), precision="f32")
    for image, want in zip(images, reference):
        got = exported(image)["instances"]
        assert len(want) >= 3 and len(got) == len(want)
        torch.testing.assert_close(got.pred_boxes.tensor, want.pred_boxes.tensor, atol=1e-3, rtol=0)
        torch.testing.assert_close(got.scores, want.scores, atol=1e-4, rtol=0)
    int8 = ExportedPredictor(str(ov_export), int8=True)
    assert len(int8(images[0])["instances"]) >= 1


def test_openvino_example_runs_without_trashpole(ov_export, trained_run, tmp_path):
    import cv2

    run, images = trained_run
    image_file = tmp_path / "street.png"
    cv2.imwrite(str(image_file), images[0])
    detections = tmp_path / "det.json"
    blocker = (
        "import runpy, sys\n"
        "sys.modules['trashpole'] = None\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    args = [EXAMPLE, "--export", str(ov_export), "--image", str(image_file)]
    args += ["--json", str(detections), "--draw", str(tmp_path / "drawn.jpg")]
    proc = subprocess.run(
        [sys.executable, "-c", blocker, *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, reference = _instances(
        run, images[:1], "pytorch", opts=["TRASHPOLE.INFERENCE.BF16", "False"]
    )
    records = json.loads(detections.read_text())
    assert len(records) == len(reference[0]) >= 3
    boxes = torch.tensor([r["bbox_xyxy"] for r in records])
    torch.testing.assert_close(boxes, reference[0].pred_boxes.tensor, atol=1e-3, rtol=0)
    assert cv2.imread(str(tmp_path / "drawn.jpg")).shape == images[0].shape
