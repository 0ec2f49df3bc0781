"""Service B, an internal service: a real WSGI server that makes an LLM call per request.

A test service, run as its own process by tests/test_cross_service.py. The stdlib
``wsgiref`` server runs behind OpenTelemetry's WSGI middleware (which extracts
``traceparent`` and ``baggage``); each request makes one chat call with the real openai
client, instrumented by OpenInference and by OpenTelemetry's httpx instrumentation (which
injects the headers again), to an OpenAI-compatible stub. It prints ``PORT <n>`` once
listening and serves until terminated::

    python service_b.py --otlp URL --llm URL [--trust-baggage] [--hash-user-ids]

With ``--from-environment`` the processor takes every option from the SPANSTAMP_*
variables (``SPANSTAMP_TRUST_BAGGAGE``, ``SPANSTAMP_HASH_USER_IDS``, ...). With
``--gateway-session S`` it is configured as a gateway: the inbound ``baggage`` header is
removed before OpenTelemetry's middleware reads it, and each request runs in
``using_session(S, propagate=True)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from openai import OpenAI
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from spanstamp import SessionSpanProcessor, using_session


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # The request line goes to the log like everything else (the test searches it).
        logging.getLogger("service-b.access").info(format, *args)


def _without_inbound_baggage(app: Any) -> Any:
    """The gateway recipe: callers' baggage never enters the Context, so it is never forwarded."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ.pop("HTTP_BAGGAGE", None)
        return app(environ, start_response)

    return wrapped


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--otlp", required=True, help="OTLP/HTTP traces URL")
    parser.add_argument("--llm", required=True, help="base URL of the OpenAI-compatible stub")
    parser.add_argument("--trust-baggage", action="store_true")
    parser.add_argument("--hash-user-ids", action="store_true")
    parser.add_argument("--from-environment", action="store_true")
    parser.add_argument("--gateway-session", help="act as a gateway that owns this session id")
    args = parser.parse_args()

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")

    provider = TracerProvider(resource=Resource.create({"service.name": "service-b"}))
    if args.from_environment:
        provider.add_span_processor(SessionSpanProcessor())
    else:
        provider.add_span_processor(
            SessionSpanProcessor(trust_baggage=args.trust_baggage, hash_user_ids=args.hash_user_ids)
        )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=args.otlp)))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    HTTPX2ClientInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("service-b")
    client = OpenAI(base_url=args.llm, api_key="offline", max_retries=0)

    def answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        scope: AbstractContextManager[Any] = (
            using_session(args.gateway_session, propagate=True) if args.gateway_session else nullcontext()
        )
        with scope, tracer.start_as_current_span("b.answer"):
            completion = client.chat.completions.create(
                model="stub", messages=[{"role": "user", "content": "what is a session?"}]
            )
        body = json.dumps({"answer": completion.choices[0].message.content}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    app = OpenTelemetryMiddleware(answer, tracer_provider=provider)
    if args.gateway_session:
        app = _without_inbound_baggage(app)
    server = make_server("127.0.0.1", 0, app, handler_class=_Handler)
    # Serve in a thread and stop on SIGTERM between requests: a request in flight, and the
    # export of its spans, finish first (wsgiref would swallow a SystemExit raised inside one).
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    stop.wait()
    server.shutdown()
    serving.join()
    server.server_close()
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
