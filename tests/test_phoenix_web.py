"""End to end in Phoenix: a FastAPI chat app's turns, feedback and session ends, as Phoenix shows them.

Phoenix reads a session's first input and last output only from root spans; in a web
app the root is the server span, which the handler's scope never sees. The real FastAPI
app of tests/web_stack.py exports through ``spanstamp.configure()`` to a real Phoenix
server (tests/phoenix_server.py, under the marker and extra of tests/test_phoenix.py).
Two sessions of several turns go through its chat endpoint; afterwards the client rates
some turns by the task ids the app answered with (``/feedback``) and ends both sessions
(``/end``), as a chat front end would. Everything is read back through Phoenix's GraphQL
and REST APIs.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

import spanstamp
from llm_stack import OPENAI_V2, OPENINFERENCE, instrumented, serve_stub
from phoenix_server import phoenix_url, sessions_with, until_found  # noqa: F401 - the fixture, by name
from spanstamp import phoenix_annotations
from spanstamp.attributes import INPUT_VALUE, SESSION_ID, TASK_ID
from web_stack import Ending, Rating, Sent, Turn, as_global, chat_app, end, post, rate, serve

pytestmark = pytest.mark.phoenix_e2e

PROJECT_RESOURCE = "openinference.project.name"
PROJECT = "spanstamp-web"
USERS = {"ada": 3, "grace": 2}  # turns per session
# What the client sends after the turns: (user, turn number) -> the rating's fields.
# Ada rates two answers, the front end's own length check a third (a CODE annotator).
RATINGS: dict[tuple[str, int], dict[str, Any]] = {
    ("ada", 0): {"label": "thumbs_up", "score": 1},
    ("ada", 2): {"label": "thumbs_down", "score": 0, "explanation": "did not answer"},
    ("grace", 1): {"name": "answer_length", "label": "short", "score": 0.5, "kind": "CODE"},
}
ENDINGS = {"ada": "user_left", "grace": None}  # grace's chat ends without a reason


def _conversations(prefix: str) -> list[Turn]:
    """Two sessions, three and two turns, each turn after the one before (Phoenix orders by time).

    No task ids of the app's own: spanstamp generates them, exact inside a request's trace.
    """
    return [
        Turn(session_id=f"{prefix}-{user}", user_id=user, question=f"{user} asks {n}")
        for user, count in USERS.items()
        for n in range(count)
    ]


def _send_through_the_app(
    url: str, project: str, turns: list[Turn], then: Callable[[str, list[Sent]], None] | None = None, **options: Any
) -> list[Sent]:
    """Post ``turns`` one by one; ``then(base_url, sent)`` runs next, while the app still serves."""
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
                if then is not None:
                    then(base_url, sent)
        assert provider.force_flush(timeout_millis=20_000)
    finally:
        provider.shutdown()
    return sent


def _rated(sent: list[Sent]) -> list[tuple[Sent, dict[str, Any]]]:
    """The turns RATINGS rates, each with its rating's fields."""
    found = []
    for item in sent:
        number = [other for other in sent if other.turn.session_id == item.turn.session_id].index(item)
        if (fields := RATINGS.get((item.turn.user_id, number))) is not None:
            found.append((item, fields))
    return found


def _rate_and_end(base_url: str, sent: list[Sent]) -> None:
    """The client, after the conversations: ratings by task id, then each session's end."""
    for item, fields in _rated(sent):
        rating = Rating(task_id=item.task_id, session_id=item.turn.session_id, user_id=item.turn.user_id, **fields)
        rate(base_url, rating)
    for user, reason in ENDINGS.items():
        end(base_url, Ending(session_id=f"{PROJECT}-{user}", reason=reason))


def _get(url: str, path: str, count: int = 1, **query: Any) -> list[dict[str, Any]]:
    """A REST list of the project (spans, annotations), once Phoenix has ``count`` items of it."""
    return until_found(f"{url}/v1/projects/{PROJECT}/{path}?{urllib.parse.urlencode(query, doseq=True)}", count)


def _span_id(task_id: str) -> str:
    return task_id.rsplit("-", 1)[1]  # a generated task id ends with the turn span's id


