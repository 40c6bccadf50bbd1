"""Every exactness claim of trashpole.speed against detectron2's plain fp32 outputs, on models
that take the path: threaded ROIAlign (training) with more than 64 RoIs a level, indexed bitmask
targets, and the PyTorch backend's bf16 autocast against fp32 on a tiny model trained in the
fixture. Also: every option can be switched off, and a CPU without native bf16 runs fp32."""

import logging

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from tiny_model import train_tiny_run, write_tiny_config
from torch import nn

from benchmarks.describe import describe_model, observe_features
from benchmarks.training import detectron2_batch, synthetic_samples
from synthetic import CLASS_NAMES
from trashpole.config import load_config
from trashpole.predict import load_predictor
from trashpole.speed import fp32_opts, precision, speed_opts, thread_roi_align, threads

CLASSES = list(CLASS_NAMES)


@pytest.fixture
def keep_threads():
    count = torch.get_num_threads()
    yield
    torch.set_num_threads(count)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder of the tiny recipe trained for 60 iterations (tiny_model.train_tiny_run), and
    the two images it was trained on (BGR uint8)."""
    tmp = tmp_path_factory.mktemp("trained")
    return str(tmp), train_tiny_run(tmp)


# ----------------------------------------------------------------------------------------------
# Threaded ROIAlign: bit-identical, on a model whose levels get more than 64 RoIs


def test_threaded_roi_align_is_bit_identical_in_the_model(tmp_path, keep_threads, monkeypatch):
    opts = fp32_opts() + ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
    opts += ["MODEL.RPN.PRE_NMS_TOPK_TEST", "1000", "MODEL.RPN.POST_NMS_TOPK_TEST", "200"]
    opts += ["TEST.DETECTIONS_PER_IMAGE", "100"]
    cfg = load_config(write_tiny_config(tmp_path), opts)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    image = torch.rand(3, 64, 64) * 255
    inputs = [{"image": image, "height": 64, "width": 64}]
    with torch.no_grad():
        expected = model(inputs)[0]["instances"]
    pools = []
    original = threads._roi_align_pool
    monkeypatch.setattr(threads, "_roi_align_pool", lambda n: pools.append(n) or original(n))
    assert thread_roi_align(model) == 8  # 4 levels in the box pooler, 4 in the mask pooler
    with torch.no_grad():
        actual = model(inputs)[0]["instances"]
    # the split ran (it does only for >= 64 RoIs in one level): the box head's 200 proposals
    # and the mask head's (up to 100) detections all fall on p2 at 64 px
    assert len(pools) == 2 and set(pools) == {2}
    assert len(expected) >= 64
    assert torch.equal(actual.pred_boxes.tensor, expected.pred_boxes.tensor)
    assert torch.equal(actual.scores, expected.scores)
    assert torch.equal(actual.pred_masks, expected.pred_masks)


def _threaded(plain):
    """``plain`` replaced by its threaded twin, as thread_roi_align replaces it in a model."""
    holder = nn.Sequential(plain)
    assert thread_roi_align(holder) == 1
    threaded = holder[0]
    assert type(threaded) is threads.ThreadedROIAlign and type(plain).__name__ == "ROIAlign"
    assert (threaded.output_size, threaded.spatial_scale, threaded.sampling_ratio) == (
        plain.output_size,
        plain.spatial_scale,
        plain.sampling_ratio,
    )
    assert threaded.aligned == plain.aligned
    return threaded


def _roi_align_case(num_rois: int, dtype: torch.dtype):
    """Features of 3 images (the last one without boxes) and ``num_rois`` boxes on the first two."""
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(3, 16, 40, 40, generator=generator).to(dtype)
    xy = torch.rand(num_rois, 2, generator=generator) * 30
    wh = torch.rand(num_rois, 2, generator=generator) * 10 + 1
    image = torch.randint(0, 2, (num_rois, 1), generator=generator).float()
    upstream = torch.randn(num_rois, 16, 7, 7, generator=generator).to(dtype)
    return features, torch.cat([image, xy, xy + wh], 1), upstream


@pytest.mark.parametrize("bf16", [False, True])
def test_threaded_roi_align_training_is_bit_identical(keep_threads, monkeypatch, bf16):
    # forward split by box, backward split by image: output and the features' gradient equal
    # the serial op's, in fp32 and under bf16 autocast (bf16 features, as in bf16 training)
    from detectron2.layers import ROIAlign

    torch.set_num_threads(2)
    dtype = torch.bfloat16 if bf16 else torch.float32
    features, rois, upstream = _roi_align_case(150, dtype)

    def run(align):
        x = features.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = align(x, rois)
        out.backward(upstream)
        return out.detach(), x.grad

    plain = ROIAlign((7, 7), 0.5, 2)
    expected_out, expected_grad = run(plain)
    splits = []
    original = threads._split_by_image
    monkeypatch.setattr(threads, "_split_by_image", lambda r, n: splits.append(n) or original(r, n))
    out, grad = run(_threaded(plain))
    assert splits == [3]  # the threaded backward ran, over the 3 images
    assert out.dtype == expected_out.dtype == dtype and grad.dtype == dtype
    assert torch.equal(out, expected_out)
    assert torch.equal(grad, expected_grad)
    assert grad[2].abs().sum() == 0 and grad[0].abs().sum() > 0  # image 2 has no boxes


def test_threaded_roi_align_training_with_one_image_is_the_serial_op(keep_threads, monkeypatch):
    from detectron2.layers import ROIAlign

    torch.set_num_threads(2)
    features, rois, upstream = _roi_align_case(100, torch.float32)
    features, rois = features[:1].clone().requires_grad_(True), rois.clone()
    rois[:, 0] = 0
    align = _threaded(ROIAlign((7, 7), 0.5, 2))
    monkeypatch.setattr(threads, "_split_by_image", lambda r, n: pytest.fail("split one image"))
    align(features, rois).backward(upstream)
    assert features.grad.shape == features.shape


def test_threaded_roi_align_is_bit_identical_per_level(keep_threads):
    from detectron2.layers import ROIAlign

    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 16, 40, 40, generator=generator)
    xy = torch.rand(300, 2, generator=generator) * 30
    wh = torch.rand(300, 2, generator=generator) * 10 + 1
    rois = torch.cat([torch.randint(0, 2, (300, 1), generator=generator).float(), xy, xy + wh], 1)
    plain = ROIAlign((7, 7), 0.5, 2)
    expected = plain(features, rois)
    with torch.no_grad():
        assert torch.equal(_threaded(plain)(features, rois), expected)


# ----------------------------------------------------------------------------------------------
# Whole predictor on a trained model: bf16 autocast against plain detectron2 fp32


def _predict(run: str, images, opts, score_thresh: float = 0.5):
    predictor = load_predictor(run, score_thresh=score_thresh, opts=opts, backend="pytorch")
    with observe_features(predictor) as seen:
        outputs = [predictor(image)["instances"] for image in images]
    return outputs, describe_model(predictor), dict(seen)


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from detectron2.structures import Boxes, pairwise_iou

    return pairwise_iou(Boxes(a), Boxes(b))


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def test_plain_settings_run_detectron2_as_built(trained_run):
    run, images = trained_run
    _, setup, seen = _predict(run, images[:1], fp32_opts())
    assert setup["threaded_roi_align"] == 0
    assert setup["norm_layers"] > 0 and setup["weights_dtype"] == "fp32"
    assert not setup["channels_last"]
    assert seen == {"feature_dtype": "fp32", "feature_channels_last": False, "autocast": False}


# bf16 against fp32 on the trained model: the tolerances the docs state (docs/performance.md).
# Measured on an AMX Xeon (torch 2.14.1): 1.31 px, 0.0027, mask IoU 0.88 at worst (a pole is
# 4 px wide at 64 px, so a shift of one pixel column costs a quarter of its mask). Detections
# are compared where fp32 scores at least BF16_KEEP, well above the prediction threshold (0.3),
# so that none appears or vanishes by crossing it.
BF16_BOX_PX = 2.0  # largest box-corner difference, pixels (64 px images)
BF16_SCORE = 0.02  # largest score difference
BF16_MASK_IOU = 0.8  # smallest IoU between an fp32 mask and its bf16 counterpart
BF16_KEEP = 0.6


def test_bf16_predictor_stays_close_to_fp32(trained_run):
    if not precision.bf16_supported():
        pytest.skip("this CPU has no native bf16: the option is ignored (see the next test)")
    run, images = trained_run
    reference, _, _ = _predict(run, images, fp32_opts(), score_thresh=0.3)
    opts = speed_opts(bf16=True, channels_last=True)
    fast, setup, seen = _predict(run, images, opts, score_thresh=0.3)
    # autocast: the weights stay fp32, the convolutions run in bf16
    assert seen["feature_dtype"] == "bf16" and setup["weights_dtype"] == "fp32"
    assert seen["autocast"] and setup["channels_last"]
    for actual, expected in zip(fast, reference):
        expected = expected[expected.scores >= BF16_KEEP]
        assert len(expected) >= 3
        assert (actual.scores >= BF16_KEEP + BF16_SCORE).sum() <= len(expected)
        corners = expected.pred_boxes.tensor[:, None, :] - actual.pred_boxes.tensor[None]
        distance, match = corners.abs().amax(dim=2).min(dim=1)  # each fp32 box's bf16 twin
        assert len(set(match.tolist())) == len(expected)
        assert distance.max() <= BF16_BOX_PX
        assert torch.equal(actual.pred_classes[match], expected.pred_classes)
        assert (actual.scores[match] - expected.scores).abs().max() <= BF16_SCORE
        for i, j in enumerate(match.tolist()):
            assert _mask_iou(actual.pred_masks[j], expected.pred_masks[i]) >= BF16_MASK_IOU


def test_without_native_bf16_the_default_runs_fp32(trained_run, monkeypatch, caplog):
    run, images = trained_run
    monkeypatch.setattr(precision, "bf16_supported", lambda: False)
    with caplog.at_level(logging.WARNING, logger="trashpole.speed.options"):
        default, setup, seen = _predict(run, images, [])  # BF16 True in the config
    assert "no native bf16" in caplog.text
    assert setup["weights_dtype"] == "fp32" and seen["feature_dtype"] == "fp32"
    assert not seen["autocast"]
    fp32, _, _ = _predict(run, images, speed_opts(bf16=False))
    for actual, expected in zip(default, fp32):
        assert torch.equal(actual.scores, expected.scores)
        assert torch.equal(actual.pred_masks, expected.pred_masks)


def test_benchmark_pytorch_settings_follow_the_cpu(monkeypatch):
    from benchmarks import inference

    def keys(opts):
        return dict(zip(opts[::2], opts[1::2]))

    monkeypatch.setattr(precision, "bf16_supported", lambda: False)
    ours = keys(inference.pytorch_opts())
    assert ours["TRASHPOLE.INFERENCE.BF16"] == "False"
    assert ours["TRASHPOLE.INFERENCE.BACKEND"] == "pytorch"
    peer = next(c for c in inference.default_contenders() if c.name == "torchvision switches")
    assert not peer.bf16 and peer.channels_last
    monkeypatch.setattr(precision, "bf16_supported", lambda: True)
    assert keys(inference.pytorch_opts())["TRASHPOLE.INFERENCE.BF16"] == "True"
    peer = next(c for c in inference.default_contenders() if c.name == "torchvision switches")
    assert (
        peer.bf16 and keys(inference.pytorch_opts())["TRASHPOLE.INFERENCE.CHANNELS_LAST"] == "True"
    )


def test_indexed_gt_masks_behave_like_the_copies_they_replace():
    from detectron2.structures import BitMasks

    from trashpole.speed import IndexedBitMasks

    torch.manual_seed(0)
    base = torch.rand(5, 40, 48) > 0.6
    base[2] = False  # an empty mask
    indexed, copied = IndexedBitMasks.of(BitMasks(base)), BitMasks(base)
    # the ROI heads' indexing: by matched target, then by foreground, then slices and ints
    items = [torch.tensor([0, 3, 3, 1, 4, 2, 0, 4]), torch.tensor([1, 0, 1, 1, 0, 1, 1, 1]) > 0]
    for item in items + [slice(1, 4), 2]:
        indexed, copied = indexed[item], copied[item]
        assert isinstance(indexed, IndexedBitMasks) and indexed.base is base
        assert len(indexed) == len(copied) and torch.equal(indexed.tensor, copied.tensor)
        assert torch.equal(indexed.nonempty(), copied.nonempty())
    indexed, copied = IndexedBitMasks.of(BitMasks(base))[items[0]], BitMasks(base)[items[0]]
    xy = torch.rand(8, 2) * torch.tensor([40.0, 30.0])
    boxes = torch.cat([xy, xy + 2 + torch.rand(8, 2) * 20], dim=1)
    for size in (7, 14, 28):
        targets = indexed.crop_and_resize(boxes, size)
        assert torch.equal(targets, copied.crop_and_resize(boxes, size))
    assert 0 < int(targets.sum()) < targets.numel()  # the boxes cut through the masks


def test_indexed_gt_masks_train_bit_identically(tmp_path, monkeypatch):
    """A training step with bitmask targets: the same losses and gradients with the option on
    and off, and with it on no full-image mask is copied for a proposal."""
    from detectron2.structures import BitMasks

    from trashpole.engine.trainer import Trainer
    from trashpole.speed import IndexedBitMasks

    reads, crops = [], []
    materialize, crop = IndexedBitMasks.tensor.fget, IndexedBitMasks.crop_and_resize
    monkeypatch.setattr(
        IndexedBitMasks, "tensor", property(lambda self: reads.append(1) or materialize(self))
    )
    monkeypatch.setattr(
        IndexedBitMasks, "crop_and_resize", lambda *args: crops.append(1) or crop(*args)
    )
    losses, grads, calls = {}, {}, {}
    for indexed in (False, True):
        cfg = load_config(
            write_tiny_config(tmp_path), ["TRASHPOLE.TRAIN.INDEXED_GT_MASKS", str(indexed)]
        )
        torch.manual_seed(0)
        model = Trainer.build_model(cfg)
        model.train()
        batch = detectron2_batch(synthetic_samples(64, num_images=2))
        torch.manual_seed(1)  # the same proposals and RoIs sampled
        with EventStorage():
            loss_dict = model(batch)
        sum(loss_dict.values()).backward()
        losses[indexed] = {k: v.detach() for k, v in loss_dict.items()}
        grads[indexed] = [p.grad for p in model.parameters() if p.grad is not None]
        calls[indexed] = len(crops)
        assert all(type(b["instances"].gt_masks) is BitMasks for b in batch)  # input untouched
    assert calls == {False: 0, True: 2}  # the path was taken, once per image
    assert reads == []  # and no mask was copied on it
    assert float(losses[False]["loss_mask"]) > 0
    assert losses[True].keys() == losses[False].keys()
    for name, value in losses[False].items():
        assert torch.equal(losses[True][name], value), name
    assert len(grads[True]) == len(grads[False]) > 0
    assert all(torch.equal(a, b) for a, b in zip(grads[True], grads[False]))
