"""install() on a provider whose span processors run in a thread pool (tests/test_existing_pipelines.py).

Run plainly, pool threads start from an empty Context. With ``threading`` as the first
argument, OpenTelemetry's threading instrumentation carries the Context into them first.
Prints JSON: the spanstamp warnings and the attributes of a span started in a session::

    python tests/apps/concurrent_pool_threads.py threading
"""

from __future__ import annotations

import json
import logging
import sys

from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp

warnings: list[str] = []


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        warnings.append(record.getMessage())


def main() -> None:
    logging.getLogger("spanstamp").addHandler(_Collect(logging.WARNING))
    if sys.argv[1:] == ["threading"]:
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor

        ThreadingInstrumentor().instrument()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(active_span_processor=ConcurrentMultiSpanProcessor(num_threads=2))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spanstamp.install(provider)
    with spanstamp.using_session("s-1"), spanstamp.using_user("u-1"):
        with provider.get_tracer("app").start_as_current_span("turn"):
            pass
    provider.shutdown()
    (span,) = exporter.get_finished_spans()
    print(json.dumps({"warnings": warnings, "attributes": dict(span.attributes or {})}))


if __name__ == "__main__":
    main()
