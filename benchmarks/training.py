"""
Seconds per training iteration at batch 2 (640x640 images by default) for torchvision's
Mask R-CNN R50-FPN, out of the box and set up like detectron2, against trashpole's R50-FPN
recipe and its fast settings, with random weights and the same generated batch for all.

- torchvision default: ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)``: every
  layer trainable, BatchNorm in train mode (what torchvision does without pretrained weights);
- torchvision like detectron2: FrozenBatchNorm, stem and first stage frozen (detectron2's
  ``FREEZE_AT: 2``), plain (fp32, NCHW) and with the generic switches trashpole's fast row
  uses (bf16 autocast where the CPU has native bf16, channels_last): every row has its speed-up
  against both;
- trashpole R50-FPN: ``configs/mask_rcnn_R_50_FPN_reference.yaml`` with trashpole's training
  speed options off (detectron2 as built);
- trashpole fast: the recipe with its training speed options (threaded ROIAlign, indexed
  bitmask targets; once with the targets copied, as detectron2 does), the speed settings of a
  contender's ``opts`` and, with ``bf16``, the forward under CPU bf16 autocast (losses in fp32,
  see :func:`trashpole.speed.install_fp32_guards`).

Each row's label is read from the model (:mod:`benchmarks.describe`) and from what its
backbone computed in the last timed step. Each contender uses its usual optimizer (SGD with
momentum for torchvision, the recipe's Adam for trashpole) with a learning rate of 1e-7, so the
weights barely move and every iteration does the same work. bf16 training in the trainer itself is
:class:`trashpole.engine.amp.CPUAutocastTrainer` (``SOLVER.AMP.ENABLED`` on the CPU).
"""

import contextlib
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage

from benchmarks import measure
from benchmarks.describe import describe_model, label, observe_features
from benchmarks.measure import (
    R50_CONFIG,
    imagenet_norm_opts,
    matmul_peak,
    measuring,
    street_image,
    summarize,
    time_alternating,
    use_threads,
    write_result,
)
from trashpole.config import load_config
from trashpole.engine.trainer import build_optimizer, prepare_training_model
from trashpole.speed import install_fp32_guards, precision, speed_opts

logger = logging.getLogger(__name__)

LR = 1e-7
NAME = "training"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = {"size": 64, "warmup": 0, "repeats": 1, "matmul_size": 256, "proposals": 50, "rois": 16}
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"threads": "threads", "size": "size", "repeats": "repeats"}


@dataclass
class TrainContender:
    """
    One training set-up to time.

    Attributes:
        name: label in the table.
        family: "torchvision", "torchvision-d2" (FrozenBN, stem + res2 frozen) or "trashpole".
        config: trashpole YAML (family trashpole).
        opts: config overrides.
        bf16: forward under CPU bf16 autocast.
        channels_last: weights (hence activations) in channels_last.
        note: for the reader of the table.
        polygon_masks: ground-truth masks as polygons (family trashpole), as the trainer reads a
            polygon export (Roboflow's, the demo's), instead of bitmasks.
    """

    name: str
    family: str
    config: str = ""
    opts: Sequence[str] = field(default_factory=tuple)
    bf16: bool = False
    channels_last: bool = False
    note: str = ""
    polygon_masks: bool = False


def default_contenders() -> List[TrainContender]:
    """The two torchvision set-ups and trashpole's R50-FPN at default and fast settings."""

    ratio2 = speed_opts(sampling_ratio=2)
    bf16 = precision.bf16_supported()
    as_built = [
        "TRASHPOLE.TRAIN.THREADED_ROI_ALIGN",
        "False",
        "TRASHPOLE.TRAIN.INDEXED_GT_MASKS",
        "False",
    ]
    return [
        TrainContender("torchvision R50-FPN", "torchvision", note="all trainable, BN train"),
        TrainContender("torchvision like d2", "torchvision-d2", note="FrozenBN, FREEZE_AT 2"),
        TrainContender(
            "torchvision like d2 switches",
            "torchvision-d2",
            bf16=bf16,
            channels_last=True,
            note="the same generic switches as trashpole fast",
        ),
        TrainContender(
            "trashpole R50-FPN",
            "trashpole",
            R50_CONFIG,
            as_built,
            note="detectron2 as built: defaults, serial ROIAlign, bitmask targets copied",
        ),
        TrainContender("trashpole R50 ROIAlign 2", "trashpole", R50_CONFIG, ratio2),
        TrainContender(
            "trashpole R50 fast copied masks",
            "trashpole",
            R50_CONFIG,
            ratio2 + ["TRASHPOLE.TRAIN.INDEXED_GT_MASKS", "False"],
            bf16,
            True,
            "bf16 + NHWC, bitmask targets copied per RoI as in detectron2",
        ),
        TrainContender(
            "trashpole R50 fast", "trashpole", R50_CONFIG, ratio2, bf16, True, "bf16 + NHWC"
        ),
    ]


