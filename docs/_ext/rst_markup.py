"""A griffe extension for the API reference: the docstrings' reStructuredText bits as Markdown.

The package's docstrings use two pieces of reST, which mkdocstrings (Markdown) would
print literally: roles such as :class:`SessionSpanProcessor`, shown here as code, and a
paragraph ending in ``::`` before an indented example, shown with a plain colon.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|data|exc|mod|obj):`~?(?:[\w.]+\.)?([^`]+)`")
_LITERAL_MARK = re.compile(r"(\S)?( ?)::$", re.M)


def _as_markdown(text: str) -> str:
    text = _ROLE.sub(r"`\1`", text)
    # "text::" reads "text:"; a "::" alone on its line (or after a space) goes away.
    return _LITERAL_MARK.sub(lambda m: f"{m.group(1)}:" if m.group(1) and not m.group(2) else (m.group(1) or ""), text)


class RestMarkup(griffe.Extension):
    """Rewrites each docstring once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Convert ``obj``'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = _as_markdown(obj.docstring.value)
