"""Box-shaped evaluation data for the report tests: objects and predictions are rectangles, so
every IoU can be worked out by hand.

``images`` is a list with, per image, the ground truth ``[(class, x0, y0, x1, y1)]`` and the
predictions ``[(class, (x0, y0, x1, y1), score)]``; image ids count from 1.
"""

import contextlib
import io
import json
from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluators, inference_on_dataset
from detectron2.structures import Boxes, Instances

from trashpole.config import add_trashpole_config
from trashpole.evaluation.detail import EvaluationDetail
from trashpole.evaluation.evaluator import build_evaluator_list
from trashpole.evaluation.report import write_report

Images = Sequence[Tuple[List[tuple], List[tuple]]]


def write_box_dataset(root: Path, images: Images, height: int, width: int) -> Path:
    """PNG images (grey background, a filled rectangle per object) and their COCO JSON in
    ``root``; returns the JSON's path."""
    records, annotations = [], []
    for i, (gts, _) in enumerate(images):
        picture = np.full((height, width, 3), 90, dtype=np.uint8)
        for cls, x0, y0, x1, y1 in gts:
            color = (40, 200, 40) if cls else (200, 200, 200)
            cv2.rectangle(picture, (x0, y0), (x1 - 1, y1 - 1), color, -1)
        cv2.imwrite(str(root / f"{i}.png"), picture)
        records.append({"id": i + 1, "file_name": f"{i}.png", "height": height, "width": width})
        for cls, x0, y0, x1, y1 in gts:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": cls + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                }
            )
    categories = [{"id": 1, "name": "pole"}, {"id": 2, "name": "trash-can"}]
    path = root / "annotations.json"
    path.write_text(
        json.dumps({"images": records, "annotations": annotations, "categories": categories})
    )
    return path


class BoxModel(torch.nn.Module):
    """Returns the predictions of ``images`` for each input, by image id (rectangular masks)."""

    def __init__(self, images: Images, height: int, width: int):
        super().__init__()
        self.images, self.size = images, (height, width)

    def forward(self, inputs):
        outputs = []
        for inp in inputs:
            preds = self.images[inp["image_id"] - 1][1]
            masks = torch.zeros((len(preds), *self.size), dtype=torch.bool)
            for k, (_, (x0, y0, x1, y1), _) in enumerate(preds):
                masks[k, y0:y1, x0:x1] = True
            instances = Instances(self.size)
            instances.pred_masks = masks
            instances.pred_boxes = Boxes(
                torch.tensor([b for _, b, _ in preds], dtype=torch.float32).reshape(-1, 4)
            )
            instances.pred_classes = torch.tensor([c for c, _, _ in preds], dtype=torch.int64)
            instances.scores = torch.tensor([s for _, _, s in preds], dtype=torch.float32)
            outputs.append({"instances": instances})
        return outputs


def evaluate_and_write(model, name: str, inference_dir: Path, out: Path, html: bool = True):
    """Evaluate ``model`` on the registered data set ``name`` with the COCO and trashpole
    evaluators and write the report into ``out``; returns (results, the EvaluationDetail the
    trashpole evaluator wrote into ``inference_dir``)."""
    loader = [
        [{k: r[k] for k in ("image_id", "file_name", "height", "width")}]
        for r in DatasetCatalog.get(name)
    ]
    cfg = get_cfg()
    add_trashpole_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.TRASHPOLE.EVAL.HTML_REPORT = html
    coco, ours = build_evaluator_list(cfg, name, str(inference_dir))
    with contextlib.redirect_stdout(io.StringIO()):
        results = inference_on_dataset(model, loader, DatasetEvaluators([coco, ours]))
    write_report(results, str(inference_dir), str(out))
    return results, EvaluationDetail.load(str(inference_dir))
