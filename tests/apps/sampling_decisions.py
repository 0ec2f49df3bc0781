"""Which sessions a session-aware sampler keeps, decided in this process (tests/test_sampling.py).

Reads a JSON list of session ids on stdin, starts one root span per id inside
``using_session`` and prints a JSON object: the sampler's description and, per id,
whether the span was sampled. Under ``opentelemetry-instrument`` the global provider and
its sampler come from ``OTEL_TRACES_SAMPLER``; run plainly, it builds its own provider
with ``ParentBasedSessionIdRatio(<ratio from argv>)``::

    echo '["s-1", "s-2"]' | python tests/apps/sampling_decisions.py 0.25
"""

from __future__ import annotations

import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import spanstamp
from spanstamp.sampling import ParentBasedSessionIdRatio


def main() -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(sampler=ParentBasedSessionIdRatio(float(sys.argv[1])))
    tracer = provider.get_tracer("sampling-decisions")
    decisions = {}
    for session_id in json.load(sys.stdin):
        with spanstamp.using_session(session_id):
            span = tracer.start_span("turn")
            decisions[session_id] = span.get_span_context().trace_flags.sampled
            span.end()
    print(json.dumps({"sampler": provider.sampler.get_description(), "decisions": decisions}))


if __name__ == "__main__":
    main()
