"""Trace filling: every span of a local trace gets the trace's one session and user.

Real SDK pipelines (``SessionSpanProcessor(downstream=...)``, ``configure()``) export to
the SDK's in-memory exporter; the spans are shaped like a web request's: a server span
that starts before the handler's scope, ``http send`` spans that end after it left.
"""

from __future__ import annotations

import logging
import threading

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import spanstamp
from spanstamp import SessionSpanProcessor, using_attributes, using_session
from spanstamp.attributes import (
    INPUT_MIME_TYPE,
    INPUT_VALUE,
    OUTPUT_MIME_TYPE,
    OUTPUT_VALUE,
    SESSION_ID,
    SPAN_KIND,
    TASK_ID,
    USER_ID,
)
from spanstamp.tracefill import FILL_TRACES_ENV, TraceFillProcessor
from support import strict_mode

REQUEST_SPANS = ("POST /chat", "http receive", "handler", "llm", "http send")


class Pipeline:
    """A provider whose SessionSpanProcessor hands spans to ``exporting`` (filled or not)."""

    def __init__(self, *, wrap: bool = False, **options: object) -> None:
        self.exporter = InMemorySpanExporter()
        simple = SimpleSpanProcessor(self.exporter)
        self.filler = TraceFillProcessor(simple, **options) if wrap else None  # type: ignore[arg-type]
        self.provider = TracerProvider()
        downstream = self.filler if self.filler is not None else simple
        self.processor = SessionSpanProcessor(downstream=downstream, **({} if wrap else options))  # type: ignore[arg-type]
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("web")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def ids(self, name: str) -> tuple[object, object]:
        (span,) = [s for s in self.spans() if s.name == name]
        attributes = span.attributes or {}
        return attributes.get(SESSION_ID), attributes.get(USER_ID)

    def request(self, session: str | None, user: str | None, *, prefix: str = "") -> None:
        """One request as ASGI traces it: the scope covers the handler only."""
        with self.tracer.start_as_current_span(prefix + "POST /chat"):
            with self.tracer.start_as_current_span(prefix + "http receive"):
                pass
            with using_attributes(session_id=session, user_id=user):
                with self.tracer.start_as_current_span(prefix + "handler"):
                    with self.tracer.start_as_current_span(prefix + "llm"):
                        pass
            with self.tracer.start_as_current_span(prefix + "http send"):
                pass


@pytest.fixture(autouse=True)
def _no_fill_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FILL_TRACES_ENV, raising=False)


def test_every_span_of_a_request_gets_its_session_and_user() -> None:
    pipeline = Pipeline()
    pipeline.request("s-1", "u-1")
    assert sorted(s.name for s in pipeline.spans()) == sorted(REQUEST_SPANS)
    for name in REQUEST_SPANS:
        assert pipeline.ids(name) == ("s-1", "u-1"), name
    assert pipeline.processor.fill_traces
    assert isinstance(pipeline.processor.downstream, SimpleSpanProcessor)  # the one given, not the wrapper


def test_spans_that_carry_every_id_are_not_held_back() -> None:
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("POST /chat"):
        with pipeline.tracer.start_as_current_span("http receive"):
            pass
        with using_attributes(session_id="s-1", user_id="u-1"):
            with pipeline.tracer.start_as_current_span("handler"):
                pass
        assert [s.name for s in pipeline.spans()] == ["handler"]  # exported while the request runs
    assert pipeline.ids("http receive") == ("s-1", "u-1")


def test_two_local_roots_of_one_trace_are_filled_when_both_ended() -> None:
    # A service called twice within one caller's trace, the calls overlapping.
    pipeline = Pipeline()
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    upstream = trace.set_span_in_context(NonRecordingSpan(remote))
    first = pipeline.tracer.start_span("GET /a", context=upstream)
    second = pipeline.tracer.start_span("GET /b", context=upstream)
    with trace.use_span(first), using_attributes(session_id="s-1", user_id="u-1"):
        with pipeline.tracer.start_as_current_span("a handler"):
            pass
    first.end()
    assert [s.name for s in pipeline.spans()] == ["a handler"]  # GET /a waits for GET /b
    second.end()
    assert pipeline.ids("GET /a") == ("s-1", "u-1")
    assert pipeline.ids("GET /b") == ("s-1", "u-1")


