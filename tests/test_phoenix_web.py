"""End to end in Phoenix: a FastAPI chat app's turns show up as Phoenix sessions with their conversation.

Phoenix reads a session's first input and last output only from root spans; in a web
app the root is the server span, which the handler's scope never sees. The real FastAPI
app of tests/web_stack.py exports through ``spanstamp.configure()`` to a real Phoenix
server (the fixture of tests/test_phoenix.py, under the same marker and extra); the
sessions are read back through Phoenix's GraphQL API.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import spanstamp
from llm_stack import OPENAI_V2, OPENINFERENCE, instrumented, serve_stub
from test_phoenix import SESSIONS_QUERY, _graphql, phoenix_url  # noqa: F401 - the fixture, by name
from web_stack import Sent, Turn, as_global, chat_app, post, serve

pytestmark = pytest.mark.phoenix_e2e

PROJECT_RESOURCE = "openinference.project.name"


def _conversations(prefix: str) -> list[Turn]:
    """Two sessions, three and two turns, each turn after the one before (Phoenix orders by time)."""
    shape = {"ada": 3, "grace": 2}
    return [
        Turn(session_id=f"{prefix}-{user}", user_id=user, task_id=f"{prefix}-{user}-{n}", question=f"{user} asks {n}")
        for user, count in shape.items()
        for n in range(count)
    ]


def _send_through_the_app(url: str, project: str, turns: list[Turn], **options: Any) -> list[Sent]:
    provider = spanstamp.configure(
        endpoint=f"{url}/v1/traces",
        resource_attributes={PROJECT_RESOURCE: project},
        set_global=False,
        **options,
    )
    try:
        with serve_stub() as stub_url, instrumented([OPENINFERENCE, OPENAI_V2], provider), as_global(provider):
            with serve(chat_app(provider, stub_url)) as base_url:
                sent = [post(base_url, turn) for turn in turns]
        assert provider.force_flush(timeout_millis=20_000)
    finally:
        provider.shutdown()
    return sent


def _sessions(url: str, project: str, traces: int) -> dict[str, dict[str, Any]]:
    # Phoenix writes received spans to its database in the background: read until all are in.
    deadline = time.monotonic() + 60
    while True:
        found = _graphql(url, SESSIONS_QUERY, {"name": project})["getProjectByName"]
        sessions = {} if found is None else {e["node"]["sessionId"]: e["node"] for e in found["sessions"]["edges"]}
        if sum(s["numTraces"] for s in sessions.values()) >= traces or time.monotonic() > deadline:
            return sessions
        time.sleep(0.5)


def test_web_app_sessions_show_their_first_input_and_last_output(phoenix_url: str) -> None:  # noqa: F811
    sent = _send_through_the_app(phoenix_url, "spanstamp-web", _conversations("web"))
    # The contrast, in the same Phoenix: the same app and turns with filling off. The traces
    # join their sessions (the inner spans carry the ids), but the roots, the server spans,
    # have no input or output for Phoenix to show.
    bare = _send_through_the_app(phoenix_url, "spanstamp-web-bare", _conversations("bare"), fill_traces=False)

    sessions = _sessions(phoenix_url, "spanstamp-web", len(sent))
    assert sorted(sessions) == ["web-ada", "web-grace"]
    for session_id, session in sessions.items():
        turns = [item for item in sent if item.turn.session_id == session_id]
        assert session["userId"] == turns[0].turn.user_id
        assert session["numTraces"] == len(turns)
        assert session["firstInput"]["value"] == turns[0].turn.question
        assert session["lastOutput"]["value"] == turns[-1].answer

    unfilled = _sessions(phoenix_url, "spanstamp-web-bare", len(bare))
    assert sorted(unfilled) == ["bare-ada", "bare-grace"]
    assert [(s["firstInput"], s["lastOutput"]) for s in unfilled.values()] == [(None, None)] * 2
