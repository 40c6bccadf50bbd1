"""``tools/export_model.py --format openvino``: the three networks of
:mod:`trashpole.predict.stages` as OpenVINO IR, converted as the OpenVINO backend converts them
(``torch.export`` + ``openvino.convert_model``), with the config whose detectron2 glue runs
between them. ``examples/run_openvino.py`` runs the folder with detectron2 and OpenVINO only."""

import logging
import os
from typing import Dict

import numpy as np
import torch
from detectron2.config import CfgNode

from trashpole.export import META_FILE, ExportedPredictor, build_export_meta, image_to_input
from trashpole.jsonio import write_json

logger = logging.getLogger(__name__)


def export_openvino(cfg, model, output_dir, sample_image, verify, int8, calibration) -> str:
    """
    Write the OpenVINO IR of the three stages (``features``, ``boxes``, ``masks``; with ``int8``
    also ``features_int8``), the ``config.yaml`` of the glue and ``export_meta.json``, and check
    the files at f32 against the eager model on ``sample_image``.

    Returns:
        the path of ``features.xml``.
    """
    from trashpole.predict import openvino as ov_backend

    models = ov_backend.convert_stages(model)
    if int8:
        from trashpole.predict.quantize import quantized_features

        path = ov_backend.stage_paths(output_dir, "_int8")["features"]
        quantized_features(model, cfg, models["features"], path, calibration)
    paths = ov_backend.save_stages(models, output_dir)
    with open(os.path.join(output_dir, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    image = image_to_input(cfg, sample_image)
    meta = _meta(cfg, model, paths, image, int8)
    write_json(meta, os.path.join(output_dir, META_FILE))
    logger.info(f"Exported {cfg.MODEL.WEIGHTS} to OpenVINO IR in {output_dir}")
    if verify:
        _verify(cfg, model, output_dir, sample_image)
    return paths["features"]


def _meta(cfg, model, paths, image, int8) -> Dict:
    import openvino as ov

    from trashpole.predict.stages import feature_names, stage_inputs

    meta = build_export_meta(cfg, "openvino", [], None, image, {"weights": cfg.MODEL.WEIGHTS})
    meta.pop("outputs_schema")
    meta["input"]["name"] = "image (normalized and padded; see examples/run_openvino.py)"
    meta["stages"] = {name: os.path.basename(path) for name, path in paths.items()}
    if int8:
        meta["stages_int8"] = {"features": "features_int8.xml"}
    meta["features"] = feature_names(model)
    meta["stage_inputs"] = stage_inputs(model)
    meta["glue_config"] = "config.yaml"
    meta["outputs"] = ["instances at image size: pred_boxes, scores, pred_classes, pred_masks"]
    meta["versions"]["openvino"] = ov.__version__
    return meta


def _verify(cfg: CfgNode, model, export_dir: str, sample_image: np.ndarray) -> None:
    exported = ExportedPredictor(export_dir, precision="f32")
    inputs = [
        {"image": image_to_input(cfg, sample_image), "height": sample_image.shape[0]}
        | {"width": sample_image.shape[1]}
    ]
    with torch.no_grad():
        expected = model(inputs)[0]["instances"]
    actual = exported(sample_image)["instances"]
    same = len(expected) == len(actual)
    box = (
        float((expected.pred_boxes.tensor - actual.pred_boxes.tensor).abs().max())
        if same and len(actual)
        else 0.0
    )
    logger.info(
        f"Exported vs eager on the sample image: {len(actual)} vs {len(expected)} detections, boxes within {box:.2g} px"
    )
    if not same or box > 1e-2:
        raise RuntimeError(
            f"{export_dir}: the OpenVINO model disagrees with the eager one on the sample image "
            f"({len(actual)} vs {len(expected)} detections, boxes {box:.3g} px); export with "
            "--sample-image set to a real photo and report the difference"
        )
