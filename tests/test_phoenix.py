"""End to end in Phoenix: the chatbot example's two conversations become two Phoenix sessions.

A real Phoenix server starts on loopback (free ports, a temporary working directory,
telemetry and external resources off); the example exports to it over OTLP/HTTP; the
sessions are read back through Phoenix's GraphQL API. Needs the ``phoenix`` extra, so
the default run skips it; the README gives the one command that installs and runs it:

    python3 -m venv .venv-phoenix && .venv-phoenix/bin/pip install -q -e ".[test,phoenix]" \\
        && .venv-phoenix/bin/python -m pytest -m phoenix_e2e
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processes import stop

# The server package, not just ``phoenix``: arize-phoenix-otel (in the test extra) makes
# ``phoenix`` importable as a namespace package without the server. Some of Phoenix's own
# dependencies warn about deprecations on import: not this project's to fix.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("phoenix.server", reason="arize-phoenix is not installed (pip install -e '.[test,phoenix]')")

# Not ``phoenix``: arize-phoenix-client's pytest plugin (installed with arize-phoenix) takes
# tests with that marker for Phoenix experiments and records them in the Phoenix server on
# localhost:6006, the one a developer following the README has running.
pytestmark = pytest.mark.phoenix_e2e

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "spanstamp-e2e"
# The example's script (examples/chatbot.py), as the GraphQL API must show it.
EXPECTED = {
    "ada": (3, "Hi, I'm Ada. Can you help me plan a weekend trip?", "You said: What should I pack?"),
    "grace": (4, "Hello! I need a name for my new compiler.", "You said: Thanks, that's all for today."),
}
SESSIONS_QUERY = """
query ($name: String!) {
  getProjectByName(name: $name) {
    sessions(first: 20) {
      edges { node { sessionId userId numTraces firstInput { value } lastOutput { value } } }
    }
  }
}
"""


def _free_ports(count: int) -> list[int]:
    # Held open together, so the ports differ; released just before Phoenix binds them.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _clean_env() -> dict[str, str]:
    """This process's environment without variables that would point Phoenix, OTLP or OpenAI elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_", "OPENAI_"))}


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180  # the first start creates and migrates the database
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Phoenix exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"Phoenix was not ready in time:\n{log.read_text()[-3000:]}")


@pytest.fixture
def phoenix_url(tmp_path: Path) -> Iterator[str]:
    """A real Phoenix server on 127.0.0.1, stopped at teardown; yields its base URL."""
    http_port, grpc_port = _free_ports(2)
    env = _clean_env() | {
        "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(http_port),
        # Phoenix binds its OTLP/gRPC port on all interfaces (no setting for that); nothing
        # here sends to it, the port just must not clash.
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log = tmp_path / "phoenix.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "phoenix.server.main", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{http_port}"
            _wait_until_ready(url, process, log)
            yield url
        finally:
            stop(process)


def _graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


def _sessions(url: str) -> dict[str, dict[str, Any]]:
    project = _graphql(url, SESSIONS_QUERY, {"name": PROJECT})["getProjectByName"]
    if project is None:  # no span of the project has arrived yet
        return {}
    return {edge["node"]["sessionId"]: edge["node"] for edge in project["sessions"]["edges"]}


def test_the_chatbots_two_conversations_are_two_phoenix_sessions(phoenix_url: str) -> None:
    env = _clean_env() | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix_url,
        "PHOENIX_PROJECT_NAME": PROJECT,
        # Phoenix's own variable: spanstamp also writes feedback as Phoenix annotations.
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix_url,
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "chatbot.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "Failed to export" not in result.stderr, result.stderr
    session_of = {user: sid for sid, user in re.findall(r"^session (\S+) user (\S+): \d+ turns$", result.stdout, re.M)}
    assert sorted(session_of) == sorted(EXPECTED)

    # Phoenix writes received spans to its database in the background: read until all are in.
    expected_traces = sum(turns for turns, _, _ in EXPECTED.values())
    deadline = time.monotonic() + 60
    sessions = _sessions(phoenix_url)
    while sum(s["numTraces"] for s in sessions.values()) < expected_traces and time.monotonic() < deadline:
        time.sleep(0.5)
        sessions = _sessions(phoenix_url)

    assert sorted(sessions) == sorted(session_of.values())
    for user, (turns, first_input, last_output) in EXPECTED.items():
        session = sessions[session_of[user]]
        assert session["userId"] == user
        assert session["numTraces"] == turns
        assert session["firstInput"]["value"] == first_input
        assert session["lastOutput"]["value"] == last_output

    # The feedback (session.start / session.end and feedback spans add no trace to a session,
    # as the counts above show) is an annotation of the last turn's span, the session's end
    # an annotation of the session.
    rated = dict(re.findall(r"^feedback (\S+): thumbs_up on turn (\S+)$", result.stdout, re.M))
    assert sorted(rated) == sorted(EXPECTED)
    for user, task_id in rated.items():
        span_id = task_id.rsplit("-", 1)[1]  # a generated task id ends with the span id
        annotations = _until_found(f"{phoenix_url}/v1/projects/{PROJECT}/span_annotations?span_ids={span_id}")
        (annotation,) = annotations
        assert annotation["name"] == "user_feedback"
        assert annotation["annotator_kind"] == "HUMAN"
        assert annotation["result"]["label"] == "thumbs_up"
        assert annotation["result"]["score"] == 1
        assert annotation["identifier"] == "spanstamp"
        ended = _until_found(f"{phoenix_url}/v1/projects/{PROJECT}/session_annotations?session_ids={session_of[user]}")
        assert [(a["name"], a["result"]["label"]) for a in ended] == [("session_end", "user_left")]


def _until_found(url: str) -> list[dict[str, Any]]:
    """GET a list of annotations, until Phoenix has written some (it inserts in the background)."""
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(url, timeout=10) as response:
            data: list[dict[str, Any]] = json.load(response)["data"]
        if data or time.monotonic() > deadline:
            return data
        time.sleep(0.5)
