"""
:class:`TrashPoleEvaluator`, a detectron2 ``DatasetEvaluator`` for mean IoU, accuracy,
precision/recall/F1, a confusion matrix, mask AP50 curves and pixel metrics, and
:func:`build_evaluators`, which pairs it with detectron2's ``COCOEvaluator``.

The metric definitions are in :mod:`trashpole.evaluation.metrics`.
"""

import json
import logging
import os
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators
from detectron2.utils import comm

from .detail import EvaluationDetail, GalleryItem, select_gallery
from .matching import RLE, ImageResult, evaluate_image, ground_truth_from_record
from .metrics import ap50_metrics, flatten_records, instance_metrics, pixel_metrics, pr_curves

logger = logging.getLogger(__name__)

TASK = "trashpole"


class TrashPoleEvaluator(DatasetEvaluator):
    """
    Instance and semantic metrics of an instance-segmentation model on a registered data set.

    ``process`` keeps a few numbers per image (matched IoUs and classes, per-prediction score and
    hit flag for the PR curves, a pixel confusion matrix) and, for the galleries only, the RLE
    masks of the ``gallery_size`` worst and best images seen so far, so memory does not grow with
    image size. ``evaluate`` gathers all ranks and returns, on the main process,
    ``{"trashpole": {metric: value}}`` with rates in percent (0-100) and integer counts.

    With an ``output_dir``, ``evaluate`` also writes what the report needs beyond the metrics
    (per-image records, confusion matrices, PR curves, the galleries' masks; every image's masks
    with ``keep_predictions``) to ``output_dir/trashpole_results.json``, read back with
    :meth:`trashpole.evaluation.EvaluationDetail.load`. The evaluator itself keeps no results.
    """

    def __init__(
        self,
        dataset_name: str,
        score_thresh: float = 0.5,
        iou_thresh: float = 0.5,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        gallery_size: int = 6,
        keep_predictions: bool = False,
    ):
        """
        Args:
            dataset_name: a registered data set; its dicts give the ground truth (by
                ``image_id``) and ``MetadataCatalog`` its ``thing_classes``.
            score_thresh: predictions with a lower score are not counted (PR curves use all).
            iou_thresh: mask IoU a matched pair needs to be a hit (accuracy, P/R/F1, confusion).
            distributed: gather the statistics of all ranks in ``evaluate``.
            output_dir: if set, ``evaluate`` writes ``trashpole_results.json`` there (the
                report's input, see :mod:`trashpole.evaluation.detail`).
            gallery_size: worst and best images to keep masks of, for the report.
            keep_predictions: keep the predicted masks (RLE) of every image, not only of the
                gallery's, so that the report can draw every image (report.html).
        """
        self.dataset_name = dataset_name
        self.score_thresh = float(score_thresh)
        self.iou_thresh = float(iou_thresh)
        self.gallery_size = int(gallery_size)
        self.keep_predictions = bool(keep_predictions)
        self._distributed = distributed
        self._output_dir = output_dir
        # Loading the dicts first also fills metadata that loaders set lazily (load_coco_json).
        self._gt_records = records_by_image_id(dataset_name)
        meta = MetadataCatalog.get(dataset_name)
        if not meta.get("thing_classes"):
            raise ValueError(
                f"data set {dataset_name!r} has no thing_classes in its metadata; register it "
                "with trashpole.data (or set MetadataCatalog.get(name).thing_classes)"
            )
        self.class_names: List[str] = list(meta.thing_classes)
        self.reset()

    def reset(self) -> None:
        k = len(self.class_names)
        self._records: List[ImageResult] = []
        self._pr_scores: List[np.ndarray] = []
        self._pr_classes: List[np.ndarray] = []
        self._pr_tp: List[np.ndarray] = []
        self._pr_num_gt = np.zeros(k, dtype=np.int64)
        self._pixel_cm = np.zeros((k + 1, k + 1), dtype=np.int64)
        self._gallery: List[GalleryItem] = []

    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        """
        Args:
            inputs: dicts with ``image_id``, ``file_name``, ``height``, ``width``.
            outputs: dicts with ``instances`` holding ``pred_masks`` (Tensor[N, H, W] of bool at
                the input's height and width; float masks are thresholded at 0.5),
                ``pred_classes`` (Tensor[N] of int) and ``scores`` (Tensor[N] of float).
        """
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            record = self._gt_records.get(image_id)
            if record is None:
                raise KeyError(
                    f"{inp.get('file_name', '?')}: image_id {image_id!r} is not in data set "
                    f"{self.dataset_name!r} ({len(self._gt_records)} images); evaluate on the "
                    "data set the loader was built from"
                )
            masks, scores, classes = self._unpack(inp, out, record)
            gt = ground_truth_from_record(record, len(self.class_names))
            ev = evaluate_image(
                gt,
                masks,
                scores,
                classes,
                num_classes=len(self.class_names),
                score_thresh=self.score_thresh,
                image_id=image_id,
                file_name=record["file_name"],
                iou_thresh=self.iou_thresh,
            )
            self._records.append(ev.result)
            self._pr_scores.append(ev.pr_scores)
            self._pr_classes.append(ev.pr_classes)
            self._pr_tp.append(ev.pr_tp)
            self._pr_num_gt += ev.pr_num_gt
            self._pixel_cm += ev.pixel_confusion
            self._remember_for_gallery(ev.result, ev.kept_rles, ev.kept_classes, ev.kept_scores)

    def _unpack(self, inp: dict, out: dict, record: dict):
        """(masks ndarray[N, H, W] of bool, scores ndarray[N], classes ndarray[N]) on the CPU."""
        where = f"{record['file_name']} (image_id {inp['image_id']!r})"
        if "instances" not in out:
            raise ValueError(f"{where}: the model output has no 'instances'")
        instances = out["instances"].to(torch.device("cpu"))
        if not instances.has("pred_masks"):
            raise ValueError(
                f"{where}: predictions have no pred_masks; TrashPoleEvaluator needs a mask model "
                "(MODEL.MASK_ON True)"
            )
        masks = instances.pred_masks
        masks = (masks if masks.dtype == torch.bool else masks >= 0.5).numpy()
        height = int(inp.get("height", record["height"]))
        width = int(inp.get("width", record["width"]))
        if (height, width) != (record["height"], record["width"]):
            raise ValueError(
                f"{where}: input size {height}x{width} differs from the data set record's "
                f"{record['height']}x{record['width']}; fix the record's height/width"
            )
        if masks.shape[1:] != (height, width) and len(masks):
            raise ValueError(
                f"{where}: pred_masks are {tuple(masks.shape[1:])}, expected ({height}, {width}); "
                "the model must paste masks at the input's height and width"
            )
        if len(masks) == 0:
            masks = np.zeros((0, height, width), dtype=bool)
        scores = instances.scores.numpy().astype(np.float64)
        classes = instances.pred_classes.numpy().astype(np.int64)
        return masks, scores, classes

    def _remember_for_gallery(
        self, result: ImageResult, rles: List[RLE], classes: List[int], scores: List[float]
    ) -> None:
        item = GalleryItem(
            result.image_id, result.rank_key(), len(result.false_classes), rles, classes, scores
        )
        self._gallery.append(item)
        if not self.keep_predictions and len(self._gallery) > 4 * max(self.gallery_size, 1):
            kept = select_gallery(self._gallery, self.gallery_size)
            ids = {id(x) for x in kept["worst"] + kept["best"]}
            self._gallery = [x for x in self._gallery if id(x) in ids]

    def _state(self) -> dict:
        def cat(parts, dtype):
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return {
            "records": self._records,
            "pr_scores": cat(self._pr_scores, np.float32),
            "pr_classes": cat(self._pr_classes, np.int16),
            "pr_tp": cat(self._pr_tp, bool),
            "pr_num_gt": self._pr_num_gt,
            "pixel_cm": self._pixel_cm,
            "gallery": self._gallery,
        }

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """
        Returns:
            on the main process ``{"trashpole": {metric: value}}`` (rates in percent, counts as
            ints, NaN where undefined); ``{}`` on other ranks. With an ``output_dir`` the main
            process also writes the detail file (:class:`EvaluationDetail`).
        """
        detail = self.detail()
        if detail is None:
            return {}
        if not detail.records:
            logger.warning("TrashPoleEvaluator on %s received no images", self.dataset_name)
        self._log_summary(detail.metrics)
        if self._output_dir:
            logger.info("wrote %s", detail.save(self._output_dir))
        return {TASK: dict(detail.metrics)}

    def detail(self) -> Optional[EvaluationDetail]:
        """
        Gather every rank's statistics and compute the metrics and what the report draws.
        A collective call in a distributed run (every rank must make it).

        Returns:
            the :class:`EvaluationDetail` on the main process, None on the others.
        """
        if self._distributed:
            comm.synchronize()
            states = comm.all_gather(self._state())
            if not comm.is_main_process():
                return None
        else:
            states = [self._state()]

        records = flatten_records([s["records"] for s in states])
        metrics, confusion = instance_metrics(records, self.class_names, self.iou_thresh)
        pixel_confusion = sum(s["pixel_cm"] for s in states)
        curves = pr_curves(
            np.concatenate([s["pr_scores"] for s in states]),
            np.concatenate([s["pr_classes"] for s in states]),
            np.concatenate([s["pr_tp"] for s in states]),
            sum(s["pr_num_gt"] for s in states),
            self.class_names,
        )
        metrics.update(ap50_metrics(curves))
        metrics.update(pixel_metrics(pixel_confusion, self.class_names))
        items = [item for s in states for item in s["gallery"]]
        return EvaluationDetail(
            dataset_name=self.dataset_name,
            class_names=list(self.class_names),
            score_thresh=self.score_thresh,
            iou_thresh=self.iou_thresh,
            metrics=metrics,
            records=records,
            confusion_matrix=confusion,
            pixel_confusion_matrix=pixel_confusion,
            pr_curves=curves,
            gallery=select_gallery(items, self.gallery_size),
            predictions={x.image_id: x for x in items} if self.keep_predictions else None,
        )

    def _log_summary(self, m: Dict[str, float]) -> None:
        logger.info(
            "%s: mIoU %.2f, accuracy %.2f, precision %.2f, recall %.2f, F1 %.2f, AP50 %.2f, "
            "pixel mIoU %.2f (%d images, %d instances, %d counted predictions, score >= %g)",
            self.dataset_name,
            *(m[k] for k in ("mIoU", "accuracy", "precision", "recall", "F1", "AP50")),
            m["pixel_mIoU"],
            m["num_images"],
            m["num_gt"],
            m["num_pred"],
            self.score_thresh,
        )


