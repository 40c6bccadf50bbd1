"""trashpole's config keys and the one place where a config is put together.

Setup order (always): ``get_cfg()`` -> :func:`add_trashpole_config` -> detectron2's
``COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml`` -> the project YAML (which inherits from
``configs/Base-TrashPole.yaml`` through ``_BASE_``) -> command-line opts -> derived values
(:func:`trashpole.engine.derive.derive_from_data`, which also turns epochs into iterations) ->
``freeze()``.
"""

import contextlib
import difflib
import logging
import os
from typing import Callable, Iterator, List, Optional, Sequence

import torch
import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from trashpole.compat import zoo_config_file
from trashpole.errors import MissingFileError, UserError

logger = logging.getLogger(__name__)

# detectron2's model-zoo config that every trashpole recipe extends.
ZOO_BASE_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
# The COCO-pretrained checkpoint of that config (model id 137849600).
COCO_WEIGHTS = (
    "detectron2://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl"
)
OPTIMIZERS = ("Adam", "AdamW", "SGD")


# keys that trashpole no longer has (OpenVINO replaced the hand-written PyTorch inference
# options); a config that sets one still loads, and load_config says once that it is ignored
REMOVED_KEYS = (
    "TRASHPOLE.INFERENCE.FUSE",
    "TRASHPOLE.INFERENCE.THREADED_ROI_ALIGN",
    "TRASHPOLE.INFERENCE.COMPILE",
)


