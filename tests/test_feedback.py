"""feedback(): a span linked to the turn, from this process or another; Phoenix annotations."""

from __future__ import annotations

import json
import logging
import math
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from http_recorder import HttpRecorder
from otlp_receiver import OtlpHttpReceiver
from spanstamp import configure_phoenix, feedback, flush_feedback, task
from spanstamp.phoenix_annotations import _sender, pending
from spanstamp.task_ids import span_context_of
from support import Tracing, strict_mode

APP = Path(__file__).resolve().parent / "apps" / "turn_and_feedback.py"


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_feedback_is_a_child_of_the_turn_linked_to_it_with_gen_ai_and_openinference_attributes(
    global_tracing: Tracing,
) -> None:
    with global_tracing.tracer.start_as_current_span("request"), task(input="q", session_id="s-1") as t:
        pass
    feedback(t.id, score=0.5, label="ok", explanation="fine", session_id="s-1", user_id="u-1")

    turn, carrier = global_tracing.span("task"), global_tracing.span("feedback")
    assert turn.context is not None
    assert carrier.context is not None
    assert carrier.parent is not None
    (link,) = carrier.links
    assert (link.context.trace_id, link.context.span_id) == (turn.context.trace_id, turn.context.span_id)
    assert (carrier.parent.trace_id, carrier.parent.span_id) == (turn.context.trace_id, turn.context.span_id)
    assert carrier.kind is SpanKind.INTERNAL
    assert _attrs(carrier) == {
        "openinference.span.kind": "EVALUATOR",
        "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.value": 0.5,
        "gen_ai.evaluation.score.label": "ok",
        "gen_ai.evaluation.explanation": "fine",
        "annotations.0.annotation.name": "user_feedback",
        "annotations.0.annotation.score": 0.5,
        "annotations.0.annotation.label": "ok",
        "annotations.0.annotation.explanation": "fine",
        "annotations.0.annotation.annotator_kind": "HUMAN",
        "annotations.0.annotation.identifier": "spanstamp",
        "spanstamp.feedback.task_id": t.id,
        "session.id": "s-1",
        "user.id": "u-1",
    }
    (event,) = carrier.events
    assert event.name == "gen_ai.evaluation.result"
    assert dict(event.attributes or {}) == {
        "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.value": 0.5,
        "gen_ai.evaluation.score.label": "ok",
        "gen_ai.evaluation.explanation": "fine",
    }


