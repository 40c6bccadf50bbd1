"""Every measured figure in README.md and docs/*.md sits next to where it comes from.

A figure is a number with a unit of time, size, ratio or accuracy (``0.92 s``, ``472 ms``,
``2.7%``, ``1.22x``, ``6.3 GB``, ``AP 36.3``, ``12 images/s``), or a decimal number in a table.
It is backed when its block (a paragraph, a list item with its continuation lines, or a table
with the paragraph just before or after it) names a kept result file (``docs/benchmarks/...`` or,
from a docs page, ``benchmarks/...``), the command that makes it (in backticks: ``tools/...``,
``make ...``, ``python ...``) or the test that checks it (``tests/test_*.py``). Code blocks are
not prose and are skipped. A failure lists each unbacked figure with its file, line and text:
cite the result file, or drop the figure.
"""

import re
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from tiny_model import REPO

PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
# pages being rewritten whole (issue 25): expected to fail until their rewrite cites its files;
# strict, so a page that passes must leave this list
PENDING: dict = {}
UNIT = (
    r"ms|µs|us|s|sec|seconds?|min|minutes?|h|hours?|%|[KkMG]B|[KMG]iB|images?/s|it/s|fps|FPS"
    r"|s/image|s/iter"
)
NUMBER = r"\d+(?:[.,]\d+)*"
FIGURE = re.compile(
    rf"(?<![\w.\-/])(?:{NUMBER}\s?-\s?)?{NUMBER}(?:\s?(?:{UNIT})|x)(?![\w/])"
    rf"|\b(?:AP|AP50|AP75|mIoU|F1)\s(?:of\s)?{NUMBER}\b"
)
TABLE_DECIMAL = re.compile(r"\|\s*-?\d+\.\d+\s*(?:[a-z%]+)?\s*(?=\|)")
SOURCE = re.compile(
    r"(?:docs/)?benchmarks/[\w./-]+"
    r"|`(?:\.venv/bin/)?(?:python3?\s+(?:-m\s+)?|make\s+|\./)?(?:tools|benchmarks)/[\w./-]+[^`]*`"
    r"|`make \w[^`]*`|`python3? -m [\w.]+[^`]*`"
    r"|`?tests/test_\w+\.py"
)

Block = Tuple[int, str, str]  # (first line number, kind: "text" or "table", text)


def blocks(text: str) -> List[Block]:
    """The page's paragraphs, list items and tables (code blocks left out)."""
    out: List[Block] = []
    current: List[str] = []
    start, kind, fenced = 0, "text", False

    def flush():
        nonlocal current
        if current:
            out.append((start, kind, "\n".join(current)))
        current = []

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            fenced = not fenced
            continue
        line_kind = "table" if stripped.startswith("|") else "text"
        new_item = re.match(r"^\s{0,3}(?:[-*]|\d+\.)\s", line) is not None
        if fenced or not stripped or line_kind != kind or new_item or stripped.startswith("#"):
            flush()
        if fenced or not stripped or stripped.startswith("#"):
            continue
        if not current:
            start, kind = number, line_kind
        current.append(line)
    flush()
    return out


def figures(block: Block) -> Iterator[str]:
    _, kind, text = block
    for match in FIGURE.finditer(text):
        yield match.group(0)
    if kind == "table":
        for match in TABLE_DECIMAL.finditer(text):
            yield match.group(0).strip("| ")


def unbacked(path: Path) -> List[str]:
    """'file:line: figure' for each figure of the page without a source in reach."""
    found = blocks(path.read_text())
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    missing = []
    for k, block in enumerate(found):
        figs = list(figures(block))
        if not figs:
            continue
        reach = [block]
        if block[1] == "table":  # a table's source may be said just before or after it
            reach += [b for b in found[max(k - 1, 0) : k + 2] if b[1] == "text"]
        if any(SOURCE.search(b[2]) for b in reach):
            continue
        missing += [f"{name}:{block[0]}: {f}" for f in figs]
    return missing


@pytest.mark.parametrize(
    "page",
    [
        (
            pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=PENDING[p.name]))
            if p.name in PENDING
            else p
        )
        for p in PAGES
    ],
    ids=[p.name for p in PAGES],
)
def test_every_figure_has_its_source(page):
    missing = unbacked(page)
    assert not missing, "figures without a result file or command nearby:\n" + "\n".join(missing)


def test_figures_and_blocks_are_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Speed 2x\n\nIt takes 0.92 s an iteration, 1.22x the old stack and 3-5%\nmore on "
        "`tools/time_training.py` (docs/benchmarks/x.json).\n\n"
        "- tracking costs 0.8 ms\n- 2x2 sampling, 640x640, 7 x 5 slices, 20 epochs, [8 GB](a.md)\n\n"
        "| model | s/image |\n|---|---:|\n| a | 4.81 |\n\nsegm AP 36.3 on `make demo`\n\n"
        "```\n9.9 s in code\n```\n\nAP of 2.1 and 35 KB\n"
    )
    kinds = [(line, kind) for line, kind, _ in blocks(page.read_text())]
    assert kinds == [
        (3, "text"),
        (6, "text"),
        (7, "text"),
        (9, "table"),
        (13, "text"),
        (19, "text"),
    ]
    assert [list(figures(b)) for b in blocks(page.read_text())] == [
        ["0.92 s", "1.22x", "3-5%"], ["0.8 ms"], ["8 GB"], ["4.81"], ["AP 36.3"],
        ["AP of 2.1", "35 KB"],
    ]  # fmt: skip
    # the table is covered by `make demo` in the paragraph after it
    assert unbacked(page) == [
        f"{page}:6: 0.8 ms",
        f"{page}:7: 8 GB",
        f"{page}:19: AP of 2.1",
        f"{page}:19: 35 KB",
    ]