def add_trashpole_config(cfg: CN) -> None:
    """
    Add trashpole's keys to a detectron2 config, in place. Every schedule key in epochs is turned
    into its detectron2 iteration key by :func:`trashpole.engine.derive.resolve_epochs` before the
    config is frozen.
    """
    # Optimizer: one of OPTIMIZERS. detectron2's BASE_LR, MOMENTUM (SGD only), WEIGHT_DECAY,
    # WEIGHT_DECAY_NORM, BIAS_LR_FACTOR and CLIP_GRADIENTS apply to all of them.
    cfg.SOLVER.OPTIMIZER = "SGD"
    # Adam/AdamW (beta1, beta2).
    cfg.SOLVER.BETAS = (0.9, 0.999)
    # Length of training in epochs (passes over the train split). 0 keeps SOLVER.MAX_ITER as given.
    cfg.SOLVER.EPOCHS = 0
    # Epochs at which the LR is multiplied by SOLVER.GAMMA (replace SOLVER.STEPS when EPOCHS > 0).
    cfg.SOLVER.STEP_EPOCHS = ()
    # Linear warmup length in epochs (fractions allowed; replaces SOLVER.WARMUP_ITERS when EPOCHS > 0).
    cfg.SOLVER.WARMUP_EPOCHS = 0.0
    # Periodic checkpoint every this many epochs (replaces SOLVER.CHECKPOINT_PERIOD when EPOCHS > 0).
    cfg.SOLVER.CHECKPOINT_PERIOD_EPOCHS = 1
    # Periodic checkpoints (model_<iter>.pth) kept on disk, newest first; model_final.pth and
    # model_best.pth are never deleted.
    cfg.SOLVER.CHECKPOINT_MAX_KEEP = 2
    # Iterations in one epoch: derived from the train split and IMS_PER_BATCH, saved for the record.
    cfg.SOLVER.ITERS_PER_EPOCH = 0
    # Evaluate on DATASETS.TEST every this many epochs (replaces TEST.EVAL_PERIOD when EPOCHS > 0;
    # 0 evaluates only at the end).
    cfg.TEST.EVAL_PERIOD_EPOCHS = 1

    cfg.TRASHPOLE = CN()
    # Folder of the Roboflow COCO export ({train,valid,test}/_annotations.coco.json). Empty: use
    # $DETECTRON2_DATASETS/<DATASET_NAME> (the detectron2 convention; "datasets" if unset).
    cfg.TRASHPOLE.DATASET_ROOT = ""
    # Prefix of the registered data set names: <DATASET_NAME>_train, _valid, _test.
    cfg.TRASHPOLE.DATASET_NAME = "trashpole"
    # Bad records in the export: False skips them with a count, True stops with the list.
    cfg.TRASHPOLE.STRICT_DATA = False
    # Class names in contiguous-id order, filled from the train split at setup and saved in
    # config.yaml, so that a predictor knows them without any registered data set.
    cfg.TRASHPOLE.CLASS_NAMES = []
    # Compute the validation loss (the training losses on DATASETS.TEST[0], no gradient) at each
    # evaluation.
    cfg.TRASHPOLE.VAL_LOSS = True
    # Metric (a key of the flattened evaluation results) that selects model_best.pth; "" disables.
    cfg.TRASHPOLE.BEST_METRIC = "segm/AP"
    # "max" or "min": which direction of BEST_METRIC is better.
    cfg.TRASHPOLE.BEST_MODE = "max"
    # Stop when BEST_METRIC has not improved for this many epochs (0: never stop early).
    cfg.TRASHPOLE.EARLY_STOP_PATIENCE = 0

    cfg.TRASHPOLE.INFERENCE = CN()
    # Engine of the predictor, --eval-only, the evaluation at the end of training and the
    # benchmarks: "openvino" (the networks converted with torch.export and run by OpenVINO;
    # bf16 where the CPU has it, f32 elsewhere), "pytorch" (detectron2's model with the options
    # below), or "auto": OpenVINO on a CPU, PyTorch on CUDA (docs/export.md).
    cfg.TRASHPOLE.INFERENCE.BACKEND = "auto"
    # OpenVINO only: run the backbone + FPN + RPN head in int8, quantized by NNCF post-training
    # quantization calibrated on INT8_CALIBRATION_IMAGES images of the run's train split
    # (cached beside the weights like the float model).
    cfg.TRASHPOLE.INFERENCE.INT8 = False
    # Images of the train split (at the test size) that calibrate the int8 quantization.
    cfg.TRASHPOLE.INFERENCE.INT8_CALIBRATION_IMAGES = 32
    # OpenVINO only: images of a folder or frames of a video predicted at once by
    # tools/predict.py (threads; each image its own infer request, results keep their order, so
    # tracks are those of one image at a time), and slices of a batch (SLICE.BATCH) predicted at
    # once. 1 predicts one at a time.
    cfg.TRASHPOLE.INFERENCE.WORKERS = 2
    # OpenVINO only, WORKERS > 1: the images (or slices) in flight together run on a copy of the
    # model compiled for WORKERS streams (OpenVINO's throughput mode: each inference on its share
    # of the cores), made at the first such image; one image alone keeps the model compiled for
    # latency, which gives it every core. False: they share that model (docs/performance.md).
    cfg.TRASHPOLE.INFERENCE.STREAMS = True
    # Speed options of the PyTorch backend (never of training or of the evaluations during
    # training): PyTorch's generic switches, each of which can be switched off. On a CPU the
    # engine is OpenVINO (BACKEND auto), which only reads BF16; measured in docs/performance.md.
    # Run under CPU bfloat16 autocast (the parts that need fp32 stay fp32). Used only where the
    # CPU has native bf16 (AVX-512 BF16 or AMX, probed at run time); elsewhere ignored with a
    # warning (emulated bf16 is slower than fp32), so True means "bf16 where the CPU does it
    # natively". OpenVINO: bf16 inference precision under the same rule.
    cfg.TRASHPOLE.INFERENCE.BF16 = True
    # Convert the model to channels_last (NHWC) memory format, oneDNN's native layout.
    cfg.TRASHPOLE.INFERENCE.CHANNELS_LAST = True
    # torch intra-op threads for inference; 0 leaves torch's default (one per core).
    cfg.TRASHPOLE.INFERENCE.NUM_THREADS = 0
    # Sliced inference of large photos (trashpole.predict.slicing; the merge rule in
    # trashpole.predict.merge): overlapping slices at the model's input size, run in batches,
    # plus one whole-image pass, merged so that each object comes out once with its whole mask.
    cfg.TRASHPOLE.INFERENCE.SLICE = CN()
    # "off", "on", or "auto": slice only the images that the whole-image pass shrinks at least
    # AUTO_MIN_SHRINK times (max of short side / INPUT.MIN_SIZE_TEST and long side /
    # INPUT.MAX_SIZE_TEST); the log says which and why.
    cfg.TRASHPOLE.INFERENCE.SLICE.MODE = "off"
    # Side of the square slices, px of the original image; 0 = INPUT.MIN_SIZE_TEST (slices then
    # run at scale 1, the model's native resolution).
    cfg.TRASHPOLE.INFERENCE.SLICE.SIZE = 0
    # Least share (0 <= OVERLAP < 1) of a slice's side shared with its neighbours; an object cut
    # by one slice's edge is matched across slices in this band.
    cfg.TRASHPOLE.INFERENCE.SLICE.OVERLAP = 0.2
    # Also run the whole image once (at the test size), for objects larger than a slice.
    cfg.TRASHPOLE.INFERENCE.SLICE.WHOLE_IMAGE = True
    # Slices per call of the backend (images in one batch; on OpenVINO, WORKERS at once).
    cfg.TRASHPOLE.INFERENCE.SLICE.BATCH = 4
    # auto's threshold: the shrink factor of the whole-image pass (> 1) from which auto slices.
    cfg.TRASHPOLE.INFERENCE.SLICE.AUTO_MIN_SHRINK = 2.0

    # Keys of the PyTorch inference path that OpenVINO replaced (hand-fused convolutions,
    # threaded ROIAlign at inference, torch.compile): a run's config.yaml written before still
    # loads, and the key is ignored with a warning.
    for key in REMOVED_KEYS:
        cfg.register_deprecated_key(key)

    cfg.TRASHPOLE.TRAIN = CN()
    # Speed options of training (the trainer's model; bit-identical, so on by default).
    # Split ROIAlign over the torch threads in training: the forward by box, the backward (which
    # torchvision runs on one core) by image, for batches of two images or more.
    cfg.TRASHPOLE.TRAIN.THREADED_ROI_ALIGN = True
    # Weights (hence activations) of the training model in channels_last (NHWC), oneDNN's native
    # layout. Not bit-identical to NCHW (the convolutions add in another order), so off here; the
    # CPU recipe says whether it turns it on, and why (docs/performance.md).
    cfg.TRASHPOLE.TRAIN.CHANNELS_LAST = False
    # Ground-truth bitmasks reach the mask loss as an index into the image's masks instead of a
    # full-image copy per sampled proposal (trashpole.speed.gt_masks; bit-identical). Polygon
    # masks (a polygon export) are not copied by detectron2 and are not affected.
    cfg.TRASHPOLE.TRAIN.INDEXED_GT_MASKS = True
    # Thin objects: setup warns when more than THIN_OBJECT_SHARE (0-1) of the train split's
    # objects have a box narrower (its shorter side) than MIN_OBJECT_WIDTH pixels at the training
    # size, and suggests the INPUT.MIN_SIZE_TRAIN that keeps them (trashpole.data.summary).
    cfg.TRASHPOLE.TRAIN.MIN_OBJECT_WIDTH = 8
    cfg.TRASHPOLE.TRAIN.THIN_OBJECT_SHARE = 0.1

    cfg.TRASHPOLE.ANCHORS = CN()
    # RPN anchors from the train split's boxes (trashpole.data.anchors), set at setup before the
    # config is frozen. False keeps MODEL.ANCHOR_GENERATOR as the config gives it.
    cfg.TRASHPOLE.ANCHORS.FROM_DATA = False
    # Number of aspect ratios to choose; 0 keeps the config's number, so that a pretrained RPN
    # head (one output per anchor) still loads whole.
    cfg.TRASHPOLE.ANCHORS.NUM_RATIOS = 0
    # Also scale the anchor sizes, rescaled so that the first is 32 px, by one common factor
    # (0.5-1.4) when that covers more boxes.
    cfg.TRASHPOLE.ANCHORS.FIT_SIZES = False

    cfg.TRASHPOLE.AUG = CN()
    # Train-time augmentations (trashpole.data.augment); all off keeps detectron2's DatasetMapper.
    # Large-scale jitter: resize to a random LSJ_SCALE (min, max) of a WINDOW_SIZE square, then
    # crop or pad to that square (instead of INPUT.MIN_SIZE_TRAIN's resize).
    cfg.TRASHPOLE.AUG.LSJ = False
    cfg.TRASHPOLE.AUG.LSJ_SCALE = (0.5, 1.5)
    # Side (pixels) of the LSJ square and of the native crop; 0: the largest INPUT.MIN_SIZE_TRAIN.
    cfg.TRASHPOLE.AUG.WINDOW_SIZE = 0
    # Probability (0-1) that an image is not resized but cropped to a WINDOW_SIZE square at its
    # native resolution: objects at the scale that sliced prediction of large photos sees.
    cfg.TRASHPOLE.AUG.NATIVE_CROP_PROB = 0.0
    # Photometric jitter strength s (0 off): brightness, contrast and saturation each scaled by
    # a random factor in [1 - s, 1 + s].
    cfg.TRASHPOLE.AUG.PHOTOMETRIC = 0.0
    # Probability (0-1) that an image receives instances copied from another (augmented) train
    # image; a pasted instance never covers another, so masks stay exact.
    cfg.TRASHPOLE.AUG.COPY_PASTE_PROB = 0.0

    cfg.TRASHPOLE.TRACK = CN()
    # Tracking of videos and frame sequences (tools/predict.py --track, trashpole.predict.track).
    # Box IoU (0-1) with an object's box in the previous frame at which a detection of the same
    # class keeps that object's ID.
    cfg.TRASHPOLE.TRACK.IOU_THRESH = 0.3
    # Share (0-1) of the smaller of two boxes lying inside the other at which a detection keeps
    # an object's ID even under IOU_THRESH: an object leaving the frame or going behind another
    # shrinks to a part of its box. 0 turns this off.
    cfg.TRASHPOLE.TRACK.CONTAIN_THRESH = 0.8
    # Frames an object may go undetected and keep its ID (its last box is carried forward).
    cfg.TRASHPOLE.TRACK.MAX_LOST_FRAMES = 3
    # Frames a track must be detected in to count as an object (1 counts every flicker).
    cfg.TRASHPOLE.TRACK.MIN_FRAMES = 2
    # Score (0-1) one of a track's detections must reach for the track to count as an object;
    # weaker detections (down to the predictor's threshold) only continue tracks. Tuned with the
    # demo model on 8 synthetic clips other than the scored one (tools/benchmark.py counting;
    # docs/benchmarks/counting/). 0 counts every track of MIN_FRAMES.
    cfg.TRASHPOLE.TRACK.COUNT_SCORE = 0.9

    cfg.TRASHPOLE.EVAL = CN()
    # Predictions with a lower score are ignored by the trashpole evaluator (mean IoU, accuracy...).
    cfg.TRASHPOLE.EVAL.SCORE_THRESH = 0.5
    # Mask IoU at which a matched prediction counts as a hit (accuracy, precision/recall, F1).
    cfg.TRASHPOLE.EVAL.IOU_THRESH = 0.5
    # Write report.html next to report.md: every evaluated image browsable, truth beside prediction.
    # The evaluator then keeps each image's predicted masks (compressed RLE) until the report is
    # written, and each report writes 3 small pictures per image into report_files/.
    cfg.TRASHPOLE.EVAL.HTML_REPORT = True