def test_bad_values_are_left_out_and_feedback_without_a_result_is_not_recorded(
    global_tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        feedback("t-1", score=math.nan, label="x" * 300, explanation="kept", kind="robot")
        feedback("t-2", score=True)  # a bool is no score, and nothing else is given
        feedback("  ", score=1)
        feedback("t-3", name="", score=1)
    (carrier,) = global_tracing.spans()
    attrs = _attrs(carrier)
    assert attrs["gen_ai.evaluation.explanation"] == "kept"
    assert "gen_ai.evaluation.score.value" not in attrs
    assert "gen_ai.evaluation.score.label" not in attrs
    assert attrs["annotations.0.annotation.annotator_kind"] == "HUMAN"
    messages = [record.getMessage() for record in caplog.records]
    for start in (
        "feedback(score): got a number that is not finite",
        "feedback(label): got a str of 300 characters, over the cap",
        "feedback(kind): expected HUMAN, LLM or CODE",
        "feedback(score): expected a number, got a value of type bool",
        "feedback: needs a score, a label or an explanation",
        "feedback(task_id): got an empty or blank str",
        "feedback(name): got an empty or blank str",
    ):
        assert any(message.startswith(start) for message in messages), start
    assert not any("x" * 20 in message for message in messages)  # sizes, never the values
    with strict_mode(), pytest.raises(ValueError, match=r"feedback\(score\)"):
        feedback("t-1", score=math.inf)


def test_feedback_from_another_process_given_only_the_task_id_reaches_the_turns_span(
    http_receiver: OtlpHttpReceiver,
) -> None:
    def run(*args: str) -> str:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ""}
        result = subprocess.run(
            [sys.executable, str(APP), *args], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    ids = json.loads(run("turns", http_receiver.traces_url))
    turns = {span.attributes["spanstamp.task.id"]: span for span in http_receiver.wait_for(5) if span.name == "task"}
    run("feedback", http_receiver.traces_url, json.dumps(ids))
    http_receiver.wait_for(8)
    carriers = {
        span.attributes["gen_ai.evaluation.explanation"]: span
        for span in http_receiver.spans
        if span.name == "feedback"
    }
    assert sorted(carriers) == sorted(ids)

    for case in ("generated_in_request", "caller_at_root"):
        turn, carrier = turns[ids[case]], carriers[case]
        # Exact in both cases: the link and the parent are the turn's own span.
        assert carrier.links == ((turn.trace_id, turn.span_id),)
        assert (carrier.trace_id, carrier.parent_span_id) == (turn.trace_id, turn.span_id)
        assert carrier.attributes["session.id"] == "s-1"
        assert carrier.attributes["user.id"] == "u-1"
        assert carrier.resource["service.name"] == "app-feedback"
    assert turns[ids["generated_in_request"]].parent_span_id is not None  # it was nested in the request

    # A caller's id nested in a foreign trace: the span id is right (Phoenix's annotation
    # finds it), the link's trace id is the one derived from the id, not the request's.
    turn, carrier = turns["message-8"], carriers["caller_in_request"]
    ((trace_id, span_id),) = carrier.links
    assert span_id == turn.span_id
    assert trace_id != turn.trace_id
    assert trace_id == f"{span_context_of('message-8').trace_id:032x}"


# --- Phoenix's REST API (a stand-in server: the client's behaviour, failures included) ----


def test_feedback_becomes_a_phoenix_span_annotation_idempotent_on_repeat(
    global_tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HttpRecorder() as phoenix:
        monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix.url + "/v1/traces")
        monkeypatch.setenv("PHOENIX_API_KEY", "key-1")
        configure_phoenix(enabled=True)
        with task(input="q", task_id="msg-1"):
            pass
        feedback("msg-1", score=1, label="thumbs_up", kind="human")
        feedback("msg-1", score=0, label="thumbs_down")
        assert flush_feedback(timeout=10)
        first, second = phoenix.wait_for(2)
    span_id = f"{global_tracing.span('task').context.span_id:016x}"  # type: ignore[union-attr]
    assert first.path == "/v1/span_annotations"
    assert first.headers["authorization"] == "Bearer key-1"
    assert first.body == {
        "data": [
            {
                "span_id": span_id,
                "name": "user_feedback",
                "annotator_kind": "HUMAN",
                "result": {"score": 1, "label": "thumbs_up"},
                "identifier": "spanstamp",
                "metadata": {"task_id": "msg-1"},
            }
        ]
    }
    # Same name, span and identifier: Phoenix replaces the first with the second.
    assert second.body["data"][0]["identifier"] == first.body["data"][0]["identifier"]
    assert second.body["data"][0]["result"] == {"score": 0, "label": "thumbs_down"}


def test_phoenix_down_is_a_warning_and_the_app_goes_on(
    global_tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    configure_phoenix(f"http://127.0.0.1:{closed_port}", enabled=True, retries=2)
    _sender.forget_warnings()
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        feedback("msg-2", score=1)  # returns, raises nothing
        assert flush_feedback(timeout=30)
    assert global_tracing.span("feedback")  # the span went out all the same
    assert any(
        r.getMessage().startswith("a Phoenix annotation could not be sent (ConnectionRefusedError, 2 attempt(s))")
        for r in caplog.records
    )


def test_a_phoenix_that_never_answers_does_not_hold_up_the_caller(
    global_tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    with HttpRecorder() as phoenix:
        phoenix.hang.set()
        configure_phoenix(phoenix.url, enabled=True, timeout=2.0, retries=1)
        _sender.forget_warnings()
        with caplog.at_level(logging.WARNING, logger="spanstamp"):
            feedback("msg-3", score=1)
            # feedback() has returned; its request cannot have been answered: the server holds it.
            assert pending() == 1
            phoenix.wait_for(1)
            assert flush_feedback(timeout=30)
        assert pending() == 0
    assert any("could not be sent (TimeoutError" in r.getMessage() for r in caplog.records)


def test_with_user_ids_hashed_the_turn_and_the_feedback_carry_the_pseudonym_only() -> None:
    from opentelemetry import trace

    from spanstamp import pseudonymize
    from support import reset_trace_globals

    key = "k" * 32
    tracing = Tracing(hash_user_ids=key)
    reset_trace_globals()
    trace.set_tracer_provider(tracing.provider)
    try:
        with task(input="q", user_id="alice@example.com") as t:
            pass
        feedback(t.id, score=1, user_id="alice@example.com")
    finally:
        reset_trace_globals()
    for name in ("task", "feedback"):
        attrs = _attrs(tracing.span(name))
        assert "alice@example.com" not in json.dumps(attrs)
        assert attrs["user.id"] == pseudonymize("alice@example.com", key=key)
