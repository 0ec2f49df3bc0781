"""Every span of a local trace gets the trace's session and user before it is exported.

In a web app the server span starts before the handler enters its scope, and ASGI's
``http send`` spans end after it left: neither carries the ids. This processor wraps
the exporting one, holds each local trace's spans until its local root ends, and fills
in the ids the trace carries exactly one value of; it also copies the turn's input and
output onto the local root, which Phoenix reads them from::

    SessionSpanProcessor(downstream=TraceFillProcessor(BatchSpanProcessor(exporter)))
"""

from __future__ import annotations

from collections.abc import Iterable
from time import monotonic
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import TraceFlags

from spanstamp import attributes as attr
from spanstamp import rules
from spanstamp._held_traces import (
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SPANS_PER_TRACE,
    DEFAULT_MAX_TRACES,
    FILL_TRACES_ENV,
    _HeldTraces,
)
from spanstamp._span_context import ids_and_flags_of, ids_of, is_remote_of, span_id_of
from spanstamp._traces import LocalTrace, fill

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SPANS_PER_TRACE",
    "DEFAULT_MAX_TRACES",
    "FILL_TRACES_ENV",
    "TraceFillProcessor",
    "wrap",
]

# Decisions kept for spans that end after their local root (a background task's).
_MAX_DECIDED: Final = 4096