def default_dataset_root(cfg: CN) -> str:
    """The export folder: TRASHPOLE.DATASET_ROOT, else $DETECTRON2_DATASETS/<DATASET_NAME>."""
    if cfg.TRASHPOLE.DATASET_ROOT:
        return cfg.TRASHPOLE.DATASET_ROOT
    return os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), cfg.TRASHPOLE.DATASET_NAME)


def load_config(config_file: str, opts: Optional[Sequence[str]] = None) -> CN:
    """
    Build an unfrozen config: defaults, trashpole keys, detectron2's Mask R-CNN R50-FPN 3x YAML,
    ``config_file`` and ``opts`` (a flat KEY VALUE list), in that order.

    Args:
        config_file: a trashpole YAML (``configs/*.yaml``) or the ``config.yaml`` of a run.
        opts: command-line overrides.

    Returns:
        CfgNode, not frozen and without derived values.
    """
    if not os.path.isfile(config_file):
        raise MissingFileError(
            f"config file {config_file!r} does not exist; give a recipe from configs/ or the "
            "config.yaml of a run"
        )
    cfg = get_cfg()
    add_trashpole_config(cfg)
    cfg.merge_from_file(zoo_config_file(ZOO_BASE_CONFIG))
    with _removed_keys_noted(config_file):
        _merge(cfg, config_file, lambda: cfg.merge_from_file(config_file))
        _merge(cfg, "command-line opts", lambda: cfg.merge_from_list(list(opts or [])))
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.info("No CUDA device: MODEL.DEVICE set to cpu")
        cfg.MODEL.DEVICE = "cpu"
    if cfg.SOLVER.OPTIMIZER not in OPTIMIZERS:
        raise UserError(
            f"{config_file}: unknown SOLVER.OPTIMIZER {cfg.SOLVER.OPTIMIZER!r}; choose one of "
            f"{list(OPTIMIZERS)}"
        )
    return cfg


