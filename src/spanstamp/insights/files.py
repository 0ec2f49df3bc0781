"""Where the trace files are, and the slow pass that names the bad lines of a file.

Paths may be files, directories (their OTLP JSON lines files, recursively) or globs;
``.gz`` files are read compressed. A bad line is reported with its file and line::

    found, skipped = expand(["traces/", "old/*.jsonl.gz"])
    skipped += clean_copy(Path("traces/broken.jsonl"), Path("/tmp/clean.jsonl"))
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypedDict, cast

#: The names a directory's trace files end with (the file exporter's, the Collector's).
SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".ndjson.gz")


class Skipped(TypedDict):
    """One piece of input left out: its file, its line (``None`` for the whole file) and why.

    {"file": "spans.jsonl", "line": 3, "reason": "not JSON"}
    """

    file: str
    line: int | None
    reason: str


def skipped(file: Path | str, line: int | None, reason: str) -> Skipped:
    """A report of input left out.

    skipped("spans.jsonl", 3, "truncated line")
    """
    return {"file": str(file), "line": line, "reason": reason}


def expand(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Skipped]]:
    """The files named by ``paths`` (files, directories, globs), each once, in order; and what was not found.

    files, missing = expand(["spans.jsonl", "archive/"])
    """
    found: dict[Path, None] = {}
    missing: list[Skipped] = []
    for raw in paths:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            if not inside:
                missing.append(skipped(path, None, "directory holds no .jsonl/.json(.gz) file"))
            found.update(dict.fromkeys(inside))
        elif path.is_file():
            found[path] = None
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not matches:
                missing.append(skipped(text, None, "pattern matches no file"))
            found.update(dict.fromkeys(matches))
        else:
            missing.append(skipped(path, None, "no such file or directory"))
    return list(found), missing


def is_empty(path: Path) -> bool:
    """Whether the file holds no data at all (a ``.gz`` file is looked into).

    is_empty(Path("spans.jsonl"))
    """
    if path.stat().st_size == 0:
        return True
    with _open(path) as stream:
        return not stream.read(1)


def clean_copy(path: Path, dest: Path) -> list[Skipped]:
    """Copy the good spans of ``path`` into ``dest`` (plain JSON lines) and report every bad line.

    A line that is not JSON (or is cut short at the end of the file), is not an OTLP
    ``ExportTraceServiceRequest``, or holds spans without trace/span ids or times is
    reported; good spans of a partly bad line are kept::

        reports = clean_copy(Path("broken.jsonl"), Path("/tmp/clean.jsonl"))
    """
    reports: list[Skipped] = []
    with _open(path) as source, dest.open("wb") as out:
        for number, line, last in _numbered(source):
            if not line.strip():
                continue
            kept = _check_line(line, number, last, path, reports)
            if kept is not None:
                out.write(kept)
                out.write(b"\n")
    return reports


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _numbered(stream: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    # Line numbers from 1; ``last`` marks a final line with no newline (possibly cut short).
    for number, line in enumerate(stream, start=1):
        ended = line.endswith(b"\n")
        yield number, line.rstrip(b"\r\n"), not ended


def _check_line(line: bytes, number: int, last: bool, path: Path, reports: list[Skipped]) -> bytes | None:
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        reports.append(skipped(path, number, "truncated line" if last else "not JSON"))
        return None
    resource_spans = request.get("resourceSpans") if isinstance(request, dict) else None
    if not isinstance(resource_spans, list) or not all(_is_resource(r) for r in resource_spans):
        reports.append(skipped(path, number, "not OTLP JSON (no resourceSpans list of the OTLP shape)"))
        return None
    dropped: dict[str, int] = {}
    for resource in resource_spans:
        for scope in resource.get("scopeSpans") or ():
            spans = scope.get("spans") or ()
            good = [span for span in spans if _span_problem(span, dropped) is None]
            if len(good) != len(spans):
                scope["spans"] = good
    for reason, count in dropped.items():
        reports.append(skipped(path, number, reason if count == 1 else f"{reason} ({count} spans)"))
    return line if not dropped else json.dumps(request, separators=(",", ":")).encode()


def _is_resource(resource: Any) -> bool:
    if not isinstance(resource, dict):
        return False
    scopes = resource.get("scopeSpans")
    if scopes is None:
        return True
    if not isinstance(scopes, list):
        return False
    return all(isinstance(s, dict) and isinstance(s.get("spans", []), list | type(None)) for s in scopes)


def _span_problem(span: Any, dropped: dict[str, int]) -> str | None:
    reason = _why_bad(span)
    if reason is not None:
        dropped[reason] = dropped.get(reason, 0) + 1
    return reason


def _why_bad(span: Any) -> str | None:
    if not isinstance(span, dict):
        return "span is not an object"
    if not _nonempty_str(span.get("traceId")) or not _nonempty_str(span.get("spanId")):
        return "span without ids"
    if not _is_nanos(span.get("startTimeUnixNano")) or not _is_nanos(span.get("endTimeUnixNano")):
        return "span without start/end time"
    for name in ("attributes", "events"):
        value = span.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            return f"span {name} not in the OTLP shape"
    if not isinstance(span.get("status", {}), dict | type(None)):
        return "span status not in the OTLP shape"
    return None


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_nanos(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and value.isdigit()
