"""tools/benchmark.py --quick end to end, and the measuring tools on hand-made cases."""

import importlib.util
import inspect
import json
import os
import subprocess
import sys

import pytest
import torch
from detectron2.structures import PolygonMasks, polygons_to_bitmask
from tiny_model import REPO, write_tiny_config

from benchmarks import ALL, SUITES, accuracy
from benchmarks import inference as bench
from benchmarks import load_suite, measure
from benchmarks.training import (
    detectron2_batch,
    synthetic_samples,
    torchvision_batch,
)
from synthetic import CLASS_NAMES
from trashpole.engine.amp import CPUAutocastTrainer, autocast_forward
from trashpole.errors import MissingFileError, UserError


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """``tools/benchmark.py all --quick`` (every suite, shrunk; a few minutes: the OpenVINO rows
    convert R50-FPN models)."""
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark.py"), "all", "--quick", "--output",
         str(out)],
        capture_output=True, text=True, timeout=900, cwd=str(REPO),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_quick_inference_benchmark_is_equal_work(quick_results):
    out, stdout = quick_results
    result = json.loads((out / "inference_benchmark.json").read_text())
    rows = result["contenders"]
    assert set(rows) == {
        "torchvision plain", "torchvision switches", "torchvision openvino", "trashpole plain",
        "trashpole pytorch", "trashpole openvino", "trashpole openvino int8",
    }  # fmt: skip
    for row in rows.values():
        # score threshold 0: every contender sends exactly `detections` boxes to the mask head
        assert row["detections"] == result["detections"] == 5
        assert row["median_s"] > 0 and len(row["times_s"]) == result["repeats"]
        assert row["gmac"] > 0
        assert row["setup"]["arch"] == "R50-FPN"  # one network on both sides, no R18 row
        assert row["setup"]["sampling_ratios"] == [2] and row["setup"]["proposals"] == 50
        assert row["label"] in stdout
    # same architecture, same work: the flop counter agrees within a few percent
    tv, d2 = rows["torchvision plain"]["gmac"], rows["trashpole plain"]["gmac"]
    assert abs(tv - d2) / tv < 0.1
    assert rows["torchvision plain"]["speedup_vs_torchvision"] == 1.0
    assert rows["torchvision switches"]["speedup_vs_torchvision_switches"] == 1.0
    assert rows["torchvision openvino"]["speedup_vs_torchvision_openvino"] == 1.0
    peak = result["matmul_peak"]
    assert peak["fp32_gflops"] > 0 and peak["bf16_gflops"] > 0
    assert "peak GFLOP/s" in stdout


def test_quick_inference_rows_say_what_ran(quick_results):
    from trashpole.speed import bf16_supported

    out, _ = quick_results
    result = json.loads((out / "inference_benchmark.json").read_text())
    rows = result["contenders"]
    # fp32 rows are fp32 NCHW, read from the model and from the features it computed
    for name in ("torchvision plain", "trashpole plain"):
        assert rows[name]["seen"]["feature_dtype"] == "fp32", name
        assert rows[name]["setup"]["weights_dtype"] == "fp32", name
        assert not rows[name]["seen"]["feature_channels_last"], name
        assert rows[name]["label"].split(": ")[1].startswith("fp32, NCHW"), name
    # the peer gets the same generic switches as trashpole's PyTorch row
    dtype = "bf16" if bf16_supported() else "fp32"
    for name in ("torchvision switches", "trashpole pytorch"):
        assert rows[name]["seen"]["feature_dtype"] == dtype, name
        assert rows[name]["seen"]["feature_channels_last"], name
    for name in ("torchvision switches", "trashpole pytorch"):
        assert "bf16 autocast" in rows[name]["label"] or dtype == "fp32", name
    # the OpenVINO rows, read from the runtime graphs: same precision for ours and the peer's,
    # int8 convolutions only in the int8 row
    from trashpole.predict.openvino import bf16_available

    precision = "bf16" if bf16_available() else "f32"
    for name in ("torchvision openvino", "trashpole openvino", "trashpole openvino int8"):
        setup = rows[name]["setup"]
        assert setup["engine"] == "openvino" and setup["precision"] == precision, name
        assert f"on OpenVINO: {precision}" in rows[name]["label"], name
    assert rows["trashpole openvino"]["setup"]["int8_convolutions"] == 0
    assert rows["torchvision openvino"]["setup"]["int8_convolutions"] == 0
    assert rows["trashpole openvino int8"]["setup"]["int8_convolutions"] > 40
    machine = result["machine"]
    assert {"avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni"} <= set(machine["isa_flags"])
    assert machine["torch"] == torch.__version__ and machine["onednn"]
    assert machine["cpu_model"] or not os.path.exists("/proc/cpuinfo")


