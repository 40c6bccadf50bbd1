"""The slicing benchmark's arithmetic (benchmarks.slicing) on hand-worked timings; the
suite itself runs with ``tools/benchmark.py slicing`` (about 30 s with --quick: an OpenVINO
conversion)."""

import pytest

from benchmarks.slicing import format_table, summarize


def test_summarize_against_the_bound_of_one_pass_at_a_time():
    seconds = {
        "whole image": [0.5, 0.4, 0.6],  # median 0.5
        "one slice": [0.2, 0.3, 0.25],  # median 0.25
        "sliced, batch 1": [5.5, 5.6, 5.4],  # median 5.5
        "sliced, batch 4": [4.0, 4.4, 4.2],  # median 4.2
    }
    labels = {name: "openvino f32" for name in seconds}
    detections = {"whole image": 3, "one slice": 1, "sliced, batch 1": 9, "sliced, batch 4": 9}
    rows = summarize(seconds, detections, labels, slices=20)
    # bound: 20 slices x 0.25 s + the whole image 0.5 s = 5.5 s
    assert rows["sliced, batch 1"]["bound_s"] == pytest.approx(5.5)
    assert rows["sliced, batch 1"]["cost_vs_bound"] == pytest.approx(1.0)
    assert rows["sliced, batch 1"]["cost_vs_slices"] == pytest.approx(5.5 / 5.0)
    assert rows["sliced, batch 4"]["cost_vs_bound"] == pytest.approx(4.2 / 5.5)
    assert rows["sliced, batch 4"]["images_per_s"] == pytest.approx(1 / 4.2)
    assert rows["one slice"]["median_s"] == 0.25 and "bound_s" not in rows["one slice"]
    assert rows["whole image"]["detections"] == 3

    result = {"rows": rows, "width": 1600, "height": 1200, "slices": 20, "slice_size": 384}
    result.update(rounds=3, threads=2, load_before=[4.3], load_after=[4.9])
    table = format_table(result).splitlines()
    assert table[2].split()[:4] == ["whole", "image", "0.500", "2.00"]
    assert table[5].split()[:7] == ["sliced,", "batch", "4", "4.200", "0.24", "0.76", "0.84"]
    assert table[-1].startswith("a 1600x1200 photo: 20 slices of 384 px + the whole image")
    rows["sliced, batch 4"]["steps_s"] = {"passes": 3.9, "merge": 0.05}
    assert (
        format_table(result).splitlines()[-2]
        == "sliced, batch 4, a call: passes 3900 ms, merge 50 ms"
    )