def test_web_app_sessions_show_turns_feedback_and_their_end(phoenix_url: str) -> None:  # noqa: F811
    spanstamp.configure_phoenix(phoenix_url)  # feedback and session ends also become annotations
    try:
        sent = _send_through_the_app(phoenix_url, PROJECT, _conversations(PROJECT), then=_rate_and_end)
        assert spanstamp.flush_feedback(timeout=30)
    finally:
        phoenix_annotations.reset_phoenix()
    # The contrast, in the same Phoenix: the same app and turns with filling off. The traces
    # join their sessions (the inner spans carry the ids), but the roots, the server spans,
    # have no input or output for Phoenix to show.
    bare = _send_through_the_app(phoenix_url, "spanstamp-web-bare", _conversations("bare"), fill_traces=False)

    # The feedback and session.end spans, and the server spans of the /feedback and /end
    # requests, are in before the sessions are counted: the counts show they add no trace.
    ratings, endings = len(RATINGS), len(ENDINGS)
    names = {"feedback": ratings, "POST /feedback": ratings, "session.end": endings, "POST /end": endings}
    later = _get(phoenix_url, "spans", sum(names.values()), name=list(names))
    assert sorted(span["name"] for span in later) == sorted(name for name, n in names.items() for _ in range(n))
    marks = [span for span in later if span["name"] in ("feedback", "session.end")]
    sessions = sessions_with(phoenix_url, PROJECT, len(sent))
    assert sorted(sessions) == [f"{PROJECT}-{user}" for user in USERS]
    for session_id, session in sessions.items():
        turns = [item for item in sent if item.turn.session_id == session_id]
        assert session["userId"] == turns[0].turn.user_id
        assert session["numTraces"] == len(turns)
        assert session["firstInput"]["value"] == turns[0].turn.question
        assert session["lastOutput"]["value"] == turns[-1].answer

    # Each rating is one annotation, on the span of the turn it rated, and there are no others.
    rated = {_span_id(item.task_id): (item, fields) for item, fields in _rated(sent)}
    assert len(rated) == len(RATINGS)
    annotations = _get(phoenix_url, "span_annotations", len(RATINGS), identifier="spanstamp")
    assert sorted(a["span_id"] for a in annotations) == sorted(rated)
    for annotation in annotations:
        item, fields = rated[annotation["span_id"]]
        assert annotation["name"] == fields.get("name", "user_feedback")
        assert annotation["annotator_kind"] == fields.get("kind", "HUMAN")
        assert annotation["result"] == {
            "label": fields["label"],
            "score": fields["score"],
            "explanation": fields.get("explanation"),
        }
        assert annotation["metadata"] == {"task_id": item.task_id}
        (turn_span,) = _get(phoenix_url, "spans", span_id=annotation["span_id"])
        assert turn_span["name"] == "turn"
        assert turn_span["attributes"][TASK_ID] == item.task_id
        assert turn_span["attributes"][SESSION_ID] == item.turn.session_id
        assert turn_span["attributes"][INPUT_VALUE] == item.turn.question
        # The feedback span is the turn span's child, in the turn's trace.
        (mark,) = [span for span in marks if span["parent_id"] == annotation["span_id"]]
        assert mark["context"]["trace_id"] == turn_span["context"]["trace_id"]

    # Each session's end: an annotation of the session, and a session.end span naming it.
    for user, reason in ENDINGS.items():
        session_id = f"{PROJECT}-{user}"
        (ended,) = _get(phoenix_url, "session_annotations", session_ids=session_id)
        assert (ended["name"], ended["annotator_kind"]) == ("session_end", "CODE")
        assert ended["result"]["label"] == (reason or "ended")
    ends = [span for span in marks if span["name"] == "session.end"]
    assert sorted(event["attributes"][SESSION_ID] for span in ends for event in span["events"]) == [
        f"{PROJECT}-{user}" for user in ENDINGS
    ]

    unfilled = sessions_with(phoenix_url, "spanstamp-web-bare", len(bare))
    assert sorted(unfilled) == ["bare-ada", "bare-grace"]
    assert [(s["firstInput"], s["lastOutput"]) for s in unfilled.values()] == [(None, None)] * 2