def synthetic_samples(size: int, num_images: int = 2, seed: int = 0) -> List[Dict[str, Any]]:
    """
    Generated training images with 4 instances each (2 poles, 2 bins: filled rectangles).

    Returns:
        list of ``{"image": uint8 [size, size, 3] BGR, "boxes": float32 [N, 4] XYXY,
        "classes": int64 [N] (contiguous, 0 or 1), "masks": bool [N, size, size]}``.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(num_images):
        image = street_image(size, seed + i)
        boxes, classes = [], []
        for k in range(4):
            w, h = (size // 16, size // 2) if k % 2 == 0 else (size // 6, size // 5)
            x0 = int(rng.integers(0, size - w))
            y0 = int(rng.integers(0, size - h))
            boxes.append([x0, y0, x0 + w, y0 + h])
            classes.append(k % 2)
            image[y0 : y0 + h, x0 : x0 + w] = (40, 40, 40) if k % 2 == 0 else (30, 140, 40)
        masks = np.zeros((len(boxes), size, size), dtype=bool)
        for j, (x0, y0, x1, y1) in enumerate(boxes):
            masks[j, y0:y1, x0:x1] = True
        samples.append(
            {
                "image": image,
                "boxes": np.asarray(boxes, dtype=np.float32),
                "classes": np.asarray(classes, dtype=np.int64),
                "masks": masks,
            }
        )
    return samples


def detectron2_batch(
    samples: Sequence[Dict[str, Any]], polygons: bool = False
) -> List[Dict[str, Any]]:
    """The samples as a detectron2 training batch (what the DatasetMapper would give), with the
    masks as ``BitMasks``, or with ``polygons`` as ``PolygonMasks`` (the samples' masks are their
    boxes, so both describe the same pixels)."""
    batch = []
    for s in samples:
        height, width = s["image"].shape[:2]
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(torch.from_numpy(s["boxes"]))
        instances.gt_classes = torch.from_numpy(s["classes"])
        if polygons:
            corners = [[[x0, y0, x1, y0, x1, y1, x0, y1]] for x0, y0, x1, y1 in s["boxes"]]
            instances.gt_masks = PolygonMasks(corners)
        else:
            instances.gt_masks = BitMasks(torch.from_numpy(s["masks"]))
        image = torch.from_numpy(s["image"].transpose(2, 0, 1).astype(np.float32))
        batch.append({"image": image, "height": height, "width": width, "instances": instances})
    return batch


def torchvision_batch(samples: Sequence[Dict[str, Any]]):
    """The samples as torchvision's (images, targets): RGB 0-1 images, labels 1-based."""
    images, targets = [], []
    for s in samples:
        rgb = np.ascontiguousarray(s["image"][:, :, ::-1])
        images.append(torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0))
        targets.append(
            {
                "boxes": torch.from_numpy(s["boxes"]),
                "labels": torch.from_numpy(s["classes"]) + 1,
                "masks": torch.from_numpy(s["masks"].astype(np.uint8)),
            }
        )
    return images, targets


def build_torchvision(size: int, like_detectron2: bool, **kwargs) -> torch.nn.Module:
    """torchvision's Mask R-CNN R50-FPN for 3 classes at ``size`` px with random weights;
    ``kwargs`` go to torchvision's ``MaskRCNN``."""
    # the peer's model code, loaded only for its rows
    from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops import FrozenBatchNorm2d

    if not like_detectron2:
        return maskrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=3,
            min_size=size,
            max_size=size,
            **kwargs,
        )
    # what maskrcnn_resnet50_fpn builds with pretrained weights, without the weights: frozen
    # BN, and only layer2-4 trainable (conv1 and layer1 frozen, detectron2's FREEZE_AT 2)
    backbone = resnet_fpn_backbone(
        backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=3
    )
    return MaskRCNN(backbone, num_classes=3, min_size=size, max_size=size, **kwargs)


