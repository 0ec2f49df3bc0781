"""The export side of the pipeline: ids evicted by the count limit come back, and nothing else changes.

Real SDK providers, the real processor and the SDK's in-memory exporter. The restored
span is compared with a reference span that the SDK itself fills with the same values
in the order they would have if they had been set last: the shortcuts (the span's own
values copied, not cleaned again) must give the SDK's result, limits included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanstamp import SessionSpanProcessor, _attribute_writes, using_attributes
from spanstamp._attribute_writes import restore_ending
from spanstamp._spans import restore
from spanstamp.attributes import SESSION_ID, TAG_TAGS, USER_ID

LIMIT = 16
# SDK 1.40 and later call a processor's _on_ending as a span ends: the ids go back in place.
ENDING_HOOK = hasattr(SpanProcessor, "_on_ending")
# Past the limit, with tuple values among them: a value cleaned again would be a new tuple.
FLOOD: list[tuple[str, Any]] = [
    (f"llm.input_messages.{n}.message.content", ("part", str(n)) if n % 3 == 0 else f"message {n}") for n in range(40)
]


@pytest.fixture(autouse=True)
def _quiet_sdk_evictions() -> Iterator[None]:
    # The SDK warns once per evicted attribute; this module evicts on purpose.
    sdk = logging.getLogger("opentelemetry.attributes")
    level = sdk.level
    sdk.setLevel(logging.ERROR)
    yield
    sdk.setLevel(level)


class Ended(SpanProcessor):
    """Keeps what the SDK hands every processor at span end (one ReadableSpan per span)."""

    def __init__(self) -> None:
        self.spans: dict[str, ReadableSpan] = {}

    def on_end(self, span: ReadableSpan) -> None:
        self.spans[span.name] = span


class Pipeline:
    """A provider whose SessionSpanProcessor exports through ``downstream=`` to memory."""

    def __init__(self, *, fill_traces: bool) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=LIMIT))
        downstream = SimpleSpanProcessor(self.exporter)
        self.provider.add_span_processor(SessionSpanProcessor(downstream=downstream, fill_traces=fill_traces))
        self.ended = Ended()  # after ours: it sees the span exactly as the SDK ended it
        self.provider.add_span_processor(self.ended)
        self.tracer = self.provider.get_tracer("t")

    def exported(self, name: str) -> ReadableSpan:
        (span,) = [span for span in self.exporter.get_finished_spans() if span.name == name]
        return span


def _reference(stamped: dict[str, Any]) -> ReadableSpan:
    """The SDK's own span: the flood set first, then the stamped values, one by one."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=LIMIT))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("llm")
    for key, value in [*FLOOD, *stamped.items()]:
        span.set_attribute(key, value)
    span.end()
    (ended,) = exporter.get_finished_spans()
    return ended


@pytest.mark.parametrize("fill_traces", [True, False])
def test_evicted_ids_come_back_as_if_the_sdk_had_set_them_last(fill_traces: bool) -> None:
    pipeline = Pipeline(fill_traces=fill_traces)
    with using_attributes(session_id="s-1", user_id="u-1", metadata={"k": "v"}, tags=["web", "llm"]):
        with pipeline.tracer.start_as_current_span("request"):
            with pipeline.tracer.start_as_current_span("short"):
                pass
            with pipeline.tracer.start_as_current_span("llm") as span:
                for key, value in FLOOD:
                    span.set_attribute(key, value)
                kept_tuples = {key: value for key, value in span.attributes.items() if isinstance(value, tuple)}
    stamped = dict(pipeline.exported("short").attributes or {})
    assert set(stamped) == {SESSION_ID, USER_ID, "metadata", TAG_TAGS}

    restored = pipeline.exported("llm")
    reference = _reference(stamped)
    attributes = dict(restored.attributes or {})
    assert list(attributes.items()) == list((reference.attributes or {}).items())  # values, types and order
    assert attributes[TAG_TAGS] == ("web", "llm")  # a tuple, as set_attribute stores a list
    assert len(attributes) == LIMIT
    assert restored.dropped_attributes == reference.dropped_attributes == len(stamped) + len(FLOOD) - LIMIT
    # The span's own values are carried over as they are, not cleaned into new objects.
    for key, value in attributes.items():
        if key in kept_tuples:
            assert value is kept_tuples[key]


@pytest.mark.parametrize("fill_traces", [True, False])
def test_a_span_with_nothing_evicted_is_exported_as_it_ended(fill_traces: bool) -> None:
    pipeline = Pipeline(fill_traces=fill_traces)
    with using_attributes(session_id="s-1", user_id="u-1"):
        with pipeline.tracer.start_as_current_span("request") as stamped:
            stamped.set_attribute("http.route", "/chat")
    with pipeline.tracer.start_as_current_span("outside") as unstamped:  # no session: nothing to fill either
        unstamped.set_attribute("http.route", "/health")

    # The very objects the SDK handed on_end: no copy, nothing rebuilt.
    assert pipeline.exported("request") is pipeline.ended.spans["request"]
    assert pipeline.exported("outside") is pipeline.ended.spans["outside"]
    assert dict(stamped.attributes or {}) == {SESSION_ID: "s-1", USER_ID: "u-1", "http.route": "/chat"}
    assert stamped.dropped_attributes == 0


