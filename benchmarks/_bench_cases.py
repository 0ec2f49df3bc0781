"""The cases bench_overhead.py times: spans and two exporting pipelines (scopes: _bench_scopes.py).

Each ``*_cases()`` builds its providers and scopes once; a case's batch function runs
the operation ``n`` times in a tight loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
            "bare_scoped",
            "bare, under the scope stamp_ids runs in (what the SDK pays for a non-empty Context)",
            span_batch(make_tracer()),
            spanstamp_ids,
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


def batch_settings(ops: int) -> dict[str, int]:
    """BatchSpanProcessor arguments under which it never exports while a batch of ``ops`` is timed.

    Its queue and export batch hold twice a timed batch (it would drop spans past a full
    queue, and wake its worker at a full export batch) and its timer is an hour away.
    """
    room = max(4096, 2 * ops)
    return {"max_queue_size": room, "max_export_batch_size": room, "schedule_delay_millis": 3_600_000}


def pipeline_cases(batch: int) -> list[Case]:
    """A 200-attribute span, and an ordinary one, through configure()'s pipeline and a plain BatchSpanProcessor.

    Timed: start, 200 ``set_attribute``, end, and every processor's ``on_end`` up to the
    batch queue, in the thread that ends the span: all that spanstamp adds (stamping, the
    eviction restore, trace filling) happens there. Not timed: the export, which is the
    same work for both (the no-op exporter gets the same spans, restored or not) and runs
    in BatchSpanProcessor's worker thread, whose wake-ups would land at random in either
    case; ``force_flush()`` runs it after each batch, untimed. Both have the SDK's default
    limits and the same resource; the session and user are in the Context for both. The
    ordinary span (no attributes of its own) shows what the pipeline adds per span whole,
    with trace filling on (the default) and off.
    """

    def configured_provider(ops: int, **options: Any) -> TracerProvider:
        return spanstamp.configure(
            service_name="spanstamp-bench",
            exporter=NoOpExporter(),
            batch=batch_settings(ops),
            set_global=False,
            **options,
        )

    def plain(ops: int) -> TracerProvider:
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "spanstamp-bench"}))
        provider.add_span_processor(BatchSpanProcessor(NoOpExporter(), **batch_settings(ops)))
        return provider

    big_ops = max(1, batch // PIPELINE_SCALE)
    configured, plain_provider = configured_provider(big_ops), plain(big_ops)
    ordinary = {
        "pipeline_1": (configured_provider(batch), "ordinary span through configure()'s pipeline, ids in context"),
        "pipeline_1_nofill": (
            configured_provider(batch, fill_traces=False),
            "the same, configure(fill_traces=False)",
        ),
        "batch_1": (plain(batch), "ordinary span through a plain BatchSpanProcessor, ids in context"),
    }
    return [
        *(
            Case(
                name,
                what,
                span_batch(provider.get_tracer("spanstamp-bench")),
                spanstamp_ids,
                after=provider.force_flush,
            )
            for name, (provider, what) in ordinary.items()
        ),
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
