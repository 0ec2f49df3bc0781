"""The cases bench_overhead.py times: spans, scopes, decorated calls, two pipelines.

Each ``*_cases()`` builds its providers and scopes once; a case's batch function runs
the operation ``n`` times in a tight loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import openinference.instrumentation as oi
from opentelemetry import baggage
from opentelemetry.context import Context, attach, detach
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, Tracer, set_span_in_context

import spanstamp
from _bench_stats import Batch, Case

SESSION_ID = "session-3f2a9c1e"
USER_ID = "user-0042"

# Nested metadata: each level names the same three keys (a later level's value wins when
# merged) and one of its own, so the merged metadata grows by one key per level.
DEPTH = 20
METADATA_LEVELS = [
    {"tenant": "acme", "route": "/chat", "step": f"step-{level}", f"level_{level}": level} for level in range(DEPTH)
]
TAGS = [f"tag-{number}" for number in range(100)]
# The 200-attribute span: an LLM span with a flattened message list, past the SDK's
# default count limit of 128, so the ids stamped first are evicted.
SPAN_ATTRIBUTES = [(f"llm.input_messages.{number}.message.content", f"message {number}") for number in range(200)]
# A 200-attribute span costs about 25 bare spans: its batches are 25 times smaller.
PIPELINE_SCALE = 25


# --- The pieces the cases are built from -----------------------------------------------


class NoOpExporter(SpanExporter):
    """Accepts every span and does nothing with it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class NoOpProcessor(SpanProcessor):
    """A span processor that does nothing: the cost of being called at all."""

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        return None


def make_tracer(*extra: SpanProcessor) -> Tracer:
    """A tracer on a fresh provider: ``extra`` processors first, then the exporting one."""
    provider = TracerProvider(shutdown_on_exit=False)
    for processor in extra:
        provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(NoOpExporter()))
    return provider.get_tracer("spanstamp-bench")


def span_batch(tracer: Tracer) -> Batch:
    start_span = tracer.start_span

    def run(n: int) -> None:
        for _ in range(n):
            start_span("x").end()

    return run


def span_with_two_attrs_batch(tracer: Tracer) -> Batch:
    start_span = tracer.start_span

    def run(n: int) -> None:
        for _ in range(n):
            span = start_span("x")
            span.set_attribute("session.id", SESSION_ID)
            span.set_attribute("user.id", USER_ID)
            span.end()

    return run


def openinference_way_batch(tracer: Tracer) -> Batch:
    start_span = tracer.start_span
    get_attributes_from_context = oi.get_attributes_from_context

    def run(n: int) -> None:
        for _ in range(n):
            span = start_span("x")
            span.set_attributes(dict(get_attributes_from_context()))
            span.end()

    return run


def big_span_batch(tracer: Tracer) -> Batch:
    start_span = tracer.start_span

    def run(n: int) -> None:
        for _ in range(n):
            span = start_span("llm")
            for key, value in SPAN_ATTRIBUTES:
                span.set_attribute(key, value)
            span.end()

    return run


def scope_batch(using_attributes: Callable[..., AbstractContextManager[Any]]) -> Batch:
    def run(n: int) -> None:
        for _ in range(n):
            with using_attributes(session_id=SESSION_ID, user_id=USER_ID):
                pass

    return run


def reused_scope_batch(scope: AbstractContextManager[Any]) -> Batch:
    """Enter and exit one scope object built beforehand: the Context work alone."""

    def run(n: int) -> None:
        for _ in range(n):
            with scope:
                pass

    return run


def nested_metadata_batch(using_metadata: Callable[[dict[str, Any]], Any], depth: int) -> Batch:
    """``depth`` metadata scopes, each built (from a fresh dict, as a literal would be) and
    entered inside the one before, then all left: what ``depth`` nested ``with`` do."""
    levels = METADATA_LEVELS[:depth]

    def run(n: int) -> None:
        for _ in range(n):
            entered = []
            for values in levels:
                scope = using_metadata(dict(values))
                scope.__enter__()
                entered.append(scope)
            for scope in reversed(entered):
                scope.__exit__(None, None, None)

    return run


