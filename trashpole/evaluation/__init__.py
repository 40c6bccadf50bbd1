"""
Evaluation of trashpole models: detectron2's COCO AP plus the trashpole metrics (mean IoU,
accuracy, precision/recall/F1, confusion matrix, mask AP50 curves, pixel metrics), a readable
report and a run comparison. Metric definitions: :mod:`trashpole.evaluation.metrics`.
"""

from trashpole.visualization.charts import plot_comparison

from .compare import compare_runs, format_table, load_run
from .detail import EvaluationDetail, GalleryItem
from .evaluator import TrashPoleEvaluator, build_evaluators
from .matching import ImageResult
from .metrics import METRIC_DESCRIPTIONS
from .report import write_report

__all__ = [
    "EvaluationDetail",
    "GalleryItem",
    "ImageResult",
    "METRIC_DESCRIPTIONS",
    "TrashPoleEvaluator",
    "build_evaluators",
    "compare_runs",
    "format_table",
    "load_run",
    "plot_comparison",
    "write_report",
]
