"""``analyze()``: the insights of OTLP JSON lines files, as one JSON-able dict.

result = analyze(["spans.jsonl"], idle_s=1800.0)
print(result["sessions"]["count"], result["users"]["returning"])
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from spanstamp import rules
from spanstamp.insights.engine import run_files
from spanstamp.insights.files import expand

#: The default idle gap (seconds) that splits a session into visits and ends it.
DEFAULT_IDLE_S = 1800.0
#: How many users ``users.top`` lists by default.
DEFAULT_TOP = 20


def analyze(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    idle_s: float = DEFAULT_IDLE_S,
    top: int = DEFAULT_TOP,
) -> dict[str, Any]:
    """Sessions, turns, users and what ends sessions, over files, directories and globs of OTLP JSON lines.

    result = analyze("spans.jsonl")
    result["endings"]["top_last_inputs"]   # [{"input": "thanks", "count": 12}, ...]

    Bad input (a file that is not OTLP JSON, a cut line, a span without ids) is left out,
    warned about on the ``spanstamp`` logger and listed in ``result["skipped"]``.
    """
    if not isinstance(idle_s, int | float) or isinstance(idle_s, bool) or not idle_s >= 0:
        raise ValueError("analyze(idle_s) must be a number of seconds >= 0")
    if not isinstance(top, int) or isinstance(top, bool) or top < 0:
        raise ValueError("analyze(top) must be an int >= 0")
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files, reports = expand(given)
    result, bad = run_files(files, idle_s=float(idle_s), top=top)
    # In file and line order, whatever order DuckDB refused the files in.
    reports.extend(sorted(bad, key=lambda r: (r["file"], r["line"] or 0)))
    for report in reports:
        where = report["file"] if report["line"] is None else f"{report['file']}:{report['line']}"
        rules.logger.warning("spanstamp insights: %s: %s, left out", where, report["reason"])
    result["skipped"] = reports
    return result