def test_without_filling_the_spans_outside_the_scope_have_no_ids() -> None:
    # The contrast that makes the test above mean something.
    pipeline = Pipeline(fill_traces=False)
    pipeline.request("s-1", "u-1")
    assert [pipeline.ids(name) for name in REQUEST_SPANS] == [
        (None, None),
        (None, None),
        ("s-1", "u-1"),
        ("s-1", "u-1"),
        (None, None),
    ]
    assert not pipeline.processor.fill_traces


def test_the_variable_turns_filling_off_and_the_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FILL_TRACES_ENV, "0")
    off = Pipeline()
    off.request("s-1", "u-1")
    assert off.ids("POST /chat") == (None, None)
    on = Pipeline(fill_traces=True)
    on.request("s-1", "u-1")
    assert on.ids("POST /chat") == ("s-1", "u-1")


def test_configure_fills_by_default_and_forwards_the_option() -> None:
    for option, expected in ((None, ("s-1", "u-1")), (False, (None, None))):
        exporter = InMemorySpanExporter()
        options = {} if option is None else {"fill_traces": option}
        provider = spanstamp.configure(exporter=exporter, batch=False, set_global=False, **options)  # type: ignore[arg-type]
        tracer = provider.get_tracer("web")
        with tracer.start_as_current_span("POST /chat"):
            with using_attributes(session_id="s-1", user_id="u-1"):
                with tracer.start_as_current_span("handler"):
                    pass
        provider.shutdown()
        root = next(s for s in exporter.get_finished_spans() if s.name == "POST /chat")
        assert ((root.attributes or {}).get(SESSION_ID), (root.attributes or {}).get(USER_ID)) == expected


def test_a_trace_with_two_sessions_is_left_as_it_is() -> None:
    # A batch job: one trace, one session per item. No span gets a guessed session.
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("batch"):
        for session in ("s-1", "s-2"):
            with using_attributes(session_id=session, user_id="u-1"):
                with pipeline.tracer.start_as_current_span(f"item {session}"):
                    pass
        with pipeline.tracer.start_as_current_span("report"):
            pass
    assert pipeline.ids("batch") == (None, None)
    assert pipeline.ids("report") == (None, None)
    assert pipeline.ids("item s-1") == ("s-1", "u-1")
    assert pipeline.ids("item s-2") == ("s-2", "u-1")


def test_one_session_two_users_fills_the_session_only() -> None:
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("POST /room"):
        for user in ("u-1", "u-2"):
            with using_attributes(session_id="s-1", user_id=user):
                with pipeline.tracer.start_as_current_span(f"say {user}"):
                    pass
    assert pipeline.ids("POST /room") == ("s-1", None)
    assert pipeline.ids("say u-2") == ("s-1", "u-2")


def test_a_session_alone_or_a_user_alone_is_filled() -> None:
    pipeline = Pipeline()
    pipeline.request("s-1", None, prefix="a ")
    pipeline.request(None, "u-1", prefix="b ")
    assert pipeline.ids("a POST /chat") == ("s-1", None)
    assert pipeline.ids("b http send") == (None, "u-1")


def test_values_already_on_a_span_are_never_overwritten() -> None:
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("POST /chat") as root:
        # Values the rule does not count as a session or user (not a non-empty str) stay too.
        root.set_attribute(SESSION_ID, "")
        root.set_attribute(USER_ID, 42)
        with using_attributes(session_id="s-1", user_id="u-1"):
            with pipeline.tracer.start_as_current_span("handler"):
                pass
    assert pipeline.ids("POST /chat") == ("", 42)


