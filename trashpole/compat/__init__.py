"""Every adaptation of trashpole to detectron2, fvcore and torch internals, in one place.

detectron2 is installed from the Python sources of ``sal-detectron2`` 0.7.2 (upstream detectron2
commit a59f0563, April 2024) without its compiled ``_C``, on torch 2.14 and numpy 2 (see
``tools/install_detectron2.py``). Each adaptation below says what it changes, why, and for which
versions; ``tests/test_compat.py`` has one test per adaptation that fails when it stops working,
and one that fails when the upstream code it works around has changed so that it is no longer
needed. :func:`apply` runs once, when ``trashpole`` is imported.

Code outside this package reaches no private name (``._name``) of detectron2, fvcore, torch or
torchvision; where it needs one, it calls an adapter of :mod:`.d2` or :mod:`.pytorch`, the only
place that spells the name. Adapter -> its test in ``tests/test_compat.py``:

- ``d2.loop_trainer`` / ``d2.replace_loop_trainer`` (DefaultTrainer's SimpleTrainer, swapped for
  CPU bf16 AMP) -> ``test_replace_loop_trainer_runs_the_steps_through_the_new_one``
- ``d2.keep_eval_results`` / ``d2.kept_eval_results`` (the results DefaultTrainer.train checks)
  -> ``test_kept_eval_results_are_what_default_trainer_train_checks``
- ``d2.ModelLoadReport`` (fvcore Checkpointer's model-loading step, for the "loaded N of M
  tensors" line) -> ``test_model_load_report_sees_what_fvcore_loaded``
- ``pytorch.mkldnn_bf16_supported`` -> ``test_mkldnn_bf16_supported_answers_what_onednn_says``
- ``pytorch.tensor_version`` -> ``test_tensor_version_counts_in_place_changes``
- ``pytorch.roi_align_backward`` -> ``test_roi_align_backward_is_the_gradient_of_roi_align``
- ``pytorch.forward_pre_hooks`` -> ``test_forward_pre_hooks_lists_the_registered_hooks_in_order``
- ``pytorch.mask_paste_in_scope`` (benchmarks/profile.py) ->
  ``test_mask_paste_in_scope_wraps_the_paste_that_detectron2_calls`` and ``..._torchvision_calls``

Public API replaces the other reaches: the best-checkpoint hook is trashpole's own on
``HookBase``, ``metrics.json`` its own ``EventWriter``, the tracker its own state on
``BaseTracker``, batch norm layers are found by their public classes
(``test_batch_norms_are_every_batch_norm_layer_of_torch``).
"""

import codecs
import collections
import contextlib
import functools
import importlib
import inspect
import logging
import os
import pickle
import warnings
from typing import Any, Dict, Iterator

import numpy as np
import torch

from trashpole.errors import UserError

logger = logging.getLogger(__name__)

_APPLIED = False


# --- 1. torch.jit.script at import time in fvcore and detectron2 -----------------------------
# fvcore 0.1.5 (its last release) scripts its focal losses with torch.jit.script when fvcore.nn
# is imported (detectron2.layers imports it), and detectron2 decorates two functions of
# modeling/box_regression.py with @torch.jit.script. torch >= 2.10 deprecates torch.jit.script
# with a FutureWarning, so every trashpole command would print it three times. Those modules
# are imported once here with that one warning silenced; nothing else about them changes.
JIT_SCRIPT_WARNING = r"`torch\.jit\.script` is deprecated"
IMPORT_TIME_SCRIPTING = ("fvcore.nn", "detectron2.modeling.box_regression")


def import_scripting_modules_quietly() -> None:
    """Import the modules of IMPORT_TIME_SCRIPTING without torch's FutureWarning."""

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=JIT_SCRIPT_WARNING, category=FutureWarning)
        for name in IMPORT_TIME_SCRIPTING:
            importlib.import_module(name)


# --- 2. torch.meshgrid without indexing= in detectron2's anchor generator ---------------------
# detectron2.modeling.anchor_generator._create_grid_offsets calls torch.meshgrid(y, x) without
# indexing=, which torch >= 1.10 warns about (a UserWarning, once a process, raised from C++ so
# that no Python module can be named in a filter). detectron2 relies on the "ij" default that
# the warning says may change; torch 2.14 still has it. The warning is filtered by its message.
MESHGRID_WARNING = (
    r"torch\.meshgrid: in an upcoming release, it will be required to pass the indexing"
)


