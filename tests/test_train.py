"""End to end on a tiny export: train, --eval-only, predictor; resume after a kill; 2 processes."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import pytest
import torch
from conftest import write_tiny_export
from tiny_model import REPO, write_tiny_config

TRAIN_NET = str(REPO / "tools" / "train_net.py")


def _run(args, timeout=300, **kwargs):
    proc = subprocess.run(
        [sys.executable, TRAIN_NET, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(REPO),
        **kwargs,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_no_deprecation(proc.stderr)
    return proc


def assert_no_deprecation(stderr: str) -> None:
    """A user of the command line sees no FutureWarning or DeprecationWarning."""
    lines = [l for l in stderr.splitlines() if "FutureWarning" in l or "DeprecationWarning" in l]
    assert not lines, "\n".join(lines)


def _metrics(run):
    with open(os.path.join(run, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """Two epochs of 4 images at batch 2 (4 iterations), evaluated every epoch."""
    tmp = tmp_path_factory.mktemp("train")
    export = write_tiny_export(tmp / "export", num_images=4)
    config = write_tiny_config(tmp, epochs=2, step=1)
    run = str(tmp / "run")
    _run(["--config-file", config, "--dataset-root", str(export), "OUTPUT_DIR", run])
    return export, run


def test_training_writes_the_run_folder(trained_run):
    _, run = trained_run
    for name in (
        "config.yaml",
        "metrics.json",
        "model_final.pth",
        "model_best.pth",
        "model_best.json",
        "last_checkpoint",
        "results.csv",
        "curves.png",
        "data_summary.json",
        "labels.png",
        "eval/valid/report.md",
        "eval/valid/metrics.json",
        "eval/valid/report.html",
        "index.html",
    ):
        assert os.path.isfile(os.path.join(run, name)), name
    # the saved config holds the real schedule and the class names
    from trashpole.config import load_config

    cfg = load_config(os.path.join(run, "config.yaml"))
    assert (cfg.SOLVER.ITERS_PER_EPOCH, cfg.SOLVER.MAX_ITER) == (2, 4)
    assert tuple(cfg.SOLVER.STEPS) == (2,) and cfg.TEST.EVAL_PERIOD == 2
    assert list(cfg.TRASHPOLE.CLASS_NAMES) == ["pole", "trash-can"]


def test_metrics_hold_losses_and_per_epoch_evaluation(trained_run):
    _, run = trained_run
    rows = _metrics(run)
    evals = [r for r in rows if "segm/AP" in r]
    assert [r["iteration"] for r in evals] == [1, 3] or [r["iteration"] for r in evals] == [1, 4]
    for r in evals:
        assert r["val_total_loss"] > 0
        assert "trashpole/mIoU" in r and "bbox/AP" in r
    with open(os.path.join(run, "results.csv")) as f:
        header, *lines = f.read().split()
    assert header.startswith("epoch,iteration,train_loss,val_loss")
    cells = [line.split(",") for line in lines]
    assert [float(c[0]) for c in cells] == [1.0, 2.0]
    # LR column: 1e-3 in epoch 1, 1e-4 after the step at epoch 1
    lr = header.split(",").index("lr")
    assert [float(c[lr]) for c in cells] == pytest.approx([1e-3, 1e-4])


def test_eval_only_on_the_test_split(trained_run):
    export, run = trained_run
    _run(
        [
            "--config-file",
            os.path.join(run, "config.yaml"),
            "--eval-only",
            "--eval-split",
            "test",
            "--dataset-root",
            str(export),
            "MODEL.WEIGHTS",
            os.path.join(run, "model_final.pth"),
        ]
    )
    out = os.path.join(run, "eval", "test")
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    text = json.dumps(metrics)
    assert "segm" in text and "mIoU" in text
    assert os.path.isfile(os.path.join(out, "report.md"))
    assert os.path.isfile(os.path.join(out, "report.html"))
    with open(os.path.join(run, "index.html")) as f:
        index = f.read()
    assert 'href="eval/valid/report.html"' in index and 'href="eval/test/report.html"' in index
    # the run's own config is left alone
    from trashpole.config import load_config

    assert load_config(os.path.join(run, "config.yaml")).OUTPUT_DIR == run
    # one rule: every evaluation of a split writes eval/<split>/; the evaluation's own log and
    # config go to eval/, and training's report of the valid split stays where it was
    assert os.path.isfile(os.path.join(run, "eval", "log.txt"))
    assert os.path.isfile(os.path.join(run, "eval", "config.yaml"))
    assert os.path.isfile(os.path.join(run, "eval", "valid", "report.md"))


def test_predictor_knows_the_classes_without_registration(trained_run, clean_catalogs):
    from detectron2.data import DatasetCatalog
    from detectron2.engine import DefaultPredictor

    from trashpole import load_predictor
    from trashpole.visualization import class_colors

    export, run = trained_run
    assert not [n for n in DatasetCatalog.list() if n.startswith("trashpole_")]
    predictor = load_predictor(run, score_thresh=0.0)
    assert isinstance(predictor, DefaultPredictor)
    assert predictor.metadata.thing_classes == ["pole", "trash-can"]
    assert predictor.metadata.thing_colors == class_colors(2)  # the palette of every picture
    image = cv2.imread(str(export / "test" / "test_000.jpg"))
    instances = predictor(image)["instances"]
    assert instances.pred_masks.shape[1:] == image.shape[:2]
    assert set(instances.pred_classes.tolist()) <= {0, 1}
    batch = predictor.predict_batch([image, image[:, ::-1].copy()], batch_size=2)
    assert len(batch) == 2
    torch.testing.assert_close(batch[0]["instances"].scores, instances.scores)


def test_predict_tool_writes_overlays_and_json(trained_run, tmp_path):
    export, run = trained_run
    out = tmp_path / "pred"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "predict.py"), "--run", run, "--input",
         str(export / "test"), "--output", str(out), "--score", "0.0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_no_deprecation(proc.stderr)
    for i in range(4):
        assert (out / f"test_{i:03d}.jpg").is_file()
        record = json.loads((out / f"test_{i:03d}.json").read_text())
        assert all(p["category"] in ("pole", "trash-can") for p in record["predictions"])
    assert set(json.loads((out / "predictions.json").read_text())["classes"]) == {
        "pole",
        "trash-can",
    }


def test_kill_then_resume_reaches_the_planned_iteration(tmp_path):
    export = write_tiny_export(tmp_path / "export", num_images=4)
    # 6 epochs of 2 iterations; checkpoint each epoch; no evaluation to keep it quick
    config = write_tiny_config(tmp_path, epochs=6, step=3, trashpole="  VAL_LOSS: False\n")
    run = str(tmp_path / "run")
    args = ["--config-file", config, "--dataset-root", str(export), "OUTPUT_DIR", run,
            "TEST.EVAL_PERIOD_EPOCHS", "0"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, TRAIN_NET, *args],
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    tag = os.path.join(run, "last_checkpoint")
    while time.time() < deadline:
        if os.path.isfile(tag) and open(tag).read().strip() == "model_0000003.pth":
            break
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = open(tag).read().strip()
    assert killed_at != "model_final.pth"

    out = _run(["--resume"] + args)
    log = out.stdout + out.stderr
    start = int(log.split("Starting training from iteration ")[1].split()[0])
    assert start >= 4
    rows = _metrics(run)
    assert max(r["iteration"] for r in rows if "total_loss" in r) == 11
    assert os.path.isfile(os.path.join(run, "model_final.pth"))
    # the LR schedule carried on: after the step at iteration 6 the LR is 1e-4
    last = [r for r in rows if "lr" in r][-1]
    assert last["lr"] == pytest.approx(1e-4)


def test_two_processes_on_cpu(tmp_path):
    export = write_tiny_export(tmp_path / "export", num_images=4)
    config = write_tiny_config(tmp_path, epochs=2, step=1)
    run = str(tmp_path / "run")
    out = _run(
        ["--config-file", config, "--dataset-root", str(export), "--num-gpus", "2",
         "--dist-url", "tcp://127.0.0.1:29517", "OUTPUT_DIR", run]
    )  # fmt: skip
    # batch 2 over 2 processes: one image each, 2 iterations an epoch (4 images)
    from trashpole.config import load_config

    cfg = load_config(os.path.join(run, "config.yaml"))
    assert cfg.SOLVER.MAX_ITER == 4
    # each rank logs its own epochs: rank 1 stepped through the whole schedule
    rank1 = open(os.path.join(run, "log.txt.rank1")).read()
    assert "Epoch 2/2" in rank1
    assert max(r["iteration"] for r in _metrics(run)) >= 3
    # only rank 0 writes: rank 1 leaves nothing but its own log
    assert not [n for n in os.listdir(run) if "rank1" in n and n != "log.txt.rank1"]
    assert "Exception" not in out.stderr


def test_amp_on_cpu_trains_in_bf16(tmp_path, clean_catalogs):
    from trashpole.compat.d2 import loop_trainer
    from trashpole.engine import Trainer, argument_parser, setup
    from trashpole.engine.amp import CPUAutocastTrainer
    from trashpole.speed import bf16_supported

    if not bf16_supported():
        pytest.skip("this CPU has no native bf16: AMP trains in fp32")

    export = write_tiny_export(tmp_path / "export", num_images=4)
    config = write_tiny_config(tmp_path, epochs=1, step=1)
    args = argument_parser().parse_args(
        ["--config-file", config, "--dataset-root", str(export), "SOLVER.AMP.ENABLED", "True",
         "OUTPUT_DIR", str(tmp_path / "run"), "TEST.EVAL_PERIOD_EPOCHS", "0", "DATASETS.TEST", "()"]
    )  # fmt: skip
    cfg = setup(args)
    trainer = Trainer(cfg)
    assert isinstance(loop_trainer(trainer), CPUAutocastTrainer)
    seen = []
    hook = trainer.model.backbone.register_forward_hook(
        lambda m, i, out: seen.append(torch.is_autocast_enabled("cpu"))
    )
    trainer.train()
    hook.remove()
    assert seen and all(seen)  # every training forward ran under bf16 autocast
    assert not torch.is_autocast_enabled("cpu")
    assert torch.load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))["iteration"] == 1


def test_predict_on_a_video(trained_run, tmp_path):
    from trashpole import load_predictor
    from trashpole.predict import predict_paths

    export, run = trained_run
    frame = cv2.imread(str(export / "test" / "test_000.jpg"))
    video = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 5.0, frame.shape[1::-1])
    for shift in range(3):
        writer.write(cv2.flip(frame, 1) if shift == 1 else frame)
    writer.release()
    out = tmp_path / "pred"
    counts = predict_paths(load_predictor(run, score_thresh=0.0), video, str(out))
    assert (counts["videos"], counts["frames"]) == (1, 3)
    frames = json.loads((out / "clip_pred.json").read_text())["frames"]
    assert [f["frame"] for f in frames] == [0, 1, 2]
    written = cv2.VideoCapture(str(out / "clip_pred.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    written.release()


def test_a_run_written_by_the_old_stack_still_loads(trained_run, tmp_path, clean_catalogs):
    """
    Runs trained on torch 2.3 / numpy 1 may hold numpy scalars and arrays beside the weights
    (tests/data/old_stack_resume.pth holds such a file as that stack wrote it; test_compat checks
    it). Here the run's checkpoints get such extras, then --eval-only, --resume, load_predictor
    and export all load them.
    """
    import shutil

    import numpy as np

    from trashpole import load_predictor
    from trashpole.compat import load_torch_checkpoint
    from trashpole.export import export_model

    export, run = trained_run
    old = str(tmp_path / "old_run")
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("eval"))
    for name in ("model_final.pth", open(os.path.join(old, "last_checkpoint")).read().strip()):
        path = os.path.join(old, name)
        data = load_torch_checkpoint(path)
        data.update(best_metric=np.float64(12.5), epoch=np.int64(2), seen=np.arange(3))
        torch.save(data, path)
    with pytest.raises(Exception):
        torch.load(os.path.join(old, "model_final.pth"))  # what plain torch >= 2.6 does
    _run(["--config-file", os.path.join(old, "config.yaml"), "--eval-only",
          "--dataset-root", str(export), "MODEL.WEIGHTS", os.path.join(old, "model_final.pth"),
          "OUTPUT_DIR", old])  # fmt: skip
    assert os.path.isfile(os.path.join(old, "eval", "valid", "metrics.json"))
    proc = _run(["--config-file", os.path.join(old, "config.yaml"), "--resume",
                 "--dataset-root", str(export), "OUTPUT_DIR", old])  # fmt: skip
    log = proc.stdout + proc.stderr
    assert "Loading from " + os.path.join(old, "model_") in log, log[-2000:]
    predictor = load_predictor(old, score_thresh=0.0)
    image = cv2.imread(str(export / "test" / "test_000.jpg"))
    assert predictor(image)["instances"].pred_masks.shape[1:] == image.shape[:2]
    path = export_model(old, str(tmp_path / "export_ts"), fmt="torchscript")
    assert path.endswith("model.ts") and os.path.getsize(path) > 100_000