class TraceFillProcessor(_HeldTraces, SpanProcessor):
    """Wraps the exporting processor; fills a trace's one session and user into all its spans.

    Spans of a local trace that lack one of ``keys`` are held until its local root (a span
    without a parent, or with a remote one) ends; the others go on at once. Then each key
    that the trace carries exactly one value of is set on the spans that lack it (never
    overwritten); a trace that carries two sessions (a batch job) is passed on as it is.
    The local root also gets the first task's input and the last task's output where it
    has none of its own::

        exporting = TraceFillProcessor(BatchSpanProcessor(exporter), max_age=30.0)
        provider.add_span_processor(SessionSpanProcessor(downstream=exporting))

    Limits: ``max_traces`` open traces, ``max_spans_per_trace`` held spans per trace,
    ``max_bytes`` (estimated) held in all, ``max_age`` seconds from a root's start. Past
    them spans go on unfilled: a trace older than ``max_age`` is released at the next
    span that ends. ``force_flush`` and ``shutdown`` pass every held span on (unfilled).
    """

    def __init__(
        self,
        exporting: SpanProcessor,
        *,
        keys: Iterable[str] = (attr.SESSION_ID, attr.USER_ID),
        max_traces: int = DEFAULT_MAX_TRACES,
        max_spans_per_trace: int = DEFAULT_MAX_SPANS_PER_TRACE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self._exporting = exporting
        self._keys = (keys,) if isinstance(keys, str) else tuple(keys)
        # The limits, the open traces and the lock: see _HeldTraces.
        super().__init__(
            max_traces=max_traces, max_spans_per_trace=max_spans_per_trace, max_bytes=max_bytes, max_age=max_age
        )

    @property
    def exporting(self) -> SpanProcessor:
        """The processor that gets the spans once filled.

        TraceFillProcessor(batch).exporting is batch  # -> True
        """
        return self._exporting

    @property
    def held_spans(self) -> int:
        """How many ended spans wait for their local root now.

        processor.held_spans  # -> 0 once every request has ended
        """
        with self._lock:
            return sum(len(trace.held) for trace in self._open.values())

    @property
    def held_bytes(self) -> int:
        """The estimated size of the held spans, in bytes (bounded by ``max_bytes``).

        processor.held_bytes  # -> 0 once every request has ended
        """
        return self._bytes

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Follow a new local trace at its root, then pass the span on (never raises)."""
        parent = span.parent
        if parent is None or is_remote_of(parent):  # children cost this test only
            try:
                self._open_trace(span)
            except Exception:
                self._report_failure()
        try:
            self._exporting.on_start(span, parent_context=parent_context)
        except Exception:
            self._report_failure()

    def _on_ending(self, span: Span) -> None:
        try:
            self._exporting._on_ending(span)
        except Exception:  # an exporting processor from before the SDK had this hook, or failing
            self._report_failure()

    def on_end(self, span: ReadableSpan) -> None:
        """Hold a span that lacks ids until its local root ends; pass on what is ready, filled."""
        try:
            ready = self._take(span)
        except Exception:
            self._report_failure()
            ready = [span]
        if len(ready) == 1:  # the usual: this span alone, without _pass_on's loop
            try:
                self._exporting.on_end(ready[0])
            except Exception:
                self._report_failure()
        else:
            self._pass_on(ready)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Pass on every held span unfilled, then flush the exporting processor."""
        self._pass_on(self._release(forget=False))
        return self._exporting.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Pass on every held span unfilled, then shut the exporting processor down."""
        self._pass_on(self._release(forget=True))
        self._exporting.shutdown()

    def _pass_on(self, spans: list[ReadableSpan]) -> None:
        # Other requests' spans may be among them: one failing export must not lose the
        # rest, nor raise into the request that happened to end a trace.
        for span in spans:
            try:
                self._exporting.on_end(span)
            except Exception:
                self._report_failure()

    def _open_trace(self, span: Span) -> None:
        context = span.context
        # TraceFlags.sampled is two property calls; the bit itself is what it tests.
        trace_id, span_id, flags = ids_and_flags_of(context)
        if not flags & TraceFlags.SAMPLED:  # never exported: nothing to fill
            return
        now = monotonic()
        expired: list[ReadableSpan] = []
        # acquire()/release(), not `with`: half the cost (~1,000 instructions), twice a span.
        lock = self._lock
        lock.acquire()
        try:
            if self._shut:
                return
            open_traces = self._open
            trace = open_traces.get(trace_id)
            if trace is not None:  # a second local root in the trace (called twice by one caller)
                trace.open_roots.add(span_id)
                trace.roots.add(span_id)
                return
            if len(open_traces) < self._max_traces:  # the usual case: room for one more
                open_traces[trace_id] = LocalTrace(span_id, now)
                return
            expired = self._expire(now)
            if len(open_traces) < self._max_traces:
                open_traces[trace_id] = LocalTrace(span_id, now)
            else:
                self._warn("max_traces", f"{self._max_traces} traces are open")
        finally:
            lock.release()
        self._pass_on(expired)

    def _take(self, span: ReadableSpan) -> list[ReadableSpan]:
        """The spans to pass on now that ``span`` ended: none while its trace is held."""
        context = span.context
        if context is None:
            return [span]
        trace_id, span_id = ids_of(context)  # once each, without the properties' calls
        now = monotonic()
        lock = self._lock
        lock.acquire()
        try:
            open_traces = self._open
            # The oldest open trace comes first: only if it is past max_age is there anything to release.
            expiring = open_traces and now - next(iter(open_traces.values())).started > self._max_age
            ready = self._expire(now) if expiring else []
            trace = open_traces.get(trace_id)
            if trace is None:
                fills = self._decided.get(trace_id)
                ready.append(fill(span, fills, None) if fills else span)
                return ready
            lacks, grown = trace.note(span, self._keys)
            if grown:
                self._keep_copy(trace, grown)
            trace.open_roots.discard(span_id)
            if trace.open_roots:
                # A span that has every id goes on at once: nothing would be filled on it.
                if not ((lacks or span_id in trace.roots) and self._hold(trace, span)):
                    ready.append(span)
                return ready
            del open_traces[trace_id]
            self._bytes -= trace.bytes + trace.copy_bytes
            fills, copied = trace.decision()
            if fills:  # kept for spans that end after their root
                decided = self._decided
                if len(decided) >= _MAX_DECIDED:
                    decided.popitem(False)  # the oldest (positional: a keyword is parsed, ~450 instructions)
                decided[trace_id] = fills
        finally:
            lock.release()
        if not trace.held and not lacks and not copied:
            # The usual end of a trace whose root carries every id: nothing to fill on it.
            ready.append(span)
            return ready
        # Copies are built outside the lock: other threads' spans need not wait for them.
        for ended in [*trace.held, span]:
            root = (context := ended.context) is not None and span_id_of(context) in trace.roots
            ready.append(fill(ended, fills, copied if root else None))
        return ready


def wrap(downstream: SpanProcessor | None, fill_traces: bool | None, keys: Iterable[str]) -> SpanProcessor | None:
    """``downstream`` wrapped in a :class:`TraceFillProcessor` when filling is on (the default).

    ``fill_traces=None`` reads ``SPANSTAMP_FILL_TRACES``. Without a downstream there is
    nothing to hold spans back from, so nothing is wrapped::

        exporting = wrap(BatchSpanProcessor(exporter), None, ["session.id", "user.id"])
    """
    if fill_traces is not None and not isinstance(fill_traces, bool):
        rules.reject(
            "SessionSpanProcessor(fill_traces)",
            f"expected a bool, got {rules.describe(fill_traces)}",
            TypeError,
            "the default applies",
        )
        fill_traces = None
    if downstream is None:
        if fill_traces:
            rules.reject(
                "SessionSpanProcessor(fill_traces)",
                "filling traces needs the exporting processor as downstream= (configure() builds it so)",
                outcome="spans are not filled",
            )
        return None
    if fill_traces is None:
        fill_traces = rules.env_flag(FILL_TRACES_ENV, True)
    if not fill_traces or isinstance(downstream, TraceFillProcessor):
        return downstream
    return TraceFillProcessor(downstream, keys=keys)
