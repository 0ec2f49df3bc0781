"""End to end in MLflow: the chatbot example's traces are found by session and by user.

A real ``mlflow server`` starts on loopback (a free port, a temporary SQLite backend store
and artifact directory, telemetry and background jobs off); the example exports to its
OTLP/HTTP endpoint ``/v1/traces`` with the ``x-mlflow-experiment-id`` header MLflow
requires; the traces are read back through MLflow's own Python client. MLflow maps the
spans' ``session.id`` to the trace metadata ``mlflow.trace.session`` and ``user.id`` to
``mlflow.trace.user`` (since mlflow#22150), so spanstamp's plain stamps are all it needs.
Needs the ``mlflow`` extra, so the default run skips it; the one command that installs and
runs it:

    python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install -q -e ".[test,mlflow]" \\
        && .venv-mlflow/bin/python -m pytest -m mlflow_e2e
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import servers
from chatbot_run import run_chatbot, sessions_by_user
from spanstamp.attributes import SESSION_ID, USER_ID

# The full distribution, not just the ``mlflow`` module: mlflow-skinny and mlflow-tracing
# provide the module without the server. Not imported here: ``import mlflow`` starts its
# telemetry client, which the test turns off first (see _client below).
try:
    MLFLOW_VERSION = importlib.metadata.version("mlflow")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("mlflow is not installed (pip install -e '.[test,mlflow]')", allow_module_level=True)

pytestmark = pytest.mark.mlflow_e2e

EXPERIMENT = "spanstamp-e2e"
# The example's script (examples/chatbot.py): turns per user, one trace per turn.
EXPECTED_TURNS = {"ada": 3, "grace": 4}
SESSION_KEY = "mlflow.trace.session"
USER_KEY = "mlflow.trace.user"
# Off for the server and for the client in this process: no usage reports leave the machine.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def _clean_env() -> dict[str, str]:
    """This process's environment without variables that would point MLflow, OTLP or OpenAI elsewhere.

    Without SPANSTAMP_* too: a developer's settings (hashed user ids, say) would change the ids.
    """
    return servers.clean_env("MLFLOW_", "OTEL_", "OPENAI_", "SPANSTAMP_")


def _stop_group(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """End the server and the workers it started (its own process group), killing them if they linger."""
    # ``mlflow server`` runs uvicorn (and, with jobs on, huey consumers) as child processes;
    # tried here, a SIGTERM to the parent alone left some of them running.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.poll()  # reaps the parent, so its group can empty
        try:
            os.killpg(process.pid, 0)  # is any process of the group left?
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def mlflow_url(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1, stopped at teardown; yields its base URL."""
    (port,) = servers.free_ports(1)
    env = (
        _clean_env()
        | NO_TELEMETRY
        # The job runner starts a handful of huey worker processes for scorers and
        # rollups; receiving and searching traces needs none of them.
        | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    )
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
    ]
    url = f"http://127.0.0.1:{port}"
    with servers.server_process(
        command,
        env=env,
        log=tmp_path / "mlflow.log",
        ready_url=f"{url}/health",
        name="mlflow server",
        cwd=tmp_path,
        # Its own process group, so that _stop_group ends the workers too.
        start_new_session=True,
        stop_with=_stop_group,
    ):
        yield url


def _client(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """MLflow's Python client for the server at ``url``, with MLflow's telemetry off in this process."""
    for name, value in NO_TELEMETRY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # for the fluent API (mlflow.search_sessions)
    import mlflow
    from mlflow.telemetry import set_telemetry_client

    set_telemetry_client()  # re-reads the variables, in case mlflow was imported before
    return mlflow.MlflowClient(tracking_uri=url)


def _search(client: Any, experiment_id: str, filter_string: str | None = None, *, spans: bool = False) -> list[Any]:
    traces = client.search_traces(
        locations=[experiment_id], filter_string=filter_string, include_spans=spans, max_results=100
    )
    return list(traces)


def test_the_chatbots_traces_are_found_by_session_and_by_user(mlflow_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(mlflow_url, monkeypatch)
    experiment_id = client.create_experiment(EXPERIMENT)

    env = _clean_env() | {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{mlflow_url}/v1/traces",
        # MLflow refuses OTLP requests without it (422): it names the experiment the traces go to.
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-mlflow-experiment-id={experiment_id}",
    }
    result = run_chatbot(env)
    assert result.returncode == 0, result.stderr
    assert "Failed to export" not in result.stderr, result.stderr
    session_of = sessions_by_user(result.stdout)
    assert sorted(session_of) == sorted(EXPECTED_TURNS)

    # The OTLP handler awaits the store before it answers; polling only guards a slow disk.
    # Besides one trace per turn, the chatbot's session.start and session.end spans are
    # traces of their own (each a root span whose ids sit in its event, not its attributes,
    # so that session views do not count them as turns): two per session.
    turn_traces = sum(EXPECTED_TURNS.values())
    expected_traces = turn_traces + 2 * len(EXPECTED_TURNS)
    deadline = time.monotonic() + 60
    traces = _search(client, experiment_id, spans=True)
    while len(traces) < expected_traces and time.monotonic() < deadline:
        time.sleep(0.5)
        traces = _search(client, experiment_id, spans=True)
    assert len(traces) == expected_traces
    lifecycle = [t for t in traces if t.info.trace_metadata.get(SESSION_KEY) is None]
    assert sorted(span.name for t in lifecycle for span in t.data.spans) == sorted(
        ["session.start", "session.end"] * len(EXPECTED_TURNS)
    )
    traces = [t for t in traces if t not in lifecycle]

    # Every turn's trace carries both ids, from the span attributes spanstamp stamped.
    pairs = sorted((t.info.trace_metadata.get(SESSION_KEY), t.info.trace_metadata.get(USER_KEY)) for t in traces)
    assert pairs == sorted((session_of[user], user) for user, turns in EXPECTED_TURNS.items() for _ in range(turns))

    for user, turns in EXPECTED_TURNS.items():
        by_session = _search(client, experiment_id, f"metadata.`{SESSION_KEY}` = '{session_of[user]}'", spans=True)
        assert len(by_session) == turns
        assert {t.info.trace_metadata.get(USER_KEY) for t in by_session} == {user}
        # Every span, the app's own "chat turn" root as well as the instrumentor's LLM span
        # (OpenInference would stamp only the latter): the ids are spanstamp's.
        stamped = {
            (span.name, span.attributes.get(SESSION_ID), span.attributes.get(USER_ID))
            for trace in by_session
            for span in trace.data.spans
        }
        # The last turn's trace also holds the user's feedback span, a child of the turn's.
        assert stamped == {
            ("chat turn", session_of[user], user),
            ("ChatCompletion", session_of[user], user),
            ("feedback", session_of[user], user),
        }

        by_user = _search(client, experiment_id, f"metadata.`{USER_KEY}` = '{user}'")
        assert len(by_user) == turns
        assert {t.info.trace_metadata.get(SESSION_KEY) for t in by_user} == {session_of[user]}

    # MLflow's own grouping into sessions (what its Sessions view lists).
    import mlflow

    sessions = mlflow.search_sessions(locations=[experiment_id], include_spans=False)
    assert {session.id: len(session) for session in sessions} == {
        session_of[user]: turns for user, turns in EXPECTED_TURNS.items()
    }
