"""Categories of an export: Roboflow's dataset-level superclass, classes matched across splits by name."""

import difflib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from trashpole.data.validation.problems import DatasetError, ValidationReport, is_id, is_int


@dataclass(frozen=True)
class CategoryInfo:
    """The categories of one annotation file.

    Attributes:
        classes: ``(dataset id, name)`` of the real classes, sorted by id.
        dropped: the superclass entries that are not classes (Roboflow's id-0 entry).
        used: annotations per category id (any id found in the annotations, listed or not).
    """

    classes: List[Tuple[int, str]]
    dropped: List[dict]
    used: Dict[Any, int]

    @property
    def names(self) -> List[str]:
        return [name for _, name in self.classes]

    @property
    def ids(self) -> List[int]:
        return [cid for cid, _ in self.classes] + [c["id"] for c in self.dropped]


def category_info(data: dict, source: str) -> CategoryInfo:
    """Find the real classes of a parsed annotation file.

    Roboflow puts a dataset-level entry in front of the classes (``id`` 0, ``supercategory``
    ``"none"``, the other categories name it as their supercategory) that no annotation uses; it
    is not a class. A category that annotations use is always a class.

    Args:
        data: output of :func:`read_json`.
        source: file name for messages.

    Returns:
        CategoryInfo, classes sorted by id.

    Raises:
        DatasetError: malformed or duplicate categories, two classes with the same name, or none.
    """
    used = Counter(
        a.get("category_id")
        for a in data["annotations"]
        if isinstance(a, dict) and is_id(a.get("category_id"))
    )
    categories = data["categories"]
    for c in categories:
        if not (isinstance(c, dict) and is_int(c.get("id")) and isinstance(c.get("name"), str)):
            raise DatasetError(f"{source}: category {c!r} needs an integer 'id' and a 'name'")
    ids = Counter(c["id"] for c in categories)
    if any(n > 1 for n in ids.values()):
        dup = sorted(i for i, n in ids.items() if n > 1)
        raise DatasetError(f"{source}: category ids {dup} are listed more than once")
    parents = {c.get("supercategory") for c in categories}
    dropped = [c for c in categories if _is_superclass(c, used, parents)]
    classes = sorted((c["id"], c["name"].strip()) for c in categories if c not in dropped)
    names = Counter(name for _, name in classes)
    for name, n in names.items():
        if n > 1:
            same = [cid for cid, nm in classes if nm == name]
            raise DatasetError(
                f"{source}: categories {same} are all named {name!r}; merge them into one class "
                "(Roboflow: Health Check > Class Balance > Modify Classes) and re-export"
            )
    if not classes:
        raise DatasetError(f"{source}: no categories besides the superclass; nothing to learn")
    return CategoryInfo(classes=classes, dropped=dropped, used=dict(used))


def _is_superclass(category: dict, used: Dict[Any, int], parents: set) -> bool:
    if used.get(category["id"]) or str(category.get("supercategory", "")).lower() != "none":
        return False
    return category["id"] == 0 or category["name"] in parents


def category_mapping(
    info: CategoryInfo, class_names: Sequence[str], source: str, report: Optional[ValidationReport]
) -> Dict[int, int]:
    """Map this file's category ids to contiguous class ids by NAME.

    Args:
        info: this file's categories.
        class_names: the classes of the data set (usually the train split's), in contiguous order.
        source: file name for messages.
        report: where unused categories that are not classes get noted (None: not noted).

    Returns:
        {dataset category id: contiguous id} for the categories that are classes.

    Raises:
        DatasetError: annotations use a category whose name is not in ``class_names``.
    """
    index = {name: i for i, name in enumerate(class_names)}
    mapping = {}
    for cid, name in info.classes:
        if name in index:
            mapping[cid] = index[name]
        elif info.used.get(cid):
            close = difflib.get_close_matches(name, list(class_names), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DatasetError(
                f"{source}: category {cid} {name!r}{hint} is used by {info.used[cid]} annotations "
                f"but is not one of the classes {list(class_names)} (taken from the train split); "
                "rename it in the export or add the class to the train split"
            )
        elif report is not None:
            report.add("category_not_a_class", f"category {cid}", f"{name!r} is ignored")
    return mapping
