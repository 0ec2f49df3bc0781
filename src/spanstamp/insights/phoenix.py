"""Download a Phoenix project's spans through Phoenix's REST API, as OTLP JSON lines.

``download()`` pages through ``GET /v1/projects/{project}/spans`` (cursor paging, up to
1,000 spans a page) and writes each page as one OTLP ``ExportTraceServiceRequest`` line,
the shape ``opentelemetry-exporter-otlp-json-file`` writes, so ``analyze([path])`` reads
it like any exported file::

    path = download("http://127.0.0.1:6006", "default", Path("phoenix.jsonl"))
    result = analyze([path])

Only the standard library talks to the server; the key (``api_key=`` or
``PHOENIX_API_KEY``) goes in an ``Authorization: Bearer`` header and is never shown.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from spanstamp.insights.phoenix_otlp import RESOURCE_PROJECT, export_request

#: The environment variable ``download()`` takes the API key from when none is passed.
API_KEY_ENV: Final = "PHOENIX_API_KEY"
#: The most spans Phoenix returns in one page (its ``limit`` parameter's maximum).
MAX_PAGE_SIZE: Final = 1000
_COUNT_QUERY: Final = "query ($name: String!) { getProjectByName(name: $name) { recordCount } }"
# Phoenix refuses these in a project name given in a URL path (its OpenAPI says so).
_BAD_NAME_CHARS: Final = "/?#"


class PhoenixError(RuntimeError):
    """Phoenix could not be read: unreachable, refused, unknown project, or not a Phoenix answer.

    The message is one line for the terminal (never the API key), so the CLI prints it as is::

        except PhoenixError as error: print(f"error: {error}", file=sys.stderr)
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status Phoenix answered with, when it answered with an error.
        self.status = status