def test_quick_profile_breaks_the_time_down(quick_results):
    from benchmarks.profile import CATEGORIES

    out, stdout = quick_results
    result = json.loads((out / "profile_benchmark.json").read_text())
    for row in result["contenders"].values():
        assert set(row["self_ms"]) == set(CATEGORIES)
        assert row["self_ms"]["conv"] > 0 and row["self_ms"]["ROIAlign"] > 0
        assert row["self_ms"]["mask paste"] > 0 and row["self_ms"]["NMS"] > 0
        assert sum(row["share"].values()) == pytest.approx(1.0)
    assert "mask paste" in stdout


def test_quick_training_profile_splits_an_iteration(quick_results):
    from benchmarks.profile_training import CATEGORIES

    out, stdout = quick_results
    result = json.loads((out / "profile_training_benchmark.json").read_text())
    rows = result["contenders"]
    assert set(rows) == {"demo recipe R18", "trashpole R50 fast", "torchvision like d2 switches"}
    assert rows["demo recipe R18"]["setup"]["arch"] == "R18-FPN"
    assert rows["demo recipe R18"]["masks"] == "polygons"
    assert rows["trashpole R50 fast"]["masks"] == "bitmasks"
    assert rows["trashpole R50 fast"]["setup"]["arch"] == "R50-FPN"
    for row in rows.values():
        assert set(row["self_ms"]) == set(CATEGORIES)
        # the backward of the convolutions and of ROIAlign count in their categories
        assert row["self_ms"]["conv"] > 0 and row["self_ms"]["ROIAlign"] > 0
        assert row["self_ms"]["optimizer"] > 0
        assert sum(row["share"].values()) == pytest.approx(1.0)
        assert set(row["phase_s"]) == {"forward", "backward", "optimizer"}
        assert 0 < sum(row["phase_s"].values()) <= row["wall_s"]
        assert row["loss"] == row["loss"]  # not NaN
        assert row["seen"]["feature_channels_last"]
        assert (row["size"], row["batch"]) == (64, 1)
        assert row["label"] in stdout
    ops = [op["op"] for op in rows["torchvision like d2 switches"]["top_ops"]]
    assert any("convolution_backward" in op for op in ops), ops


class _Event:
    """A torch.profiler event as breakdown() reads it: name, self microseconds, parent."""

    def __init__(self, name, self_us, parent=None):
        self.name, self.self_cpu_time_total, self.cpu_parent = name, self_us, parent


def test_training_profile_counts_ops_by_scope():
    """Ops inside the optimizer's scope count as optimizer time whatever their name; the scope's
    own self time is left out; other ops by name."""
    from benchmarks.profile import breakdown
    from benchmarks.profile_training import CATEGORIES

    scope = _Event("trashpole::train_optimizer", 500)
    events = [
        _Event("aten::convolution_backward", 3000),
        _Event("aten::copy_", 1000),
        scope,
        _Event("aten::_foreach_add_", 2000, scope),
        _Event("aten::copy_", 250, _Event("aten::mul", 0, scope)),
    ]
    ms = breakdown(events, CATEGORIES, {"trashpole::train_optimizer": "optimizer"})
    assert ms == {**{c: 0.0 for c in CATEGORIES}, "conv": 3.0, "copies/casts": 1.0,
                  "optimizer": 2.25}  # fmt: skip


