"""tools/predict.py end to end with a tiny random model: --track on a video and on a folder of
frames (tracks.csv, summary.json, overlays), and photos placed by their GPS EXIF
(detections.geojson). The plumbing, not the model's quality: tracker logic is in test_track.py."""

import csv
import json
import os
import runpy
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances
from PIL.TiffImagePlugin import IFDRational
from test_geo import PLACES, gps_tags, write_photo
from tiny_model import REPO, write_random_run

from benchmarks.synthetic_video import pan_zoom_video
from synthetic import CLASS_NAMES
from trashpole.predict import load_predictor, predict_paths
from trashpole.predict.outputs import TRACK_COLUMNS
from trashpole.visualization import track_color
from trashpole.visualization.overlays import draw_tracked

# a random model at score 0 gives 100 detections an image; drawing them is most of the time
FEW = ["TEST.DETECTIONS_PER_IMAGE", "8"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> str:
    """A run folder (config.yaml + model_final.pth) of the tiny recipe with random weights."""
    return write_random_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def predict_tool():
    """tools/predict.py's functions (``main``, ``parse_args``), loaded through runpy."""
    return SimpleNamespace(**runpy.run_path(str(REPO / "tools" / "predict.py")))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_photos_are_placed_by_their_gps(tiny_run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for k, place in enumerate(sorted(PLACES)):
        write_photo(photos / f"{place}.jpg", gps_tags(place), seed=k)
    write_photo(photos / "no_gps.jpg", seed=7)
    write_photo(photos / "bad_gps.jpg", gps_tags("oslo", {1: "Q"}), seed=8)
    out = tmp_path / "out"
    predictor = load_predictor(tiny_run, score_thresh=0.0, opts=FEW)
    counts = predict_paths(predictor, str(photos), str(out))
    assert (counts["images"], counts["images_with_gps"], counts["images_without_gps"]) == (6, 4, 2)
    assert counts["gps_problems"] == 1
    data = json.loads((out / "detections.geojson").read_text())
    assert data["type"] == "FeatureCollection"
    assert len(data["features"]) == counts["detections"] > 0
    located = set()
    for feature in data["features"]:
        place = os.path.splitext(os.path.basename(feature["properties"]["image"]))[0]
        assert set(feature["properties"]) == {"class", "score", "image", "box"}
        if place in PLACES:
            *_, lat, lon = PLACES[place]
            assert feature["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-7)
            located.add(place)
        else:
            assert feature["geometry"] is None
    assert located == set(PLACES)
    assert (out / "positions.png").is_file()


def test_track_a_video(tiny_run, tmp_path, predict_tool):
    video = pan_zoom_video(seed=5, num_frames=6, size=96)
    clip = str(tmp_path / "walk.mp4")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (96, 96))
    for frame in video.frames:
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    argv = ["--run", tiny_run, "--input", clip, "--output", str(out), "--score", "0.0", "--track"]
    argv += FEW
    summary = predict_tool.main(argv)
    rows = read_csv(out / "tracks.csv")
    assert list(rows[0]) == list(TRACK_COLUMNS)
    assert summary["frames"] == 6 and summary["videos"] == 1
    assert summary["sequences"]["walk"]["tracks"] == len(rows) > 0
    counted = [r for r in rows if r["counted"] == "1"]
    assert summary["min_frames"] == 2 and summary["count_score"] == 0.9  # the config's defaults
    for row in rows:  # the counting rule: 2 frames or more, seen once at score 0.9 or more
        rule = int(row["frames_seen"]) >= 2 and float(row["best_score"]) >= 0.9
        assert row["counted"] == str(int(rule))
    assert sum(summary["objects"].values()) == len(counted)
    for name, n in summary["objects"].items():
        assert n == sum(r["class"] == name for r in counted)
    # the per-frame records carry the IDs of tracks.csv, and each row's extent is theirs
    frames = json.loads((out / "walk_tracks.json").read_text())["frames"]
    seen = {}
    for fr in frames:
        for rec in fr["predictions"]:
            seen.setdefault(rec["track_id"], []).append((fr["frame"], rec["score"]))
    for row in rows:
        hits = seen[int(row["track_id"])]
        assert (int(row["first_frame"]), int(row["last_frame"])) == (hits[0][0], hits[-1][0])
        assert int(row["frames_seen"]) == len(hits)
        assert float(row["best_score"]) == pytest.approx(max(s for _, s in hits), abs=1e-5)
    cap = cv2.VideoCapture(str(out / "walk_track.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()


def test_track_still_frames_with_gps(tiny_run, tmp_path, predict_tool):
    """The same frame five times, named so that a text sort would put frame_10 before frame_2:
    every track spans every frame, in the natural order."""
    frames = tmp_path / "still"
    frames.mkdir()
    still = pan_zoom_video(seed=1, num_frames=1, size=96).frames[0]
    tags = gps_tags("sydney", {5: 0, 6: IFDRational(31, 1)})
    for k in (1, 2, 3, 10, 11):
        write_photo(frames / f"frame_{k}.png", tags, pixels=still[:, :, ::-1])
    out = tmp_path / "out"
    argv = ["--run", tiny_run, "--input", str(frames), "--output", str(out), "--score", "0.0",
            "--track", "--count-score", "0", "--min-track-frames"]  # fmt: skip
    summary = predict_tool.main(argv + ["5"] + FEW)
    rows = read_csv(out / "tracks.csv")
    assert rows and summary["frames"] == 5 and summary["count_score"] == 0
    for row in rows:
        assert (row["first_frame"], row["last_frame"], row["frames_seen"]) == ("0", "4", "5")
        assert row["counted"] == "1"
        assert (float(row["latitude"]), float(row["longitude"])) == pytest.approx(
            (-33.858675, 151.2084722), abs=1e-7
        )
    assert sum(summary["objects"].values()) == len(rows)
    order = json.loads((out / "still_tracks.json").read_text())["frames"]
    assert [os.path.basename(f["image"]) for f in order] == [
        f"frame_{k}.png" for k in (1, 2, 3, 10, 11)
    ]
    features = json.loads((out / "detections.geojson").read_text())["features"]
    assert {f["properties"]["track_id"] for f in features} == {int(r["track_id"]) for r in rows}
    assert summary["gps"]["images_with_gps"] == 5
    assert sorted(os.listdir(out / "still_track")) == [f"frame_{k}.jpg" for k in (1, 10, 11, 2, 3)]
    # one frame more than there are: nothing is counted
    summary = predict_tool.main(argv + ["6"] + FEW)
    assert sum(summary["objects"].values()) == 0


def test_overlay_colours_each_track(tmp_path):
    image = np.full((64, 64, 3), 128, np.uint8)
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 10:30, 5:15] = True
    masks[1, 10:30, 40:60] = True
    inst = Instances(
        (64, 64), pred_boxes=Boxes(torch.tensor([[5, 10, 15, 30], [40, 10, 60, 30.0]]))
    )
    inst.scores = torch.tensor([0.9, 0.8])
    inst.pred_classes = torch.tensor([0, 1])
    inst.pred_masks = masks
    out = draw_tracked(image, inst, torch.tensor([3, 4]), CLASS_NAMES)
    assert out.shape == image.shape and (out[50:, :] == 128).all()  # below the boxes: untouched
    for track_id, (y, x) in zip((3, 4), [(20, 10), (20, 50)]):
        # inside a mask: 60% of the grey and 40% of the track's colour (an RGB palette, BGR out)
        expected = 0.6 * 128 + 0.4 * 255 * track_color(track_id)
        assert out[y, x, ::-1] == pytest.approx(expected, abs=1.5)
    assert not np.allclose(track_color(3), track_color(4))


def test_track_flags_are_checked(predict_tool, capsys):
    base = ["--run", "r", "--input", "i", "--output", "o", "--track"]
    assert predict_tool.parse_args(base + ["--min-track-frames", "3"]).min_track_frames == 3
    assert predict_tool.parse_args(base).min_track_frames is None  # the config's value
    with pytest.raises(SystemExit):
        predict_tool.parse_args(base + ["--coco-json", "c.json"])
    assert "not for --track" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict_tool.parse_args(base + ["--min-track-frames", "0"])
    assert "--min-track-frames 0" in capsys.readouterr().err
