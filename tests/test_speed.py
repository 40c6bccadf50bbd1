"""Speed options of the PyTorch backend (bf16 autocast with fp32 guards, channels_last, threads),
predictor outputs, COCO results and the flags of tools/predict.py; removed keys of older runs.
Tiny random models at 64 px."""

import json
import os
import runpy

import cv2
import numpy as np
import pytest
import torch
from conftest import write_tiny_export
from detectron2.modeling import build_model
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from tiny_model import REPO, write_tiny_config

from synthetic import CLASS_NAMES
from trashpole.config import load_config
from trashpole.predict import load_predictor, predict_paths
from trashpole.speed import (
    apply_inference_options,
    bf16_supported,
    inference_autocast,
    install_fp32_guards,
    set_test_size,
    speed_opts,
    to_fp32,
)

CLASSES = list(CLASS_NAMES)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder (config.yaml + model_final.pth) of the tiny recipe with random weights, and
    a tiny export to predict on."""
    tmp = tmp_path_factory.mktemp("run")
    cfg = load_config(write_tiny_config(tmp))
    cfg.TRASHPOLE.CLASS_NAMES = CLASSES
    cfg.MODEL.WEIGHTS = ""
    with open(tmp / "config.yaml", "w") as f:
        f.write(cfg.dump())
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict()}, tmp / "model_final.pth")
    return str(tmp), write_tiny_export(tmp / "export")


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_to_fp32_converts_instances_boxes_and_containers():
    inst = Instances((4, 4))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 2.0, 3.0]], dtype=torch.bfloat16))
    inst.scores = torch.tensor([0.5], dtype=torch.bfloat16)
    inst.pred_masks = torch.ones((1, 4, 4), dtype=torch.bool)
    inst.pred_classes = torch.tensor([1])
    out = to_fp32([{"instances": inst, "x": (torch.zeros(1, dtype=torch.float16),)}])
    fields = out[0]["instances"]
    assert fields.pred_boxes.tensor.dtype == torch.float32
    assert fields.scores.dtype == torch.float32
    assert fields.pred_masks.dtype == torch.bool and fields.pred_classes.dtype == torch.int64
    assert out[0]["x"][0].dtype == torch.float32


def test_inference_autocast_follows_the_config(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path), ["TRASHPOLE.INFERENCE.BF16", "False"])
    with inference_autocast(cfg):
        assert not torch.is_autocast_enabled("cpu")
    if not bf16_supported():
        pytest.skip("this CPU has no native bf16: the option is ignored")
    cfg.TRASHPOLE.INFERENCE.BF16 = True
    with inference_autocast(cfg):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_fp32_guards_keep_roialign_and_outputs_in_fp32(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path), ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    install_fp32_guards(model)
    install_fp32_guards(model)  # idempotent
    seen = []
    for module in model.modules():
        if isinstance(module, ROIPooler):
            module.register_forward_pre_hook(lambda m, args: seen.append(args[0][0].dtype))
    image = torch.rand(3, 64, 64) * 255
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.backbone(model.preprocess_image([{"image": image}]).tensor)
        instances = model([{"image": image, "height": 64, "width": 64}])[0]["instances"]
    assert next(iter(features.values())).dtype == torch.bfloat16  # the convs did run in bf16
    assert seen and set(seen) == {torch.float32}  # ...but ROIAlign samples fp32 features
    assert len(instances) > 0
    assert instances.pred_boxes.tensor.dtype == torch.float32
    assert instances.scores.dtype == torch.float32
    assert instances.pred_masks.dtype == torch.bool


def test_fp32_guard_runs_the_box_predictor_in_fp32_and_gives_autocast_back(tmp_path):
    from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers

    model = build_model(load_config(write_tiny_config(tmp_path))).eval()
    install_fp32_guards(model)
    predictor = model.roi_heads.box_predictor
    assert type(predictor) is FastRCNNOutputLayers  # detectron2's own class, hooked
    seen = []
    predictor.cls_score.register_forward_pre_hook(
        lambda m, args: seen.append((args[0].dtype, torch.is_autocast_enabled("cpu")))
    )
    x = torch.randn(5, predictor.cls_score.in_features).to(torch.bfloat16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        scores, deltas = predictor(x)
        assert torch.is_autocast_enabled("cpu")  # on again after the predictor
        with pytest.raises(RuntimeError):
            predictor(torch.randn(5, 3))  # wrong width: the forward raises inside the guard
        assert torch.is_autocast_enabled("cpu")  # ...and autocast is still given back
    assert seen[0] == (torch.float32, False)
    assert scores.dtype == deltas.dtype == torch.float32
    expected = predictor.cls_score(x.float())
    assert torch.equal(scores, expected)


def test_apply_inference_options_sets_threads_and_layout(tmp_path, keep_threads):
    opts = speed_opts(channels_last=True, threads=1)
    cfg = load_config(write_tiny_config(tmp_path), opts)
    model = apply_inference_options(build_model(cfg), cfg)
    assert torch.get_num_threads() == 1
    assert not model.training
    conv = model.backbone.bottom_up.stem.conv1
    assert conv.norm is not None  # detectron2's modules as built: nothing folded or swapped
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert conv.weight.dtype == torch.float32


def test_bf16_model_keeps_fp32_weights_and_runs_under_autocast(tmp_path):
    if not bf16_supported():
        pytest.skip("this CPU has no native bf16: the option is ignored")
    cfg = load_config(write_tiny_config(tmp_path), speed_opts(bf16=True))
    model = apply_inference_options(build_model(cfg), cfg)
    assert model.backbone.bottom_up.stem.conv1.weight.dtype == torch.float32
    inputs = [{"image": torch.rand(3, 64, 64) * 255, "height": 64, "width": 64}]
    seen = []
    model.backbone.register_forward_hook(lambda m, a, out: seen.append(out["p2"].dtype))
    with torch.no_grad(), inference_autocast(cfg):
        instances = to_fp32(model(inputs))[0]["instances"]
    assert seen == [torch.bfloat16] and instances.scores.dtype == torch.float32


def test_a_run_config_with_removed_keys_still_loads(tmp_path, monkeypatch, caplog):
    import logging

    from trashpole import config as config_module

    monkeypatch.setattr(config_module, "_NOTED_REMOVED", set())
    config = tmp_path / "old_run.yaml"
    text = open(write_tiny_config(tmp_path)).read()
    text += "\nTRASHPOLE:\n  INFERENCE:\n    FUSE: true\n    COMPILE: false\n"
    config.write_text(text)
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            cfg = load_config(str(config), ["TRASHPOLE.INFERENCE.THREADED_ROI_ALIGN", "True"])
    assert "FUSE" not in cfg.TRASHPOLE.INFERENCE and "COMPILE" not in cfg.TRASHPOLE.INFERENCE
    assert "THREADED_ROI_ALIGN" not in cfg.TRASHPOLE.INFERENCE
    # one line for the three keys, once per process; no warning per merge
    notes = [r for r in caplog.records if "no longer exist" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert all(key in notes[0].getMessage() for key in config_module.REMOVED_KEYS)
    assert not [r for r in caplog.records if r.getMessage().startswith("Deprecated config key")]
    with pytest.raises(ValueError, match="unknown config key TRASHPOLE.INFERENCE.FUSED"):
        load_config(str(config), ["TRASHPOLE.INFERENCE.FUSED", "True"])


def test_speed_opts_are_config_keys(tmp_path):
    opts = speed_opts(bf16=True, channels_last=True, threads=3, proposals=123, sampling_ratio=2)
    cfg = load_config(write_tiny_config(tmp_path), opts)
    assert cfg.TRASHPOLE.INFERENCE.BF16 and cfg.TRASHPOLE.INFERENCE.CHANNELS_LAST
    assert cfg.TRASHPOLE.INFERENCE.NUM_THREADS == 3
    assert cfg.MODEL.RPN.POST_NMS_TOPK_TEST == 123
    assert cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO == 2
    assert cfg.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO == 2
    assert speed_opts() == []


def test_set_test_size_keeps_the_ratio(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path))
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 800, 1333
    set_test_size(cfg, 640)
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (640, 1066)
    set_test_size(cfg, 320)
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (320, 533)
    with pytest.raises(ValueError, match="positive"):
        set_test_size(cfg, 0)


def test_predictor_channels_last_matches_nchw(tiny_run):
    from benchmarks.describe import describe_model

    run, export = tiny_run
    image = cv2.imread(str(export / "test" / "test_000.jpg"))
    pt = ["TRASHPOLE.INFERENCE.BACKEND", "pytorch"]
    nchw = load_predictor(
        run, score_thresh=0.0, opts=pt + speed_opts(bf16=False, channels_last=False)
    )
    nhwc = load_predictor(
        run, score_thresh=0.0, opts=pt + speed_opts(bf16=False, channels_last=True)
    )
    # two different set-ups (the config's default is channels_last: both are said explicitly)
    assert not describe_model(nchw)["channels_last"] and describe_model(nhwc)["channels_last"]
    ref, out = nchw(image)["instances"], nhwc(image)["instances"]
    assert len(ref) > 0 and len(out) == len(ref)
    torch.testing.assert_close(out.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.scores, ref.scores, atol=1e-4, rtol=0)


def test_predictor_bf16_returns_fp32_and_bool(tiny_run):
    run, export = tiny_run
    image = cv2.imread(str(export / "test" / "test_000.jpg"))
    predictor = load_predictor(run, score_thresh=0.0, opts=speed_opts(bf16=True), backend="pytorch")
    for out in [predictor(image)] + predictor.predict_batch([image, image], batch_size=2):
        instances = out["instances"]
        assert len(instances) > 0
        assert instances.pred_boxes.tensor.dtype == torch.float32
        assert instances.scores.dtype == torch.float32
        assert instances.pred_masks.dtype == torch.bool
        assert instances.pred_masks.shape[1:] == image.shape[:2]


def test_predictor_input_size(tiny_run):
    run, export = tiny_run
    predictor = load_predictor(run, input_size=96)
    assert (predictor.cfg.INPUT.MIN_SIZE_TEST, predictor.cfg.INPUT.MAX_SIZE_TEST) == (96, 96)
    image = cv2.imread(str(export / "test" / "test_000.jpg"))
    assert predictor.preprocess(image)["image"].shape == (3, 96, 96)
    assert predictor(image)["instances"].image_size == (64, 64)  # back at the image's size


def test_predict_paths_writes_coco_results(tiny_run, tmp_path):
    from pycocotools.coco import COCO

    run, export = tiny_run
    ann = str(export / "test" / "_annotations.coco.json")
    predictor = load_predictor(run, score_thresh=0.0)
    coco_json = str(tmp_path / "coco" / "results.json")
    counts = predict_paths(
        predictor, str(export / "test"), str(tmp_path / "out"), False, coco_json, ann
    )
    assert counts["images"] == 3 and counts["images_per_s"] > 0
    results = json.loads(open(coco_json).read())
    assert len(results) == counts["detections"] > 0
    gt = COCO(ann)
    gt.loadRes(coco_json)  # pycocotools accepts it
    by_name = {img["file_name"]: img["id"] for img in gt.dataset["images"]}
    assert {r["image_id"] for r in results} <= set(by_name.values())
    assert {r["category_id"] for r in results} <= {1, 2}  # Roboflow ids, not contiguous ones
    # the same detections as the per-image JSON, boxes turned from XYXY into XYWH
    first = json.loads((tmp_path / "out" / "test_000.json").read_text())["predictions"][0]
    entry = next(r for r in results if r["image_id"] == by_name["test_000.jpg"])
    x0, y0, x1, y1 = first["bbox_xyxy"]
    assert entry["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=0.01)
    assert entry["score"] == first["score"] and entry["segmentation"] == first["segmentation"]


def test_predict_paths_numbers_images_without_a_coco_json(tiny_run, tmp_path):
    run, export = tiny_run
    predictor = load_predictor(run, score_thresh=0.0)
    coco_json = str(tmp_path / "results.json")
    predict_paths(predictor, str(export / "test"), str(tmp_path / "out"), False, coco_json)
    assert {r["image_id"] for r in json.loads(open(coco_json).read())} == {0, 1, 2}


def test_predict_paths_names_an_image_missing_from_the_coco_json(tiny_run, tmp_path):
    run, export = tiny_run
    predictor = load_predictor(run)
    ann = str(export / "valid" / "_annotations.coco.json")
    with pytest.raises(ValueError, match="test_000.jpg"):
        predict_paths(
            predictor, str(export / "test"), str(tmp_path), False, str(tmp_path / "r.json"), ann
        )


def test_predict_tool_speed_flags(tiny_run, tmp_path, keep_threads):
    predict_tool = runpy.run_path(str(REPO / "tools" / "predict.py"))
    run, export = tiny_run
    argv = ["--run", run, "--input", str(export / "test"), "--output", str(tmp_path / "out"),
            "--score", "0", "--bf16", "--channels-last", "--threads", "1", "--proposals", "20",
            "--input-size", "96", "--coco-json", str(tmp_path / "coco.json"),
            "--no-overlays", "--backend", "pytorch"]  # fmt: skip
    counts = predict_tool["main"](argv)
    assert counts["images"] == 3
    assert os.path.isfile(tmp_path / "coco.json")
    assert not list((tmp_path / "out").glob("*.jpg"))
    assert predict_tool["speed_opts_of"](predict_tool["parse_args"](argv)) == [
        "TRASHPOLE.INFERENCE.BF16", "True", "TRASHPOLE.INFERENCE.CHANNELS_LAST", "True",
        "TRASHPOLE.INFERENCE.NUM_THREADS", "1", "MODEL.RPN.POST_NMS_TOPK_TEST", "20",
    ]  # fmt: skip
    assert torch.get_num_threads() == 1


def test_predict_tool_switches_every_option_off(tiny_run, tmp_path):
    from benchmarks.describe import describe_model

    predict_tool = runpy.run_path(str(REPO / "tools" / "predict.py"))
    run, export = tiny_run
    base = ["--run", run, "--input", str(export / "test"), "--output", str(tmp_path)]
    off = ["--fp32", "--no-channels-last"]
    opts = predict_tool["speed_opts_of"](predict_tool["parse_args"](base + off))
    assert opts == [
        "TRASHPOLE.INFERENCE.BF16", "False", "TRASHPOLE.INFERENCE.CHANNELS_LAST", "False",
    ]  # fmt: skip
    no_bf16 = predict_tool["parse_args"](base + ["--no-bf16"])
    assert predict_tool["speed_opts_of"](no_bf16) == ["TRASHPOLE.INFERENCE.BF16", "False"]
    assert predict_tool["speed_opts_of"](predict_tool["parse_args"](base)) == []  # config's
    # what the tool builds from them
    setup = describe_model(load_predictor(run, opts=opts, backend="pytorch"))
    assert setup["weights_dtype"] == "fp32" and not setup["channels_last"]
    assert setup["norm_layers"] > 0 and setup["threaded_roi_align"] == 0


def test_uint8_image_roundtrip_through_predict_batch(tiny_run):
    run, export = tiny_run
    predictor = load_predictor(run, score_thresh=0.0)
    image = cv2.imread(str(export / "test" / "test_001.jpg"))
    single = predictor(image)["instances"]
    batch = predictor.predict_batch([image, np.ascontiguousarray(image[:, ::-1])], batch_size=2)
    torch.testing.assert_close(batch[0]["instances"].scores, single.scores)


def test_fp32_copy_of_a_feature_map_is_made_once_per_version():
    from trashpole.speed.precision import nchw_fp32

    feature = torch.randn(1, 4, 6, 6).to(torch.bfloat16, memory_format=torch.channels_last)
    first = nchw_fp32(feature)
    assert first.dtype == torch.float32 and first.is_contiguous()
    assert torch.equal(first, feature.float())
    assert nchw_fp32(feature) is first  # the box and mask poolers share the copy
    feature.add_(1)  # changed in place: a new copy
    assert torch.equal(nchw_fp32(feature), feature.float())
    plain = torch.randn(1, 4, 6, 6)
    assert nchw_fp32(plain) is plain  # already NCHW fp32: no copy


@pytest.mark.parametrize("threaded", [True, False])
def test_trainer_threads_roi_align_by_its_key(tmp_path, threaded):
    from trashpole.engine.trainer import Trainer

    opts = ["TRASHPOLE.TRAIN.THREADED_ROI_ALIGN", str(threaded)]
    model = Trainer.build_model(load_config(write_tiny_config(tmp_path), opts))
    kinds = [type(m).__name__ for m in model.modules() if "ROIAlign" in type(m).__name__]
    # 4 FPN levels in the box pooler and 4 in the mask pooler
    assert kinds == ["ThreadedROIAlign" if threaded else "ROIAlign"] * 8


def test_trainer_channels_last_by_its_key_trains_like_nchw(tmp_path):
    from benchmarks.training import detectron2_batch, synthetic_samples
    from trashpole.engine.trainer import Trainer

    batch = detectron2_batch(synthetic_samples(64, num_images=2))
    losses, grads = {}, {}
    for channels_last in (False, True):
        cfg = load_config(
            write_tiny_config(tmp_path), ["TRASHPOLE.TRAIN.CHANNELS_LAST", str(channels_last)]
        )
        torch.manual_seed(0)
        model = Trainer.build_model(cfg)
        convs = [p for p in model.parameters() if p.dim() == 4]
        nhwc = [p.is_contiguous(memory_format=torch.channels_last) for p in convs]
        nchw = [p.is_contiguous() for p in convs]
        if channels_last:  # every conv weight NHWC (1x1 kernels are both)
            assert all(nhwc) and not all(nchw)
        else:
            assert all(nchw) and not all(nhwc)
        model.train()
        torch.manual_seed(1)  # the same proposals and RoIs sampled
        with EventStorage():
            loss_dict = model(batch)
        total = sum(loss_dict.values())
        total.backward()
        losses[channels_last] = {k: float(v.detach()) for k, v in loss_dict.items()}
        grads[channels_last] = model.backbone.bottom_up.stem.conv1.weight.grad.contiguous()
    assert losses[True].keys() == losses[False].keys() and len(losses[True]) == 5
    for k, v in losses[False].items():
        assert losses[True][k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    # the same gradient up to the order of the additions
    assert torch.allclose(
        grads[True], grads[False], rtol=1e-3, atol=1e-5 * grads[False].abs().max()
    )
