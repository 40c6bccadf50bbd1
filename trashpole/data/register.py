"""
Register the splits of a Roboflow COCO export in detectron2's catalogs.

An export looks like ``ROOT/{train,valid,test}/_annotations.coco.json`` with the images beside each
JSON (``val`` and ``validation`` are accepted for ``valid``). Registration reads only the category
lists (to fix the classes and check that every split agrees on them); images are listed and
checked when detectron2 asks for the dicts (``DatasetCatalog.get``), which the trainer does at
start-up so that problems surface before iteration 1. A split is checked once per process: later
``DatasetCatalog.get`` calls (the trainer, the evaluators, the summary ask several times) return
a copy of the first result without reading the images again or repeating the report.
"""

import glob
import logging
import os
import pickle
from typing import Dict, List, Optional, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog

from trashpole.errors import UserError
from trashpole.visualization import class_colors

from .validation import (
    CategoryInfo,
    DatasetError,
    ValidationReport,
    category_info,
    category_mapping,
    display_name,
    read_json,
    validate_coco_json,
)

logger = logging.getLogger(__name__)

ANNOTATION_FILE = "_annotations.coco.json"
# canonical split -> folder names accepted for it, in order of preference
SPLIT_FOLDERS: Dict[str, List[str]] = {
    "train": ["train"],
    "valid": ["valid", "val", "validation"],
    "test": ["test"],
}


def canonical_split(split: str) -> str:
    """``"val"`` / ``"validation"`` -> ``"valid"``; raises UserError for an unknown split name."""
    for canonical, folders in SPLIT_FOLDERS.items():
        if split in folders:
            return canonical
    known = [f for folders in SPLIT_FOLDERS.values() for f in folders]
    raise UserError(f"unknown split {split!r}; use one of {known}")


def find_splits(root: str) -> Dict[str, str]:
    """Find the split folders of an export.

    Args:
        root: the export folder.

    Returns:
        {canonical split: folder path} for the splits present, in train, valid, test order.

    Raises:
        DatasetError: ``root`` is missing, holds no split folder, or holds two folders for the
            same split (e.g. ``valid`` and ``val``).
    """
    if not os.path.isdir(root):
        raise DatasetError(
            f"{root}: dataset root not found; pass the folder of the Roboflow export (the one "
            "holding train/ and valid/) or set $DETECTRON2_DATASETS"
        )
    splits = {}
    for canonical, folders in SPLIT_FOLDERS.items():
        present = [f for f in folders if os.path.isdir(os.path.join(root, f))]
        if len(present) > 1:
            raise DatasetError(
                f"{root}: folders {present} all look like the {canonical} split; keep one"
            )
        if present:
            splits[canonical] = os.path.join(root, present[0])
    if not splits:
        hint = ""
        if os.path.isfile(os.path.join(root, ANNOTATION_FILE)):
            hint = f"; it holds {ANNOTATION_FILE} itself, so pass its parent folder"
        raise DatasetError(
            f"{root}: no split folder (train/, valid/ or val/, test/) found{hint}; "
            f"it holds {sorted(os.listdir(root))[:10]}"
        )
    return splits


def find_split_json(split_dir: str) -> str:
    """The annotation file of a split folder: ``_annotations.coco.json``, else its only JSON.

    Raises:
        DatasetError: no JSON in the folder, or several and none named ``_annotations.coco.json``.
    """
    path = os.path.join(split_dir, ANNOTATION_FILE)
    if os.path.isfile(path):
        return path
    candidates = sorted(glob.glob(os.path.join(split_dir, "*.json")))
    if len(candidates) == 1:
        logger.info(f"{split_dir}: no {ANNOTATION_FILE}; using {candidates[0]}")
        return candidates[0]
    if not candidates:
        raise DatasetError(
            f"{split_dir}: split folder without {ANNOTATION_FILE}; export the data set from "
            "Roboflow in 'COCO' format or remove the folder"
        )
    names = [os.path.basename(c) for c in candidates]
    raise DatasetError(f"{split_dir}: several JSON files {names}; name one {ANNOTATION_FILE}")