def tags_batch(using_tags: Callable[[list[str]], AbstractContextManager[Any]]) -> Batch:
    def run(n: int) -> None:
        for _ in range(n):
            with using_tags(list(TAGS)):  # a fresh list each time, as a literal would be
                pass

    return run


def call_batch(func: Callable[[], object]) -> Batch:
    def run(n: int) -> None:
        for _ in range(n):
            func()

    return run


def plain() -> None:
    return None


@spanstamp.using_session(SESSION_ID)
def decorated() -> None:
    return None


@oi.using_session(SESSION_ID)
def oi_decorated() -> None:
    return None


# --- What is active while a case's batch runs ------------------------------------------


@contextmanager
def spanstamp_ids() -> Iterator[None]:
    with spanstamp.using_session(SESSION_ID), spanstamp.using_user(USER_ID):
        yield


@contextmanager
def oi_ids() -> Iterator[None]:
    with oi.using_attributes(session_id=SESSION_ID, user_id=USER_ID):
        yield


@contextmanager
def baggage_ids() -> Iterator[None]:
    context = baggage.set_baggage("session.id", SESSION_ID)
    context = baggage.set_baggage("user.id", USER_ID, context=context)
    token = attach(context)
    try:
        yield
    finally:
        detach(token)


@contextmanager
def parent_span() -> Iterator[None]:
    """A sampled parent span in the Context and nothing else: where most child spans start."""
    parent = SpanContext(
        trace_id=0x5CA1AB1E, span_id=0xB0B, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    token = attach(set_span_in_context(NonRecordingSpan(parent)))
    try:
        yield
    finally:
        detach(token)


# --- The cases ---------------------------------------------------------------------------


def span_cases() -> list[Case]:
    return [
        Case("bare", "span start+end, exporting processor only", span_batch(make_tracer())),
        Case("noop_processor", "+ a no-op SpanProcessor", span_batch(make_tracer(NoOpProcessor()))),
        Case(
            "sdk_two_attrs", "bare + span.set_attribute x2 (SDK's own cost)", span_with_two_attrs_batch(make_tracer())
        ),
        Case(
            "stamp_ids",
            "+ SessionSpanProcessor, session+user in context",
            span_batch(make_tracer(spanstamp.SessionSpanProcessor())),
            spanstamp_ids,
        ),
        Case(
            "stamp_empty",
            "+ SessionSpanProcessor, nothing in context",
            span_batch(make_tracer(spanstamp.SessionSpanProcessor())),
        ),
        Case(
            "noop_child",
            "+ a no-op SpanProcessor, child of a parent span",
            span_batch(make_tracer(NoOpProcessor())),
            parent_span,
        ),
        Case(
            "stamp_empty_child",
            "+ SessionSpanProcessor, child of a parent span, no scope",
            span_batch(make_tracer(spanstamp.SessionSpanProcessor())),
            parent_span,
        ),
        Case(
            "baggage",
            "+ BaggageSpanProcessor(ALLOW_ALL), 2 baggage keys",
            span_batch(make_tracer(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))),
            baggage_ids,
        ),
        Case(
            "openinference_way",
            "bare + set_attributes(get_attributes_from_context())",
            openinference_way_batch(make_tracer()),
            oi_ids,
        ),
    ]


