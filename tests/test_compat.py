"""trashpole.compat: each adaptation works, and each is still needed by the code it works around.

A "still needed" test fails when detectron2, fvcore or torch changed so that the adaptation can
go: its message says which one to remove.
"""

import inspect
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from trashpole import compat
from trashpole.errors import UserError

DATA = Path(__file__).parent / "data"
OLD_RESUME = DATA / "old_stack_resume.pth"
OLD_ZOO = DATA / "old_stack_zoo.pkl"


def _python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with every warning shown."""
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120
    )


def _small_model() -> torch.nn.Module:
    """The model of tests/data/make_old_stack_files.py."""
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


# 1. import-time torch.jit.script
def test_importing_trashpole_then_detectron2_prints_no_deprecation():
    proc = _python("import trashpole, detectron2.modeling, detectron2.engine, detectron2.layers")
    assert proc.returncode == 0, proc.stderr
    assert (
        "FutureWarning" not in proc.stderr and "DeprecationWarning" not in proc.stderr
    ), proc.stderr


def test_import_time_scripting_still_warns_without_trashpole():
    for module in compat.IMPORT_TIME_SCRIPTING:
        proc = _python(f"import {module}")
        assert (
            "`torch.jit.script` is deprecated" in proc.stderr
        ), f"importing {module} no longer warns: drop it from compat.IMPORT_TIME_SCRIPTING"


# 2. torch.meshgrid without indexing= (torch warns once a process: each case runs in its own)
ANCHORS = """
import torch
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
gen = DefaultAnchorGenerator(sizes=[[32]], aspect_ratios=[[1.0]], strides=[8], offset=0.0)
print(gen([torch.zeros(1, 1, 2, 3)])[0].tensor[:3, 0].tolist())
"""


def test_anchor_generator_runs_without_the_meshgrid_warning():
    proc = _python("import trashpole" + ANCHORS)
    assert proc.returncode == 0, proc.stderr
    # "ij" order: the x offset varies fastest, as detectron2 expects
    assert proc.stdout.strip() == "[-16.0, -8.0, 0.0]"
    assert "meshgrid" not in proc.stderr, proc.stderr


def test_meshgrid_warning_is_still_raised_by_torch_and_detectron2():
    from detectron2.modeling import anchor_generator

    source = inspect.getsource(anchor_generator._create_grid_offsets)
    assert "torch.meshgrid(shifts_y, shifts_x)" in source, "detectron2 passes indexing= now"
    proc = _python(ANCHORS)
    assert "torch.meshgrid: in an upcoming release" in proc.stderr, "torch is quiet: drop 2."


# 3. model_zoo's pkg_resources
def test_zoo_config_file_finds_the_base_config():
    path = compat.zoo_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    text = Path(path).read_text()
    assert '_BASE_: "../Base-RCNN-FPN.yaml"' in text and "MASK_ON: True" in text
    with pytest.raises(FileNotFoundError, match="not among detectron2's bundled configs"):
        compat.zoo_config_file("COCO-InstanceSegmentation/no_such.yaml")


def test_detectron2_model_zoo_still_imports_pkg_resources():
    import detectron2

    source = Path(detectron2.__file__).parent / "model_zoo" / "model_zoo.py"
    assert "import pkg_resources" in source.read_text(), "model_zoo no longer needs it: drop 3."


# 4. checkpoint loading
def test_old_stack_resume_checkpoint_loads_with_numpy_extras():
    data = compat.load_torch_checkpoint(str(OLD_RESUME))
    assert data["iteration"] == 3
    assert float(data["best_metric"]) == 0.25 and int(data["best_iteration"]) == 2
    np.testing.assert_array_equal(data["history"], [0.125, 0.25])
    assert set(data["model"]) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    }


def test_torch_load_default_still_refuses_numpy_extras():
    with pytest.raises(pickle.UnpicklingError):
        torch.load(str(OLD_RESUME))  # weights_only=True by default since torch 2.6


def test_old_stack_checkpoint_resumes_model_optimizer_and_scheduler():
    from detectron2.solver import LRMultiplier
    from fvcore.common.param_scheduler import MultiStepParamScheduler

    model = _small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = LRMultiplier(
        optimizer, MultiStepParamScheduler([1.0, 0.1], milestones=[5], num_updates=10), 10
    )
    # a plain detectron2 checkpointer: the policy applies to detectron2's own paths too
    ckpt = DetectionCheckpointer(model, optimizer=optimizer, scheduler=sched)
    extra = ckpt.load(str(OLD_RESUME))
    assert extra["iteration"] == 3 and float(extra["best_metric"]) == 0.25
    assert sched.last_epoch == 3
    steps = [s["step"] for s in optimizer.state_dict()["state"].values()]
    assert len(steps) == 4 and all(float(s) == 3 for s in steps)
    stored = compat.load_torch_checkpoint(str(OLD_RESUME))["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, stored[key]), key


def test_model_zoo_pickle_loads_through_the_restricted_unpickler():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    DetectionCheckpointer(model).load(str(OLD_ZOO))
    assert model[0].weight.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert model[0].bias.tolist() == [0.5, -0.5]


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": {}, "__author__": "x", "p": _RunsCode()}))
    with pytest.raises(compat.UntrustedCheckpointError, match="refusing to load posix.system"):
        DetectionCheckpointer(torch.nn.Linear(1, 1)).load(str(path))


def test_a_pth_with_other_objects_needs_the_users_word(tmp_path, monkeypatch):
    path = str(tmp_path / "other.pth")
    torch.save({"model": {}, "extra": compat.UntrustedCheckpointError("x")}, path)
    with pytest.raises(compat.UntrustedCheckpointError, match="TRASHPOLE_TRUST_CHECKPOINTS=1"):
        compat.load_torch_checkpoint(path)
    assert issubclass(compat.UntrustedCheckpointError, UserError)  # one line on the command line
    monkeypatch.setenv(compat.TRUST_ENV, "1")
    assert str(compat.load_torch_checkpoint(path)["extra"]) == "x"


def test_numpy2_written_extras_load_too(tmp_path):
    path = str(tmp_path / "new.pth")
    torch.save({"model": {}, "m": np.float32(1.5), "a": np.arange(3, dtype=np.int16)}, path)
    data = compat.load_torch_checkpoint(path)
    assert data["m"] == np.float32(1.5) and data["a"].dtype == np.int16


# 5. DDP as DefaultTrainer builds it
def test_ddp_for_trainer_on_cpu(monkeypatch):
    from detectron2.engine import defaults as d2_defaults
    from detectron2.utils import comm

    seen = {}

    class FakeDDP:
        def __init__(self, model, **kwargs):
            seen.clear()
            seen.update(kwargs)

    monkeypatch.setattr(d2_defaults, "DistributedDataParallel", FakeDDP)
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    original = d2_defaults.create_ddp_model
    with compat.ddp_for_trainer():
        d2_defaults.create_ddp_model(torch.nn.Linear(1, 1), broadcast_buffers=False)
    assert seen == {"device_ids": None, "forward_sync_buffers": False}
    assert d2_defaults.create_ddp_model is original
    # what detectron2 does on its own: both adaptations are still needed
    d2_defaults.create_ddp_model(torch.nn.Linear(1, 1), broadcast_buffers=False)
    assert seen == {"device_ids": [comm.get_local_rank()], "broadcast_buffers": False}
    source = inspect.getsource(d2_defaults.DefaultTrainer.__init__)
    assert "create_ddp_model(model, broadcast_buffers=False)" in source, "detectron2 changed"


def test_ddp_still_deprecates_broadcast_buffers(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.nn.parallel.DistributedDataParallel(
                torch.nn.Linear(1, 1), broadcast_buffers=False
            )
    finally:
        dist.destroy_process_group()
    assert any("broadcast_buffers" in str(w.message) for w in caught), "not deprecated: drop 5b."


# 6. torch.jit deprecations around trashpole's own export calls
def test_torchscript_calls_are_quiet_and_still_needed(tmp_path):
    def run():
        traced = torch.jit.trace(torch.nn.Linear(2, 2), torch.ones(1, 2))
        torch.jit.save(traced, str(tmp_path / "m.ts"))
        return torch.jit.load(str(tmp_path / "m.ts"))

    with warnings.catch_warnings(record=True) as plain:
        warnings.simplefilter("always")
        run()
    assert any(
        "deprecated" in str(w.message) for w in plain
    ), "torch.jit is not deprecated: drop 6."
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always", append=True)
        with compat.torchscript_calls():
            module = run()
    assert not [w for w in quiet if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert module(torch.ones(1, 2)).shape == (1, 2)