def _reference_split(splits: Dict[str, str]) -> str:
    """The split whose categories define the classes: train if present."""
    return next(iter(splits))


def get_class_names(root: str) -> List[str]:
    """Class names of an export in category-id order, without Roboflow's superclass entry.

    The classes come from the train split (or, without one, the first split found).

    Args:
        root: the export folder.

    Returns:
        e.g. ``["pole", "trash-can"]``.
    """
    splits = find_splits(root)
    json_file = find_split_json(splits[_reference_split(splits)])
    return category_info(read_json(json_file), display_name(json_file)).names


def load_roboflow_json(
    json_file: str,
    image_root: str,
    class_names: Optional[List[str]] = None,
    strict: bool = False,
    masks: bool = True,
) -> List[dict]:
    """Load one split's annotation file into checked detectron2 dataset dicts.

    Bad records are skipped and counted (one WARNING with the counts per problem kind, the
    details at INFO/DEBUG); with ``strict`` any such record raises instead.

    Args:
        json_file: the split's COCO JSON.
        image_root: folder the image ``file_name`` values are relative to.
        class_names: classes in contiguous-id order; None takes this file's own classes.
        strict: raise :class:`DatasetError` listing the problems instead of skipping records.
        masks: False keeps annotations without a mask as box-only records (``MODEL.MASK_ON
            False``); True drops them with a count.

    Returns:
        list of dicts in detectron2's standard format (images without annotations included).
    """
    return SplitLoader(json_file, image_root, class_names, strict, masks)()


class SplitLoader:
    """The ``DatasetCatalog`` function of one registered split: checks the split on the first
    call and answers later calls from that result.

    The result is kept while the JSON file is unchanged (same size and modification time); image
    files are not looked at again. Each call returns a fresh copy (unpickled from the kept bytes,
    about 0.1 s for 10,000 images), so callers may change the dicts.

    Args:
        json_file: the split's COCO JSON.
        image_root: folder the image ``file_name`` values are relative to.
        class_names: classes in contiguous-id order; None takes this file's own classes.
        strict: raise :class:`DatasetError` on any bad record instead of skipping it.
        masks: see :func:`load_roboflow_json`.
    """

    def __init__(
        self,
        json_file: str,
        image_root: str,
        class_names: Optional[List[str]] = None,
        strict: bool = False,
        masks: bool = True,
    ):
        self.json_file = json_file
        self.image_root = image_root
        self.class_names = list(class_names) if class_names is not None else None
        self.strict = strict
        self.masks = masks
        self._stamp: Optional[Tuple[int, int]] = None
        self._result: Optional[Tuple[bytes, ValidationReport]] = None

    def __call__(self) -> List[dict]:
        """The checked dataset dicts (a fresh copy); raises in strict mode if anything is bad."""
        dicts, report = self.load()
        if self.strict and report.blocking:
            raise report.error()
        return dicts

    def load(self) -> Tuple[List[dict], ValidationReport]:
        """(a copy of the dataset dicts, the validation report), never raising for strict mode."""
        stamp = _file_stamp(self.json_file)
        if self._result is None or stamp != self._stamp:
            dicts, report = validate_coco_json(
                self.json_file, self.image_root, self.class_names, masks=self.masks
            )
            report.log(strict_hint=not self.strict)
            blob = pickle.dumps(dicts, protocol=pickle.HIGHEST_PROTOCOL)
            self._result, self._stamp = (blob, report), stamp
        else:
            logger.debug(f"{self._result[1].source}: already checked; reusing the result")
        blob, report = self._result
        return pickle.loads(blob), report


