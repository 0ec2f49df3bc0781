"""The DuckDB engine: runs ``queries/duckdb.sql`` over OTLP JSON lines files.

The common case, clean files, is one typed scan. Only when DuckDB refuses a file (not
JSON, a cut line, a shape it cannot read) or counts bad rows in it (not OTLP, spans
without ids) is that file read a second time, slowly, to name its bad lines::

    result, skipped = run_files([Path("spans.jsonl")], idle_s=1800.0, top=20)
"""

from __future__ import annotations

import glob
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
#: The largest line DuckDB reads (a BatchSpanProcessor export of 512 spans with long inputs
#: and outputs stays below it); DuckDB's buffers grow with it, so it is not set higher.
MAX_LINE_BYTES: Final = 16 * 1024 * 1024
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
#: DuckDB's memory limit; beyond it, it spills to a temporary directory.
MEMORY_LIMIT: Final = "640MB"
_STEP: Final = re.compile(r"^-- step: (\w+)\s*$", re.MULTILINE)
_FILE_IN_ERROR: Final = re.compile(r'in file "(.+?)"')


def sql_text() -> str:
    """The DuckDB query file, a template (see its header).

    print(sql_text()[:80])
    """
    return resources.files("spanstamp.insights").joinpath("queries").joinpath("duckdb.sql").read_text("utf-8")


def steps(files: list[str], *, idle_s: float, top: int) -> dict[str, list[str]]:
    """The query file filled in for ``files``: its statements, by step.

    steps(["spans.jsonl"], idle_s=1800.0, top=20)["result"]
    """
    values = {name: _literal(value) for name, value in SQL_NAMES.items()}
    values["FILES"] = "[" + ", ".join(_literal(f) for f in files) + "]"
    values["IDLE_NS"] = str(round(idle_s * 1e9))
    values["TOP"] = str(int(top))
    values["MAX_OBJECT"] = str(MAX_LINE_BYTES)
    values["STRUCTURE"] = STRUCTURE
    text = string.Template(sql_text()).substitute(values)
    parts = _STEP.split(text)  # [header, name, body, name, body, ...]
    out: dict[str, list[str]] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        out[name] = [s.strip() for s in "\n".join(lines).split(";\n") if s.strip()]
    return out


def statements(files: list[str], *, idle_s: float, top: int) -> list[str]:
    """Every statement of the clean case, in order (what a DuckDB shell would run).

    statements(["spans.jsonl"], idle_s=1800.0, top=20)[-1]   # the result document
    """
    by_step = steps(files, idle_s=idle_s, top=top)
    return [s for name in ("macros", "otlp_spans", "read", "aggregate", "result") for s in by_step[name]]


def run_files(paths: list[Path], *, idle_s: float, top: int) -> tuple[dict[str, Any], list[Skipped]]:
    """The result document over ``paths``, and the input that was left out (file, line, reason).

    result, skipped = run_files([Path("spans.jsonl")], idle_s=1800.0, top=20)
    """
    import duckdb  # the insights extra; imported here so that the package imports without it

    reports: list[Skipped] = []
    with tempfile.TemporaryDirectory(prefix="spanstamp-insights-") as tmp:
        work = Path(tmp)
        # Memory stays bounded: DuckDB spills to the temporary directory beyond the limit;
        # row order is never relied on, so DuckDB need not keep it.
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": str(work / "spill"),
            "preserve_insertion_order": False,
        }
        con = duckdb.connect(config=config)
        try:
            sources: dict[str, Path] = {}  # what DuckDB reads -> the user's file
            for number, path in enumerate(paths):
                if is_empty(path):
                    reports.append(skipped(path, None, "empty file"))
                else:
                    sources[_readable_name(path, work, number)] = path
            cleaned: set[str] = set()
            by_step = _read(con, sources, cleaned, reports, work, idle_s=idle_s, top=top)
            (bad,) = con.execute("SELECT count(*) FROM spans WHERE bad").fetchone() or (0,)
            if bad:
                for file, _bad in con.execute(by_step["bad_files"][0]).fetchall():
                    if file not in cleaned:  # a clean copy has none: its reports are in already
                        reports.extend(clean_copy(sources[file], work / "located.jsonl"))
                for statement in by_step["drop_bad"]:
                    con.execute(statement)
            for statement in by_step["aggregate"]:
                con.execute(statement)
            row = con.execute(by_step["result"][0]).fetchone()
        except duckdb.Error as error:  # not a bad line (those are handled): say what DuckDB said
            raise RuntimeError(f"DuckDB: {str(error).splitlines()[0][:300]}") from error
        finally:
            con.close()
    assert row is not None  # the result statement always returns one row
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
) -> dict[str, list[str]]:
    # Read every file into `spans`, replacing each file DuckDB refuses by a clean copy.
    import duckdb

    while True:
        by_step = steps(list(sources) or [_empty(work)], idle_s=idle_s, top=top)
        try:
            for statement in by_step["macros"] + by_step["otlp_spans"] + by_step["read"]:
                con.execute(statement)
        except (duckdb.InvalidInputException, duckdb.ConversionException) as error:
            if not sources:
                raise  # not the data's fault: nothing is left to leave out
            _replace_refused(con, error, sources, cleaned, reports, work)
            continue
        return by_step


def _replace_refused(
    con: Any, error: Exception, sources: dict[str, Path], cleaned: set[str], reports: list[Skipped], work: Path
) -> None:
    named = _FILE_IN_ERROR.search(str(error))
    named_file = named.group(1) if named else None
    # from_json's errors name no file: then each file is asked in turn.
    culprits = [named_file] if named_file in sources else [f for f in sources if _refuses(con, f)]
    if not culprits:  # no single file fails alone: leave them all out rather than loop
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


def _refuses(con: Any, file: str) -> bool:
    import duckdb

    try:
        con.execute(f"SELECT count(*) FILTER (WHERE bad) FROM otlp_spans([{_literal(file)}])").fetchall()
    except (duckdb.InvalidInputException, duckdb.ConversionException):
        return True
    return False


def _readable_name(path: Path, work: Path, number: int) -> str:
    # DuckDB reads a path with *, ? or [ as a pattern: such a file is read through a link.
    name = str(path)
    if not glob.has_magic(name):
        return name
    link = work / f"file-{number}.jsonl{'.gz' if name.endswith('.gz') else ''}"
    link.symlink_to(path.resolve())
    return str(link)


def _empty(work: Path) -> str:
    path = work / "empty.jsonl"
    path.touch()
    return str(path)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
