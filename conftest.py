"""Every ```python block of README.md and docs/*.md runs as a test, through Sybil.

The blocks of one document share a namespace, top to bottom; tests/doc_namespace.py
gives each document a stub LLM, an OTLP receiver and the names the docs take as given,
and resets global state afterwards. Use ```bash or ```text for what cannot run, and
``<!-- skip: next -->`` (Sybil's skip directive) only with a reason next to it.
"""

from __future__ import annotations

import importlib.util

# The lowest-versions run of .ci/run installs only the test-core extra, without Sybil, and
# runs tests/ alone; everywhere else (the README's test command) Sybil is installed.
if importlib.util.find_spec("sybil") is not None:
    from sybil import Sybil
    from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

    from doc_namespace import Page, setup_docs, setup_readme, teardown

    _PARSERS = [PythonCodeBlockParser(), SkipParser()]
    _PAGES = {".md": Page}

    pytest_collect_file = (
        Sybil(
            _PARSERS,
            patterns=["README.md"],
            setup=setup_readme,
            teardown=teardown,
            document_types=_PAGES,
            name="readme",
        )
        + Sybil(
            _PARSERS, patterns=["docs/*.md"], setup=setup_docs, teardown=teardown, document_types=_PAGES, name="docs"
        )
    ).pytest()
