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


# --- private names of torch and torchvision behind trashpole.compat.pytorch ---------------------
def test_mkldnn_bf16_supported_answers_what_onednn_says():
    from trashpole.compat import pytorch

    answer = pytorch.mkldnn_bf16_supported()
    assert isinstance(answer, bool)
    assert answer == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    # a public question would make the adapter unnecessary
    assert not hasattr(torch.backends.mkldnn, "is_bf16_supported"), "torch asks it publicly now"


def test_tensor_version_counts_in_place_changes():
    from trashpole.compat.pytorch import tensor_version

    t = torch.zeros(4)
    before = tensor_version(t)
    t.add_(1)
    t[:2].fill_(3)  # through a view: the storage is shared, so is the counter
    assert tensor_version(t) == before + 2
    t + 1  # not in place
    assert tensor_version(t) == before + 2
    assert not hasattr(torch.Tensor, "version"), "torch has a public version counter now"


def test_roi_align_backward_is_the_gradient_of_roi_align():
    from torchvision.ops import roi_align

    from trashpole.compat.pytorch import roi_align_backward

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 10, 12, generator=gen, requires_grad=True)
    rois = torch.tensor(
        [[0, 1.0, 1.0, 8.0, 6.0], [1, 0.0, 2.0, 11.0, 9.0], [1, 3.0, 3.0, 5.0, 5.0]]
    )
    out = roi_align(x, rois, output_size=(2, 3), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    grad = torch.rand(out.shape, generator=gen)
    out.backward(grad)
    mine = roi_align_backward(grad, rois, 0.5, 2, 3, 2, 3, 10, 12, 2, True)
    assert torch.equal(mine, x.grad)


def test_forward_pre_hooks_lists_the_registered_hooks_in_order():
    from trashpole.compat.pytorch import forward_pre_hooks

    module = torch.nn.Linear(2, 2)

    def first(m, args):
        return None

    def second(m, args, kwargs):
        return None

    handle = module.register_forward_pre_hook(first)
    module.register_forward_pre_hook(second, with_kwargs=True)
    assert forward_pre_hooks(module) == [first, second]
    handle.remove()
    assert forward_pre_hooks(module) == [second]


def _scope_events(run, library: str) -> list:
    """Names of the ops that ran inside the mask-paste scope while ``run()`` ran."""
    from trashpole.compat.pytorch import mask_paste_in_scope

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with mask_paste_in_scope(library, "test::paste"):
            run()
    inside = []
    for event in prof.events():
        parent = event.cpu_parent
        while parent is not None and parent.name != "test::paste":
            parent = parent.cpu_parent
        if parent is not None:
            inside.append(event.name)
    return inside


def test_mask_paste_in_scope_wraps_the_paste_that_detectron2_calls():
    from detectron2.modeling.meta_arch import rcnn
    from detectron2.structures import Boxes, Instances

    original = rcnn.detector_postprocess
    instances = Instances((8, 8), pred_boxes=Boxes(torch.tensor([[1.0, 1.0, 6.0, 6.0]])))
    instances.pred_masks = torch.ones(1, 1, 28, 28)

    def run():
        # what GeneralizedRCNN.inference runs after its heads (do_postprocess=True)
        out = rcnn.GeneralizedRCNN._postprocess(
            [instances], [{"height": 16, "width": 16}], [(8, 8)]
        )
        assert out[0]["instances"].pred_masks.shape == (1, 16, 16)

    assert _scope_events(run, "detectron2"), "detectron2 no longer calls detector_postprocess"
    assert rcnn.detector_postprocess is original


def test_mask_paste_in_scope_wraps_the_paste_that_torchvision_calls():
    from torchvision.models.detection import transform

    original = transform.paste_masks_in_image
    resize = transform.GeneralizedRCNNTransform(8, 8, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]).eval()
    result = [{"boxes": torch.tensor([[1.0, 1.0, 6.0, 6.0]]), "masks": torch.ones(1, 1, 28, 28)}]

    def run():
        out = resize.postprocess(result, [(8, 8)], [(16, 16)])
        assert out[0]["masks"].shape == (1, 1, 16, 16)

    assert _scope_events(run, "torchvision"), "torchvision no longer calls paste_masks_in_image"
    assert transform.paste_masks_in_image is original


