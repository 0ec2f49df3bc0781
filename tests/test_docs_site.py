"""The documentation site covers the package: every page is reachable, every public name documented.

`mkdocs build --strict` (in .ci/run) fails on broken links and anchors, and ruff's D1 rules
on undocumented definitions in public modules; these tests cover what neither sees.
"""

from __future__ import annotations

import re
from pathlib import Path

import spanstamp

ROOT = Path(__file__).resolve().parent.parent


def test_every_page_in_docs_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:", 1)[1]
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    assert "index.md" in pages
    assert [page for page in pages if not re.search(rf":\s+{re.escape(page)}$", nav, re.M)] == []


def test_every_public_name_has_a_docstring() -> None:
    # A name re-exported from a private module (spanstamp._x) is outside ruff's D1 rules.
    undocumented = [name for name in spanstamp.__all__ if not (getattr(spanstamp, name).__doc__ or "").strip()]
    assert undocumented == []


def test_the_api_reference_renders_the_package_as_it_exports_itself() -> None:
    # mkdocstrings renders spanstamp's __all__; a page listing names by hand would go stale.
    assert "::: spanstamp\n" in (ROOT / "docs" / "reference.md").read_text()
