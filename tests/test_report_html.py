"""report.html and a run's index.html, on a five-image data set of 120x160 pictures made in the
test: one image per outcome (all hits, wrong class, missed, false detection, low IoU). The browser
tests load the pages from disk in headless Chromium; they skip without one, except under CI=true,
where they fail."""

import importlib.util
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from box_data import BoxModel, evaluate_and_write, write_box_dataset
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

from benchmarks.browser import HeadlessChromium, find_chromium
from trashpole.evaluation.html_report import gt_outcome
from trashpole.evaluation.markdown_html import markdown_to_html
from trashpole.evaluation.run_index import find_reports, write_run_index

REPO = Path(__file__).resolve().parents[1]
H, W = 120, 160
# Per image: ground truth [(class, x0, y0, x1, y1)] and predictions [(class, box, score)].
IMAGES = [
    (
        [(0, 20, 20, 40, 110), (1, 70, 40, 130, 100)],
        [(0, (20, 20, 40, 110), 0.9), (1, (74, 44, 130, 100), 0.8)],
    ),  # two hits (IoU 1 and 56*56/(60*60))
    ([(1, 30, 30, 90, 100)], [(0, (30, 30, 90, 100), 0.7)]),  # right mask, wrong class
    ([(0, 100, 20, 120, 110)], []),  # missed
    ([], [(1, (40, 40, 80, 80), 0.6)]),  # false detection on an empty image
    ([(1, 20, 30, 70, 90)], [(1, (45, 30, 95, 90), 0.55)]),  # IoU 25/75: low IoU
]
# worst first: the false detection and the miss (image mIoU 0, the false detection first),
# low IoU (1/3), the hits (0.97), the wrong class (IoU 1)
WORST_FIRST = [3, 2, 4, 0, 1]
# RGB class colors of the page (report.md's palette): pole, trash-can
POLE, CAN = (230, 159, 0), (0, 114, 178)


def write_dataset(root: Path) -> Path:
    return write_box_dataset(root, IMAGES, H, W)