def test_profile_categories():
    from benchmarks.profile import CATEGORIES, breakdown, categorize

    assert categorize("mkldnn::_convolution_pointwise") == "conv"
    assert categorize("aten::mkldnn_convolution") == "conv"
    assert categorize("torchvision::roi_align") == "ROIAlign"
    assert categorize("torchvision::nms") == "NMS"
    assert categorize("aten::addmm") == "linear"
    assert categorize("aten::copy_") == "copies/casts"
    assert categorize("aten::zero_") == "fills"
    assert categorize("aten::sigmoid") == "other"
    # inside the mask pasting scope an op counts as mask paste, whatever its name
    assert breakdown([_Event("aten::copy_", 1000, _Event("trashpole::mask_paste", 0))]) == {
        **{c: 0.0 for c in CATEGORIES}, "mask paste": 1.0}  # fmt: skip


def test_quick_training_benchmark(quick_results):
    out, _ = quick_results
    result = json.loads((out / "training_benchmark.json").read_text())
    rows = result["contenders"]
    assert {"torchvision R50-FPN", "torchvision like d2", "torchvision like d2 switches",
            "trashpole R50-FPN"} <= set(rows)  # fmt: skip
    for row in rows.values():
        assert row["median_s"] > 0
        assert row["loss"] == row["loss"]  # not NaN
    assert rows["torchvision like d2"]["speedup_vs_torchvision_d2"] == 1.0
    assert rows["torchvision like d2 switches"]["speedup_vs_torchvision_d2_switches"] == 1.0
    assert rows["trashpole R50-FPN"]["seen"]["feature_dtype"] == "fp32"
    assert rows["trashpole R50-FPN"]["label"].split(": ")[1].startswith("fp32, NCHW")
    # detectron2 as built copies a bitmask per RoI; trashpole's fast row and torchvision index
    assert "bitmask targets copied" in rows["trashpole R50-FPN"]["label"]
    assert "bitmask targets copied" in rows["trashpole R50 fast copied masks"]["label"]
    assert "bitmask targets indexed" in rows["trashpole R50 fast"]["label"]
    assert "bitmask targets indexed" in rows["torchvision like d2 switches"]["label"]
    assert rows["torchvision like d2 switches"]["seen"]["feature_channels_last"]


def test_quick_run_writes_every_suite(quick_results):
    out, _ = quick_results
    combined = json.loads((out / "benchmark.json").read_text())
    assert set(combined) == {
        "inference",
        "profile",
        "profile-openvino",
        "profile-training",
        "training",
        "data",
        "evaluation",
        "report",
        "tracking",
        "folder",
    }
    assert combined["data"]["num_images"] == 200
    assert (out / "data" / "data_benchmark.json").is_file()
    assert (out / "evaluation_benchmark.json").is_file()
    report = json.loads((out / "report_benchmark.json").read_text())
    assert report["num_images"] == 20 and report["page"]["files_count"] == 60


def test_quick_openvino_profile_and_folder(quick_results):
    out, stdout = quick_results
    profile = json.loads((out / "profile_openvino_benchmark.json").read_text())
    assert set(profile["phases_ms"]) == {
        "preprocess", "features", "proposals", "boxes", "box decoding and NMS", "masks",
        "mask selection", "paste",
    }  # fmt: skip
    assert sum(profile["share"].values()) == pytest.approx(1.0)
    # OpenVINO's own counters: the convolutions of the feature stage, ROIAlign in both heads
    assert any(k.startswith("Convolution") for k in profile["layers_ms"]["features"])
    for stage in ("boxes", "masks"):
        assert any(k.startswith("ROIAlign") for k in profile["layers_ms"][stage])
    folder = json.loads((out / "folder_benchmark.json").read_text())
    rows = folder["contenders"]
    assert len(rows) == 5 and folder["num_images"] == 3
    first = next(iter(rows.values()))
    assert first["label"].startswith("pytorch") and first["speedup_vs_first"] == 1.0
    assert all(r["median_images_per_s"] > 0 for r in rows.values())
    # each label says what the folder loop ran: the streams copy only where STREAMS is on
    labels = [r["label"] for r in rows.values()][1:]
    bf16 = labels[0]  # "openvino bf16" (f32 where the CPU has no bf16)
    assert bf16.startswith("openvino ") and "stream" not in bf16 and "flight" not in bf16
    assert labels[1:] == [
        f"{bf16}, 2 in flight",
        f"{bf16} on 2 streams, 2 in flight",
        f"{bf16} int8 features on 2 streams, 2 in flight",
    ]


