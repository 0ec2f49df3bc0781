"""A real SDK pipeline that keeps finished spans in memory, for the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import spanstamp


class Tracing:
    """An SDK provider with SessionSpanProcessor installed and an in-memory exporter."""

    def __init__(self, **processor_options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.processor = spanstamp.install(self.provider, **processor_options)
        self.tracer = self.provider.get_tracer("tests")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.spans() if s.name == name]
        return found

    def attrs(self, name: str) -> dict[str, Any]:
        return dict(self.span(name).attributes or {})

    def record(self, name: str) -> None:
        """Start and end one span in the current context."""
        with self.tracer.start_as_current_span(name):
            pass


@contextmanager
def strict_mode() -> Iterator[None]:
    spanstamp.configure_rules(strict=True)
    try:
        yield
    finally:
        spanstamp.configure_rules(strict=False)


def reset_trace_globals() -> None:
    """Forget the API's global tracer provider, so a test may set one again.

    OpenTelemetry lets a process set its global provider once; task(), feedback() and the
    session events use the global one. These are the two globals the API's own test
    utilities (opentelemetry-test-utils' reset_trace_globals) reset; that package pins the
    SDK exactly, which the lowest-versions run of .ci/run cannot install.
    """
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