def build_trashpole(contender: TrainContender, opts_first: Sequence[str] = ()) -> tuple:
    """(model, optimizer) of trashpole's recipe with random weights and ImageNet normalization;
    ``opts_first`` go before the contender's own."""

    opts = imagenet_norm_opts() + ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"]
    opts += ["MODEL.ROI_HEADS.NUM_CLASSES", "2", "SOLVER.BASE_LR", str(LR)]
    cfg = load_config(contender.config, opts + list(opts_first) + list(contender.opts))
    model = prepare_training_model(cfg, build_model(cfg))  # as the trainer builds it
    return model, build_optimizer(cfg, model)


def _make_step(
    contender: TrainContender, samples, size: int, seed: int, proposals: int, rois: int
) -> Tuple[Callable[..., float], torch.nn.Module]:
    """(a function that runs one training iteration of ``contender`` and returns the loss, the
    model it trains)."""
    torch.manual_seed(seed)
    if contender.family == "trashpole":
        opts = ["MODEL.RPN.POST_NMS_TOPK_TRAIN", str(proposals)] if proposals else []
        opts += ["MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", str(rois)] if rois else []
        model, optimizer = build_trashpole(contender, opts)
        inputs = (detectron2_batch(samples, contender.polygon_masks),)
    elif contender.family in ("torchvision", "torchvision-d2"):
        kwargs = {"rpn_post_nms_top_n_train": proposals} if proposals else {}
        kwargs.update({"box_batch_size_per_image": rois} if rois else {})
        like_d2 = contender.family == "torchvision-d2"
        model = build_torchvision(size, like_detectron2=like_d2, **kwargs)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=LR, momentum=0.9, weight_decay=1e-4)
        inputs = torchvision_batch(samples)
    else:
        raise ValueError(
            f"unknown training contender family {contender.family!r}; "
            "use torchvision, torchvision-d2 or trashpole"
        )
    if contender.channels_last:
        model.to(memory_format=torch.channels_last)
    if contender.bf16:
        install_fp32_guards(model)
    model.train()

    # detectron2's losses log into an EventStorage; torchvision needs none
    storage = EventStorage if contender.family == "trashpole" else contextlib.nullcontext

    def step(phases: Optional[Dict[str, float]] = None) -> float:
        # with ``phases``: the wall seconds of each phase are added to it, and each phase runs
        # in its profiler scope (PHASE_SCOPES)
        with _phase(phases, "forward"):
            optimizer.zero_grad()
            with storage(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=contender.bf16):
                losses = model(*inputs)
            total = sum(losses.values())
        with _phase(phases, "backward"):
            total.backward()
        with _phase(phases, "optimizer"):
            optimizer.step()
        return float(total.detach())

    return step, model


# the profiler scope of each phase of a training iteration (see _make_step)
PHASE_SCOPES = {
    phase: f"trashpole::train_{phase}" for phase in ("forward", "backward", "optimizer")
}


@contextlib.contextmanager
def _phase(phases: Optional[Dict[str, float]], name: str) -> Iterator[None]:
    """With ``phases`` (a dict): add the block's wall seconds to ``phases[name]`` and run it in
    the phase's profiler scope; without: nothing."""
    if phases is None:
        yield
        return
    start = time.perf_counter()
    with torch.profiler.record_function(PHASE_SCOPES[name]):
        yield
    phases[name] = phases.get(name, 0.0) + time.perf_counter() - start


