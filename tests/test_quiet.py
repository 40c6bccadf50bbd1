"""Lines a user did not ask for, silenced in trashpole.compat where trashpole triggers them: each
test fails when the line comes back, and its twin fails when torch or detectron2 no longer print
it (the filter is then no longer needed)."""

import logging
import os
import subprocess
import sys
import warnings

import pytest
import torch

# a CUDA toolkit folder on a machine without a GPU, then detectron2's fx check as its ROIPooler
# calls it on every forward, and the environment dump of detectron2's default_setup
TRIGGER = """
import detectron2.utils.tracing as tracing
tracing.is_fx_tracing()
import torch.utils.cpp_extension
print("done")
"""
FX_LINE = "is_fx_tracing will return true for both fx.symbolic_trace and torch.export"
CUDA_LINE = "No CUDA runtime is found, using CUDA_HOME="


def _stderr_of(code: str, tmp_path) -> str:
    (tmp_path / "cuda").mkdir(exist_ok=True)
    env = {**os.environ, "CUDA_HOME": str(tmp_path / "cuda"), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
    return proc.stderr


def test_torch_lines_are_silenced_after_import_trashpole(tmp_path):
    assert _stderr_of("import trashpole\n" + TRIGGER, tmp_path) == ""


def test_torch_still_prints_them_without_trashpole(tmp_path):
    err = _stderr_of(TRIGGER, tmp_path)
    assert FX_LINE in err and CUDA_LINE in err


def test_only_those_messages_are_dropped():
    import trashpole  # noqa: F401  (applies the filters)

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    loggers = [
        logging.getLogger(n) for n in ("torch.utils.cpp_extension", "torch.fx._symbolic_trace")
    ]
    for logger in loggers:  # torch's loggers do not propagate: listen on them directly
        logger.addHandler(handler)
    try:
        loggers[0].warning(f"{CUDA_LINE}'/usr/local/cuda'")
        loggers[0].warning("Error building extension 'x'")
        loggers[1].warning(FX_LINE + ". Please use ...")
        loggers[1].warning("is_fx_tracing() is deprecated")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert seen == ["Error building extension 'x'", "is_fx_tracing() is deprecated"]


@pytest.mark.parametrize("line", [FX_LINE, CUDA_LINE])
def test_the_filters_match_what_torch_prints(line):
    from trashpole.compat import QUIET_LOG_LINES

    assert any(line.startswith(prefix) for prefix in QUIET_LOG_LINES.values())


# the 3x2 mask [[1, 0], [1, 1], [0, 1]] read column by column is 1 1 0 0 1 1: RLE runs of 0 zeros,
# 2 ones, 2 zeros, 2 ones (pycocotools' runs start with zeros)
MASK = [[1, 0], [1, 1], [0, 1]]
RLE = {"size": [3, 2], "counts": [0, 2, 2, 2]}


def _copy_warnings(call):
    """(result of call(), the numpy copy= warnings it raised) with every warning shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in caught if "doesn't accept a copy keyword" in str(w.message)]


def _instances():
    from detectron2.structures import Boxes, Instances

    instances = Instances((3, 2))
    instances.pred_masks = torch.tensor(MASK, dtype=torch.bool)[None]
    instances.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 2.0, 3.0]]))
    instances.scores = torch.tensor([0.9])
    instances.pred_classes = torch.tensor([1])
    return instances


def test_coco_mask_hand_off_without_numpy_copy_warning():
    import pycocotools.mask as mask_util
    from detectron2.evaluation import coco_evaluation

    import trashpole  # noqa: F401  (wraps the two functions)

    results, caught = _copy_warnings(
        lambda: coco_evaluation.instances_to_coco_json(_instances(), 7)
    )
    assert caught == []
    assert [(r["image_id"], r["category_id"], r["bbox"]) for r in results] == [(7, 1, [0, 0, 2, 3])]
    decoded, caught = _copy_warnings(lambda: mask_util.decode(results[0]["segmentation"]))
    assert decoded.tolist() == MASK and caught == []
    assert mask_util.decode(mask_util.frPyObjects(RLE, 3, 2)).tolist() == MASK


def test_numpy_copy_warning_still_comes_without_the_wrappers():
    import pycocotools.mask as mask_util
    from detectron2.evaluation import coco_evaluation

    import trashpole  # noqa: F401

    unwrapped = coco_evaluation.instances_to_coco_json.__wrapped__
    results, caught = _copy_warnings(lambda: unwrapped(_instances(), 7))
    assert len(caught) == 1 and caught[0].category is DeprecationWarning
    rle = results[0]["segmentation"]
    decoded, caught = _copy_warnings(lambda: mask_util.decode.__wrapped__(rle))
    assert decoded.tolist() == MASK and len(caught) == 1