def _benchmark_tool():
    spec = importlib.util.spec_from_file_location("tool_benchmark", REPO / "tools" / "benchmark.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_every_suite_follows_the_protocol():
    options = vars(_benchmark_tool().parse_args([]))
    assert ALL == tuple(SUITES)[:10] and "accuracy" not in ALL and "slicing" not in ALL
    assert "counting" in SUITES and "counting" not in ALL and "mask-head" not in ALL
    for name in SUITES:
        suite = load_suite(name)
        assert suite.NAME == name
        assert set(suite.OPTIONS) <= set(options), name
        params = inspect.signature(suite.run).parameters
        assert list(params)[0] == "out_dir", name
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            assert set(suite.QUICK) | set(suite.OPTIONS.values()) <= set(params), name
        assert callable(suite.format_table), name
    with pytest.raises(ValueError, match="unknown benchmark suite 'nope'"):
        load_suite("nope")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["tracking", "--quick", "--repeats", "7", "--size", "80"],
         {"size": 80, "frames": 7, "warmup": 1, "detections": 5}),
        (["folder", "--num-images", "9", "--threads", "3", "--repeats", "2"],
         {"threads": 3, "num_images": 9, "rounds": 2}),
        (["profile", "--repeats", "4", "--size", "320"], {"size": 320}),  # no rounds to set
        (["slicing", "--quick", "--repeats", "2", "--size", "99"],
         {"width": 512, "height": 384, "rounds": 2, "batches": (4,)}),
        (["data", "--quick"], {"num_images": 200}),
        (["data", "--quick", "--num-images", "30"], {"num_images": 30}),
        (["evaluation"], {}),
        (["accuracy", "--quick", "--run", "a", "b", "--split", "valid"],
         {"run_dirs": ["a", "b"], "split": "valid"}),
        (["counting", "--quick", "--run", "a", "--size", "128"],
         {"run_dirs": ["a"], "size": 128, "clips": 1, "frames": 6}),
        (["mask-head", "--repeats", "3"], {"rounds": 3}),
    ],
)  # fmt: skip
def test_the_command_line_reaches_each_suite(argv, expected):
    tool = _benchmark_tool()
    args = tool.parse_args(argv)
    assert tool.suite_kwargs(load_suite(argv[0]), args) == expected


