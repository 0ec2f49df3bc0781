"""The fast attribute writes (spanstamp._attribute_writes) against the SDK's own set_attribute.

Differential: the same spans, written once through write()/write_plain() and once through
one ``span.set_attribute`` per pair, must end up the same: attributes and their order, the
dropped count, what the SDK logged, under every count and length limit. Runs on the lowest
supported SDK (1.26, .ci/run's lowest-versions run) and the newest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, attach, detach, get_current
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    set_span_in_context,
)

import spanstamp
from spanstamp import _attribute_writes, _span_context
from spanstamp._attribute_writes import write, write_plain
from spanstamp.attributes import CONTEXT_ATTRIBUTES
from spanstamp.context import collect

UNSET = SpanLimits.UNSET
KEYS = ("session.id", "user.id", "metadata", "a", "b")


def examples(n: int) -> settings:
    return settings(
        max_examples=n,
        derandomize=True,  # the same examples on every run
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


class _Label(str):
    """A str subclass, as another library might store."""


class _SdkLog(logging.Handler):
    """What the SDK logs (eviction, truncation, writes on an ended span), in order."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.levelno, record.getMessage()))


@contextmanager
def sdk_log() -> Iterator[_SdkLog]:
    handler = _SdkLog()
    logger = logging.getLogger("opentelemetry")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def provider(count: int | None, length: int | None) -> TracerProvider:
    return TracerProvider(
        span_limits=SpanLimits(max_span_attributes=count, max_span_attribute_length=length), shutdown_on_exit=False
    )


def state(span: Any) -> tuple[list[tuple[str, Any]], int]:
    """What an exporter would see of the span's attributes: items in order, dropped count."""
    return list((span.attributes or {}).items()), span.dropped_attributes


def through_set_attribute(span: Span, pairs: Sequence[tuple[str, Any]]) -> None:
    for key, value in pairs:
        span.set_attribute(key, value)


values = st.one_of(
    st.text(max_size=8),  # plain str, unicode included, some over the length limits
    st.text(alphabet="ab ", max_size=3).map(_Label),
    st.integers(-5, 5),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.text(max_size=3), max_size=3),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.none(),
)
plain_values = st.text(max_size=8)
limits = st.tuples(st.sampled_from([UNSET, 0, 1, 2, 3, 128]), st.sampled_from([UNSET, 0, 1, 4, 16]))


def test_this_sdk_has_the_internals_the_fast_path_writes_to() -> None:
    # Else every other test here would compare set_attribute with itself.
    assert _attribute_writes._KNOWN_INTERNALS


@examples(400)
@given(
    limit=limits,
    initial=st.dictionaries(st.sampled_from(KEYS), st.one_of(st.text(max_size=6), st.integers()), max_size=4),
    pairs=st.dictionaries(st.sampled_from(KEYS), st.one_of(values, plain_values), max_size=4).map(
        lambda d: list(d.items())
    ),
    ended=st.booleans(),
)
def test_write_stores_what_set_attribute_would(
    limit: tuple[int, int], initial: dict[str, Any], pairs: list[tuple[str, Any]], ended: bool
) -> None:
    tracer = provider(*limit).get_tracer("t")
    reference, fast, plain = (tracer.start_span(name, attributes=initial) for name in ("ref", "fast", "plain"))
    plain_only = all(type(value) is str for _, value in pairs)
    if ended:
        for span in (reference, fast, plain):
            span.end()
    logs = []
    for span, how in (
        (reference, lambda s: through_set_attribute(s, pairs)),
        (fast, lambda s: write(s, pairs)),
        (plain, lambda s: write_plain(s, dict(pairs)) if plain_only else write(s, pairs)),
    ):
        with sdk_log() as log:
            how(span)
        logs.append(log.lines)
    assert state(fast) == state(reference)
    assert state(plain) == state(reference)
    assert logs[1] == logs[0]
    assert logs[2] == logs[0]


@pytest.mark.parametrize("count", [0, 1, 2])
def test_count_limits_at_and_before_stamping(count: int) -> None:
    # 0: nothing is kept, each write counts as dropped; 1 and 2: a full span evicts the
    # oldest, which only set_attribute may do (and log).
    tracer = provider(count, UNSET).get_tracer("t")
    pairs = [("session.id", "s-1"), ("user.id", "u-1")]
    for initial in ({}, {"a": "x"}, {"a": "x", "b": "y"}, {"session.id": "old", "a": "x"}):
        reference = tracer.start_span("ref", attributes=initial)
        fast = tracer.start_span("fast", attributes=initial)
        through_set_attribute(reference, pairs)
        write(fast, pairs)
        assert state(fast) == state(reference), initial
        plain = tracer.start_span("plain", attributes=initial)
        write_plain(plain, dict(pairs))
        assert state(plain) == state(reference), initial


