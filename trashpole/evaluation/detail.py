"""
What one evaluation found beyond its scalar metrics, as a file.

``TrashPoleEvaluator.evaluate`` returns the metrics (as every detectron2 evaluator does) and
writes this detail next to COCOEvaluator's files in its ``output_dir``:

    <output_dir>/trashpole_results.json   settings, metrics, both confusion matrices, per-image
                                          records, PR curves, the galleries' images and, with
                                          ``keep_predictions``, every image's kept masks (RLE)

The report (:func:`trashpole.evaluation.write_report`) reads it back with
:meth:`EvaluationDetail.load`; nothing travels from the evaluator to the report through
attributes.
"""

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from trashpole.jsonio import write_json

from .matching import RLE, ImageResult

DETAIL_FILE = "trashpole_results.json"
FORMAT_VERSION = 1


@dataclass
class GalleryItem:
    """
    One image's predictions above the score threshold as RLEs, kept for the report's pictures.

    Attributes:
        image_id: the image's id in the data set.
        rank_key: per-image mean IoU as a fraction (see ``ImageResult.rank_key``).
        num_false: false detections in the image, to break ties.
        rles, classes, scores: the kept predictions.
    """

    image_id: Any
    rank_key: float
    num_false: int
    rles: List[RLE]
    classes: List[int]
    scores: List[float]

    def to_json(self) -> dict:
        rles = [{"size": list(r["size"]), "counts": _counts_text(r["counts"])} for r in self.rles]
        return {**dataclasses.asdict(self), "rles": rles}

    @classmethod
    def from_json(cls, d: dict) -> "GalleryItem":
        rles = [{"size": list(r["size"]), "counts": r["counts"].encode("ascii")} for r in d["rles"]]
        return cls(
            d["image_id"],
            float(d["rank_key"]),
            int(d["num_false"]),
            rles,
            [int(c) for c in d["classes"]],
            [float(s) for s in d["scores"]],
        )


def _counts_text(counts: Any) -> str:
    """pycocotools' compressed RLE counts (bytes) as JSON text, as COCO results files hold them."""
    return counts.decode("ascii") if isinstance(counts, bytes) else str(counts)


def worst_first_key(rank_key: float, num_false: int, image_id: Any) -> tuple:
    """The galleries' order, the same in report.md and report.html: lowest per-image mean IoU
    first, more false detections first among equals, then by image id."""
    return (rank_key, -num_false, str(image_id))


def _worst_first(item: GalleryItem) -> tuple:
    return worst_first_key(item.rank_key, item.num_false, item.image_id)


def _best_first(item: GalleryItem) -> tuple:
    return (-item.rank_key, item.num_false, str(item.image_id))


def select_gallery(items: List[GalleryItem], size: int) -> Dict[str, List[GalleryItem]]:
    """The ``size`` worst and best images by per-image mean IoU: {"worst": [...], "best": [...]}."""
    return {
        "worst": sorted(items, key=_worst_first)[:size],
        "best": sorted(items, key=_best_first)[:size],
    }


def _nan_for_none(value: Any) -> Any:
    """Strict JSON wrote undefined numbers as null; the metrics hold them as NaN."""
    return float("nan") if value is None else value