def records_by_image_id(dataset_name: str) -> Dict[Any, dict]:
    """The data set dicts of ``dataset_name`` by ``image_id`` (ids must be unique)."""
    records: Dict[Any, dict] = {}
    for record in DatasetCatalog.get(dataset_name):
        image_id = record["image_id"]
        if image_id in records:
            raise ValueError(
                f"data set {dataset_name!r}: image_id {image_id!r} is used by both "
                f"{records[image_id]['file_name']} and {record['file_name']}; image ids "
                "must be unique"
            )
        records[image_id] = record
    return records


def _check_coco_categories(dataset_name: str) -> None:
    """
    Fail before inference, not after it, when COCOEvaluator would: its per-class AP needs the
    categories of ``json_file`` to be exactly the thing classes (a Roboflow export keeps its
    superclass, id 0, in the list).
    """
    DatasetCatalog.get(dataset_name)  # loaders may fill the metadata lazily
    meta = MetadataCatalog.get(dataset_name)
    json_file = meta.get("json_file")
    if not json_file or not os.path.isfile(json_file):
        return
    with open(json_file) as f:
        categories = json.load(f).get("categories", [])
    ids = sorted(c["id"] for c in categories)
    classes = meta.get("thing_classes") or []
    if len(ids) != len(classes):
        raise ValueError(
            f"{json_file}: has categories {ids} but data set {dataset_name!r} has "
            f"{len(classes)} thing classes {classes}; COCOEvaluator needs them to agree. Point "
            "the metadata's json_file at a COCO JSON without the superclass, or unset it so "
            "COCOEvaluator converts the data set dicts"
        )


