"""End to end in Phoenix: the chatbot example's two conversations become two Phoenix sessions.

A real Phoenix server starts on loopback (free ports, a temporary working directory,
telemetry and external resources off); the example exports to it over OTLP/HTTP; the
sessions are read back through Phoenix's GraphQL API. Needs the ``phoenix`` extra, so
the default run skips it; the README gives the one command that installs and runs it:

    python3 -m venv .venv-phoenix && .venv-phoenix/bin/pip install -q -e ".[test,phoenix]" \\
        && .venv-phoenix/bin/python -m pytest -m phoenix_e2e
"""

from __future__ import annotations

import re

import pytest

from chatbot_run import run_chatbot, sessions_by_user

# Skips this module when arize-phoenix is not installed; the fixture is used by name.
from phoenix_server import clean_env, phoenix_url, sessions_with, until_found  # noqa: F401

# Not ``phoenix``: arize-phoenix-client's pytest plugin (installed with arize-phoenix) takes
# tests with that marker for Phoenix experiments and records them in the Phoenix server on
# localhost:6006, the one a developer following the README has running.
pytestmark = pytest.mark.phoenix_e2e

PROJECT = "spanstamp-e2e"
# The example's script (examples/chatbot.py), as the GraphQL API must show it.
EXPECTED = {
    "ada": (3, "Hi, I'm Ada. Can you help me plan a weekend trip?", "You said: What should I pack?"),
    "grace": (4, "Hello! I need a name for my new compiler.", "You said: Thanks, that's all for today."),
}


def test_the_chatbots_two_conversations_are_two_phoenix_sessions(phoenix_url: str) -> None:  # noqa: F811
    env = clean_env() | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix_url,
        "PHOENIX_PROJECT_NAME": PROJECT,
        # Phoenix's own variable: spanstamp also writes feedback as Phoenix annotations.
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix_url,
    }
    result = run_chatbot(env)
    assert result.returncode == 0, result.stderr
    assert "Failed to export" not in result.stderr, result.stderr
    session_of = sessions_by_user(result.stdout)
    assert sorted(session_of) == sorted(EXPECTED)

    # Phoenix writes received spans to its database in the background: read until all are in.
    expected_traces = sum(turns for turns, _, _ in EXPECTED.values())
    found = sessions_with(phoenix_url, PROJECT, expected_traces)

    assert sorted(found) == sorted(session_of.values())
    for user, (turns, first_input, last_output) in EXPECTED.items():
        session = found[session_of[user]]
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
        annotations = until_found(f"{phoenix_url}/v1/projects/{PROJECT}/span_annotations?span_ids={span_id}")
        (annotation,) = annotations
        assert annotation["name"] == "user_feedback"
        assert annotation["annotator_kind"] == "HUMAN"
        assert annotation["result"]["label"] == "thumbs_up"
        assert annotation["result"]["score"] == 1
        assert annotation["identifier"] == "spanstamp"
        ended = until_found(f"{phoenix_url}/v1/projects/{PROJECT}/session_annotations?session_ids={session_of[user]}")
        assert [(a["name"], a["result"]["label"]) for a in ended] == [("session_end", "user_left")]
