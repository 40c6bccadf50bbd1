"""
trashpole's adaptations to OpenVINO and its telemetry client, in one place (see
:mod:`trashpole.compat` for detectron2, fvcore and torch); ``tests/test_openvino.py`` tests each.

Telemetry. The ``openvino-telemetry`` package comes with the ``openvino`` wheel (and ``nncf``).
``openvino.convert_model`` and ``nncf.quantize`` start it with ``enable_opt_in_dialog=False``,
and in that mode its consent check answers "no consent file" with *send*: usage events go to
Google Analytics unless the user has run ``opt_in_out --opt_out`` or ``CI=true`` is set. trashpole
never sends anything: :func:`telemetry_off` makes the consent check answer "declined" for the
process, which is what a user's opt-out file would make it answer, without writing that file.

Precision of chosen operations. At ``INFERENCE_PRECISION_HINT`` bf16 the CPU plugin runs every
float operation in bf16 except those carrying OpenVINO's "keep this in f32" runtime attribute
(``ov::disable_fp16_compression``, written ``precise`` in IR files), which the plugin also sets
itself on a network's tail. Python cannot create that attribute: a string set under its key in
``Node.get_rt_info()`` is not the attribute and the plugin ignores it (tested).
:func:`keep_in_f32` writes it where OpenVINO reads it, into the IR, and reads the model back.
"""

import contextlib
import functools
import html
import os
import re
import tempfile
from typing import Any, Iterable, Iterator

_PATCHED = False


def _declined(*args, **kwargs):
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult

    return ConsentCheckResult.DECLINED


def disable_telemetry() -> None:
    """Make every ``openvino_telemetry.Telemetry`` of this process decline to send (idempotent).
    A Telemetry object created before keeps its consent: reset it too (the object is a
    singleton, so there is at most one)."""
    global _PATCHED
    try:
        import openvino_telemetry
        from openvino_telemetry.utils.opt_in_checker import OptInChecker
    except ImportError:  # nothing to silence
        return
    if not _PATCHED:
        OptInChecker.check = _declined
        _PATCHED = True
    # the singleton's slot, as SingletonMetaClass names it (name-mangled)
    instance = getattr(openvino_telemetry.Telemetry, "_SingletonMetaClass__single_instance", None)
    if instance is not None:
        instance.consent = False


@contextlib.contextmanager
def telemetry_off() -> Iterator[None]:
    """Around a conversion or quantization call: telemetry declined (see the module)."""
    disable_telemetry()
    yield


@functools.lru_cache(maxsize=None)
def core():
    """The process's ``openvino.Core`` (telemetry declined first)."""
    disable_telemetry()
    import openvino as ov

    return ov.Core()


# the runtime attribute ov::disable_fp16_compression as OpenVINO's IR serializer writes it
KEEP_F32_ATTRIBUTE = '<attribute name="precise" version="0" />'


def _mark_layer(match: "re.Match", names: set) -> str:
    # one <layer> element of the IR (the stages have no loop bodies, whose layers would nest)
    layer = match.group(0)
    head = layer.split(">", 1)[0]
    name = re.search(r' name="([^"]*)"', head)
    if name is None or html.unescape(name.group(1)) not in names or KEEP_F32_ATTRIBUTE in layer:
        return layer
    if "<rt_info>" in layer:
        return layer.replace("<rt_info>", "<rt_info>\n" + KEEP_F32_ATTRIBUTE, 1)
    return layer[: -len("</layer>")] + f"<rt_info>{KEEP_F32_ATTRIBUTE}</rt_info>\n</layer>"


def keep_in_f32(model: Any, names: Iterable[str]) -> Any:
    """
    ``model`` with OpenVINO's keep-in-f32 attribute on the operations ``names`` (friendly
    names), so that the CPU plugin runs them in f32 whatever the inference precision (see the
    module docstring). The model is written as IR into a temporary folder, the attribute added
    to those layers, and the IR read back from memory.

    Args:
        model: an ``openvino.Model``.
        names: friendly names of its operations.

    Returns:
        a new ``openvino.Model``.
    """
    import openvino as ov

    wanted = set(names)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.xml")
        ov.save_model(model, path, compress_to_fp16=False)
        with open(path, encoding="utf-8") as f:
            xml = f.read()
        marked = re.sub(
            r"<layer [^>]*>.*?</layer>", lambda m: _mark_layer(m, wanted), xml, flags=re.S
        )
        with open(path[:-4] + ".bin", "rb") as f:
            weights = f.read()
    return core().read_model(marked.encode("utf-8"), weights)
