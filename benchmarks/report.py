"""
Size and load time of ``report.html`` for a large evaluation. A synthetic evaluation result of
``num_images`` images is built (street scenes of :mod:`synthetic`, reused in turn,
with predictions derived from the truth that make every kind of error), its report is written,
and the page is opened from disk in headless Chromium: how many bytes it takes on disk, how long
it takes to open, how many pictures it loads up front, and how fast a filter answers.
"""

import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode, Instances

from benchmarks.browser import BrowserError, HeadlessChromium, find_chromium
from synthetic import CLASS_NAMES, render_scene
from trashpole.evaluation import EvaluationDetail, TrashPoleEvaluator, write_report
from trashpole.evaluation.evaluator import records_by_image_id
from trashpole.evaluation.html_report import FILES_DIR, write_html_report
from trashpole.evaluation.matching import masks_to_rles

logger = logging.getLogger(__name__)

NAME = "report"
# arguments of run() for a smoke test in seconds (tools/benchmark.py --quick)
QUICK = dict(num_images=20, unique=10, repeats=1)
# tools/benchmark.py's options -> run()'s arguments
OPTIONS = {"num_images": "num_images", "repeats": "repeats"}
VIEWPORT = (1280, 900)


def _scenes(folder: str, count: int, size: int, seed: int) -> List[Tuple[str, list]]:
    """``count`` synthetic scenes as JPEGs: [(file, [(class, mask ndarray[H, W] of bool)])]."""
    rng = np.random.default_rng(seed)
    scenes = []
    for k in range(count):
        image, instances = render_scene(rng, size)
        path = os.path.join(folder, f"scene_{k:03d}.jpg")
        cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        scenes.append((path, [(d["category_id"] - 1, d["mask"]) for d in instances]))
    return scenes


def _record(image_id: int, scene: Tuple[str, list], size: int) -> dict:
    rles = masks_to_rles(np.stack([m for _, m in scene[1]])) if scene[1] else []
    return {
        "file_name": scene[0],
        "image_id": image_id,
        "height": size,
        "width": size,
        "annotations": [
            {
                "segmentation": rle,
                "category_id": c,
                "iscrowd": 0,
                "bbox": mask_util.toBbox(rle).tolist(),
                "bbox_mode": BoxMode.XYWH_ABS,
            }
            for rle, (c, _) in zip(rles, scene[1])
        ],
    }


def _shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(mask.astype(np.uint8), shift, (mask.shape[1], mask.shape[0]))
    return moved.astype(bool)


