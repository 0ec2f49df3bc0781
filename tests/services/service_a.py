"""Service A, the gateway: it knows the session and the user, and calls service B.

A test service, run as its own process by tests/test_cross_service.py. It enters a
propagating scope, calls B with the real httpx client (instrumented by OpenTelemetry, so
the W3C propagators inject ``traceparent`` and ``baggage``), prints B's answer and exits::

    SPANSTAMP_USER_ID_KEY=... python service_a.py --otlp URL --b URL --session S --user U

With ``--from-environment`` every spanstamp option comes from the SPANSTAMP_* variables
instead of arguments (``SPANSTAMP_PROPAGATE``, ``SPANSTAMP_HASH_USER_IDS``).
"""

from __future__ import annotations

import argparse
import logging
import sys

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

import spanstamp


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--otlp", required=True, help="OTLP/HTTP traces URL")
    parser.add_argument("--b", required=True, help="service B's base URL")
    parser.add_argument("--session", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--from-environment", action="store_true")
    args = parser.parse_args()

    # Everything at debug level, so a test can search all of it for the raw user id.
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")

    if args.from_environment:
        provider = spanstamp.configure(service_name="service-a", endpoint=args.otlp, batch=False)
        scope = spanstamp.using_attributes(session_id=args.session, user_id=args.user)
    else:
        provider = spanstamp.configure(service_name="service-a", endpoint=args.otlp, batch=False, hash_user_ids=True)
        scope = spanstamp.using_attributes(session_id=args.session, user_id=args.user, propagate=True)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("service-a")

    with scope, tracer.start_as_current_span("a.handle"):
        response = httpx.get(f"{args.b}/answer", timeout=60)
    print(response.status_code, response.text, flush=True)
    provider.shutdown()
    return 0 if response.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
