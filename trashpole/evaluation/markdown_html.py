"""
The small part of Markdown that ``report.md`` uses, turned into HTML, so that report.html shows the
same tables and explanations as report.md without a second copy of them: ``#``/``##`` headings,
paragraphs, ``- `` lists, pipe tables, and inline code, bold, italics, links and images.
"""

import html
import re
from typing import List

_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), r'<img src="\2" alt="\1" loading="lazy">'),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
]
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def inline(text: str) -> str:
    """
    One line of Markdown text as HTML: escaped, with `code`, **bold**, *italics*, [links](x)
    and ![images](x). Nothing is interpreted inside code spans.
    """
    parts = text.split("`")
    out = []
    for k, part in enumerate(parts):
        escaped = html.escape(part, quote=True)
        if k % 2 == 1 and k < len(parts) - 1:
            out.append(f"<code>{escaped}</code>")
            continue
        if k % 2 == 1:  # an unmatched backtick stays a backtick
            escaped = "`" + escaped
        for pattern, replacement in _INLINE:
            escaped = pattern.sub(replacement, escaped)
        out.append(escaped)
    return "".join(out)


def _cells(line: str) -> List[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: List[str]) -> List[str]:
    header, body = _cells(lines[0]), [_cells(x) for x in lines[2:]]
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in header)]
    out.append("</tr></thead><tbody>")
    for row in body:
        cells = [
            f'<td class="num">{c}</td>' if _NUMBER.match(c) else f"<td>{inline(c)}</td>"
            for c in row
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    return out + ["</tbody></table>"]


def _line_kind(line: str, previous: str, heading: bool) -> str:
    """The block a line belongs to, given the kind of the block before it."""
    stripped = line.strip()
    if not stripped or heading:
        return ""
    if stripped.startswith("|"):
        return "table"
    if stripped.startswith("- "):
        return "list"
    if previous == "list" and line.startswith("  "):
        return "continuation"  # an indented line goes on with the list item above
    return "paragraph"


def markdown_to_html(text: str) -> str:
    """
    Args:
        text: Markdown in the subset described in this module's docstring.

    Returns:
        the HTML of the blocks, one per line (headings keep their level: ``#`` is ``<h1>``).
    """
    out: List[str] = []
    block: List[str] = []
    kind = ""

    def flush():
        nonlocal block, kind
        if kind == "table":
            out.extend(_table(block))
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{inline(x[2:])}</li>" for x in block) + "</ul>")
        elif kind == "paragraph":
            out.append(f"<p>{inline(' '.join(block))}</p>")
        block, kind = [], ""

    for line in text.splitlines():
        stripped = line.strip()
        heading = re.match(r"^(#{1,6}) (.*)$", stripped)
        new_kind = _line_kind(line, kind, bool(heading))
        if new_kind == "continuation":
            block[-1] += " " + stripped
            continue
        if new_kind != kind or not stripped:
            flush()
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif stripped:
            block.append(stripped)
            kind = new_kind
    flush()
    return "\n".join(out)
