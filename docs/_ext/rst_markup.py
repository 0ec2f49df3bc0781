"""A griffe extension for the API reference: the docstrings' plain-text conventions as Markdown.

The package's docstrings are written to read well in ``help()``; mkdocstrings renders
Markdown, which would print three of their habits literally or as prose:

- reST roles such as :class:`SessionSpanProcessor`, shown here as code;
- a paragraph ending in ``::`` before an indented example, shown with a plain colon;
- the short example most docstrings end with, written as bare lines of code
  (``SessionIdRatioBased(0.25).ratio  # -> 0.25``), shown as a Python block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|data|exc|mod|obj):`~?(?:[\w.]+\.)?([^`]+)`")
_LITERAL_MARK = re.compile(r"(\S)?( ?)::$", re.M)
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")


_BLOCK_OPENER = re.compile(r"\s*(?:async\s+)?(?:with|for|if|elif|else|try|except|finally|while|def|class)\b")


def _ends_like_prose(line: str) -> bool:
    line = line.rstrip()
    if line.endswith(":"):
        return not _BLOCK_OPENER.match(line)
    return line.endswith((".", ";", ","))


def _looks_like_code(paragraph: str) -> bool:
    # Prose ends its lines with punctuation or quotes ``literals``; the examples do neither.
    return (
        not paragraph.startswith((" ", "\t"))
        and "``" not in paragraph
        and any(mark in paragraph for mark in "(=")
        and not any(_ends_like_prose(line) for line in paragraph.splitlines())
    )


def _as_markdown(text: str) -> str:
    text = _ROLE.sub(r"`\1`", text)
    # "text::" reads "text:"; a "::" after a space or alone on its line goes away.
    text = _LITERAL_MARK.sub(lambda m: f"{m.group(1)}:" if m.group(1) and not m.group(2) else (m.group(1) or ""), text)
    summary, *rest = _PARAGRAPHS.split(text)
    fenced = [f"```python\n{p}\n```" if _looks_like_code(p) else p for p in rest]
    return "\n\n".join([summary, *fenced])


class RestMarkup(griffe.Extension):
    """Rewrites each docstring once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Convert ``obj``'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = _as_markdown(obj.docstring.value)
