"""Data layer: Roboflow/COCO export registration, validation, summaries and ground-truth views."""

from .register import (
    ANNOTATION_FILE,
    SPLIT_FOLDERS,
    canonical_split,
    find_split_json,
    find_splits,
    get_class_names,
    load_roboflow_json,
    register_roboflow_splits,
)
from .summary import summarize_dataset, write_data_summary
from .validation import (
    PROBLEM_KINDS,
    DatasetError,
    Problem,
    ValidationReport,
    required_mask_format,
    validate_coco_json,
)

__all__ = [
    "ANNOTATION_FILE",
    "SPLIT_FOLDERS",
    "PROBLEM_KINDS",
    "DatasetError",
    "Problem",
    "ValidationReport",
    "canonical_split",
    "find_split_json",
    "find_splits",
    "get_class_names",
    "load_roboflow_json",
    "register_roboflow_splits",
    "required_mask_format",
    "summarize_dataset",
    "validate_coco_json",
    "write_data_summary",
]
