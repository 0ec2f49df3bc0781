"""Task ids: how a turn's span context is found again from its id alone, in any process.

Two kinds of id, one rule for reading them back (:func:`span_context_of`):

- a **generated** id spells the task span's own context, ``<trace id>-<span id>`` in
  lowercase hex (32 and 16 digits), so it is exact wherever the task ran, inside a web
  request's trace or not;
- a **caller's** id (``task(task_id="msg-42")``) seeds the ids: the span id, and the trace
  id when the task starts a trace, are the first 24 bytes of its SHA-256. The trace id is
  the one Langfuse's ``create_trace_id(seed=...)`` derives from the same text. A caller's id
  that already has the generated shape is read as such.

The seeded ids reach the SDK through the tracer's public ``id_generator``, wrapped so that
it hands out the seeded ids only while a task asks for them::

    with seeded_ids(span_context_of("msg-42")):
        span = tracer().start_span("task")
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanContext, TraceFlags

TRACER_NAME: Final = "spanstamp"
_GENERATED: Final = re.compile(r"([0-9a-f]{32})-([0-9a-f]{16})")
_wrap_lock: Final = threading.Lock()


def encode(trace_id: int, span_id: int) -> str:
    """The generated task id for a span context: ``<32 hex digits>-<16 hex digits>``.

    encode(span.get_span_context().trace_id, span.get_span_context().span_id)
    """
    return f"{trace_id:032x}-{span_id:016x}"


def random_id() -> str:
    """A generated-shape id for a task that has no real span (tracing off): unique, links nowhere.

    task_id = random_id()
    """
    return encode(secrets.randbits(128) or 1, secrets.randbits(64) or 1)


def is_generated(task_id: str) -> bool:
    """Whether ``task_id`` has the shape of a generated id (and so spells a span context).

    is_generated("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7")  # -> True
    """
    match = _GENERATED.fullmatch(task_id)
    return match is not None and int(match[1], 16) != 0 and int(match[2], 16) != 0


def span_context_of(task_id: str) -> SpanContext:
    """The task span's context as the id gives it: spelled out, or derived from the text.

    A remote, sampled context: what a feedback span uses as its parent and its link::

        span_context_of("msg-42").span_id
    """
    match = _GENERATED.fullmatch(task_id)
    if match is not None and int(match[1], 16) and int(match[2], 16):
        trace_id, span_id = int(match[1], 16), int(match[2], 16)
    else:
        # surrogatepass: a lone surrogate is a valid Python str that strict UTF-8 refuses.
        digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).digest()
        trace_id = int.from_bytes(digest[:16], "big") or 1
        span_id = int.from_bytes(digest[16:24], "big") or 1
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


class _Seed:
    __slots__ = ("span_id", "trace_id", "trace_seeded")

    def __init__(self, context: SpanContext) -> None:
        self.trace_id: int | None = context.trace_id
        self.span_id: int | None = context.span_id
        self.trace_seeded = False


_seed: ContextVar[_Seed | None] = ContextVar("spanstamp.task-seed", default=None)


class _SeededIds(IdGenerator):
    """The tracer's own id generator, except for the one span a task starts with a seed."""

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner

    def generate_span_id(self) -> int:
        seed = _seed.get()
        if seed is None or seed.span_id is None:
            return self.inner.generate_span_id()
        span_id, seed.span_id = seed.span_id, None  # one span only
        return span_id

    def generate_trace_id(self) -> int:
        # Asked for only when the span starts a trace: nested, the parent's trace id stays.
        seed = _seed.get()
        if seed is None or seed.trace_id is None:
            return self.inner.generate_trace_id()
        trace_id, seed.trace_id = seed.trace_id, None
        seed.trace_seeded = True
        return trace_id

    def is_trace_id_random(self) -> bool:
        seed = _seed.get()
        if seed is not None and seed.trace_seeded:
            return False  # derived from the caller's text, not random (W3C's random flag)
        return self.inner.is_trace_id_random()


def tracer() -> trace.Tracer:
    """The global provider's ``spanstamp`` tracer, looked up per call, able to take seeds.

    span = tracer().start_span("task")
    """
    found = trace.get_tracer(TRACER_NAME)
    inner = getattr(found, "id_generator", None)
    if isinstance(inner, IdGenerator) and not isinstance(inner, _SeededIds):
        with _wrap_lock:
            inner = getattr(found, "id_generator", None)
            if isinstance(inner, IdGenerator) and not isinstance(inner, _SeededIds):
                # Public on the SDK's Tracer; only this tracer's spans are affected.
                found.id_generator = _SeededIds(inner)  # type: ignore[attr-defined]
    return found


def can_seed(found: trace.Tracer) -> bool:
    """Whether spans of ``found`` take seeded ids (an SDK tracer from :func:`tracer`).

    can_seed(tracer())  # -> False before any SDK provider is set
    """
    return isinstance(getattr(found, "id_generator", None), _SeededIds)


@contextmanager
def seeded_ids(context: SpanContext) -> Iterator[None]:
    """Inside, the next span :func:`tracer` starts gets ``context``'s span id (and trace id if a root).

    with seeded_ids(span_context_of("msg-42")):
        span = tracer().start_span("task")
    """
    token = _seed.set(_Seed(context))
    try:
        yield
    finally:
        _seed.reset(token)
