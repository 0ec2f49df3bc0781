"""Tasks that process pools run (tests/test_never_crash.py), importable in their workers.

A helper module, not a test file. A pool pickles a task by reference (module and
qualified name), so these must be module-level: decorated functions, a decorated
method, and the plain functions of the fork-hazard test. Each task starts a span on a
real SDK provider with spanstamp's processor, in the worker, and reports what the
worker's Context held and what the span was stamped with::

    with ProcessPoolExecutor(mp_context=get_context("spawn")) as pool:
        pool.submit(scoped_task, 1).result()  # -> {"session": "spawned-session", ...}
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp
from spanstamp import from_arg, using_attributes, using_session

_tracing: tuple[TracerProvider, InMemorySpanExporter] | None = None


def _span_attributes() -> dict[str, Any]:
    """Start and end one span in the current Context; what the worker's processor stamped."""
    global _tracing
    if _tracing is None:  # one provider per worker process
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        spanstamp.install(provider)
        _tracing = provider, exporter
    provider, exporter = _tracing
    exporter.clear()
    with provider.get_tracer("pool-task").start_as_current_span("task"):
        pass
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


def report(label: object = None) -> dict[str, Any]:
    """What a task sees in its worker: the ids in force, the stamped span, the process."""
    return {
        "label": label,
        "session": spanstamp.current_session_id(),
        "user": spanstamp.current_user_id(),
        "attributes": _span_attributes(),
        "pid": os.getpid(),
    }


@using_attributes(session_id="spawned-session", user_id="spawned-user")
def scoped_task(label: object) -> dict[str, Any]:
    """A module-level function with a constant scope."""
    return report(label)


@using_session(from_arg("session_id"))
def task_for_session(session_id: str) -> dict[str, Any]:
    """A module-level function whose scope takes the session from the call."""
    return report(session_id)


@using_session("spawned-async-session")
async def async_scoped_task(label: object) -> dict[str, Any]:
    """A coroutine function: the worker runs it with asyncio.run (see run_coroutine)."""
    return report(label)


def run_coroutine(function: Any, label: object) -> dict[str, Any]:
    """Run a pickled coroutine function in the worker."""
    import asyncio

    result: dict[str, Any] = asyncio.run(function(label))
    return result


class Handler:
    """A class whose decorated method is sent to the pool bound to an instance."""

    def __init__(self, name: str) -> None:
        self.name = name

    @using_session("spawned-method-session")
    def handle(self, label: object) -> dict[str, Any]:
        return {**report(label), "handler": self.name}


def plain_task(label: object) -> dict[str, Any]:
    """No scope of its own: whatever the worker's Context holds."""
    return report(label)


def task_in_its_own_scope(session_id: str, user_id: str) -> dict[str, Any]:
    """The safe pattern: the ids travel as arguments and the scope opens in the worker."""
    with using_attributes(session_id=session_id, user_id=user_id):
        return report(session_id)


@spanstamp.task(input=from_arg("question"), session_id="task-session")
def answer_task(question: str) -> str:
    """A turn, decorated with task(): it pickles by reference as scope-decorated functions do."""
    return f"answer to {question}"