def test_measuring_gives_every_suite_the_same_header(monkeypatch):
    loads = iter([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    monkeypatch.setattr(measure, "load_average", lambda: next(loads))
    with measure.measuring("x", size=64, rounds=2) as result:
        assert result["load_before"] == [1.0, 2.0, 3.0] and "load_after" not in result
    keys = ["benchmark", "size", "rounds", "threads", "load_before", "machine", "load_after"]
    assert list(result) == keys
    assert (result["benchmark"], result["size"], result["rounds"]) == ("x", 64, 2)
    assert result["threads"] == torch.get_num_threads()
    assert result["load_after"] == [4.0, 5.0, 6.0]
    assert result["machine"]["torch"] == torch.__version__


def test_time_alternating_runs_contenders_in_turn():
    calls = []
    contenders = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times, memory = measure.time_alternating(contenders, warmup=1, repeats=2)
    assert calls == ["a", "b"] * 3
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2}
    assert set(memory["a"]) == {"peak_rss_mb", "extra_rss_mb"}


def test_measure_memory_sees_a_large_allocation():
    result = measure.measure_memory(lambda: torch.ones(64 * 2**20 // 4).sum())  # 64 MiB
    if result["extra_rss_mb"] is None:
        pytest.skip("no /proc/self/status here")
    assert result["extra_rss_mb"] > 48


def test_summarize_and_table():
    assert measure.summarize([3.0, 1.0, 2.0]) == {"median_s": 2.0, "min_s": 1.0, "max_s": 3.0}
    result = {
        "benchmark": "inference",
        "contenders": {
            "peer": {"median_s": 2.0, "speedup_vs_torchvision": 1.0, "gmac": 140.0},
            "ours": {"median_s": 0.5, "speedup_vs_torchvision": 4.0, "peak_fraction": 0.5},
        },
        "matmul_peak": {"fp32_gflops": 185.0, "bf16_gflops": 390.0},
    }
    table = measure.format_table(result)
    assert "s/image" in table and "4.00" in table and "140.0" in table and "50.0" in table


def test_peak_fraction_uses_the_peak_of_the_dtype_that_ran():
    rows = {
        "tv": {"family": "torchvision", "median_s": 2.0, "gmac": 100.0},
        "tv sw": {"family": "torchvision", "channels_last": True, "median_s": 1.6, "gmac": 100.0},
        "fast": {"family": "trashpole", "median_s": 1.0, "gmac": 100.0},
        "asked bf16": {"family": "trashpole", "median_s": 2.0, "gmac": 100.0},
    }
    rows["tv sw"]["seen"] = rows["fast"]["seen"] = {"feature_dtype": "bf16"}
    rows["asked bf16"]["seen"] = {"feature_dtype": "fp32"}  # asked for, but ran in fp32
    peak = {"fp32_gflops": 200.0, "bf16_gflops": 400.0}
    rows = bench.add_ratios(rows, peak)
    assert rows["tv"]["peak_fraction"] == pytest.approx(0.5)  # 100 GFLOP/s of 200
    assert rows["fast"]["peak_fraction"] == pytest.approx(0.5)  # 200 GFLOP/s of 400
    assert rows["asked bf16"]["peak_fraction"] == pytest.approx(0.5)  # fp32 peak: it ran fp32
    assert rows["fast"]["speedup_vs_torchvision"] == pytest.approx(2.0)
    assert rows["fast"]["speedup_vs_torchvision_switches"] == pytest.approx(1.6)


def test_training_batches_describe_the_same_instances():
    samples = synthetic_samples(64, num_images=2)
    d2 = detectron2_batch(samples)
    images, targets = torchvision_batch(samples)
    for d, image, target in zip(d2, images, targets):
        assert d["image"].shape == image.shape == (3, 64, 64)
        # BGR 0-255 for detectron2, RGB 0-1 for torchvision
        torch.testing.assert_close(d["image"].flip(0) / 255, image)
        torch.testing.assert_close(d["instances"].gt_boxes.tensor, target["boxes"])
        assert (target["labels"] == d["instances"].gt_classes + 1).all()
        assert (target["masks"].bool() == d["instances"].gt_masks.tensor).all()
    # the polygon batch (the demo recipe's profile) rasterizes to the same pixels
    for d, p in zip(d2, detectron2_batch(samples, polygons=True)):
        polygons = p["instances"].gt_masks
        assert isinstance(polygons, PolygonMasks) and len(polygons) == 4
        for bitmask, polygon in zip(d["instances"].gt_masks.tensor, polygons.polygons):
            assert (torch.from_numpy(polygons_to_bitmask(polygon, 64, 64)) == bitmask).all()


def test_autocast_forward_wraps_only_the_forward():
    model = torch.nn.Linear(4, 4)
    with autocast_forward(model):
        assert not torch.is_autocast_enabled("cpu")
        assert model(torch.randn(2, 4)).dtype == torch.bfloat16
        assert not torch.is_autocast_enabled("cpu")
    assert model(torch.randn(2, 4)).dtype == torch.float32  # hooks removed


def test_cpu_autocast_trainer_step(tmp_path):
    from detectron2.modeling import build_model

    from trashpole.config import load_config

    cfg = load_config(write_tiny_config(tmp_path))
    torch.manual_seed(0)
    model = build_model(cfg)
    batch = detectron2_batch(synthetic_samples(64, num_images=2))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    trainer = CPUAutocastTrainer(model, [batch] * 2, optimizer)
    before = model.roi_heads.box_predictor.cls_score.weight.detach().clone()
    trainer.train(0, 1)
    after = model.roi_heads.box_predictor.cls_score.weight
    assert after.dtype == torch.float32 and not torch.equal(before, after)
    losses = trainer.storage.latest()
    assert all(v == v for v, _ in losses.values())  # logged and finite


def test_accuracy_of_speed_options_on_a_tiny_run(tmp_path, clean_catalogs):
    from conftest import write_tiny_export
    from detectron2.modeling import build_model

    from trashpole.config import load_config
    from trashpole.speed import speed_opts

    export = write_tiny_export(tmp_path / "export")
    cfg = load_config(write_tiny_config(tmp_path))
    cfg.TRASHPOLE.DATASET_ROOT = str(export)
    cfg.TRASHPOLE.CLASS_NAMES = list(CLASS_NAMES)
    (tmp_path / "config.yaml").write_text(cfg.dump())
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict()}, tmp_path / "model_final.pth")
    pt = ["TRASHPOLE.INFERENCE.BACKEND", "pytorch"]
    nchw, nhwc = pt + speed_opts(bf16=False, channels_last=False), pt + speed_opts(False, True)
    ov = ["TRASHPOLE.INFERENCE.BACKEND", "openvino"] + speed_opts(bf16=False)
    variants = {"fp32 NCHW": nchw, "channels_last": nhwc, "96": nchw + ["size=96"], "ov": ov}
    result = accuracy.run(str(tmp_path / "out"), str(tmp_path), "test", variants=variants)
    rows = result["contenders"]
    assert list(rows) == ["fp32 NCHW", "channels_last", "96", "ov"]
    # the OpenVINO variant is evaluated as predict runs it, and says so
    assert rows["ov"]["label"] == "openvino f32"
    assert rows["ov"]["segm/AP"] == pytest.approx(rows["fp32 NCHW"]["segm/AP"], abs=1e-6)
    base = rows["fp32 NCHW"]
    assert base["delta_segm_AP"] == 0.0 and base["speedup_vs_default"] == 1.0
    # the baseline is fp32 NCHW and the variant NHWC, read from what ran: not the same set-up
    assert base["seen"]["feature_dtype"] == "fp32" and not base["seen"]["feature_channels_last"]
    assert rows["channels_last"]["seen"]["feature_channels_last"]
    assert rows["channels_last"]["segm/AP"] == pytest.approx(base["segm/AP"], abs=1e-6)
    assert all(r["images"] == 1 and r["ms_per_image"] > 0 for r in rows.values())
    assert (tmp_path / "out" / "accuracy_benchmark.json").is_file()
    table = accuracy.format_table(result)
    assert "channels_last" in table and "fp32, NCHW" in table


def _variant_row(segm: float, base_segm: float, ms: float, base_ms: float) -> dict:
    return {
        "opts": [],
        "label": "what ran",
        "setup": {},
        "seen": {},
        "threads": 2,
        "segm/AP": segm,
        "segm/AP50": segm + 20,
        "bbox/AP": segm + 1,
        "delta_segm_AP": segm - base_segm,
        "delta_bbox_AP": segm - base_segm,
        "ms_per_image": ms,
        "speedup_vs_default": base_ms / ms,
        "images": 20,
    }


def test_accuracy_over_two_seeds_hand_worked():
    # run A: fp32 30.0 AP at 100 ms, bf16 30.5 at 50 ms; run B: fp32 20.0 at 120 ms, bf16 19.0
    # at 40 ms. Over the two: bf16 changes AP by (+0.5 - 1.0) / 2 = -0.25, at most -1.0, and is
    # (2 + 3) / 2 = 2.5x faster.
    run_a = {"fp32": _variant_row(30.0, 30.0, 100, 100), "bf16": _variant_row(30.5, 30.0, 50, 100)}
    run_b = {"fp32": _variant_row(20.0, 20.0, 120, 120), "bf16": _variant_row(19.0, 20.0, 40, 120)}
    rows = accuracy._over_runs([run_a, run_b])
    bf16 = rows["bf16"]
    assert bf16["delta_segm_AP_per_run"] == [0.5, -1.0]
    assert bf16["delta_segm_AP"] == pytest.approx(-0.25)
    assert bf16["delta_segm_AP_farthest"] == -1.0
    assert bf16["segm/AP"] == pytest.approx(24.75)
    assert bf16["speedup_vs_default"] == pytest.approx(2.5)
    assert bf16["ms_per_image"] == pytest.approx(45.0) and bf16["images"] == 40
    assert rows["fp32"]["delta_segm_AP"] == 0.0 and rows["fp32"]["speedup_vs_default"] == 1.0
    table = accuracy.format_table(
        {"runs": ["a", "b"], "split": "test", "load_before": 0, "load_after": 0, "contenders": rows}
    )
    assert "+0.50 -1.00" in table and "means over a, b" in table


def _fake_checkout(folder, seconds_per_iter: float):
    """A checkout whose .venv/bin/python 'trains' by writing detectron2-style metrics.json lines
    with the given iteration time into the OUTPUT_DIR of its command line; each command line is
    appended to ``folder``/calls.txt."""
    (folder / ".venv" / "bin").mkdir(parents=True)
    python = folder / ".venv" / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {folder / "calls.txt"}\n'
        'while [ "$1" != "OUTPUT_DIR" ]; do shift; done\n'
        f"for t in 9.0 {seconds_per_iter} {seconds_per_iter} {seconds_per_iter * 2}; do\n"
        '  echo "{\\"iteration\\": 19, \\"time\\": $t}" >> "$2/metrics.json"\n'
        "done\n"
    )
    python.chmod(0o755)
    return str(folder)