def run(
    out_dir: Optional[str] = None,
    size: int = 640,
    batch: int = 2,
    warmup: int = 1,
    repeats: int = 3,
    threads: int = 0,
    contenders: Optional[Sequence[TrainContender]] = None,
    matmul_size: int = 2048,
    proposals: int = 0,
    rois: int = 0,
    seed: int = 0,
) -> Dict[str, Any]:
    """
    Time training iterations of each contender, alternating, and write
    ``training_benchmark.json``.

    Args:
        out_dir: folder for the JSON (none written if None).
        size: image side.
        batch: images per iteration.
        warmup: untimed rounds first.
        repeats: timed rounds (the median is reported).
        threads: torch threads (0: torch's default).
        contenders: default: :func:`default_contenders`.
        matmul_size: side of the matrices that measure the machine's peak.
        proposals: RPN proposals per image after NMS, for every contender (0: each library's
            default, 2000 in torchvision and 1000 in detectron2; the ROI sampling below makes
            the box head's work equal anyway).
        rois: sampled RoIs per image for the box head, for every contender (0: the default,
            512 in both; a quarter at most are positives, which the mask head also sees).
        seed: seed of the batch and the weights.

    Returns:
        dict with ``size``, ``batch``, ``threads``, load averages, ``matmul_peak`` and
        ``contenders``: name -> ``median_s`` (per iteration), ``min_s``, ``max_s``, ``times_s``,
        ``loss`` (of the last iteration), ``peak_rss_mb`` and ``extra_rss_mb`` (of the first
        iteration), ``label``, ``setup`` and ``seen`` (what ran), ``speedup_vs_torchvision``,
        ``speedup_vs_torchvision_d2`` and ``speedup_vs_torchvision_d2_switches``.
    """
    use_threads(threads)
    contenders = list(contenders or default_contenders())
    samples = synthetic_samples(size, batch, seed)
    settings = dict(size=size, batch=batch, proposals=proposals or "default")
    settings.update(rois=rois or "default", warmup=warmup, repeats=repeats)
    with measuring(NAME, **settings) as result:
        made = {c.name: _make_step(c, samples, size, seed, proposals, rois) for c in contenders}
        steps = {name: step for name, (step, _) in made.items()}
        result["matmul_peak"] = matmul_peak(matmul_size)
        times, memory, losses = _time_steps(steps, warmup, repeats)
    rows = {
        c.name: _row(c, *made[c.name], times[c.name], memory[c.name], losses[c.name])
        for c in contenders
    }
    _add_speedups(rows, contenders)
    result["contenders"] = rows
    if out_dir:
        write_result(result, out_dir, "training_benchmark.json")
    return result


def _time_steps(
    steps: Dict[str, Callable[[], float]], warmup: int, repeats: int
) -> Tuple[Dict[str, List[float]], Dict[str, Dict[str, Optional[float]]], Dict[str, float]]:
    """(times, memory, last loss) of each contender's step, run in alternation
    (:func:`benchmarks.measure.time_alternating`)."""
    losses: Dict[str, float] = {}

    def keep_loss(name: str) -> Callable[[], None]:
        return lambda: losses.__setitem__(name, steps[name]())

    times, memory = time_alternating({n: keep_loss(n) for n in steps}, warmup, repeats)
    return times, memory, losses


def _row(
    contender: TrainContender,
    step: Callable[[], float],
    model: torch.nn.Module,
    times: List[float],
    memory: Dict[str, Optional[float]],
    loss: float,
) -> Dict[str, Any]:
    """One contender's row: its settings, what its model is and computes (seen in one more
    step, untimed), its times, memory and last loss."""
    with observe_features(model) as seen:
        step()  # one more step, untimed, to see what the backbone computes
    row: Dict[str, Any] = {**asdict(contender), "opts": list(contender.opts), "seen": dict(seen)}
    row["setup"] = describe_model(model)
    row["label"] = label(row["setup"], row["seen"], training=True)
    row["times_s"] = times
    row.update(summarize(times))
    row.update(memory)
    row["loss"] = loss
    return row


def _add_speedups(rows: Dict[str, Dict[str, Any]], contenders: Sequence[TrainContender]) -> None:
    """Each row's ``speedup_vs_torchvision``, ``..._d2`` and ``..._d2_switches``: the median of
    that reference (plain torchvision; torchvision with detectron2's settings, without and with
    the speed switches) over the row's, where the reference ran."""
    for family, key, switched in (
        ("torchvision", "", False),
        ("torchvision-d2", "_d2", False),
        ("torchvision-d2", "_d2_switches", True),
    ):
        ref = next(
            (
                rows[c.name]
                for c in contenders
                if c.family == family and (c.bf16 or c.channels_last) == switched
            ),
            None,
        )
        if ref is not None:
            for row in rows.values():
                row[f"speedup_vs_torchvision{key}"] = ref["median_s"] / row["median_s"]


def format_table(result: Dict[str, Any]) -> str:
    """The contenders as a text table (:func:`benchmarks.measure.format_table`)."""
    return measure.format_table(result)