def _prediction(instances: list, size: int, rng: np.random.Generator) -> Instances:
    """
    Predictions made from the truth: about 12% of the objects missed, 10% shifted by half their
    width (low IoU), 8% with the wrong class, the rest with a 1-3 px border change, plus a
    false detection in one image out of three and a low-score duplicate now and then.
    """
    masks, classes, scores = [], [], []
    kernel = np.ones((3, 3), np.uint8)
    for cls, mask in instances:
        r = rng.random()
        if r < 0.12:
            continue
        xs = np.flatnonzero(mask.any(0))
        if r < 0.22:
            mask = _shifted(mask, max(2, (xs[-1] - xs[0]) // 2), 0)
        else:
            grow = cv2.dilate if rng.random() < 0.5 else cv2.erode
            mask = grow(mask.astype(np.uint8), kernel, iterations=int(rng.integers(1, 4))) > 0
        masks.append(mask)
        classes.append(1 - cls if 0.22 <= r < 0.30 else cls)
        scores.append(rng.uniform(0.5, 1.0))
        if rng.random() < 0.1:
            masks.append(_shifted(mask, 5, 5))
            classes.append(cls)
            scores.append(rng.uniform(0.1, 0.45))
    if rng.random() < 0.33:
        false = np.zeros((size, size), dtype=bool)
        x, y = rng.integers(0, size - 60, 2)
        false[y : y + int(rng.integers(20, 60)), x : x + int(rng.integers(10, 60))] = True
        masks.append(false)
        classes.append(int(rng.integers(0, 2)))
        scores.append(rng.uniform(0.5, 0.9))
    stack = np.stack(masks) if masks else np.zeros((0, size, size), dtype=bool)
    return Instances(
        (size, size),
        pred_masks=torch.from_numpy(stack),
        scores=torch.tensor(scores, dtype=torch.float32),
        pred_classes=torch.tensor(classes, dtype=torch.int64),
    )


def _evaluate(
    name: str, folder: str, inference_dir: str, num_images: int, unique: int, size: int, seed: int
) -> Dict[str, Any]:
    """The results of the synthetic evaluation, registered as data set ``name``; the evaluator
    writes its detail into ``inference_dir``."""
    scenes = _scenes(folder, min(unique, num_images), size, seed)
    records = [_record(i, scenes[i % len(scenes)], size) for i in range(num_images)]
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).thing_classes = list(CLASS_NAMES)
    rng = np.random.default_rng(seed + 1)
    evaluator = TrashPoleEvaluator(
        name, distributed=False, output_dir=inference_dir, keep_predictions=True
    )
    for record, k in zip(records, range(num_images)):
        inputs = [{key: record[key] for key in ("image_id", "file_name", "height", "width")}]
        prediction = _prediction(scenes[k % len(scenes)][1], size, rng)
        evaluator.process(inputs, [{"instances": prediction}])
    return evaluator.evaluate()


def _disk_usage(report_dir: str, num_images: int) -> Dict[str, Any]:
    files = os.path.join(report_dir, FILES_DIR)
    sizes = [os.path.getsize(os.path.join(files, f)) for f in os.listdir(files)]
    html_bytes = os.path.getsize(os.path.join(report_dir, "report.html"))
    plots = sum(
        os.path.getsize(os.path.join(report_dir, f))
        for f in ("confusion_matrix.png", "pr_curves.png")
    )
    return {
        "html_bytes": html_bytes,
        "files_count": len(sizes),
        "files_bytes": sum(sizes),
        "plots_bytes": plots,
        "total_mb": (html_bytes + sum(sizes) + plots) / 2**20,
        "kb_per_image": sum(sizes) / 1024 / max(num_images, 1),
    }


# measured in the page after it opened on the image browser: navigation timings (ms from the
# start of navigation), the script's own "page built" time, the pictures fetched so far, the JS
# heap, a filter change and a jump to the last card
_IN_PAGE = """(async function () {
  var nav = performance.getEntriesByType("navigation")[0];
  // file:// pictures leave no resource timing entries: count the loaded ones instead
  var fetched = Array.from(document.querySelectorAll("#cards img"), function (i) {
    return i.complete && i.naturalWidth > 0 ? i.getAttribute("src") : null;
  }).filter(function (src, k, all) { return src && all.indexOf(src) === k; });
  var select = document.getElementById("filter-problem");
  var t0 = performance.now();
  select.value = "missed";
  select.dispatchEvent(new Event("change"));
  var shownMissed = document.querySelectorAll("#cards .card").length;
  document.body.offsetHeight;  // include the layout in the time
  var filterMs = performance.now() - t0;
  select.value = "all";
  select.dispatchEvent(new Event("change"));
  var t1 = performance.now();
  var last = document.querySelector("#cards .card:last-child");
  last.scrollIntoView();
  await Promise.all(Array.from(last.querySelectorAll("img"), function (i) { return i.decode(); }));
  return {dom_content_loaded_ms: nav.domContentLoadedEventEnd, load_event_ms: nav.loadEventEnd,
          page_built_ms: window.trashpoleReport.readyMs, resources_at_open: fetched,
          js_heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null,
          cards: document.querySelectorAll("#cards .card").length, missed_cards: shownMissed,
          filter_ms: filterMs, last_card_pictures_ms: performance.now() - t1};
})()"""


def _measure_page(report_html: str, repeats: int) -> Dict[str, Any]:
    """Open the page ``repeats`` times, each in a fresh tab of one browser; every run's numbers
    and their medians."""
    runs = []
    files = os.path.join(os.path.dirname(report_html), FILES_DIR)
    with HeadlessChromium(width=VIEWPORT[0], height=VIEWPORT[1]) as browser:
        for _ in range(repeats):
            page = browser.open(report_html + "#images")
            page.wait_until("document.body.dataset.ready === 'true'")
            visible = page.wait_for_visible_images()
            m = page.evaluate(_IN_PAGE)
            names = [os.path.basename(u) for u in m.pop("resources_at_open")]
            m["pictures_at_open"] = len(names)
            m["picture_bytes_at_open"] = sum(
                os.path.getsize(os.path.join(files, n))
                for n in names
                if os.path.isfile(os.path.join(files, n))
            )
            m.update(load_s=page.load_s, visible_pictures=visible, errors=page.errors())
            page.close()
            runs.append(m)
        version = browser.version
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and v is not None]
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    return {"chromium": version, "viewport": list(VIEWPORT), "runs": runs, "median": median}