def test_time_training_alternates_checkouts(tmp_path):
    # per run: windows 9.0 (warm-up, left out), t, t, 2t -> median t; old t = 2.0, new t = 0.5
    spec = importlib.util.spec_from_file_location(
        "time_training", REPO / "tools" / "time_training.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    old = _fake_checkout(tmp_path / "old", 2.0)
    new = _fake_checkout(tmp_path / "new", 0.5)
    (tmp_path / "data").mkdir()
    out = tmp_path / "t.json"
    argv = ["--checkout", old, "--checkout", new, "--data", str(tmp_path / "data")]
    result = tool.main(argv + ["--rounds", "2", "--output", str(out)])
    assert [[r["s_per_iter"] for r in rnd] for rnd in result["rounds"]] == [[2.0, 0.5]] * 2
    assert result["rounds"][0][0]["windows"] == [2.0, 2.0, 4.0]
    assert result["median_s_per_iter"] == [2.0, 0.5]
    assert result["speedup_vs_first"] == [1.0, 4.0]
    assert json.loads(out.read_text())["speedup_vs_first"] == [1.0, 4.0]
    with pytest.raises(MissingFileError, match="no .venv/bin/python"):
        tool.main(["--checkout", str(tmp_path), "--data", str(tmp_path / "data")])
    # one checkout with and without an override: the override ends the variant's command lines
    calls = tmp_path / "new" / "calls.txt"
    calls.unlink()
    argv = ["--checkout", new, "--checkout", f"{new} TRASHPOLE.TRAIN.CHANNELS_LAST True"]
    result = tool.main(argv + ["--data", str(tmp_path / "data"), "--output", str(out)])
    assert [c["opts"] for c in result["checkouts"]] == [
        [],
        ["TRASHPOLE.TRAIN.CHANNELS_LAST", "True"],
    ]
    lines = calls.read_text().splitlines()
    assert len(lines) == 4  # 2 rounds x 2 variants, alternating
    assert [line.endswith("TRASHPOLE.TRAIN.CHANNELS_LAST True") for line in lines] == [
        False,
        True,
    ] * 2
    with pytest.raises(UserError, match="KEY VALUE pairs"):
        tool.main(["--checkout", f"{new} SEED", "--data", str(tmp_path / "data")])


def test_time_nms_tool_times_the_cases_it_names(tmp_path):
    """tools/time_nms.py (torch and torchvision only, for any venv): the cases, the versions,
    and scattered boxes that mostly survive NMS, so that the kernel compares nearly every pair."""
    import torchvision

    out = tmp_path / "nms.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "time_nms.py"), "--sizes", "50", "300",
         "--repeats", "2", "--output", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["torchvision"] == torchvision.__version__
    assert result["torch"] == torch.__version__
    cases = result["cases"]
    assert set(cases) == {"single 50", "single 300", "rpn"}
    assert cases["rpn"]["boxes"] == 6268 and cases["rpn"]["levels"] == [2000, 2000, 1728, 432, 108]
    for name, case in cases.items():
        assert case["ms"] > 0, name
        assert 0.5 * case["boxes"] < case["kept"] <= case["boxes"], name
    assert "rpn" in proc.stderr and "kept" in proc.stderr


def test_synthetic_video_tool_runs_from_outside_the_checkout(tmp_path):
    """tools/synthetic_video.py finds benchmarks/ (not installed) from any working folder, and
    the tracker alone, fed the true boxes, counts every object once."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "synthetic_video.py"), "--out", str(tmp_path),
         "--oracle", "--seed", "5", "--size", "128", "--frames", "12"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    score = json.loads((tmp_path / "tracking_score.json").read_text())
    assert score["counted_objects"] == score["true_objects"]
    assert score["id_switches"] == 0 and score["matched"] == score["true_detections"] > 0


def test_counting_suite_on_a_run_writes_each_setting_and_the_choice(tmp_path):
    """The counting suite end to end on a random-weights run (its --quick settings): every row's
    tuning error is at least the chosen setting's, which is the least over the grid."""
    from tiny_model import write_random_run

    from benchmarks import counting

    (tmp_path / "run").mkdir()
    run_dir = write_random_run(tmp_path / "run")
    result = counting.run(str(tmp_path / "out"), [run_dir], **counting.QUICK)
    written = json.loads((tmp_path / "out" / "counting_benchmark.json").read_text())
    assert written["chosen"] == result["chosen"] and written["clips"] == 1
    rows = written["runs"][run_dir]
    assert list(rows) == ["config", "no count score", "chosen"]
    assert rows["config"]["setting"]["count_score"] == 0.9  # the config's default
    assert rows["no count score"]["setting"]["count_score"] == 0.0
    for row in rows.values():
        errors = row["tuning_count_errors"]["1"]
        assert set(errors) == set(CLASS_NAMES)
        tuning = sum(abs(v) for v in errors.values())
        assert tuning >= result["chosen"]["tuning_error"]
    scored = rows["chosen"]["scored_clip"]
    true, counted = scored["true_objects"], scored["counted_objects"]
    assert scored["count_errors"] == {c: counted[c] - true[c] for c in CLASS_NAMES}
    assert "chosen on clips 1-1" in counting.format_table(result)


def test_mask_head_suite_counts_and_labels_what_ran(tmp_path):
    suite = load_suite("mask-head")
    result = suite.run(str(tmp_path), rois=3, rounds=2, warmup=0, dims=(32, 16))
    rows = result["rows"]
    assert list(rows) == ["32", "16"]
    assert "2 3x3 convs of [32] channels" in rows["32"]["label"]
    assert "2 3x3 convs of [16] channels" in rows["16"]["label"]
    assert len(rows["32"]["times_s"]) == 2 and rows["32"]["median_s"] > 0
    # 14x14 RoIs of 128 channels: conv 128->32 and 32->32 (3x3), deconv 32->32 (2x2) to 28x28,
    # predictor 32->2 (1x1) at 28x28
    per_roi = 196 * 9 * (128 * 32 + 32 * 32) + 196 * 4 * 32 * 32 + 784 * 32 * 2
    assert rows["32"]["gmac_per_step"] == pytest.approx(3 * per_roi / 1e9)
    assert result["rois"] == 3 and result["pooled"] == [128, 14, 14]
    assert json.loads((tmp_path / "mask_head_benchmark.json").read_text())["rows"]["16"]["label"]
