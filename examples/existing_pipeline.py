"""Adding stamping to a tracing setup the application already has: one line.

python examples/existing_pipeline.py
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import spanstamp
from quickstart import one_line

# The application's own setup, untouched ...
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
trace.set_tracer_provider(provider)

# ... plus one line.
spanstamp.install()

if __name__ == "__main__":
    tracer = trace.get_tracer("existing-pipeline-example")
    with spanstamp.using_session("conv-7"), spanstamp.using_user("user-c"):
        with tracer.start_as_current_span("agent-step"):
            pass
    with tracer.start_as_current_span("outside-any-session"):
        pass
    provider.shutdown()