def test_an_overwritten_id_is_put_back_newest_and_only_that_one() -> None:
    pipeline = Pipeline(fill_traces=False)
    with using_attributes(session_id="s-1", user_id="u-1"):
        with pipeline.tracer.start_as_current_span("llm") as span:
            span.set_attribute("http.route", "/chat")
            span.set_attribute(SESSION_ID, "from-the-instrumentor")  # a scope's id wins (docs/scopes.md)
    exported = pipeline.exported("llm")
    if ENDING_HOOK:
        # Put back in the span itself as it ended: every processor sees it, nothing is copied.
        assert exported is pipeline.ended.spans["llm"]
        assert dict(span.attributes or {}) == dict(exported.attributes or {})
    else:
        assert exported is not pipeline.ended.spans["llm"]  # on a copy, at on_end
    assert dict(exported.attributes or {}) == {USER_ID: "u-1", "http.route": "/chat", SESSION_ID: "s-1"}
    assert list(exported.attributes or {})[-1] == SESSION_ID
    assert exported.dropped_attributes == 0
    assert (exported.context, exported.start_time, exported.end_time) == (span.context, span.start_time, span.end_time)


class _Recorded(SpanProcessor):
    """Keeps the SDK's span objects and what on_end got, by name."""

    def __init__(self) -> None:
        self.live: dict[str, Span] = {}
        self.ended: dict[str, ReadableSpan] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.live[span.name] = span

    def on_end(self, span: ReadableSpan) -> None:
        self.ended[span.name] = span


_VALUES = st.one_of(st.text(max_size=12), st.lists(st.text(max_size=4), max_size=3), st.integers(), st.booleans())


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(
    limit=st.one_of(st.none(), st.integers(0, 12)),
    length=st.one_of(st.none(), st.integers(0, 8)),
    stamped=st.dictionaries(st.sampled_from([SESSION_ID, USER_ID, "metadata", TAG_TAGS]), _VALUES, max_size=4),
    flood=st.integers(0, 16),
    overwrite=st.sets(st.sampled_from([SESSION_ID, USER_ID])),
    final=st.sets(st.sampled_from([SESSION_ID, USER_ID])),
)
def test_restoring_in_place_as_the_span_ends_gives_what_the_copy_gives(
    limit: int | None, length: int | None, stamped: dict[str, Any], flood: int, overwrite: set[str], final: set[str]
) -> None:
    # Two identical spans, ended: one restored on a copy (restore(), on what on_end got),
    # the other in place (restore_ending(), as _on_ending does). Same attributes, same
    # order, same dropped count, under every limit.
    recorded = _Recorded()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=limit, max_span_attribute_length=length))
    provider.add_span_processor(recorded)
    tracer = provider.get_tracer("t")
    for name in ("copied", "in place"):
        span = tracer.start_span(name)
        for key, value in [*stamped.items(), *FLOOD[:flood], *((key, "overwritten") for key in sorted(overwrite))]:
            span.set_attribute(key, value)
        span.end()
    found = {key: value for key, value in stamped.items()}
    finals = tuple(sorted(final))
    copied = restore(recorded.ended["copied"], found, finals)
    live = recorded.live["in place"]
    before = (list((live.attributes or {}).items()), live.dropped_attributes)
    in_place = restore_ending(live, found, finals)
    if ENDING_HOOK:  # an SDK that calls _on_ending stores a plain dict: always written in place
        assert in_place is _attribute_writes._KNOWN_INTERNALS
    if not in_place:  # SDK 1.26 after an eviction (an OrderedDict): left as it was, for the copy
        assert (list((live.attributes or {}).items()), live.dropped_attributes) == before
        return
    assert list((live.attributes or {}).items()) == list((copied.attributes or {}).items())
    assert live.dropped_attributes == copied.dropped_attributes
    # What on_end got shares the span's attributes: it shows the restored values too.
    assert dict(recorded.ended["in place"].attributes or {}) == dict(live.attributes or {})


def test_a_span_of_another_class_is_left_to_the_copy() -> None:
    recorded = _Recorded()
    provider = TracerProvider()
    provider.add_span_processor(recorded)
    span = provider.get_tracer("t").start_span("x")
    span.end()
    assert restore_ending(cast(Span, recorded.ended["x"]), {SESSION_ID: "s-1"}, ()) is False
