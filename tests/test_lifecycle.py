"""session() and end_session(): a session starts, resumes and ends, in the exported spans."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from http_recorder import HttpRecorder
from spanstamp import configure_phoenix, end_session, flush_feedback, session, task, using_attributes
from support import Tracing


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _event(span: ReadableSpan) -> tuple[str, dict[str, Any]]:
    (event,) = span.events
    return event.name, dict(event.attributes or {})


def test_a_new_session_gets_a_fresh_id_stamps_everything_inside_and_records_session_start(
    global_tracing: Tracing,
) -> None:
    scope = session(user_id="u-1")
    with scope as s:
        with task(input="hi"):
            pass
    with scope:  # entered again: the same session, started once
        global_tracing.record("later")

    assert s is scope
    assert s.id is not None
    assert re.fullmatch(r"[0-9a-f-]{36}", s.id)
    for name in ("task", "later"):
        assert (_attrs(global_tracing.span(name))["session.id"], _attrs(global_tracing.span(name))["user.id"]) == (
            s.id,
            "u-1",
        )
    start = global_tracing.span("session.start")
    assert _event(start) == ("session.start", {"session.id": s.id})
    # A root of its own trace, without the ids as span attributes: no turn of the session.
    assert start.parent is None
    assert _attrs(start) == {}
    assert start.context.trace_id != global_tracing.span("task").context.trace_id  # type: ignore[union-attr]


def test_resuming_records_nothing_and_a_continuation_records_the_previous_id(
    global_tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    with session("s-old", user_id="u-1") as resumed:
        global_tracing.record("resumed")

    async def continued() -> str | None:
        async with session(previous_id="s-old") as s:
            global_tracing.record("continued")
        return s.id

    new_id = asyncio.run(continued())
    with caplog.at_level(logging.WARNING, logger="spanstamp"), session("s-3", previous_id="s-3"):
        pass

    assert resumed.id == "s-old"
    assert _attrs(global_tracing.span("resumed"))["session.id"] == "s-old"
    assert _attrs(global_tracing.span("continued"))["session.id"] == new_id != "s-old"
    (start,) = [span for span in global_tracing.spans() if span.name == "session.start"]
    assert _event(start) == ("session.start", {"session.id": new_id, "session.previous_id": "s-old"})
    assert any(r.getMessage().startswith("session(previous_id): is the session's own id") for r in caplog.records)


def test_end_session_records_session_end_on_a_span_of_its_own(global_tracing: Tracing) -> None:
    with using_attributes(session_id="s-9", user_id="u-9", metadata={"tier": "pro"}):
        with global_tracing.tracer.start_as_current_span("request"):
            end_session("s-9", reason="user_closed_chat")
    end_session(" s-10 ")

    first, second = [span for span in global_tracing.spans() if span.name == "session.end"]
    assert _event(first) == ("session.end", {"session.id": "s-9", "spanstamp.session.end_reason": "user_closed_chat"})
    assert _event(second) == ("session.end", {"session.id": "s-10"})
    # Neither the enclosing scope nor the request span reach it.
    assert first.parent is None
    assert _attrs(first) == {}


def test_bad_ids_are_rejected_and_a_bad_session_id_starts_a_new_session(
    global_tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        end_session("")
        end_session("s-1", reason=["not", "text"])  # type: ignore[arg-type]
        with session(3.5) as s:  # type: ignore[arg-type]
            pass
    assert s.id is not None
    ends = [span for span in global_tracing.spans() if span.name == "session.end"]
    assert [_event(span)[1] for span in ends] == [{"session.id": "s-1"}]
    assert len([span for span in global_tracing.spans() if span.name == "session.start"]) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("end_session(session_id): got an empty or blank str") for m in messages)
    assert any(m.startswith("end_session(reason): expected a str") for m in messages)
    assert any(m.startswith("session(session_id): expected a str or int") for m in messages)


def test_end_session_is_also_a_phoenix_session_annotation(global_tracing: Tracing) -> None:
    with HttpRecorder() as phoenix:
        configure_phoenix(phoenix.url, enabled=True)
        end_session("s-5", reason="timeout")
        assert flush_feedback(timeout=10)
        (request,) = phoenix.wait_for(1)
    assert request.path == "/v1/session_annotations"
    assert json.loads(json.dumps(request.body)) == {
        "data": [
            {
                "session_id": "s-5",
                "name": "session_end",
                "annotator_kind": "CODE",
                "result": {"label": "timeout"},
                "identifier": "spanstamp",
            }
        ]
    }