def test_a_key_the_span_has_moves_to_the_end_with_the_new_value() -> None:
    tracer = provider(UNSET, UNSET).get_tracer("t")
    spans = [tracer.start_span(n, attributes={"session.id": "framework", "other": 1}) for n in ("ref", "a", "b")]
    through_set_attribute(spans[0], [("session.id", "scope")])
    write(spans[1], [("session.id", "scope")])
    write_plain(spans[2], {"session.id": "scope"})
    assert state(spans[0]) == ([("other", 1), ("session.id", "scope")], 0)
    assert state(spans[1]) == state(spans[0]) == state(spans[2])


def test_values_over_the_length_limit_are_cut_by_the_sdk() -> None:
    tracer = provider(UNSET, 4).get_tracer("t")
    reference, fast, plain = (tracer.start_span(n) for n in ("ref", "fast", "plain"))
    pairs = [("session.id", "s-123456"), ("user.id", "u-1")]
    through_set_attribute(reference, pairs)
    write(fast, pairs)
    write_plain(plain, dict(pairs))
    assert state(reference) == ([("session.id", "s-12"), ("user.id", "u-1")], 0)
    assert state(fast) == state(reference) == state(plain)


def test_an_ended_span_gets_nothing_and_the_sdk_says_so(caplog: pytest.LogCaptureFixture) -> None:
    span = provider(UNSET, UNSET).get_tracer("t").start_span("s", attributes={"a": 1})
    span.end()
    with caplog.at_level(logging.WARNING):
        write(span, [("session.id", "s-1"), ("user.id", "u-1")])
        write_plain(span, {"session.id": "s-1"})
    assert state(span) == ([("a", 1)], 0)
    assert [r.getMessage() for r in caplog.records] == ["Setting attribute on ended span."] * 3


@pytest.fixture
def setitem_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # Counts the mapping's own writes, which set_attribute goes through and the fast path
    # does not (patching the mapping, unlike set_attribute, leaves the fast path on).
    calls: list[str] = []
    original = BoundedAttributes.__setitem__

    def counted(self: BoundedAttributes, key: str, value: Any) -> None:
        calls.append(key)
        original(self, key, value)

    monkeypatch.setattr(BoundedAttributes, "__setitem__", counted)
    return calls


def test_the_usual_span_is_written_without_set_attribute(setitem_calls: list[str]) -> None:
    tracer = provider(None, None).get_tracer("t")  # the SDK's defaults: 128 attributes, no length limit
    fast, plain = tracer.start_span("fast"), tracer.start_span("plain", attributes={"a": 1})
    mixed = tracer.start_span("mixed")
    setitem_calls.clear()  # SDK 1.26 builds the resource and the start attributes through it
    write(fast, [("session.id", "s-1"), ("user.id", "u-1")])
    write_plain(plain, {"session.id": "s-1", "user.id": "u-1"})
    assert setitem_calls == []
    assert state(fast) == ([("session.id", "s-1"), ("user.id", "u-1")], 0)
    assert state(plain) == ([("a", 1), ("session.id", "s-1"), ("user.id", "u-1")], 0)
    # A tuple value is the SDK's to clean: from there on, every pair goes through it, in order.
    write(mixed, [("session.id", "s-1"), ("tag.tags", ["x"]), ("user.id", "u-1")])
    assert setitem_calls == ["tag.tags", "user.id"]
    assert state(mixed) == ([("session.id", "s-1"), ("tag.tags", ("x",)), ("user.id", "u-1")], 0)


class _OwnSpan(Span):
    """A span class the fast path does not know: its set_attribute must be called."""

    def set_attribute(self, key: str, value: Any) -> None:
        super().set_attribute(key, f"own:{value}")


def test_spans_it_does_not_know_get_their_own_set_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    own = _OwnSpan("own", INVALID_SPAN.get_span_context())
    write(own, [("session.id", "s-1")])
    write_plain(own, {"user.id": "u-1"})
    assert state(own) == ([("session.id", "own:s-1"), ("user.id", "own:u-1")], 0)
    # Not recording, not the SDK's: its set_attribute does nothing, and nothing raises.
    write(NonRecordingSpan(INVALID_SPAN.get_span_context()), [("session.id", "s-1")])  # type: ignore[arg-type]
    # The SDK's span with a patched set_attribute: the patch sees every value.
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(Span, "set_attribute", lambda self, key, value: seen.append((key, value)))
    span = provider(UNSET, UNSET).get_tracer("t").start_span("s")
    write(span, [("session.id", "s-1")])
    write_plain(span, {"user.id": "u-1"})
    assert seen == [("session.id", "s-1"), ("user.id", "u-1")]
    assert state(span) == ([], 0)