def scope_cases() -> list[Case]:
    return [
        Case(
            "scope_enter_exit",
            "with spanstamp.using_attributes(session, user): pass",
            scope_batch(spanstamp.using_attributes),
        ),
        Case(
            "oi_scope_enter_exit",
            "with openinference using_attributes(session, user): pass",
            scope_batch(oi.using_attributes),
        ),
        Case(
            "scope_reused",
            "with scope: pass, one spanstamp scope built beforehand",
            reused_scope_batch(spanstamp.using_attributes(session_id=SESSION_ID, user_id=USER_ID)),
        ),
        Case(
            "oi_scope_reused",
            "with scope: pass, one openinference scope built beforehand",
            reused_scope_batch(oi.using_attributes(session_id=SESSION_ID, user_id=USER_ID)),
        ),
        Case("decorated_call", "call via @spanstamp.using_session", call_batch(decorated)),
        Case("oi_decorated_call", "call via @openinference using_session", call_batch(oi_decorated)),
        Case("plain_call", "undecorated call", call_batch(plain)),
        Case(
            "metadata_1",
            "spanstamp using_metadata, 1 level",
            nested_metadata_batch(spanstamp.using_metadata, 1),
            scale=2,
        ),
        Case(
            "metadata_10",
            "spanstamp using_metadata, 10 nested (merging)",
            nested_metadata_batch(spanstamp.using_metadata, 10),
            scale=20,
        ),
        Case(
            f"metadata_{DEPTH}",
            f"spanstamp using_metadata, {DEPTH} nested (merging)",
            nested_metadata_batch(spanstamp.using_metadata, DEPTH),
            scale=40,
        ),
        Case(
            "oi_metadata_1",
            "openinference using_metadata, 1 level",
            nested_metadata_batch(oi.using_metadata, 1),
            scale=2,
        ),
        Case(
            f"oi_metadata_{DEPTH}",
            f"openinference using_metadata, {DEPTH} nested (replacing)",
            nested_metadata_batch(oi.using_metadata, DEPTH),
            scale=40,
        ),
        Case("tags_100", "with spanstamp.using_tags(100 tags): pass", tags_batch(spanstamp.using_tags), scale=4),
        Case("oi_tags_100", "with openinference using_tags(100 tags): pass", tags_batch(oi.using_tags), scale=4),
    ]


def batch_settings(ops: int) -> dict[str, int]:
    """BatchSpanProcessor arguments under which it never exports while a batch of ``ops`` is timed.

    Its queue and export batch hold twice a timed batch (it would drop spans past a full
    queue, and wake its worker at a full export batch) and its timer is an hour away.
    """
    room = max(4096, 2 * ops)
    return {"max_queue_size": room, "max_export_batch_size": room, "schedule_delay_millis": 3_600_000}


def pipeline_cases(batch: int) -> list[Case]:
    """A 200-attribute span through configure()'s pipeline and through a plain BatchSpanProcessor.

    Timed: start, 200 ``set_attribute``, end, and every processor's ``on_end`` up to the
    batch queue, in the thread that ends the span: all that spanstamp adds (stamping, the
    eviction restore, trace filling) happens there. Not timed: the export, which is the
    same work for both (the no-op exporter gets the same spans, restored or not) and runs
    in BatchSpanProcessor's worker thread, whose wake-ups would land at random in either
    case; ``force_flush()`` runs it after each batch, untimed. Both have the SDK's default
    limits and the same resource; the session and user are in the Context for both.
    """
    settings = batch_settings(max(1, batch // PIPELINE_SCALE))
    configured = spanstamp.configure(
        service_name="spanstamp-bench", exporter=NoOpExporter(), batch=settings, set_global=False
    )
    plain_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "spanstamp-bench"}))
    plain_provider.add_span_processor(BatchSpanProcessor(NoOpExporter(), **settings))
    return [
        Case(
            "pipeline_200",
            "200-attribute span through spanstamp.configure()'s pipeline, ids in context",
            big_span_batch(configured.get_tracer("spanstamp-bench")),
            spanstamp_ids,
            scale=PIPELINE_SCALE,
            after=configured.force_flush,
        ),
        Case(
            "batch_200",
            "200-attribute span through a plain BatchSpanProcessor, ids in context",
            big_span_batch(plain_provider.get_tracer("spanstamp-bench")),
            spanstamp_ids,
            scale=PIPELINE_SCALE,
            after=plain_provider.force_flush,
        ),
    ]


def build_cases(batch: int) -> list[Case]:
    """Every case; ``batch`` is the run's ops per batch of a span case (the pipelines size their queue by it)."""
    return [*span_cases(), *scope_cases(), *pipeline_cases(batch)]