def download(
    url: str,
    project: str,
    dest: str | os.PathLike[str],
    *,
    progress: bool = True,
    page_size: int = MAX_PAGE_SIZE,
    api_key: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Write every span of Phoenix project ``project`` at ``url`` to ``dest`` as OTLP JSON lines; returns ``dest``.

    path = download("http://127.0.0.1:6006", "default", Path("phoenix.jsonl"), progress=False)
    print(analyze([path])["sessions"]["count"])

    One line per page of ``page_size`` spans (1 to 1,000); progress on stderr when ``progress``;
    ``timeout`` seconds per request. The file appears only once every page is in (a partial
    download is removed). Raises PhoenixError when the server cannot be read.
    """
    base = _base_url(url)
    _check_arguments(project, page_size, timeout)
    headers = {"Accept": "application/json", "User-Agent": "spanstamp-insights"}
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key:
        # http.client would refuse such a header with the value in its message.
        if not isinstance(key, str) or not key.isprintable() or not key.isascii():
            where = "download(api_key)" if api_key is not None else API_KEY_ENV
            raise PhoenixError(f"{where} is not printable ASCII ({len(key)} characters): no HTTP header can carry it")
        headers["Authorization"] = f"Bearer {key}"
    client = _Client(base, headers, timeout)
    quoted = urllib.parse.quote(project, safe="")
    name = _find_project(client, project, quoted)
    target = Path(dest)
    partial = target.with_name(target.name + ".part")
    meter = _Progress(sys.stderr if progress else None, name, _span_count(client, name))
    try:
        with partial.open("w", encoding="utf-8") as out:
            for page in _pages(client, quoted, page_size):
                _write_page(out, page, name)
                meter.advance(len(page))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
        meter.close()
    return target


def _base_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url.strip()) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PhoenixError("the Phoenix URL must start with http:// or https:// and name a host")
    if "@" in parsed.netloc:  # it would end up in messages; the key has its own way in
        raise PhoenixError(f"the Phoenix URL must not carry a user or password: set {API_KEY_ENV} instead")
    # A Phoenix behind a path prefix (PHOENIX_HOST_ROOT_PATH) keeps it; query and fragment go.
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


def _check_arguments(project: str, page_size: int, timeout: float) -> None:
    if not isinstance(project, str) or not project.strip():
        raise PhoenixError("the Phoenix project name must be a non-empty string")
    if any(char in project for char in _BAD_NAME_CHARS):
        raise PhoenixError("Phoenix's REST API cannot read a project whose name has / ? or #; pass its id instead")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"download(page_size) must be an int from 1 to {MAX_PAGE_SIZE}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError("download(timeout) must be a number of seconds > 0")


class _Client:
    """GET/POST JSON against one Phoenix server, every failure turned into a PhoenixError."""

    def __init__(self, base: str, headers: dict[str, str], timeout: float) -> None:
        self.base, self.headers, self.timeout = base, headers, timeout

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self.send(urllib.request.Request(self.base + path + suffix, headers=self.headers))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        headers = self.headers | {"Content-Type": "application/json"}
        data = json.dumps(body).encode()
        return self.send(urllib.request.Request(self.base + path, data=data, headers=headers, method="POST"))

    def send(self, request: urllib.request.Request) -> Any:
        where = f"Phoenix at {self.base}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise _http_error(where, error) from None
        except urllib.error.URLError as error:
            raise PhoenixError(f"{where} cannot be reached ({error.reason})") from None
        except TimeoutError:
            raise PhoenixError(f"{where} did not answer within {self.timeout:g} s") from None
        except OSError as error:  # a reset or broken connection mid-answer
            raise PhoenixError(f"{where} broke off the connection ({type(error).__name__})") from None
        try:
            return json.loads(body)
        except ValueError:
            # Phoenix's web app answers unknown paths with its HTML page: a wrong URL or prefix.
            raise PhoenixError(f"{where} did not answer with JSON: is that the URL of a Phoenix server?") from None


def _http_error(where: str, error: urllib.error.HTTPError) -> PhoenixError:
    if error.code in (401, 403):
        return PhoenixError(
            f"{where} refused the request (HTTP {error.code}): set {API_KEY_ENV} (or pass api_key) "
            "to a valid Phoenix API key",
            error.code,
        )
    detail = _detail(error)
    return PhoenixError(f"{where} answered HTTP {error.code}" + (f": {detail}" if detail else ""), error.code)


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        raw = error.read(2000).decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        parsed = json.loads(raw)
        raw = str(parsed.get("detail", parsed)) if isinstance(parsed, dict) else str(parsed)
    except ValueError:
        pass
    return " ".join(raw.split())[:300]


def _find_project(client: _Client, project: str, quoted: str) -> str:
    """The project's name (``project`` may be its id); fails clearly, naming the projects there are."""
    try:
        found = client.get(f"/v1/projects/{quoted}")
    except PhoenixError as error:
        if error.status != 404:
            raise
        found = None
    data = found.get("data") if isinstance(found, dict) else None
    if isinstance(data, dict):
        name = data.get("name")
        return name if isinstance(name, str) and name else project
    names = _project_names(client)
    listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"
    raise PhoenixError(f"Phoenix at {client.base} has no project {project!r} (projects: {listed})")


def _project_names(client: _Client) -> list[str]:
    try:
        answer = client.get("/v1/projects", {"limit": 100})
    except PhoenixError:
        return []
    data = answer.get("data") if isinstance(answer, dict) else None
    return [p["name"] for p in data or [] if isinstance(p, dict) and isinstance(p.get("name"), str)]


def _span_count(client: _Client, project: str) -> int | None:
    """How many spans the project holds (Phoenix's GraphQL ``recordCount``), for the progress line; None if unknown."""
    try:
        answer = client.post("/graphql", {"query": _COUNT_QUERY, "variables": {"name": project}})
        count = answer["data"]["getProjectByName"]["recordCount"]
    except (PhoenixError, KeyError, TypeError):
        return None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _pages(client: _Client, quoted: str, page_size: int) -> Iterator[list[Any]]:
    """Each page's spans, following ``next_cursor``: newest first by Phoenix's row id, so spans
    that arrive while paging are left out and none is read twice."""
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": page_size}
        if cursor is not None:
            query["cursor"] = cursor
        answer = client.get(f"/v1/projects/{quoted}/spans", query)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise PhoenixError(f"Phoenix at {client.base} answered a spans page without its 'data' list")
        if data:
            yield data
        cursor = answer.get("next_cursor")
        if not cursor or not data:
            return


def _write_page(out: IO[str], page: list[Any], project: str) -> None:
    request = export_request(page, {RESOURCE_PROJECT: project})
    out.write(json.dumps(request, ensure_ascii=False, separators=(",", ":")))
    out.write("\n")


class _Progress:
    """One updating line on stderr: spans read so far, of how many when Phoenix said."""

    def __init__(self, stream: IO[str] | None, project: str, total: int | None) -> None:
        self.stream, self.project, self.total, self.done = stream, project, total, 0
        # In place on a terminal; in a log file, one line at the end instead of a line a page.
        self.live = stream is not None and stream.isatty()
        if self.live:
            self._show("\r")

    def advance(self, count: int) -> None:
        self.done += count
        if self.live:
            self._show("\r")

    def close(self) -> None:
        if self.stream is not None:
            self._show("\r" if self.live else "")
            self.stream.write("\n")
            self.stream.flush()

    def _show(self, lead: str) -> None:
        assert self.stream is not None
        text = f"Phoenix {self.project}: {self.done:,} span{'' if self.done == 1 else 's'}"
        if self.total:
            text += f" of {self.total:,} ({min(self.done / self.total, 1.0):.0%})"
        self.stream.write(f"{lead}{text}\033[K" if self.live else text)
        self.stream.flush()
