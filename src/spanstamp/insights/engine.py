"""The DuckDB engine: runs ``queries/duckdb.sql`` over OTLP JSON lines files.

The common case, clean files, is one typed scan. Only when DuckDB refuses a file (not
JSON, a cut line, a shape it cannot read) or counts bad rows in one (not OTLP, spans
without ids) is that file read a second time, slowly, to name its bad lines::

    result, skipped = run_files([Path("spans.jsonl")], idle_s=1800.0, top=20)
"""

from __future__ import annotations

import json
import re
import string
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Final

from spanstamp import attributes as attr
from spanstamp.insights.files import Skipped, clean_copy, is_empty, skipped

#: The attribute and event names the SQL reads, filled in as SQL strings.
SQL_NAMES: Final = {
    "SESSION_ID": attr.SESSION_ID,
    "USER_ID": attr.USER_ID,
    "TASK_ID": attr.TASK_ID,
    "FEEDBACK_TASK_ID": attr.FEEDBACK_TASK_ID,
    "INPUT_VALUE": attr.INPUT_VALUE,
    "SESSION_END_EVENT": attr.SESSION_END_EVENT,
    "SESSION_END_REASON": attr.SESSION_END_REASON,
}
#: The largest line DuckDB reads: a BatchSpanProcessor export of 512 spans with long
#: inputs and outputs stays far below it.
MAX_LINE_BYTES: Final = 16 * 1024 * 1024
# Statements up to this one read the files; the rest aggregate what was read.
# Ids and inputs are read from string values only: spanstamp and the SDK write them as
# strings, and every field declared here costs time on every attribute of every span.
_VALUE: Final = '{"stringValue":"VARCHAR"}'
_ATTRIBUTES: Final = '[{"key":"VARCHAR","value":' + _VALUE + "}]"
#: The part of an ``ExportTraceServiceRequest`` the SQL reads, as DuckDB's ``from_json``
#: structure: the rest of each line is skipped, and nothing is inferred.
STRUCTURE: Final = (
    '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"VARCHAR","spanId":"VARCHAR","parentSpanId":"VARCHAR",'
    '"startTimeUnixNano":"VARCHAR","endTimeUnixNano":"VARCHAR","status":{"code":"VARCHAR"},'
    f'"attributes":{_ATTRIBUTES},"events":[{{"name":"VARCHAR","attributes":{_ATTRIBUTES}}}]}}]}}]}}]}}'
)
_READ_UNTIL: Final = "DELETE FROM spans"
_FILE_IN_ERROR: Final = re.compile(r'in file "(.+?)"')


def sql_text() -> str:
    """The DuckDB query file, a template (see its header).

    print(sql_text()[:80])
    """
    return resources.files("spanstamp.insights").joinpath("queries").joinpath("duckdb.sql").read_text("utf-8")


def statements(files: list[str], *, idle_s: float, top: int) -> list[str]:
    """The query file filled in for ``files``, split into its statements.

    statements(["spans.jsonl"], idle_s=1800.0, top=20)
    """
    values = {name: _literal(value) for name, value in SQL_NAMES.items()}
    values["FILES"] = "[" + ", ".join(_literal(f) for f in files) + "]"
    values["IDLE_NS"] = str(round(idle_s * 1e9))
    values["TOP"] = str(int(top))
    values["MAX_OBJECT"] = str(MAX_LINE_BYTES)
    values["STRUCTURE"] = STRUCTURE
    text = string.Template(sql_text()).substitute(values)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip()]


def run_files(paths: list[Path], *, idle_s: float, top: int) -> tuple[dict[str, Any], list[Skipped]]:
    """The result document over ``paths``, and the input that was left out (file, line, reason).

    result, skipped = run_files([Path("spans.jsonl")], idle_s=1800.0, top=20)
    """
    import duckdb  # the insights extra; imported here so that the package imports without it

    reports: list[Skipped] = []
    with tempfile.TemporaryDirectory(prefix="spanstamp-insights-") as tmp:
        work = Path(tmp)
        # Memory stays bounded: DuckDB spills to the temporary directory beyond the limit.
        con = duckdb.connect(config={"memory_limit": "640MB", "temp_directory": str(work / "spill")})
        try:
            sources: dict[str, Path] = {}  # what DuckDB reads -> the user's file
            for path in paths:
                if is_empty(path):
                    reports.append(skipped(path, None, "empty file"))
                else:
                    sources[str(path)] = path
            cleaned: set[str] = set()
            steps = _read(con, sources, cleaned, reports, work, idle_s=idle_s, top=top)
            for file, _bad in con.execute("SELECT file, bad FROM bad_files ORDER BY file").fetchall():
                if file not in cleaned:  # a clean copy has none: its reports are in already
                    reports.extend(clean_copy(sources[file], work / "located.jsonl"))
            for step in steps[:-1]:
                con.execute(step)
            row = con.execute(steps[-1]).fetchone()
        finally:
            con.close()
    assert row is not None  # the last statement always returns one row
    result: dict[str, Any] = json.loads(row[0])
    return result, reports


def _read(
    con: Any,
    sources: dict[str, Path],
    cleaned: set[str],
    reports: list[Skipped],
    work: Path,
    *,
    idle_s: float,
    top: int,
) -> list[str]:
    # Run the reading statements, replacing each file DuckDB refuses by a clean copy;
    # returns the aggregating statements that remain.
    import duckdb

    while True:
        files = list(sources) or [_empty(work)]
        steps = statements(files, idle_s=idle_s, top=top)
        split = next(i for i, s in enumerate(steps) if s.startswith(_READ_UNTIL)) + 1
        try:
            for step in steps[:split]:
                con.execute(step)
        except (duckdb.InvalidInputException, duckdb.ConversionException) as error:
            if not sources:
                raise  # not the data's fault: nothing is left to leave out
            _replace_refused(error, sources, cleaned, reports, work)
            continue
        return steps[split:]


def _replace_refused(
    error: Exception, sources: dict[str, Path], cleaned: set[str], reports: list[Skipped], work: Path
) -> None:
    named = _FILE_IN_ERROR.search(str(error))
    culprits = [named.group(1)] if named and named.group(1) in sources else [f for f in sources if f not in cleaned]
    if not culprits:  # every file is a clean copy already and DuckDB still refuses: leave them all out
        culprits = list(sources)
    for file in culprits:
        original = sources.pop(file)
        if file in cleaned:  # a shape the line check let through: the whole file is left out
            first_line = str(error).splitlines()[0]
            reports.append(skipped(original, None, f"unreadable: {first_line[:200]}"))
            continue
        copy = work / f"clean-{len(cleaned)}.jsonl"
        reports.extend(clean_copy(original, copy))
        if copy.stat().st_size:
            sources[str(copy)] = original
            cleaned.add(str(copy))


def _empty(work: Path) -> str:
    path = work / "empty.jsonl"
    path.touch()
    return str(path)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