def evaluate(name: str, root: Path, out: Path, html: bool = True):
    """Evaluate the fixed predictions of IMAGES on data set ``name``; the report goes to ``out``."""
    return evaluate_and_write(
        BoxModel(IMAGES, H, W), name, root / f"inference_{out.name}", out, html
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(data root, run folder, results): the reports in <run>/eval/valid and <run>/eval/test,
    plus curves for the index."""
    root = tmp_path_factory.mktemp("data")
    name = f"test_report_html_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, str(write_dataset(root)), str(root))
    run_dir = root / "run"
    results, _ = evaluate(name, root, run_dir / "eval" / "valid")
    shutil.copytree(run_dir / "eval" / "valid", run_dir / "eval" / "test")
    (run_dir / "results.csv").write_text(
        "epoch,iteration,train_loss,val_loss,lr,segm_AP,mIoU\n"
        "1,2,1.5,1.25,0.001,10,20\n2,4,0.75,0.5,0.0001,30,40.5\n"
    )
    cv2.imwrite(str(run_dir / "curves.png"), np.full((40, 60, 3), 255, dtype=np.uint8))
    write_run_index(str(run_dir))
    yield root, run_dir, results, name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def page_data(report: Path) -> dict:
    text = report.read_text()
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text)
    return json.loads(match.group(1))


def test_gt_outcome_by_hand():
    assert gt_outcome(0.0, 1, -1, 0.5) == "missed"
    assert gt_outcome(0.3, 1, 1, 0.5) == "low IoU"
    assert gt_outcome(0.3, 1, 0, 0.5) == "low IoU"  # below the threshold the class is moot
    assert gt_outcome(0.5, 1, 0, 0.5) == "wrong class"
    assert gt_outcome(0.5, 1, 1, 0.5) == "hit"


def test_page_data_per_image(run):
    _, run_dir, _, _ = run
    data = page_data(run_dir / "eval" / "valid" / "report.html")
    images = data["images"]
    assert data["classes"] == ["pole", "trash-can"]
    assert [img["name"] for img in images] == [f"{i}.png" for i in range(5)]
    assert [img["problems"] for img in images] == [
        [],
        [["wrong", 0], ["wrong", 1]],
        [["missed", 0]],
        [["false", 1]],
        [["lowiou", 1]],
    ]
    assert sorted(range(5), key=lambda k: images[k]["rank"]) == WORST_FIRST
    assert images[0]["gt"] == [[0, 100.0, 0, "hit"], [1, 87.1, 1, "hit"]]  # 3136/3600
    assert images[4]["gt"] == [[1, 33.3, 1, "low IoU"]]
    assert images[0]["pred"] == [[0, 0.9], [1, 0.8]] and images[2]["pred"] == []
    assert [img["classes"] for img in images] == [[0, 1], [0, 1], [0], [1], [1]]
    # per-image metrics as in per_image.json
    per_image = json.loads((run_dir / "eval" / "valid" / "per_image.json").read_text())
    for img, rec in zip(images, per_image):
        assert (img["TP"], img["FP"], img["FN"]) == (rec["TP"], rec["FP"], rec["FN"])
        assert img["miou"] == (None if rec["mIoU"] is None else pytest.approx(rec["mIoU"], 0.01))
    assert [(img["w"], img["h"]) for img in images] == [(W, H)] * 5


def test_page_is_self_contained(run):
    _, run_dir, results, _ = run
    out = run_dir / "eval" / "valid"
    text = (out / "report.html").read_text()
    assert "report.html" in (out / "report.md").read_text()
    # no network: no absolute URL and no external script or style sheet
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<script src" not in text and "<link" not in text
    referenced = set(re.findall(r'src="([^"]+)"', text)) | set(re.findall(r'href="([^"#]+)"', text))
    for pic in (img["pic"] for img in page_data(out / "report.html")["images"]):
        referenced |= {f"{pic}.jpg", f"{pic}_truth.png", f"{pic}_pred.png"}
    assert {"pr_curves.png", "confusion_matrix.png", "report_files/00004_pred.png"} <= referenced
    for rel in referenced:
        assert (out / rel).is_file(), rel
    assert len(list((out / "report_files").iterdir())) == 15
    # the metric tables of report.md, with their numbers
    m = results["trashpole"]
    for value in (m["mIoU"], m["F1"], m["pixel_mIoU"], results["segm"]["AP"]):
        assert f'<td class="num">{value:.2f}</td>' in text, value
    assert "<h2>How to read this</h2>" in text and "<td>true pole</td>" in text


def test_pictures_show_truth_and_prediction(run):
    _, run_dir, _, _ = run
    files = run_dir / "eval" / "valid" / "report_files"
    photo = cv2.imread(str(files / "00002.jpg"))
    assert photo.shape == (H, W, 3)
    # image 2: a missed pole at x 100-119, y 20-109, drawn in the pole color; no prediction
    truth = cv2.imread(str(files / "00002_truth.png"), cv2.IMREAD_UNCHANGED)
    assert truth.shape == (H, W, 4)
    assert tuple(truth[90, 110]) == (*POLE[::-1], 110)  # BGRA, translucent fill
    assert truth[60, 50, 3] == 0  # transparent outside the objects
    pred = cv2.imread(str(files / "00002_pred.png"), cv2.IMREAD_UNCHANGED)
    assert pred[..., 3].max() == 0
    # image 1: a trash can predicted as a pole, filled with the pole color on the prediction
    pred = cv2.imread(str(files / "00001_pred.png"), cv2.IMREAD_UNCHANGED)
    assert tuple(pred[80, 60]) == (*POLE[::-1], 110)
    truth = cv2.imread(str(files / "00001_truth.png"), cv2.IMREAD_UNCHANGED)
    assert tuple(truth[80, 60]) == (*CAN[::-1], 110)


def test_html_report_off(run, tmp_path):
    root, _, _, name = run
    _, evaluator = evaluate(name, root, tmp_path / "eval", html=False)
    assert evaluator.predictions is None and len(evaluator.gallery["worst"]) == 5
    # report.md's galleries rank the images as the page's "worst first" sort (ids from 1)
    assert [g.image_id for g in evaluator.gallery["worst"]] == [k + 1 for k in WORST_FIRST]
    assert (tmp_path / "eval" / "report.md").is_file()
    assert not (tmp_path / "eval" / "report.html").exists()
    assert not (tmp_path / "eval" / "report_files").exists()


def test_run_index(run):
    _, run_dir, results, _ = run
    assert find_reports(str(run_dir)) == ["eval/test", "eval/valid"]
    text = (run_dir / "index.html").read_text()
    assert '<a href="eval/valid/report.html">eval/valid/</a>' in text
    assert '<a href="eval/test/report.html">eval/test/</a>' in text
    assert f'<td class="num">{results["trashpole"]["mIoU"]:.2f}</td>' in text
    assert '<img src="curves.png"' in text
    # the rows of results.csv: iterations as integers, the rest with 3 decimals
    assert '<td class="num">4</td><td class="num">0.750</td><td class="num">0.500</td>' in text
    assert '<td class="num">0.0001</td>' in text


def test_markdown_to_html():
    text = (
        "# Title\n\nSome `a*b` and **bold**, *em*\ncontinued.\n\n- one [x](y.md)\n  more\n"
        "- ![p](p.png)\n\n| k | v |\n|---|---|\n| n/a | 1.50 |\n"
    )
    # markdown-it-py's HTML, plus the page's needs: numeric cells class="num", the cells of a row
    # on one line, images loaded lazily
    assert markdown_to_html(text).splitlines() == [
        "<h1>Title</h1>",
        "<p>Some <code>a*b</code> and <strong>bold</strong>, <em>em</em>",
        "continued.</p>",
        "<ul>",
        '<li>one <a href="y.md">x</a>',
        "more</li>",
        '<li><img src="p.png" alt="p" loading="lazy" /></li>',
        "</ul>",
        "<table>",
        "<thead>",
        "<tr>",
        "<th>k</th><th>v</th></tr>",
        "</thead>",
        "<tbody>",
        "<tr>",
        '<td>n/a</td><td class="num">1.50</td></tr>',
        "</tbody>",
        "</table>",
    ]
    assert markdown_to_html("<b>x</b> & a < 3") == "<p>&lt;b&gt;x&lt;/b&gt; &amp; a &lt; 3</p>\n"


# ---------------------------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        reason = (
            "no Chromium found (apt-get install -y chromium, or set $CHROMIUM): the report's "
            "browser tests cannot run"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true they must run")
        pytest.skip(reason)
    with HeadlessChromium(width=1280, height=900) as chromium:
        yield chromium


READY = "document.body.dataset.ready === 'true'"
# every picture of the page, loaded now (lazy ones included): [[src, naturalWidth], ...]
LOAD_ALL = """Promise.all(Array.from(document.images).map(function (img) {
  img.loading = "eager";
  return img.decode().then(function () { return [img.getAttribute("src"), img.naturalWidth]; },
                           function () { return [img.getAttribute("src"), 0]; });
}))"""


def choose(page, select_id: str, value: str) -> list:
    """Pick ``value`` in a select of the page as a user would; returns the cards shown."""
    page.evaluate(
        f"var s = document.getElementById('{select_id}'); s.value = '{value}';"
        "s.dispatchEvent(new Event('change', {bubbles: true}));"
    )
    return page.evaluate(
        "Array.from(document.querySelectorAll('#cards .card'), c => +c.dataset.index)"
    )


def test_report_in_browser(run, browser, tmp_path):
    _, run_dir, _, _ = run
    page = browser.open(str(run_dir / "eval" / "valid" / "report.html") + "#images", wait_for=READY)
    assert page.evaluate("document.getElementById('tab-images').hidden") is False
    assert page.evaluate("trashpoleReport.shown()") == WORST_FIRST
    # the cards' pictures load lazily
    assert (
        page.evaluate("Array.from(document.querySelectorAll('#cards img'), i => i.loading)")
        == ["lazy"] * 20
    )
    loaded = dict(page.evaluate(LOAD_ALL))
    expected = {
        f"report_files/{k:05d}{s}" for k in range(5) for s in (".jpg", "_truth.png", "_pred.png")
    }
    assert expected | {"confusion_matrix.png", "pr_curves.png"} == set(loaded)
    assert all(loaded[src] == W for src in expected), loaded

    # filters change what is shown, in the DOM
    assert choose(page, "filter-problem", "missed") == [2]
    assert choose(page, "filter-problem", "any") == [3, 2, 4, 1]
    assert choose(page, "filter-class", "1") == [3, 4, 1]  # trash-can problems
    assert choose(page, "filter-problem", "wrong") == [1]
    assert choose(page, "filter-problem", "none") == [0]  # image 0: its trash can is a hit
    assert choose(page, "filter-class", "") == [0]
    assert page.evaluate("document.getElementById('count').textContent") == "1 of 5 images"
    assert choose(page, "filter-problem", "all") == WORST_FIRST
    assert choose(page, "sort", "best") == WORST_FIRST[::-1]
    assert choose(page, "sort", "worst") == WORST_FIRST

    # keyboard: next, next, previous, enlarge, next in the viewer, close, masks off
    page.evaluate("document.activeElement.blur()")
    for key, selected in (("j", 3), ("j", 2), ("k", 3), ("ArrowRight", 2)):
        page.press(key)
        assert page.evaluate("trashpoleReport.selected()") == selected, key
    page.press("Enter")
    assert page.evaluate("trashpoleReport.viewerOpen()") is True
    page.press("ArrowRight")
    assert page.evaluate("trashpoleReport.selected()") == 4
    assert "4.png" in page.evaluate("document.getElementById('viewer').textContent")
    page.press("Escape")
    assert page.evaluate("trashpoleReport.viewerOpen()") is False
    page.press("m")
    assert page.evaluate("document.body.classList.contains('no-masks')") is True
    page.press("m")

    shot = tmp_path / "report.png"
    page.screenshot(str(shot))
    assert cv2.imread(str(shot)).shape == (900, 1280, 3)
    assert page.errors() == []


def test_report_metrics_tab_in_browser(run, browser):
    _, run_dir, results, _ = run
    page = browser.open(str(run_dir / "eval" / "valid" / "report.html"), wait_for=READY)
    assert page.evaluate("document.getElementById('tab-images').hidden") is True
    text = page.evaluate("document.getElementById('tab-metrics').innerText")
    assert f"{results['trashpole']['mIoU']:.2f}" in text and "How to read this" in text
    # a click on the confusion cell (true pole, predicted background) shows the missed poles
    page.evaluate(
        "Array.from(document.querySelectorAll('#tab-metrics td.link'))"
        ".find(td => td.parentElement.cells[0].textContent === 'true pole'"
        " && td.cellIndex === 3).click()"
    )
    assert page.evaluate("location.hash") == "#images"
    assert page.evaluate("trashpoleReport.shown()") == [2]
    assert page.errors() == []


def test_run_index_in_browser(run, browser):
    _, run_dir, _, _ = run
    page = browser.open(str(run_dir / "index.html"))
    links = page.evaluate("Array.from(document.links, a => decodeURI(a.pathname))")
    assert {str(run_dir / p) for p in ("eval/valid/report.html", "eval/test/report.html")} <= set(
        links
    )
    for link in links:
        assert os.path.isfile(link), link
    assert dict(page.evaluate(LOAD_ALL)) == {"curves.png": 60}
    assert page.errors() == []


def test_screenshot_tool(run, browser, tmp_path):
    _, run_dir, _, _ = run
    spec = importlib.util.spec_from_file_location("shot", REPO / "tools" / "screenshot_report.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "shot.png"
    page = str(run_dir / "eval" / "valid" / "report.html")
    assert tool.main([page, "--view", "images", "--keys", "j", "--output", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (900, 1280, 3)