def silence_meshgrid_warning() -> None:
    warnings.filterwarnings("ignore", message=MESHGRID_WARNING, category=UserWarning)


# --- 3. detectron2.model_zoo imports pkg_resources --------------------------------------------
# detectron2/model_zoo/model_zoo.py imports pkg_resources at module level to find its bundled
# YAML files. setuptools >= 81 removed pkg_resources, and venvs of Python >= 3.12 have no
# setuptools at all, so `from detectron2 import model_zoo` fails there. trashpole needs only the
# path of one bundled config, which it finds next to the installed detectron2 package.
def zoo_config_file(name: str) -> str:
    """
    Path of a config bundled with detectron2's model zoo.

    Args:
        name: e.g. ``"COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"``.
    """
    import detectron2  # a light import: only its __init__

    path = os.path.join(os.path.dirname(detectron2.__file__), "model_zoo", "configs", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name} is not among detectron2's bundled configs ({path})")
    return path


# --- 4. checkpoint loading on torch >= 2.6 (weights_only) -------------------------------------
# What is trusted, and why:
# - .pth files go through torch.load(weights_only=True), torch >= 2.6's default, which builds
#   only tensors and plain containers and runs no code from the file. trashpole's own
#   checkpoints (and those of trashpole runs on torch 2.3) may also hold numpy scalars and
#   arrays in their extra state; the numpy constructors listed in NUMPY_SAFE_GLOBALS are added
#   to torch's allowlist for that load. They rebuild arrays from bytes and run no code.
# - .pkl files (detectron2's model zoo, downloaded from dl.fbaipublicfiles.com) are plain
#   pickles that detectron2 reads with pickle.load, which can run any code. They are read with
#   the restricted unpickler below, which allows only numpy arrays, scalars and dtypes and
#   builtin containers.
# - Anything else in a file is refused with a message naming it. A user who trusts a file
#   that needs more (a checkpoint from another codebase) sets TRASHPOLE_TRUST_CHECKPOINTS=1,
#   which loads .pth files with weights_only=False; that is never the default.
# fvcore's Checkpointer calls torch.load(f) and detectron2 calls pickle.load(f): both are
# replaced on detectron2's DetectionCheckpointer, so detectron2's own DefaultPredictor and
# every trashpole path (training, --resume, --eval-only, predict, export) use this policy.
TRUST_ENV = "TRASHPOLE_TRUST_CHECKPOINTS"


def _numpy_safe_globals() -> list:

    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else None
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else None
    if reconstruct is None:  # numpy 1.x
        reconstruct = np.core.multiarray._reconstruct
        scalar = np.core.multiarray.scalar
    found = [np.ndarray, np.dtype]
    # files written under numpy 1 name the old module, under numpy 2 the new one
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found += [(reconstruct, f"{module}._reconstruct"), (scalar, f"{module}.scalar")]
    # numpy >= 1.25 pickles a dtype through its class in numpy.dtypes (Float64DType, ...)
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return found


class UntrustedCheckpointError(UserError, pickle.UnpicklingError):
    """A checkpoint holds objects that trashpole does not load without the user's word (a user
    error: the command line prints it as one line)."""


