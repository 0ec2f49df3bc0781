"""A real Phoenix server for tests, and readers of what it stored (GraphQL, REST).

A helper module, not a test file: tests/test_phoenix.py and tests/test_phoenix_web.py
import the fixture by name. Importing it skips the importing test module when the
``phoenix`` extra is not installed::

    from phoenix_server import phoenix_url  # noqa: F401 - the fixture, by name

    def test_x(phoenix_url: str) -> None:  # noqa: F811
        sessions = graphql(phoenix_url, SESSIONS_QUERY, {"name": "my-project"})
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import servers

# The server package, not just ``phoenix``: arize-phoenix-otel (in the test extra) makes
# ``phoenix`` importable as a namespace package without the server. Some of Phoenix's own
# dependencies warn about deprecations on import: not this project's to fix.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("phoenix.server", reason="arize-phoenix is not installed (pip install -e '.[test,phoenix]')")

SESSIONS_QUERY = """
query ($name: String!) {
  getProjectByName(name: $name) {
    sessions(first: 20) {
      edges { node { sessionId userId numTraces firstInput { value } lastOutput { value } } }
    }
  }
}
"""
# How long Phoenix may take to write what it received to its database (it inserts in the
# background); generous, since 8 agents share 2 cores here.
WAIT_S = 60.0


def clean_env() -> dict[str, str]:
    """This process's environment without variables that would point Phoenix, OTLP or OpenAI elsewhere."""
    return servers.clean_env("PHOENIX_", "OTEL_", "OPENAI_")


@pytest.fixture
def phoenix_url(tmp_path: Path) -> Iterator[str]:
    """A real Phoenix server on 127.0.0.1, stopped at teardown; yields its base URL."""
    with running_phoenix(tmp_path) as url:
        yield url


@contextmanager
def running_phoenix(workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start a real Phoenix server on 127.0.0.1 with its data and log in ``workdir``; yields its base URL.

    For fixtures of a wider scope, or a server with settings of its own (``extra_env``: auth)::

        with running_phoenix(tmp_path_factory.mktemp("phoenix")) as url: ...
    """
    http_port, grpc_port = servers.free_ports(2)
    env = clean_env() | {
        "PHOENIX_WORKING_DIR": str(workdir / "phoenix"),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(http_port),
        # Phoenix binds its OTLP/gRPC port on all interfaces (no setting for that); nothing
        # here sends to it, the port just must not clash.
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    url = f"http://127.0.0.1:{http_port}"
    with servers.server_process(
        [sys.executable, "-m", "phoenix.server.main", "serve"],
        env=env | (extra_env or {}),
        log=workdir / "phoenix.log",
        ready_url=f"{url}/readyz",
        name="Phoenix",
    ):
        yield url


def graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """POST one GraphQL query to Phoenix; its ``data``, after checking there were no errors."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def sessions(url: str, project: str) -> dict[str, dict[str, Any]]:
    """The project's sessions by id, as SESSIONS_QUERY reads them; empty before its first span."""
    found = graphql(url, SESSIONS_QUERY, {"name": project})["getProjectByName"]
    if found is None:  # no span of the project has arrived yet
        return {}
    return {edge["node"]["sessionId"]: edge["node"] for edge in found["sessions"]["edges"]}


def sessions_with(url: str, project: str, traces: int) -> dict[str, dict[str, Any]]:
    """The project's sessions, read again until they hold ``traces`` traces in all (or WAIT_S passed)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = sessions(url, project)
        if sum(s["numTraces"] for s in found.values()) >= traces or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def until_found(url: str, count: int = 1, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """GET a REST list (annotations, spans: its ``data``) until it has ``count`` items, or WAIT_S passed.

    A 404 counts as an empty list: Phoenix knows a project only once its first span is written.
    """
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
                data: list[dict[str, Any]] = json.load(response)["data"]
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
            data = []
        if len(data) >= count or time.monotonic() > deadline:
            return data
        time.sleep(0.5)