def _file_stamp(path: str) -> Tuple[int, int]:
    """(size, mtime in ns) of a file, or (-1, -1) if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def register_roboflow_splits(
    name: str, root: str, strict: bool = False, masks: bool = True
) -> Dict[str, str]:
    """Register every split of a Roboflow export as ``{name}_{train,valid,test}``.

    Only the category lists are read here; the dicts are built (and the images checked) when
    ``DatasetCatalog.get`` is first called (see :class:`SplitLoader`). Calling it again with the
    same root is harmless; with another root it replaces the earlier registration.

    Args:
        name: prefix of the registered names.
        root: the export folder.
        strict: passed to :class:`SplitLoader`.
        masks: whether the model needs masks (``cfg.MODEL.MASK_ON``); passed to
            :class:`SplitLoader` and kept in the metadata as ``masks``.

    Returns:
        {canonical split: registered name}, e.g. ``{"train": "trashpole_train", ...}``.

    Raises:
        DatasetError: see :func:`find_splits`, :func:`find_split_json`; a split uses a class the
            train split lacks; a name is taken by a data set that trashpole did not register.
    """
    root = os.path.abspath(root)
    splits = find_splits(root)
    jsons = {split: find_split_json(folder) for split, folder in splits.items()}
    infos = {split: category_info(read_json(f), display_name(f)) for split, f in jsons.items()}
    class_names = infos[_reference_split(splits)].names
    _remove_previous(name)
    registered = {}
    for split, json_file in jsons.items():
        dataset_name = f"{name}_{split}"
        mapping = _full_mapping(infos[split], class_names, display_name(json_file))
        loader = SplitLoader(json_file, splits[split], class_names, strict, masks)
        DatasetCatalog.register(dataset_name, loader)
        MetadataCatalog.get(dataset_name).set(
            thing_classes=list(class_names),
            thing_dataset_id_to_contiguous_id=mapping,
            thing_colors=class_colors(len(class_names)),
            source_json=json_file,
            image_root=splits[split],
            evaluator_type="coco",
            dataset_root=root,
            split=split,
            masks=masks,
        )
        registered[split] = dataset_name
    _log_registered(root, splits, registered, class_names)
    return registered


def _log_registered(
    root: str, splits: Dict[str, str], registered: Dict[str, str], class_names: List[str]
) -> None:
    """Say what was registered, and warn when there is no train split to train on."""
    missing = [s for s in SPLIT_FOLDERS if s not in splits]
    logger.info(
        f"Registered {sorted(registered.values())} from {root} with classes {class_names}"
        + (f"; no {missing} split" if missing else "")
    )
    if "train" not in splits:
        found = sorted(os.path.basename(folder) for folder in splits.values())
        other = next(iter(registered.values()))
        logger.warning(
            f"{root} has no train/ split (only {found}); training needs one: rename a split "
            f"folder to train/, or train on another split with DATASETS.TRAIN \"('{other}',)\". "
            "Evaluation (--eval-only) works without it."
        )


def _full_mapping(info: CategoryInfo, class_names: List[str], source: str) -> Dict[int, int]:
    """{dataset id: contiguous id} covering every class, as COCOEvaluator needs.

    A class this split does not list gets an unused id, so that the mapping stays one-to-one.
    """
    mapping = category_mapping(info, class_names, source, report=None)
    free = max(info.ids, default=0) + 1
    for contiguous in sorted(set(range(len(class_names))) - set(mapping.values())):
        mapping[free] = contiguous
        free += 1
    return dict(sorted(mapping.items(), key=lambda kv: kv[1]))


def _remove_previous(name: str) -> None:
    """Drop an earlier registration of ``name``'s splits (ours only; others are an error)."""
    for split in SPLIT_FOLDERS:
        dataset_name = f"{name}_{split}"
        registered = dataset_name in DatasetCatalog.list()
        has_meta = dataset_name in MetadataCatalog.list()
        if registered and not (
            has_meta and hasattr(MetadataCatalog.get(dataset_name), "dataset_root")
        ):
            raise DatasetError(
                f"data set name {dataset_name!r} is already registered by something else; "
                "choose another name (TRASHPOLE.DATASET_NAME) or DatasetCatalog.remove it first"
            )
        if registered:
            logger.debug(f"Replacing the earlier registration of {dataset_name}")
            DatasetCatalog.remove(dataset_name)
        if has_meta:
            MetadataCatalog.remove(dataset_name)
