"""
Strict JSON for every file trashpole writes: an undefined number (NaN, +-inf) is written as
``null``, because ``NaN`` is not JSON (JavaScript's ``JSON.parse``, jq and most readers reject
it). Python's ``json`` module writes ``NaN`` by default; :func:`dumps` and :func:`write_json`
convert first and then dump with ``allow_nan=False``, so a value that slipped through fails
loudly instead of producing a file others cannot read.
"""

import json
import math
import os
from typing import Any

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """
    Recursively turn numpy values into Python ones, tuples into lists and NaN/inf into None.

    Args:
        obj: dicts (keys become strings), lists, tuples, ndarrays, numpy scalars, plain values.

    Returns:
        an object ``json.dumps(..., allow_nan=False)`` accepts.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`to_jsonable` ``(obj)``, strict (``allow_nan=False``)."""
    return json.dumps(to_jsonable(obj), allow_nan=False, **kwargs)


def write_json(obj: Any, path: str, indent: Any = 2, **kwargs: Any) -> None:
    """
    Write ``obj`` as strict JSON, creating the parent folder.

    Args:
        obj: see :func:`to_jsonable`.
        path: the file.
        indent: ``json.dump``'s indent (None: one line).
        kwargs: more ``json.dumps`` options (``sort_keys``...).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        f.write(dumps(obj, indent=indent, **kwargs))
