"""
``index.html`` of a run folder: the training curves (``curves.png`` and the rows of
``results.csv``) and a link to each evaluation report found in the run (``eval/<split>/``), with
its headline metrics. Training rewrites it after each evaluation, ``--eval-only`` after its own.
"""

import csv
import html
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional

from .compare import DEFAULT_METRICS
from .html_report import static_text

logger = logging.getLogger(__name__)

# columns of results.csv shown in the index, in order (the file may lack some)
CURVE_COLUMNS = [
    "epoch", "iteration", "train_loss", "val_loss", "segm_AP", "segm_AP50", "bbox_AP",
    "bbox_AP50", "mIoU", "accuracy", "lr",
]  # fmt: skip


def find_reports(run_dir: str) -> List[str]:
    """
    Evaluation folders of a run: subfolders, one or two levels down, that hold ``report.html``
    or ``metrics.json`` with results (``eval/<split>/`` by the rule of
    :mod:`trashpole.evaluation.evaluate`; older runs also had ``eval/`` and ``eval_<split>/``).

    Args:
        run_dir: the run's output folder.

    Returns:
        paths relative to ``run_dir``, sorted.
    """
    found = []
    for top in sorted(os.listdir(run_dir)):
        first = os.path.join(run_dir, top)
        if not os.path.isdir(first):
            continue
        for folder in [first] + [os.path.join(first, sub) for sub in sorted(os.listdir(first))]:
            if os.path.isdir(folder) and _is_report(folder):
                found.append(os.path.relpath(folder, run_dir))
    return found


def _is_report(folder: str) -> bool:
    if os.path.isfile(os.path.join(folder, "report.html")):
        return True
    return _read_json(os.path.join(folder, "metrics.json")).get("results") is not None


def _read_json(path: str) -> Dict[str, Any]:
    """A JSON object file, or {} when it is missing or not one JSON object (e.g. a log)."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _cell(value: Any, digits: int = 2) -> str:
    """A table cell: a number right-aligned with ``digits`` decimals, "n/a" when undefined."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return f"<td>{html.escape(value)}</td>"
    if value is None or value != value:
        return "<td>n/a</td>"
    text = f"{value:.3g}" if 0 < abs(value) < 0.01 else f"{value:.{digits}f}"
    return f'<td class="num">{text}</td>'


def _evaluations_table(run_dir: str, reports: List[str]) -> str:
    if not reports:
        return "<p>No evaluation in this run yet.</p>"
    header = ["report", "data set", "images"] + [f"{t} {k}" for t, k in DEFAULT_METRICS]
    rows = []
    for rel in reports:
        folder = os.path.join(run_dir, rel)
        metrics = _read_json(os.path.join(folder, "metrics.json"))
        results = metrics.get("results") or {}
        page = "report.html" if os.path.isfile(os.path.join(folder, "report.html")) else None
        target = f"{rel}/{page or 'report.md'}".replace(os.sep, "/")
        link = f'<a href="{html.escape(target)}">{html.escape(rel)}/</a>'
        when = time.strftime(
            "%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(os.path.join(folder, page or "")))
        )
        cells = [f"<td>{link} <small>{when}</small></td>"]
        cells.append(f"<td>{html.escape(str(metrics.get('dataset', '')))}</td>")
        cells.append(_cell((results.get("trashpole") or {}).get("num_images"), 0))
        cells += [_cell((results.get(t) or {}).get(k)) for t, k in DEFAULT_METRICS]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return (
        f'<table class="index-table"><thead><tr>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table><p>Rates in percent; each report explains its metrics.</p>"
    )


def _curves_section(run_dir: str) -> str:
    parts = []
    if os.path.isfile(os.path.join(run_dir, "curves.png")):
        parts.append('<img src="curves.png" alt="training curves" class="plot">')
    rows = _read_csv(os.path.join(run_dir, "results.csv"))
    if rows:
        columns = [c for c in CURVE_COLUMNS if any(r.get(c) for r in rows)]
        head = "".join(f"<th>{c}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(_cell(r.get(c), 0 if c == "iteration" else 3) for c in columns)
            + "</tr>"
            for r in rows
        )
        parts.append(
            f'<p>One row per evaluation (<a href="results.csv">results.csv</a>; AP, mean IoU '
            "and accuracy in percent, train_loss the mean since the previous row).</p>"
            f'<table class="index-table"><thead><tr>{head}</tr></thead><tbody>{body}'
            "</tbody></table>"
        )
    if not parts:
        return (
            "<p>No training curves here: training writes curves.png and results.csv at each "
            "evaluation (DATASETS.TEST set, TEST.EVAL_PERIOD_EPOCHS &gt; 0).</p>"
        )
    return "\n".join(parts)


def _read_csv(path: str) -> Optional[List[Dict[str, str]]]:
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_run_index(run_dir: str) -> str:
    """
    Write ``<run_dir>/index.html``: training curves and links to each evaluation report.

    Args:
        run_dir: a run's output folder (``OUTPUT_DIR`` of its training).

    Returns:
        the path of index.html.
    """
    reports = find_reports(run_dir)
    name = os.path.basename(os.path.abspath(run_dir))
    files = [
        f
        for f in ("config.yaml", "metrics.json", "log.txt")
        if os.path.isfile(os.path.join(run_dir, f))
    ]
    links = ", ".join(f'<a href="{f}">{f}</a>' for f in files) or "none yet"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Run {html.escape(name)}</title>
<style>
{static_text("report.css")}
</style>
</head>
<body>
<header>
<h1>Run {html.escape(name)}</h1>
<p class="summary">{html.escape(os.path.abspath(run_dir))}. Files: {links}.</p>
</header>
<main>
<h2>Evaluations</h2>
{_evaluations_table(run_dir, reports)}
<h2>Training curves</h2>
{_curves_section(run_dir)}
</main>
</body>
</html>
"""
    path = os.path.join(run_dir, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    logger.info("wrote %s (%d evaluation reports)", path, len(reports))
    return path
