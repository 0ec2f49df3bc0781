"""What a TraceFillProcessor holds back, within its limits, and how it lets go of it.

The open traces, the held spans and their estimated bytes, the limits on them, and what
happens past one (a warning, once). What runs for every span (``on_start``, ``on_end``,
the decision) stays in :mod:`spanstamp.tracefill`, whose processor mixes this class in;
here ``_hold`` and ``_keep_copy`` run for spans that wait, the rest only past a limit,
on flush or shutdown, or in a forked child::

    class TraceFillProcessor(_HeldTraces, SpanProcessor): ...
    self._warn("max_bytes", "held spans reach 1024 bytes")  # once per limit and processor
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from spanstamp import rules
from spanstamp._traces import LocalTrace, weight

FILL_TRACES_ENV: Final = "SPANSTAMP_FILL_TRACES"

DEFAULT_MAX_TRACES: Final = 4096
DEFAULT_MAX_SPANS_PER_TRACE: Final = 1024
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
DEFAULT_MAX_AGE_S: Final = 120.0


class _HeldTraces:
    """A trace filler's open traces and held spans, bounded by its limits (a mixin)."""

    def __init__(self, *, max_traces: int, max_spans_per_trace: int, max_bytes: int, max_age: float) -> None:
        self._max_traces = _positive("max_traces", max_traces, DEFAULT_MAX_TRACES)
        self._max_spans = _positive("max_spans_per_trace", max_spans_per_trace, DEFAULT_MAX_SPANS_PER_TRACE)
        self._max_bytes = _positive("max_bytes", max_bytes, DEFAULT_MAX_BYTES)
        self._max_age = float(_positive("max_age", max_age, DEFAULT_MAX_AGE_S))
        self._lock = threading.Lock()
        self._open: dict[int, LocalTrace] = {}  # by trace id, oldest root first
        self._decided: OrderedDict[int, dict[str, AttributeValue]] = OrderedDict()
        self._bytes = 0
        self._shut = False
        self._warned: set[str] = set()
        self._report_failure = rules.FailureLog(
            "trace filling failed on a span (or the exporting processor failed on it)", "trace filling failed again"
        )
        if hasattr(os, "register_at_fork"):
            # A child process must not export its parent's held spans, nor inherit a held lock.
            reset = weakref.WeakMethod(self._forget)
            os.register_at_fork(after_in_child=lambda: (method := reset()) is not None and method())

    def _keep_copy(self, trace: LocalTrace, grown: int) -> None:
        """Count what a trace keeps for the root copy; past ``max_bytes`` it keeps nothing."""
        if grown > 0 and self._bytes + grown > self._max_bytes:
            self._bytes -= trace.drop_copy() - grown
            self._warn("max_bytes", f"held spans reach {self._max_bytes} bytes")
        else:
            self._bytes += grown

    def _hold(self, trace: LocalTrace, span: ReadableSpan) -> bool:
        if len(trace.held) >= self._max_spans:
            self._warn("max_spans_per_trace", f"a trace has {self._max_spans} spans waiting for its root")
            return False
        size = weight(span)
        if self._bytes + size > self._max_bytes:
            self._warn("max_bytes", f"held spans reach {self._max_bytes} bytes")
            return False
        trace.held.append(span)
        trace.bytes += size
        self._bytes += size
        return True

    def _expire(self, now: float) -> list[ReadableSpan]:
        """Release traces whose root started more than ``max_age`` ago, unfilled (lock held)."""
        released: list[ReadableSpan] = []
        while self._open:
            trace_id, trace = next(iter(self._open.items()))
            if now - trace.started <= self._max_age:
                break
            del self._open[trace_id]
            self._bytes -= trace.bytes + trace.copy_bytes
            released.extend(trace.held)
            self._warn("max_age", f"a trace's root has not ended {self._max_age:g} s after it started")
        return released

    def _release(self, *, forget: bool) -> list[ReadableSpan]:
        with self._lock:
            released = [span for trace in self._open.values() for span in trace.held]
            for trace in self._open.values():
                trace.held, trace.bytes = [], 0
            # What open traces keep for the root copy stays, and stays counted.
            self._bytes = sum(trace.copy_bytes for trace in self._open.values())
            if forget:
                self._shut = True
                self._open.clear()
                self._decided.clear()
                self._bytes = 0
        return released

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._open, self._decided, self._bytes = {}, OrderedDict(), 0

    def _warn(self, limit: str, what: str) -> None:
        # Once per limit and processor: a busy app past a limit stays past it.
        if limit not in self._warned:
            self._warned.add(limit)
            rules.logger.warning(
                "trace filling: %s (the %s limit); spans past it are exported without filled ids "
                "(where long or large traces are normal, fill_traces=False or %s=0 turns filling off)",
                what,
                limit,
                FILL_TRACES_ENV,
            )


def _positive(name: str, value: object, default: int | float) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        rules.reject(
            f"TraceFillProcessor({name})",
            f"expected a positive number, got {rules.describe(value)}",
            TypeError,
            f"the default, {default}, applies",
        )
        return default
    return value