@dataclass
class EvaluationDetail:
    """
    Everything the report draws and tabulates, from one evaluation on the main process.

    Attributes:
        dataset_name: the registered data set evaluated.
        class_names: K names, contiguous order; ``labels`` adds "background" last.
        score_thresh, iou_thresh: the evaluator's thresholds.
        metrics: the ``trashpole`` metrics (rates in percent, NaN where undefined).
        records: one ``ImageResult`` per image, in evaluation order.
        confusion_matrix: ndarray[K + 1, K + 1] of instances, rows true, columns predicted.
        pixel_confusion_matrix: ndarray[K + 1, K + 1] of pixels.
        pr_curves: name -> {"recall", "precision", "thresholds" (ndarrays), "AP50", "num_gt"}.
        gallery: {"worst", "best"}: the gallery images, in display order.
        predictions: image id -> ``GalleryItem`` of every image (for report.html), or None when
            the evaluator kept only the galleries' images.
    """

    dataset_name: str
    class_names: List[str]
    score_thresh: float
    iou_thresh: float
    metrics: Dict[str, float]
    records: List[ImageResult]
    confusion_matrix: np.ndarray
    pixel_confusion_matrix: np.ndarray
    pr_curves: Dict[str, Dict[str, Any]]
    gallery: Dict[str, List[GalleryItem]]
    predictions: Optional[Dict[Any, GalleryItem]] = None

    @property
    def labels(self) -> List[str]:
        return list(self.class_names) + ["background"]

    def summary(self) -> dict:
        """Settings, metrics and both confusion matrices (the head of ``metrics.json``)."""
        return {
            "dataset": self.dataset_name,
            "score_thresh": self.score_thresh,
            "iou_thresh": self.iou_thresh,
            "class_names": list(self.class_names),
            "results": {"trashpole": dict(self.metrics)},
            "confusion_matrix": {"labels": self.labels, "matrix": self.confusion_matrix.tolist()},
            "pixel_confusion_matrix": {
                "labels": self.labels,
                "matrix": self.pixel_confusion_matrix.tolist(),
            },
        }

    def save(self, folder: str) -> str:
        """Write ``folder/trashpole_results.json`` (created); returns its path."""
        os.makedirs(folder, exist_ok=True)
        # the galleries point into the kept images; kept images not in a gallery are written
        # only when every image's predictions were kept
        kept = dict(self.predictions) if self.predictions is not None else {}
        for items in self.gallery.values():
            kept.update({item.image_id: item for item in items})
        detail = {
            "format": FORMAT_VERSION,
            **self.summary(),
            "records": [dataclasses.asdict(r) for r in self.records],
            "pr_curves": self.pr_curves,
            "gallery": {k: [item.image_id for item in v] for k, v in self.gallery.items()},
            "all_predictions_kept": self.predictions is not None,
            "kept_predictions": [item.to_json() for item in kept.values()],
        }
        path = os.path.join(folder, DETAIL_FILE)
        write_json(detail, path, indent=None)
        return path

    @classmethod
    def load(cls, folder: str) -> "EvaluationDetail":
        """Read what :meth:`save` wrote into ``folder``."""
        path = os.path.join(folder, DETAIL_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path}: no evaluation detail; TrashPoleEvaluator writes it in evaluate() when "
                "it has an output_dir"
            )
        with open(path) as f:
            d = json.load(f)
        if d.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: format {d.get('format')!r}, this trashpole reads {FORMAT_VERSION}; "
                "evaluate again to rewrite it"
            )
        items = [GalleryItem.from_json(x) for x in d["kept_predictions"]]
        by_id = {item.image_id: item for item in items}
        curves = {
            name: {
                "recall": np.asarray(c["recall"], dtype=np.float64),
                "precision": np.asarray(c["precision"], dtype=np.float64),
                "thresholds": np.asarray(c["thresholds"], dtype=np.float64),
                "AP50": _nan_for_none(c["AP50"]),
                "num_gt": int(c["num_gt"]),
            }
            for name, c in d["pr_curves"].items()
        }
        return cls(
            dataset_name=d["dataset"],
            class_names=list(d["class_names"]),
            score_thresh=float(d["score_thresh"]),
            iou_thresh=float(d["iou_thresh"]),
            metrics={k: _nan_for_none(v) for k, v in d["results"]["trashpole"].items()},
            records=[ImageResult(**r) for r in d["records"]],
            confusion_matrix=np.asarray(d["confusion_matrix"]["matrix"], dtype=np.int64),
            pixel_confusion_matrix=np.asarray(
                d["pixel_confusion_matrix"]["matrix"], dtype=np.int64
            ),
            pr_curves=curves,
            gallery={k: [by_id[i] for i in ids] for k, ids in d["gallery"].items()},
            predictions=by_id if d["all_predictions_kept"] else None,
        )
