"""model_best.pth after any evaluation: the first evaluated model is kept while the metric is
undefined (NaN or missing), a defined value replaces it, an undefined one never does."""

import json
import logging
import math
import os
from types import SimpleNamespace

import pytest
from conftest import write_tiny_export
from detectron2.utils.events import EventStorage
from tiny_model import write_tiny_config

from trashpole.engine.hooks import BestCheckpointerWithPatience, EarlyStop

NAN = math.nan


class RecordingCheckpointer:
    """Stands in for the trainer's checkpointer: records (name, iteration) of each save."""

    def __init__(self, save_dir):
        self.save_dir = str(save_dir)
        self.saved = []

    def save(self, name, **extra):
        self.saved.append((name, extra["iteration"]))


def evaluate(hook, storage, iteration, **metrics):
    """One evaluation at ``iteration`` putting ``metrics`` in the storage, then the hook."""
    storage.iter = iteration
    storage.put_scalars(
        **{k.replace("_", "/"): v for k, v in metrics.items()}, smoothing_hint=False
    )
    hook.check()
    with open(os.path.join(hook.checkpointer.save_dir, "model_best.json")) as f:
        return json.load(f)


@pytest.fixture
def hook(tmp_path, monkeypatch):
    # detectron2's setup_logger, once called in this process, stops "trashpole" propagating to
    # the root logger, where caplog listens
    monkeypatch.setattr(logging.getLogger("trashpole"), "propagate", True)

    def make(patience=0):
        made = BestCheckpointerWithPatience(
            2, RecordingCheckpointer(tmp_path), "segm/AP", "max", patience_evals=patience
        )
        made.trainer = SimpleNamespace(storage=storage)
        made.before_train()
        return made

    with EventStorage(0) as storage:
        yield make, storage


def test_the_first_evaluation_is_kept_until_a_defined_value(hook, caplog):
    make, storage = hook
    best = make()
    with caplog.at_level(logging.INFO, logger="trashpole"):
        state = evaluate(best, storage, 1, segm_AP=NAN)
    assert best.checkpointer.saved == [("model_best", 1)]
    assert state == {"metric": "segm/AP", "value": None, "iteration": 1, "evals_since_best": 0}
    assert "segm/AP is undefined at iteration 1: it is nan" in caplog.text
    assert "model_best.pth keeps this first evaluated model" in caplog.text
    # another undefined value: nothing saved; a defined one replaces; a lower or NaN one does not
    assert evaluate(best, storage, 3, segm_AP=NAN)["iteration"] == 1
    assert evaluate(best, storage, 5, segm_AP=4.0)["value"] == 4.0
    evaluate(best, storage, 7, segm_AP=NAN)
    evaluate(best, storage, 9, segm_AP=3.0)
    state = evaluate(best, storage, 11, segm_AP=6.0)
    assert best.checkpointer.saved == [("model_best", 1), ("model_best", 5), ("model_best", 11)]
    assert state == {"metric": "segm/AP", "value": 6.0, "iteration": 11, "evals_since_best": 0}


def test_a_metric_the_evaluation_did_not_compute(hook, caplog):
    make, storage = hook
    best = make()
    with caplog.at_level(logging.WARNING, logger="trashpole"):
        evaluate(best, storage, 1, bbox_AP=2.0)
    assert best.checkpointer.saved == [("model_best", 1)]
    assert "the evaluation did not compute it (it gave ['bbox/AP'])" in caplog.text


def test_resume_after_an_undefined_best(hook):
    make, storage = hook
    evaluate(make(), storage, 1, segm_AP=NAN)
    resumed = make()  # reads model_best.json, as after --resume
    assert (resumed.best_metric, resumed.best_iter) == (None, 1)
    evaluate(resumed, storage, 3, segm_AP=NAN)
    assert resumed.checkpointer.saved == []  # the kept model stays
    evaluate(resumed, storage, 5, segm_AP=0.5)
    assert resumed.checkpointer.saved == [("model_best", 5)]


def test_patience_counts_undefined_evaluations(hook):
    make, storage = hook
    best = make(patience=2)
    evaluate(best, storage, 1, segm_AP=NAN)
    assert evaluate(best, storage, 3, segm_AP=NAN)["evals_since_best"] == 1
    with pytest.raises(EarlyStop):
        evaluate(best, storage, 5, segm_AP=NAN)


def test_a_run_without_predictions_has_a_best_checkpoint(tmp_path, clean_catalogs):
    """The case of the issue: a short run whose evaluations find nothing (here: no detection
    can reach the test score threshold 1.0), so every AP is NaN."""
    from trashpole.engine import Trainer, argument_parser, setup

    export = write_tiny_export(tmp_path / "export", num_images=4)
    config = write_tiny_config(tmp_path, epochs=2, step=1, trashpole="  VAL_LOSS: False\n")
    run = tmp_path / "run"
    args = argument_parser().parse_args(
        ["--config-file", config, "--dataset-root", str(export), "OUTPUT_DIR", str(run),
         "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "1.0"]
    )  # fmt: skip
    trainer = Trainer(setup(args))
    trainer.resume_or_load(resume=False)
    trainer.train()
    for handler in logging.getLogger("trashpole").handlers:
        handler.flush()

    assert (run / "model_best.pth").is_file()
    state = json.loads((run / "model_best.json").read_text())
    assert state == {"metric": "segm/AP", "value": None, "iteration": 1, "evals_since_best": 1}
    log = (run / "log.txt").read_text()
    assert "segm/AP is undefined at iteration 1" in log and "\x1b[" not in log
    # metrics.json holds null, not NaN, for the APs of both evaluations
    lines = [
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
        for line in (run / "metrics.json").read_text().splitlines()
    ]
    evals = [line for line in lines if "segm/AP" in line]
    assert len(evals) == 2 and all(e["segm/AP"] is None and e["bbox/AP"] is None for e in evals)