def test_traces_are_filled_independently_across_threads() -> None:
    pipeline = Pipeline()
    barrier = threading.Barrier(8)

    def serve(number: int) -> None:
        barrier.wait()
        for turn in range(5):
            pipeline.request(f"s-{number}", f"u-{number}", prefix=f"{number}.{turn} ")

    threads = [threading.Thread(target=serve, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans = pipeline.spans()
    assert len(spans) == 8 * 5 * len(REQUEST_SPANS)
    for span in spans:
        number = span.name.split(".", 1)[0]
        assert ((span.attributes or {}).get(SESSION_ID), (span.attributes or {}).get(USER_ID)) == (
            f"s-{number}",
            f"u-{number}",
        ), span.name
    assert pipeline.processor.downstream is not None
    assert isinstance(pipeline.processor._downstream, TraceFillProcessor)
    assert pipeline.processor._downstream.held_spans == 0
    assert pipeline.processor._downstream.held_bytes == 0


def test_a_local_root_below_a_remote_parent_is_filled() -> None:
    pipeline = Pipeline()
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with pipeline.tracer.start_as_current_span(
        "GET /from-upstream", context=trace.set_span_in_context(NonRecordingSpan(remote))
    ):
        with using_session("s-9"):
            with pipeline.tracer.start_as_current_span("handler"):
                pass
    assert pipeline.ids("GET /from-upstream") == ("s-9", None)


def test_a_span_ending_after_its_root_is_filled_from_the_decision() -> None:
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("POST /chat"):
        with using_session("s-1"):
            with pipeline.tracer.start_as_current_span("handler"):
                pass
        background = pipeline.tracer.start_span("background")  # a task that outlives the request
    background.end()
    assert pipeline.ids("background") == ("s-1", None)


# --- Phoenix's root-span rule ---------------------------------------------------------


def _task(pipeline: Pipeline, name: str, question: str, answer: str | None) -> None:
    """A turn's span as task() starts it (by hand until task() lands)."""
    attributes = {SPAN_KIND: "CHAIN", TASK_ID: f"task-{name}", INPUT_VALUE: question, INPUT_MIME_TYPE: "text/plain"}
    with pipeline.tracer.start_as_current_span(name, attributes=attributes) as span:
        if answer is not None:
            span.set_attributes({OUTPUT_VALUE: answer, OUTPUT_MIME_TYPE: "text/plain"})


def _attributes(pipeline: Pipeline, name: str) -> dict[str, object]:
    (span,) = [s for s in pipeline.spans() if s.name == name]
    return dict(span.attributes or {})


def test_the_local_root_gets_the_first_input_and_the_last_output_of_the_tasks() -> None:
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("POST /chat"):
        with using_session("s-1"):
            _task(pipeline, "first", "hello?", "hi")
            _task(pipeline, "second", "and then?", None)  # no output: the first one's is the last
            _task(pipeline, "third", "bye?", "bye")
    root = _attributes(pipeline, "POST /chat")
    assert (root[INPUT_VALUE], root[INPUT_MIME_TYPE]) == ("hello?", "text/plain")
    assert (root[OUTPUT_VALUE], root[OUTPUT_MIME_TYPE]) == ("bye", "text/plain")
    assert root[SESSION_ID] == "s-1"
    assert TASK_ID not in root  # the root is not made a task
    assert _attributes(pipeline, "second")[INPUT_VALUE] == "and then?"


def test_a_root_keeps_its_own_input_and_output() -> None:
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("POST /chat", attributes={INPUT_VALUE: "raw body"}):
        with using_session("s-1"):
            _task(pipeline, "turn", "hello?", "hi")
    root = _attributes(pipeline, "POST /chat")
    assert root[INPUT_VALUE] == "raw body"
    assert INPUT_MIME_TYPE not in root  # never paired with another span's value
    assert root[OUTPUT_VALUE] == "hi"


def test_a_task_that_is_the_root_is_left_as_it_is_and_batches_get_no_copy() -> None:
    pipeline = Pipeline()
    with using_session("s-1"):
        _task(pipeline, "alone", "hello?", "hi")
    with pipeline.tracer.start_as_current_span("batch"):
        for session in ("s-1", "s-2"):
            with using_session(session):
                _task(pipeline, f"item {session}", "q", "a")
    assert _attributes(pipeline, "alone")[OUTPUT_VALUE] == "hi"
    assert INPUT_VALUE not in _attributes(pipeline, "batch")


# --- Limits, flushing, failures ------------------------------------------------------


def test_spans_past_the_per_trace_limit_go_on_unfilled_at_once() -> None:
    pipeline = Pipeline(wrap=True, max_spans_per_trace=3)
    assert pipeline.filler is not None
    assert pipeline.processor._downstream is pipeline.filler  # one given is not wrapped again
    with pipeline.tracer.start_as_current_span("POST /chat"):
        for number in range(6):
            with pipeline.tracer.start_as_current_span(f"early {number}"):
                pass
        assert pipeline.filler.held_spans == 3
        assert [s.name for s in pipeline.spans()] == ["early 3", "early 4", "early 5"]  # not held back
        with using_session("s-1"), pipeline.tracer.start_as_current_span("handler"):
            pass
    assert [pipeline.ids(f"early {number}")[0] for number in range(6)] == ["s-1"] * 3 + [None] * 3
    assert pipeline.ids("POST /chat") == ("s-1", None)


def test_held_bytes_stay_within_the_limit() -> None:
    pipeline = Pipeline(wrap=True, max_bytes=20_000)
    assert pipeline.filler is not None
    with pipeline.tracer.start_as_current_span("POST /chat"):
        for number in range(50):
            with pipeline.tracer.start_as_current_span(f"big {number}", attributes={"payload": "x" * 1000}):
                pass
            assert pipeline.filler.held_bytes <= 20_000
        held = pipeline.filler.held_spans
        assert 0 < held < 50
        assert len(pipeline.spans()) == 50 - held
    assert pipeline.filler.held_bytes == 0
    assert len(pipeline.spans()) == 51


def test_a_task_input_too_large_to_keep_is_not_copied() -> None:
    pipeline = Pipeline(wrap=True, max_bytes=20_000)
    assert pipeline.filler is not None
    with pipeline.tracer.start_as_current_span("POST /chat"):
        with using_session("s-1"):
            _task(pipeline, "turn", "q" * 50_000, "a")
        assert pipeline.filler.held_bytes <= 20_000
    root = _attributes(pipeline, "POST /chat")
    assert OUTPUT_VALUE not in root  # no half copy: the trace keeps none once past the limit
    assert INPUT_VALUE not in root
    assert root[SESSION_ID] == "s-1"
    assert pipeline.filler.held_bytes == 0


def test_traces_past_the_open_trace_limit_are_not_held() -> None:
    pipeline = Pipeline(wrap=True, max_traces=2)
    assert pipeline.filler is not None
    roots = [pipeline.tracer.start_span(f"root {number}") for number in range(3)]
    for number, root in enumerate(roots):
        with trace.use_span(root), using_session(f"s-{number}"):
            with pipeline.tracer.start_as_current_span(f"child {number}"):
                pass
    assert [s.name for s in pipeline.spans()] == ["child 2"]  # the third trace is not held
    for root in roots:
        root.end()
    assert [pipeline.ids(f"root {number}")[0] for number in range(3)] == ["s-0", "s-1", None]


def test_a_trace_older_than_max_age_is_released_unfilled() -> None:
    # Any age is past this limit, so the next span that ends releases the trace.
    pipeline = Pipeline(wrap=True, max_age=1e-9)
    with pipeline.tracer.start_as_current_span("POST /chat"):
        with using_session("s-1"), pipeline.tracer.start_as_current_span("handler"):
            pass
        with pipeline.tracer.start_as_current_span("http send"):
            pass
        assert len(pipeline.spans()) == 2
    assert pipeline.ids("POST /chat") == (None, None)
    assert pipeline.ids("http send") == (None, None)


def test_limit_warnings_are_given_once_and_name_no_value(caplog: pytest.LogCaptureFixture) -> None:
    pipeline = Pipeline(wrap=True, max_spans_per_trace=1)
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        for _ in range(3):
            pipeline.request("secret-session", "secret-user")
    messages = [r.getMessage() for r in caplog.records if r.name == "spanstamp"]
    assert len(messages) == 1
    assert "max_spans_per_trace" in messages[0]
    assert "secret" not in messages[0]


def test_force_flush_and_shutdown_pass_held_spans_on() -> None:
    pipeline = Pipeline()
    root = pipeline.tracer.start_span("POST /chat")
    with trace.use_span(root):
        with pipeline.tracer.start_as_current_span("http receive"):
            pass
        assert pipeline.spans() == []
        assert pipeline.provider.force_flush()
        assert [s.name for s in pipeline.spans()] == ["http receive"]  # unfilled: the root is still open
        with using_session("s-1"), pipeline.tracer.start_as_current_span("handler"):
            pass
        with pipeline.tracer.start_as_current_span("http send"):
            pass
    # The trace is still followed after a flush: what ends later is filled.
    root.end()
    assert pipeline.ids("http send") == ("s-1", None)
    assert pipeline.ids("http receive") == (None, None)

    other = pipeline.tracer.start_span("GET /stream")
    with trace.use_span(other), pipeline.tracer.start_as_current_span("chunk"):
        pass
    pipeline.provider.shutdown()
    assert "chunk" in [s.name for s in pipeline.spans()]


def test_a_filled_span_at_the_count_limit_keeps_the_sdk_accounting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "4")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1")
    pipeline = Pipeline()
    with pipeline.tracer.start_as_current_span("POST /chat") as root:
        root.set_attributes({f"http.{number}": number for number in range(6)})  # 2 dropped
        for number in range(3):
            root.add_event(f"event {number}")  # 2 dropped
        with using_session("s-1"), pipeline.tracer.start_as_current_span("handler"):
            pass
    (span,) = [s for s in pipeline.spans() if s.name == "POST /chat"]
    attributes = dict(span.attributes or {})
    assert attributes == {SESSION_ID: "s-1", "http.3": 3, "http.4": 4, "http.5": 5}
    assert span.dropped_attributes == 3  # the SDK's two, and the oldest that made room
    assert (span.dropped_events, [event.name for event in span.events]) == (2, ["event 2"])


def test_bad_options_are_rejected_clearly() -> None:
    with strict_mode():
        with pytest.raises(TypeError, match="fill_traces"):
            SessionSpanProcessor(downstream=SimpleSpanProcessor(InMemorySpanExporter()), fill_traces="yes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="downstream"):
            SessionSpanProcessor(fill_traces=True)
        with pytest.raises(TypeError, match="max_age"):
            TraceFillProcessor(SimpleSpanProcessor(InMemorySpanExporter()), max_age=0)
    # Lenient: the processor is built all the same.
    assert not SessionSpanProcessor(fill_traces=True).fill_traces


def test_a_failing_exporter_below_loses_no_other_span_and_raises_nothing(caplog: pytest.LogCaptureFixture) -> None:
    exporter = InMemorySpanExporter()

    class FailingOnce(SimpleSpanProcessor):
        failed = False

        def on_end(self, span: ReadableSpan) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("exporter bug")
            super().on_end(span)

    provider = TracerProvider()
    filler = TraceFillProcessor(FailingOnce(exporter))
    provider.add_span_processor(SessionSpanProcessor(downstream=filler))
    tracer = provider.get_tracer("web")
    with caplog.at_level(logging.ERROR, logger="spanstamp"):
        with tracer.start_as_current_span("POST /chat"):
            for name in ("first", "second"):
                with using_session("s-1"), tracer.start_as_current_span(name):
                    pass
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["POST /chat", "second"]
    assert filler.held_spans == 0
    assert len(caplog.records) == 1