_NOTED_REMOVED: set = set()


class _DeprecationNotes(logging.Filter):
    """Takes yacs's "Deprecated config key (ignoring): KEY" warnings (one per merge of a key in
    REMOVED_KEYS) off the log and keeps the keys."""

    def __init__(self):
        super().__init__()
        self.keys: List[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Deprecated config key"):
            self.keys.append(message.rsplit(":", 1)[-1].strip())
            return False
        return True


@contextlib.contextmanager
def _removed_keys_noted(source: str) -> Iterator[None]:
    """Within the block, merging a removed key logs one INFO line per key and process instead of
    yacs's warning at every merge."""
    notes = _DeprecationNotes()
    yacs_logger = logging.getLogger("yacs.config")
    yacs_logger.addFilter(notes)
    try:
        yield
    finally:
        yacs_logger.removeFilter(notes)
    new = [k for k in dict.fromkeys(notes.keys) if k not in _NOTED_REMOVED]
    if new:
        _NOTED_REMOVED.update(new)
        logger.info(
            f"{source}: {', '.join(new)} no longer exist (OpenVINO replaced these PyTorch "
            "inference options, docs/performance.md); ignored"
        )


def _merge(cfg: CN, source: str, merge: Callable[[], None]) -> None:
    """Run one merge step; a key or value yacs rejects becomes a UserError naming ``source``."""
    try:
        merge()
    except (KeyError, ValueError, AssertionError, yaml.YAMLError) as e:
        message = str(e.args[0]) if e.args and not isinstance(e, yaml.YAMLError) else str(e)
        if not message.startswith("Non-existent"):  # yacs: "Non-existent (config) key: A.B"
            raise UserError(
                f"{source}: {message}; fix the value (see trashpole/config.py)"
            ) from None
        key = message.rsplit(":", 1)[-1].strip()
        close = difflib.get_close_matches(key, config_keys(cfg), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            f"{source}: unknown config key {key}{hint}; the keys are those of detectron2's "
            "config plus trashpole/config.py"
        ) from None


def config_keys(cfg: CN, prefix: str = "") -> List[str]:
    """Every leaf key of a config, dotted (``SOLVER.BASE_LR``)."""
    keys = []
    for name, value in cfg.items():
        full = f"{prefix}{name}"
        keys += config_keys(value, full + ".") if isinstance(value, CN) else [full]
    return keys