def test_batch_norms_are_every_batch_norm_layer_of_torch():
    """trashpole.engine.hooks.BATCH_NORMS names torch's batch norm layers publicly; it must find
    what an isinstance check against their private base class finds."""
    from trashpole.engine.hooks import BATCH_NORMS

    base = torch.nn.modules.batchnorm._BatchNorm
    found, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    for cls in found:
        if not cls.__module__.startswith("torch.nn."):
            continue
        if cls.__name__.startswith("Lazy"):  # becomes its cls_to_become at the first forward
            assert issubclass(cls.cls_to_become, BATCH_NORMS), cls
        else:
            assert issubclass(cls, BATCH_NORMS), cls


# --- private names of detectron2 and fvcore behind trashpole.compat.d2 --------------------------
def _bare_default_trainer():
    """A DefaultTrainer with TrainerBase's state and none of its own (no model, no data)."""
    from detectron2.config import get_cfg
    from detectron2.engine import DefaultTrainer, TrainerBase

    trainer = DefaultTrainer.__new__(DefaultTrainer)
    TrainerBase.__init__(trainer)
    trainer.cfg = get_cfg()
    trainer.start_iter = trainer.max_iter = 0
    return trainer


def test_replace_loop_trainer_runs_the_steps_through_the_new_one():
    from detectron2.engine import DefaultTrainer

    from trashpole.compat.d2 import loop_trainer, replace_loop_trainer

    class Loop:
        model, data_loader, optimizer = "model", "loader", "optimizer"
        ran_at = None

        def run_step(self):
            self.ran_at = self.iter

    trainer, loop = _bare_default_trainer(), Loop()
    replace_loop_trainer(trainer, loop)
    assert loop_trainer(trainer) is loop
    assert (trainer.model, trainer.data_loader, trainer.optimizer) == (
        "model",
        "loader",
        "optimizer",
    )
    trainer.iter = 7
    trainer.run_step()
    assert loop.ran_at == 7
    # still needed: detectron2 picks its loop trainer inside __init__, with no method to override
    source = inspect.getsource(DefaultTrainer.__init__)
    assert "(AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(" in source


def test_kept_eval_results_are_what_default_trainer_train_checks():
    from trashpole.compat.d2 import keep_eval_results, kept_eval_results

    trainer = _bare_default_trainer()
    assert kept_eval_results(trainer) is None
    results = {"segm": {"AP": 50.2}}
    keep_eval_results(trainer, results)
    assert kept_eval_results(trainer) is results
    trainer.cfg.TEST.EXPECTED_RESULTS = [["segm", "AP", 50.0, 0.5]]
    assert trainer.train() is results  # DefaultTrainer.train verified and returned them


def test_model_load_report_sees_what_fvcore_loaded(tmp_path):
    from fvcore.common.checkpoint import Checkpointer

    from trashpole.compat.d2 import ModelLoadReport

    class Reporting(ModelLoadReport, DetectionCheckpointer):
        def model_loaded(self, keys, incompatible):
            self.seen = (keys, incompatible)

    path = str(tmp_path / "other.pth")
    torch.save({"model": {"0.weight": torch.ones(5, 3), "0.bias": torch.ones(2)}}, path)
    checkpointer = Reporting(_small_model())
    checkpointer.load(path)
    keys, incompatible = checkpointer.seen
    assert keys == ["0.weight", "0.bias"]
    assert [k for k, _, _ in incompatible.incorrect_shapes] == ["0.weight"]
    assert checkpointer.model[0].bias.tolist() == [1.0, 1.0]
    assert "incompatible = self._load_model(checkpoint)" in inspect.getsource(Checkpointer.load)
