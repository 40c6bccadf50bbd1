"""Folders and videos predicted in a pipeline (trashpole.predict.pipeline): results in order,
really concurrent, errors at their item's turn, and tracks identical to one image at a time."""

import json
import threading
import time

import cv2
import pytest
import torch
from tiny_model import write_random_run

from benchmarks.synthetic_video import pan_zoom_video
from trashpole.predict import load_predictor, track_paths
from trashpole.predict.pipeline import in_order, pipelined, workers_for


def test_in_order_keeps_the_order_and_runs_concurrently():
    threads, active, most = set(), [0], [0]
    lock = threading.Lock()

    def slow_square(x):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            threads.add(threading.current_thread().name)
        time.sleep(0.02 * (5 - x % 5))  # later items finish first
        with lock:
            active[0] -= 1
        return x * x

    results = list(in_order(slow_square, range(12), workers=3))
    assert results == [(x, x * x) for x in range(12)]
    assert len(threads) == 3 and most[0] == 3


def test_in_order_with_one_worker_is_a_plain_loop():
    names = []
    results = list(
        in_order(lambda x: names.append(threading.current_thread().name) or -x, [1, 2], 1, 1)
    )
    assert results == [(1, -1), (2, -2)]
    assert set(names) == {threading.current_thread().name}


def test_in_order_raises_at_the_failing_items_turn():
    def fail_on_three(x):
        if x == 3:
            raise ValueError("three")
        return x

    seen = []
    with pytest.raises(ValueError, match="three"):
        for item, result in in_order(fail_on_three, range(6), workers=2):
            seen.append(result)
    assert seen == [0, 1, 2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> str:
    return write_random_run(tmp_path_factory.mktemp("run"))


def test_tracks_are_the_same_with_and_without_the_pipeline(tiny_run, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(pan_zoom_video(seed=5, num_frames=8, size=96).frames):
        cv2.imwrite(str(frames / f"frame_{i:03d}.png"), frame)
    few = ["TEST.DETECTIONS_PER_IMAGE", "8"]
    outputs = {}
    for workers in (1, 3):
        opts = few + ["TRASHPOLE.INFERENCE.WORKERS", str(workers)]
        predictor = load_predictor(tiny_run, score_thresh=0.0, opts=opts, backend="openvino")
        assert workers_for(predictor) == workers
        out = tmp_path / f"out{workers}"
        summary = track_paths(predictor, str(frames), str(out), None, False, count_score=0.0)
        outputs[workers] = (summary, json.loads((out / "frames_tracks.json").read_text()))
    (one, tracks_one), (three, tracks_three) = outputs[1], outputs[3]
    assert one["frames"] == three["frames"] == 8
    assert one["objects"] == three["objects"] and sum(one["objects"].values()) > 0
    assert tracks_one["frames"] == tracks_three["frames"]


def test_pytorch_backend_predicts_one_image_at_a_time(tiny_run):
    opts = ["TRASHPOLE.INFERENCE.WORKERS", "4"]
    assert workers_for(load_predictor(tiny_run, opts=opts, backend="pytorch")) == 1


def test_images_in_flight_run_on_a_copy_compiled_for_as_many_streams(tiny_run):
    """WORKERS 2 on OpenVINO: the pipeline's threads call a copy of the predictor whose model is
    compiled for 2 streams (made once), with the outputs of one image at a time in f32; with
    STREAMS False, or on PyTorch, they call the predictor itself."""
    f32 = ["TRASHPOLE.INFERENCE.BF16", "False", "TEST.DETECTIONS_PER_IMAGE", "8"]
    predictor = load_predictor(tiny_run, score_thresh=0.0, opts=f32, backend="openvino")
    flying, workers = pipelined(predictor)
    assert workers == 2 and flying is not predictor and pipelined(predictor)[0] is flying
    assert pipelined(predictor, 1) == (predictor, 1)  # one photo: nothing to compile
    assert flying.model.description == "openvino f32 on 2 streams"
    assert flying.model.stages["features"].compiled.get_property("NUM_STREAMS") == 2
    assert predictor.model.stages["features"].compiled.get_property("NUM_STREAMS") == 1
    frames = pan_zoom_video(seed=5, num_frames=3, size=96).frames
    results = [out for _, out in in_order(lambda f: flying(f)["instances"], frames, workers)]
    for frame, two in zip(frames, results):
        one = predictor(frame)["instances"]
        assert len(one) == len(two) == 8
        assert torch.equal(one.pred_classes, two.pred_classes)
        assert torch.allclose(one.pred_boxes.tensor, two.pred_boxes.tensor, atol=1e-3)
        assert torch.allclose(one.scores, two.scores, atol=1e-4)
    off = f32 + ["TRASHPOLE.INFERENCE.STREAMS", "False"]
    shared = load_predictor(tiny_run, opts=off, backend="openvino")
    assert pipelined(shared) == (shared, 2)
    torch_predictor = load_predictor(tiny_run, opts=f32, backend="pytorch")
    assert pipelined(torch_predictor) == (torch_predictor, 1)