def test_an_attribute_mapping_of_another_type_is_left_to_set_attribute() -> None:
    tracer = provider(UNSET, UNSET).get_tracer("t")
    reference, fast = tracer.start_span("ref"), tracer.start_span("fast")
    for span in (reference, fast):
        span._attributes = {"a": 1}  # type: ignore[assignment]  # what another tool might put there
    through_set_attribute(reference, [("session.id", "s-1")])
    write(fast, [("session.id", "s-1")])
    assert fast._attributes == reference._attributes == {"a": 1, "session.id": "s-1"}


# --- Through the processor: its spans against the same spans stamped by set_attribute --------


class _Reference(SpanProcessor):
    """collect()'s values, one set_attribute each: what the processor must amount to."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        through_set_attribute(span, list(collect(CONTEXT_ATTRIBUTES, parent_context, get_current()).items()))


def exported(processor: SpanProcessor, limit: tuple[int, int], start: Any) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    tracing = provider(*limit)
    tracing.add_span_processor(processor)
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    start(tracing.get_tracer("t"))
    return list(exporter.get_finished_spans())


ids = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=12)


@examples(150)
@given(
    limit=limits,
    session=ids,
    user=st.one_of(st.none(), ids),
    tags=st.one_of(st.none(), st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2)),
    initial=st.dictionaries(st.sampled_from(KEYS), st.text(max_size=4), max_size=3),
    with_parent=st.booleans(),
)
def test_the_processor_stamps_what_set_attribute_would(
    limit: tuple[int, int],
    session: str,
    user: str | None,
    tags: list[str] | None,
    initial: dict[str, str],
    with_parent: bool,
) -> None:
    def start(tracer: Any) -> None:
        with spanstamp.using_attributes(session_id=session, user_id=user, tags=tags):
            parent = Context() if with_parent else None
            for name in ("first", "second", "third"):  # the later ones in the same Context
                tracer.start_span(name, context=parent, attributes=initial).end()
            with tracer.start_as_current_span("parent"):
                tracer.start_span("child", attributes=initial).end()

    ours = exported(spanstamp.SessionSpanProcessor(), limit, start)
    reference = exported(_Reference(), limit, start)
    assert [(s.name, state(s)) for s in ours] == [(s.name, state(s)) for s in reference]


def test_the_processor_leaves_an_ended_span_as_set_attribute_would(caplog: pytest.LogCaptureFixture) -> None:
    tracer = provider(UNSET, UNSET).get_tracer("t")
    ours, reference = spanstamp.SessionSpanProcessor(), _Reference()
    with spanstamp.using_session("s-1"), spanstamp.using_user("u-1"):
        spans = [tracer.start_span(n, attributes={"a": 1}) for n in ("ours", "ref")]
        for span in spans:
            span.end()
        with caplog.at_level(logging.WARNING):
            ours.on_start(spans[0])
            ours_log = [r.getMessage() for r in caplog.records]
            caplog.clear()
            reference.on_start(spans[1])
            reference_log = [r.getMessage() for r in caplog.records]
    assert state(spans[0]) == state(spans[1]) == ([("a", 1)], 0)
    assert ours_log == reference_log == ["Setting attribute on ended span."] * 2


def test_the_processor_on_spans_that_are_not_the_sdks(caplog: pytest.LogCaptureFixture) -> None:
    processor = spanstamp.SessionSpanProcessor()
    token = attach(set_span_in_context(INVALID_SPAN))
    try:
        with spanstamp.using_session("s-1"):
            processor.on_start(NonRecordingSpan(INVALID_SPAN.get_span_context()))  # type: ignore[arg-type]
            own = _OwnSpan("own", INVALID_SPAN.get_span_context())
            processor.on_start(own)
    finally:
        detach(token)
    assert state(own) == ([("session.id", "own:s-1")], 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_span_context_getters_read_what_its_properties_give() -> None:
    # The hot paths read a span context's ids with C item getters where the SDK's tuple
    # layout holds (probed at import); they must give exactly what the properties give,
    # for a local, a remote, an unsampled and the invalid context, on every SDK tested.
    assert _span_context._layout_as_expected()
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    local = tracer.start_span("local")
    remote = SpanContext(trace_id=7, span_id=9, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    unsampled = SpanContext(trace_id=3, span_id=4, is_remote=False, trace_flags=TraceFlags(0))
    fast, by_property = _span_context._getters(True), _span_context._getters(False)
    for context in (local.get_span_context(), remote, unsampled, INVALID_SPAN_CONTEXT):
        assert [getter(context) for getter in fast] == [getter(context) for getter in by_property]
        assert _span_context.ids_and_flags_of(context) == (context.trace_id, context.span_id, context.trace_flags)
        assert _span_context.is_remote_of(context) is context.is_remote
    local.end()
