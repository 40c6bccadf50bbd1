"""
report.md as HTML, so that report.html shows the same tables and explanations without a second
copy of them. markdown-it-py (CommonMark with pipe tables, raw HTML off) does the converting;
one rule adds what the page's style sheet expects: numeric table cells get ``class="num"``
(right-aligned), the cells of a row stay on one line, and images load lazily.
"""

import re

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _report_rule(state: StateCore) -> None:
    """markdown-it core rule over the parsed tokens (after inline parsing)."""
    tokens = state.tokens
    for k, token in enumerate(tokens):
        if token.type in ("th_open", "th_close", "td_open", "td_close"):
            token.block = False  # no line break between the cells of a row
        if token.type == "td_open" and _NUMBER.match(tokens[k + 1].content.strip()):
            token.attrSet("class", "num")
        for child in token.children or ():
            if child.type == "image":
                child.attrSet("loading", "lazy")


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    parser.core.ruler.push("trashpole_report", _report_rule)
    return parser


_PARSER = _parser()


def markdown_to_html(text: str) -> str:
    """
    Args:
        text: Markdown (CommonMark plus pipe tables); raw HTML in it is escaped, not passed on.

    Returns:
        the HTML of the blocks (headings keep their level: ``#`` is ``<h1>``).
    """
    return _PARSER.render(text)