def load_torch_checkpoint(path: str) -> Dict[str, Any]:
    """
    ``torch.load`` of a local .pth file under the policy above (weights_only, numpy allowed).

    Raises:
        UntrustedCheckpointError: the file needs other globals; the message lists them.
    """
    if os.environ.get(TRUST_ENV) == "1":
        logger.warning(f"{TRUST_ENV}=1: loading {path} with weights_only=False")
        return torch.load(path, map_location="cpu", weights_only=False)
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            raise UntrustedCheckpointError(
                f"{path} holds objects other than tensors, numpy arrays and plain containers "
                f"({', '.join(unsafe) or 'unknown'}); if you trust the file, set {TRUST_ENV}=1"
            ) from None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays, scalars and dtypes and builtin containers; refuses anything else."""

    ALLOWED_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray"}

    def find_class(self, module: str, name: str):

        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in (
            "_reconstruct",
            "scalar",
        ):
            core = np._core if hasattr(np, "_core") else np.core
            return getattr(core.multiarray, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "numpy.dtypes" and name.endswith("DType"):
            return getattr(np.dtypes, name)
        if module in ("builtins", "__builtin__") and name in self.ALLOWED_BUILTINS:
            return getattr(__import__("builtins"), name)
        if module == "_codecs" and name == "encode":  # how protocol 2 pickles bytes on Python 3

            return codecs.encode
        if module == "collections" and name == "OrderedDict":

            return collections.OrderedDict
        raise UntrustedCheckpointError(
            f"refusing to load {module}.{name} from a pickled checkpoint: only numpy arrays and "
            "containers are allowed"
        )


def load_zoo_pickle(path: str) -> Any:
    """A detectron2 model-zoo .pkl (numpy arrays in dicts), read without running its code."""
    # detectron2 modules are imported when an adaptation runs, not when trashpole imports compat
    from detectron2.utils.file_io import PathManager

    with PathManager.open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def _patch_checkpoint_loading() -> None:
    # (see load_zoo_pickle on the imports inside these functions)
    from detectron2.checkpoint import DetectionCheckpointer

    if getattr(DetectionCheckpointer, "_trashpole_loading", False):
        return
    d2_load_file = DetectionCheckpointer._load_file

    def _torch_load(self, f: str) -> Dict[str, Any]:
        return load_torch_checkpoint(f)

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if not filename.endswith(".pkl"):
            return d2_load_file(self, filename)  # ends in _torch_load above
        data = load_zoo_pickle(filename)
        if "model" in data and "__author__" in data:  # detectron2 model-zoo format
            self.logger.info(f"Reading a file from '{data['__author__']}'")
            return data
        # Caffe2 / Detectron1 format, converted as detectron2 does
        blobs = data.get("blobs", data)
        blobs = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
        return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}

    DetectionCheckpointer._torch_load = _torch_load
    DetectionCheckpointer._load_file = _load_file
    DetectionCheckpointer._trashpole_loading = True


# --- 5. DistributedDataParallel as DefaultTrainer builds it -------------------------------------
# detectron2's DefaultTrainer calls create_ddp_model(model, broadcast_buffers=False), which
# passes device_ids=[local_rank] (engine/defaults.py). Two things break on today's stack:
# - DDP rejects device_ids for a module on the CPU, and trashpole trains with several CPU
#   processes (gloo) for tests and CPU machines: a CPU model gets device_ids=None.
# - torch >= 2.13 deprecates broadcast_buffers (FutureWarning) for forward_sync_buffers. The new
#   flag also syncs buffers once at init, which changes nothing here: every rank builds the model
#   from the same seed and checkpoint. Where DDP takes forward_sync_buffers, the flag is renamed.
# While this context is open, DefaultTrainer's DDP model is built that way.
def _ddp_takes(name: str) -> bool:

    return name in inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters


@contextlib.contextmanager
def ddp_for_trainer() -> Iterator[None]:
    # (see load_zoo_pickle on the imports inside these functions)
    from detectron2.engine import defaults as d2_defaults
    from detectron2.utils import comm

    original = d2_defaults.create_ddp_model

    def create(model, **kwargs):
        if comm.get_world_size() > 1 and next(model.parameters()).device.type == "cpu":
            kwargs.setdefault("device_ids", None)
        if "broadcast_buffers" in kwargs and _ddp_takes("forward_sync_buffers"):
            kwargs["forward_sync_buffers"] = kwargs.pop("broadcast_buffers")
        return original(model, **kwargs)

    d2_defaults.create_ddp_model = create
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = original


# --- 6. torch.jit / legacy ONNX export deprecations -------------------------------------------
# torch >= 2.10 deprecates torch.jit.trace/script/save/load (FutureWarning) and the
# TorchScript-based ONNX exporter (torch.onnx.export(..., dynamo=False), DeprecationWarning).
# A TorchScript file is what libtorch (C++) and older runtimes load, so the torchscript format
# keeps using torch.jit; trashpole.export says for each format why the path it takes is the one
# that works for this model. These contexts silence exactly those warnings around those calls.
TORCHSCRIPT_WARNINGS = r"`torch\.jit\.\w+` is deprecated"


@contextlib.contextmanager
def torchscript_calls() -> Iterator[None]:
    """Around trashpole's own torch.jit calls: no deprecation warning, no tracer warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TORCHSCRIPT_WARNINGS, category=FutureWarning)
        # detectron2's asserts and shape checks are frozen at trace time; see docs/export.md
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