def build_evaluator_list(
    cfg, dataset_name: str, output_dir: Optional[str]
) -> List[DatasetEvaluator]:
    """
    COCO bbox/segm AP plus the trashpole metrics for one data set.

    Args:
        cfg: config with the trashpole keys (``TRASHPOLE.EVAL.SCORE_THRESH``, ``IOU_THRESH``);
            with ``MODEL.MASK_ON False`` only COCO box AP is computed.
        dataset_name: registered data set to evaluate on.
        output_dir: where COCOEvaluator dumps predictions (and converts the data set to COCO
            JSON if it has no ``json_file``).

    Returns:
        [COCOEvaluator, TrashPoleEvaluator], or [COCOEvaluator] alone for a box-only model.
    """
    _check_coco_categories(dataset_name)
    coco = COCOEvaluator(
        dataset_name,
        tasks=("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",),
        output_dir=output_dir,
        # a cached ground truth goes stale when the export is fixed or re-registered
        allow_cached_coco=False,
    )
    if not cfg.MODEL.MASK_ON:
        # a box-only detector: the trashpole metrics are defined on masks
        return [coco]
    ours = TrashPoleEvaluator(
        dataset_name,
        score_thresh=cfg.TRASHPOLE.EVAL.SCORE_THRESH,
        iou_thresh=cfg.TRASHPOLE.EVAL.IOU_THRESH,
        output_dir=output_dir,
        keep_predictions=cfg.TRASHPOLE.EVAL.HTML_REPORT,
    )
    return [coco, ours]


def build_evaluators(cfg, dataset_name: str, output_dir: Optional[str]) -> DatasetEvaluators:
    """:func:`build_evaluator_list` as one ``DatasetEvaluators`` (what detectron2's trainer
    takes)."""
    return DatasetEvaluators(build_evaluator_list(cfg, dataset_name, output_dir))
