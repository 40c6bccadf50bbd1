"""
trashpole's adaptations to OpenVINO and its telemetry client, in one place (see
:mod:`trashpole.compat` for detectron2, fvcore and torch); ``tests/test_openvino.py`` tests each.

Telemetry. The ``openvino-telemetry`` package comes with the ``openvino`` wheel (and ``nncf``).
``openvino.convert_model`` and ``nncf.quantize`` start it with ``enable_opt_in_dialog=False``,
and in that mode its consent check answers "no consent file" with *send*: usage events go to
Google Analytics unless the user has run ``opt_in_out --opt_out`` or ``CI=true`` is set. trashpole
never sends anything: :func:`telemetry_off` makes the consent check answer "declined" for the
process, which is what a user's opt-out file would make it answer, without writing that file.
"""

import contextlib
import functools
from typing import Iterator

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