@contextlib.contextmanager
def legacy_onnx_export() -> Iterator[None]:
    """
    Around the one call of the TorchScript-based ONNX exporter (see trashpole.export): it warns
    that it is deprecated, and its internals call deprecated torch.jit functions and helpers,
    each with its own message, so both warning classes are silenced for that call alone.
    """
    with torchscript_calls(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)  # constant-folding and opset notes
        yield


# --- 7. log lines of torch that no trashpole command asks for -----------------------------------
# - torch >= 2.6's torch.fx.is_fx_tracing() logs once a process that it "will return true for
#   both fx.symbolic_trace and torch.export". detectron2's ROIPooler calls it through
#   detectron2.utils.tracing.is_fx_tracing on every forward, so every predict, evaluation and
#   export printed it. detectron2 means fx tracing of either kind, which the function answers.
# - torch.utils.cpp_extension logs "No CUDA runtime is found, using CUDA_HOME=..." when imported
#   on a machine without a GPU that has a CUDA toolkit folder (/usr/local/cuda or $CUDA_HOME).
#   detectron2's default_setup imports it (collect_env) at the start of every run; trashpole
#   builds no extension, so the line says nothing a CPU user can act on.
# Both are dropped by a filter on the one logger that emits each, matching the message's start.
QUIET_LOG_LINES = {
    "torch.fx._symbolic_trace": "is_fx_tracing will return true for both fx.symbolic_trace",
    "torch.utils.cpp_extension": "No CUDA runtime is found",
}


class _DropMessage(logging.Filter):
    """Drops the records whose message starts with ``prefix``."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_log_lines() -> None:
    """Add the filters of QUIET_LOG_LINES (once per logger)."""
    for name, prefix in QUIET_LOG_LINES.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) for f in target.filters):
            target.addFilter(_DropMessage(prefix))


# --- 8. numpy 2's copy= warning in COCO mask encoding and decoding ----------------------------
# numpy >= 2.0 warns (DeprecationWarning, "__array__ implementation doesn't accept a copy
# keyword") when it converts an object whose __array__ takes no copy= keyword. Two such objects
# meet numpy on every evaluation:
# - torch 2.14's Tensor.__array__(self, dtype=None): detectron2's COCOEvaluator hands each
#   predicted mask to pycocotools as np.array(tensor, dtype="uint8") in instances_to_coco_json;
# - pycocotools 2.0.11's compiled _mask, inside pycocotools.mask.decode (COCOeval, trashpole's
#   matching and report).
# The result is the same either way (numpy falls back to a plain conversion). Those two
# functions are wrapped so that this one warning is silenced inside them; any other warning
# still shows.
NUMPY_COPY_WARNING = r"__array__ implementation doesn't accept a copy keyword"
QUIET_COPY_FUNCTIONS = (
    ("detectron2.evaluation.coco_evaluation", "instances_to_coco_json"),
    ("pycocotools.mask", "decode"),
)


def _without_copy_warning(function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=NUMPY_COPY_WARNING, category=DeprecationWarning
            )
            return function(*args, **kwargs)

    call._trashpole_quiet = True
    return call


def quiet_numpy_copy_warning() -> None:
    """Wrap the functions of QUIET_COPY_FUNCTIONS (once; the original is ``__wrapped__``)."""
    for module_name, name in QUIET_COPY_FUNCTIONS:
        module = importlib.import_module(module_name)
        function = getattr(module, name)
        if not getattr(function, "_trashpole_quiet", False):
            setattr(module, name, _without_copy_warning(function))


def apply() -> None:
    """Apply the import-time adaptations (1-4, 7, 8); idempotent."""
    global _APPLIED
    if _APPLIED:
        return
    import_scripting_modules_quietly()
    silence_meshgrid_warning()
    _patch_checkpoint_loading()
    quiet_log_lines()
    quiet_numpy_copy_warning()
    _APPLIED = True
