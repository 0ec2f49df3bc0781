"""Insights from ClickHouse: the query file over the Collector's ``otel_traces`` table.

``queries/clickhouse.sql`` computes the whole result document in ClickHouse (one row, one
JSON value); this module sends it over ClickHouse's HTTP interface with the standard
library, or runs it in-process with chDB, and returns the document as a dict::

    result = analyze_clickhouse("http://localhost:8123/?database=otel", idle_s=1800)
    print(result["sessions"]["count"])
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Final

#: The query file: runnable as it is with ``clickhouse-client --param_idle_s=1800 --param_top=20``.
QUERY_FILE: Final = Path(__file__).with_name("queries") / "clickhouse.sql"
DEFAULT_TABLE: Final = "otel_traces"
# The one place the query names its table; analyze_* put the caller's table there.
_FROM_TABLE: Final = f"FROM {DEFAULT_TABLE}\n"
# A table or database.table of plain identifiers: anything else could change the query.
_TABLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_ERROR_TEXT: Final = 500  # characters of a server's error message kept in ours


class ClickHouseError(RuntimeError):
    """ClickHouse could not be reached, refused the query, or answered something unexpected.

    try: analyze_clickhouse(url)
    except ClickHouseError as e: print(e)
    """


def query_text(table: str = DEFAULT_TABLE) -> str:
    """The query file's SQL, reading ``table`` (``name`` or ``database.name``) instead of otel_traces.

    sql = query_text("otel.otel_traces")
    assert "FROM `otel`.`otel_traces`" in sql
    """
    if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
        size = len(table) if isinstance(table, str) else None
        raise ValueError(
            f"table must be name or database.name, letters, digits, _ ({type(table).__name__}, size {size})"
        )
    sql = QUERY_FILE.read_text(encoding="utf-8")
    if sql.count(_FROM_TABLE) != 1:  # the file's own invariant; a test pins it
        raise RuntimeError(f"{QUERY_FILE.name} must read {DEFAULT_TABLE} exactly once")
    if table == DEFAULT_TABLE:
        return sql  # the file exactly as a user runs it
    quoted = ".".join(f"`{part}`" for part in table.split("."))
    return sql.replace(_FROM_TABLE, f"FROM {quoted}\n")


def query_parameters(idle_s: float = 1800.0, top: int = 20) -> dict[str, str]:
    """The query's parameters as ClickHouse reads them (``{idle_s:Float64}``, ``{top:UInt32}``).

    query_parameters(900, 5)  # {'idle_s': '900.0', 'top': '5'}
    """
    if isinstance(idle_s, bool) or not isinstance(idle_s, (int, float)) or not 0 <= idle_s < float("inf"):
        raise ValueError(f"idle_s must be a finite number of seconds >= 0 ({type(idle_s).__name__})")
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top < 2**32:
        raise ValueError(f"top must be an int from 0 to 2**32 - 1 ({type(top).__name__})")
    return {"idle_s": repr(float(idle_s)), "top": str(top)}


def analyze_clickhouse(
    url: str,
    *,
    idle_s: float = 1800.0,
    top: int = 20,
    table: str = DEFAULT_TABLE,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """The insights document of a ClickHouse server's ``otel_traces``, over its HTTP interface.

    ``url`` is the HTTP endpoint (``http://host:8123``, ``https://host:8443``), optionally with
    ``user:password@`` and query settings such as ``?database=otel``; without userinfo,
    ``CLICKHOUSE_USER`` / ``CLICKHOUSE_PASSWORD`` are used when set. Raises
    :class:`ClickHouseError` (a clear message, no credentials in it) when the server cannot be
    reached or answers an error::

        result = analyze_clickhouse("http://localhost:8123", idle_s=900)
    """
    sql = query_text(table)
    params = query_parameters(idle_s, top)
    endpoint, where, headers = _endpoint(url, params)
    request = urllib.request.Request(endpoint, data=sql.encode("utf-8"), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            code = response.headers.get("X-ClickHouse-Exception-Code")
    except urllib.error.HTTPError as error:
        detail = _first_line(error.read())
        error.close()
        raise ClickHouseError(f"ClickHouse at {where} answered HTTP {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as error:  # refused, DNS, TLS, timeout
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):
            raise ClickHouseError(f"no answer from ClickHouse at {where} within {timeout:g} s") from None
        raise ClickHouseError(f"cannot reach ClickHouse at {where}: {reason}") from None
    if code:  # an error after the headers were sent (ClickHouse streams its answer)
        raise ClickHouseError(f"ClickHouse at {where} failed the query (code {code}): {_first_line(body)}")
    return _document(body, f"ClickHouse at {where}")


def analyze_chdb(session: Any, *, idle_s: float = 1800.0, top: int = 20, table: str = DEFAULT_TABLE) -> dict[str, Any]:
    """The same query run in-process by chDB (the ``insights-clickhouse`` extra) on a ``chdb.session.Session``.

    from chdb.session import Session
    result = analyze_chdb(Session("/path/to/data"))
    """
    importlib.import_module("chdb")  # a clear ImportError when the extra is missing
    try:
        answer = session.query(query_text(table), "TSVRaw", params=query_parameters(idle_s, top))
    except Exception as error:  # chDB raises its own error types with the server's message
        raise ClickHouseError(f"chDB failed the query: {_first_line(str(error).encode())}") from None
    return _document(answer.bytes(), "chDB")


def _endpoint(url: str, params: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """The request URL (no userinfo, with the query parameters), a printable place, the headers."""
    if not isinstance(url, str):
        raise ValueError(f"url must be a str ({type(url).__name__})")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClickHouseError("the ClickHouse URL must be http://host:port or https://host:port (HTTP interface)")
    try:
        port = parts.port
    except ValueError:
        raise ClickHouseError("the ClickHouse URL has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port else host
    where = f"{parts.scheme}://{netloc}"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [(f"param_{name}", value) for name, value in params.items()]
    endpoint = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", urllib.parse.urlencode(query), ""))
    headers = {"Content-Type": "text/plain; charset=utf-8", "Accept": "text/plain"}
    user = urllib.parse.unquote(parts.username) if parts.username is not None else os.environ.get("CLICKHOUSE_USER")
    if parts.username is not None:
        password = urllib.parse.unquote(parts.password or "")
    else:
        password = os.environ.get("CLICKHOUSE_PASSWORD", "")
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    return endpoint, where, headers


def _document(body: bytes, where: str) -> dict[str, Any]:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        raise ClickHouseError(f"{where} did not answer a JSON document: {_first_line(body)}") from None
    if not isinstance(document, dict):
        raise ClickHouseError(f"{where} answered JSON that is not an object ({type(document).__name__})")
    return document


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    line = text.splitlines()[0] if text else "(empty answer)"
    return line if len(line) <= _ERROR_TEXT else line[:_ERROR_TEXT] + "..."