def run(
    out_dir: Optional[str] = None,
    num_images: int = 1000,
    unique: int = 50,
    size: int = 640,
    repeats: int = 3,
    seed: int = 0,
) -> Dict[str, Any]:
    """
    Build a synthetic evaluation, write its report and measure report.html.

    Args:
        out_dir: if set, ``report_benchmark.json`` is written there, and the evaluation stays in
            ``out_dir/report_html/`` (``eval/report.html``) to be opened; else a temporary folder
            is used and removed.
        num_images: images in the evaluation.
        unique: distinct synthetic scenes, reused in turn (rendering them is the slow part).
        size: side of the square images, px (the demo's are 640).
        repeats: page openings to time.
        seed: random seed.

    Returns:
        dict: sizes on disk (``page``), seconds to evaluate and to write the report
        (``report_s``: all of write_report, ``html_s``: report.html and its pictures alone), the
        browser's numbers (``browser``; None without Chromium, with ``browser_skipped`` saying
        why) and the machine's load average before and after.
    """
    load_before = os.getloadavg()
    work = os.path.join(out_dir, "report_html") if out_dir else tempfile.mkdtemp()
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "data"))
    report_dir = os.path.join(work, "eval")
    name = f"trashpole_benchmark_report_{uuid.uuid4().hex[:8]}"
    try:
        report = _write_and_time(name, work, num_images, unique, size, seed)
        report.update(_browser_numbers(os.path.join(report_dir, "report.html"), repeats))
    finally:
        for catalog in (DatasetCatalog, MetadataCatalog):
            if name in catalog.list():
                catalog.remove(name)
        if not out_dir:
            shutil.rmtree(work, ignore_errors=True)
    report.update(cpus=os.cpu_count(), loadavg_before=load_before, loadavg_after=os.getloadavg())
    if out_dir:
        path = os.path.join(out_dir, "report_benchmark.json")
        with open(path, "w") as f:
            json.dump(report, f, indent=2)
        logger.info("wrote %s; the page is %s", path, os.path.join(report_dir, "report.html"))
    return report


def _write_and_time(
    name: str, work: str, num_images: int, unique: int, size: int, seed: int
) -> Dict[str, Any]:
    """Evaluate the synthetic data set as ``name`` in ``work`` and write its report to
    ``work/eval``, timing each step; the result without the browser's numbers."""
    report_dir = os.path.join(work, "eval")
    t0 = time.perf_counter()
    inference_dir = os.path.join(work, "inference")
    results = _evaluate(
        name, os.path.join(work, "data"), inference_dir, num_images, unique, size, seed
    )
    evaluate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_report(results, inference_dir, report_dir)
    report_s = time.perf_counter() - t0
    with open(os.path.join(report_dir, "report.md")) as f:
        markdown = f.read()
    t0 = time.perf_counter()  # the HTML part again, alone
    detail, truth = EvaluationDetail.load(inference_dir), records_by_image_id(name)
    write_html_report(results, detail, truth, report_dir, markdown)
    html_s = time.perf_counter() - t0
    return {
        "num_images": num_images,
        "unique_scenes": min(unique, num_images),
        "image_size": size,
        "results": _headline(results),
        "page": _disk_usage(report_dir, num_images),
        "evaluate_s": evaluate_s,
        "report_s": report_s,
        "html_s": html_s,
        "html_ms_per_image": 1000.0 * html_s / max(num_images, 1),
        "browser": None,
    }


def _browser_numbers(page: str, repeats: int) -> Dict[str, Any]:
    """``browser``: the page opened ``repeats`` times in headless Chromium; or
    ``browser_skipped`` saying why it could not be."""
    if not find_chromium():
        return {"browser_skipped": "no Chromium found (apt-get install -y chromium)"}
    try:
        return {"browser": _measure_page(page, repeats)}
    except BrowserError as e:
        return {"browser_skipped": f"Chromium failed: {e}"}


def _headline(results: Dict[str, Dict[str, float]]) -> Dict[str, Any]:
    m = results["trashpole"]
    return {k: m.get(k) for k in ("num_gt", "num_pred", "TP", "FP", "FN", "mIoU", "F1")}


def format_table(report: Dict[str, Any]) -> str:
    """The benchmark's result as a few lines of text."""
    page = report["page"]
    lines = [
        f"report.html of {report['num_images']} images ({report['image_size']} px, "
        f"{report['unique_scenes']} distinct scenes)",
        f"  on disk: report.html {page['html_bytes'] / 2**20:.2f} MB + {page['files_count']} "
        f"pictures {page['files_bytes'] / 2**20:.1f} MB ({page['kb_per_image']:.1f} KB/image), "
        f"total {page['total_mb']:.1f} MB",
        f"  writing: write_report {report['report_s']:.1f} s, report.html alone "
        f"{report['html_s']:.1f} s ({report['html_ms_per_image']:.1f} ms/image)",
    ]
    b = report.get("browser")
    if not b:
        return "\n".join(lines + [f"  browser: skipped ({report.get('browser_skipped')})"])
    m = b["median"]
    lines += [
        f"  {b['chromium']}, {b['viewport'][0]}x{b['viewport'][1]}, median of {len(b['runs'])}: "
        f"open {1000 * m['load_s']:.0f} ms (DOMContentLoaded {m['dom_content_loaded_ms']:.0f} ms,"
        f" load {m['load_event_ms']:.0f} ms, page built {m['page_built_ms']:.0f} ms)",
        f"  {m['pictures_at_open']:.0f} pictures ({m['picture_bytes_at_open'] / 1024:.0f} KB) "
        f"loaded at open, filter {m['filter_ms']:.0f} ms, last card's pictures "
        f"{m['last_card_pictures_ms']:.0f} ms, JS heap {m['js_heap_mb'] or 0:.1f} MB",
        f"  page errors: {sum(len(r['errors']) for r in b['runs'])}",
    ]
    return "\n".join(lines)
