"""``stamp_local_root``: a scope entered inside a request also stamps the request's span.

A real WSGI server on loopback, wrapped by the real opentelemetry-instrumentation-wsgi
middleware, which starts the request's span before the handler learns the session.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

import spanstamp
from support import Tracing


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(tracing: Tracing, use_from_arg: bool = False) -> Iterator[str]:
    tracer = tracing.tracer

    def work(session_id: str | None) -> None:
        with tracer.start_as_current_span("work"):
            pass

    @spanstamp.using_session(spanstamp.from_arg("session_id"))
    def decorated(session_id: str | None) -> None:
        work(session_id)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session_id = environ.get("HTTP_X_SESSION_ID")
        if use_from_arg:
            decorated(session_id)
        else:
            with spanstamp.using_session(session_id), spanstamp.using_user(environ.get("HTTP_X_USER_ID")):
                work(session_id)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server: WSGIServer = make_server(
        "127.0.0.1", 0, OpenTelemetryMiddleware(app, tracer_provider=tracing.provider), handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/chat"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def get(url: str, **headers: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as reply:
        assert reply.status == 200


def server_span_attrs(tracing: Tracing) -> dict[str, Any]:
    (root,) = [s for s in tracing.spans() if s.parent is None]
    return dict(root.attributes or {})


@pytest.mark.parametrize("use_from_arg", [False, True])
def test_request_span_gets_the_session_entered_in_the_handler(use_from_arg: bool) -> None:
    tracing = Tracing(stamp_local_root=True)
    with serve(tracing, use_from_arg) as url:
        get(url, **{"X-Session-Id": "s-web", "X-User-Id": "u-web"})
    root = server_span_attrs(tracing)
    assert root["session.id"] == "s-web"
    assert root.get("user.id") == (None if use_from_arg else "u-web")
    assert tracing.attrs("work")["session.id"] == "s-web"


def test_off_by_default_the_request_span_keeps_no_session() -> None:
    tracing = Tracing()
    with serve(tracing) as url:
        get(url, **{"X-Session-Id": "s-web"})
    assert "session.id" not in server_span_attrs(tracing)
    assert tracing.attrs("work")["session.id"] == "s-web"


def test_current_span_and_local_root_are_stamped_where_they_lack_the_value() -> None:
    tracing = Tracing(stamp_local_root=True)
    tracer = tracing.tracer
    with tracer.start_as_current_span("job") as job:
        job.set_attribute("user.id", "set-by-app")
        with tracer.start_as_current_span("step"), spanstamp.using_attributes(session_id="s-1", user_id="u-1"):
            pass
        with tracer.start_as_current_span("later"), spanstamp.using_session("s-2"):
            pass
    assert tracing.attrs("job") == {"user.id": "set-by-app", "session.id": "s-1"}
    assert tracing.attrs("step") == {"session.id": "s-1", "user.id": "u-1"}
    # A batch job's one trace handles many sessions: the root keeps the first.
    assert tracing.attrs("later") == {"session.id": "s-2"}


def test_only_spans_of_the_processors_own_provider_are_stamped() -> None:
    tracing = Tracing(stamp_local_root=True)
    with spanstamp.using_session("s-1"):
        pass
    with tracing.tracer.start_as_current_span("other-provider-span"):
        other = Tracing(stamp_local_root=True)
        with other.tracer.start_as_current_span("inner"), spanstamp.using_session("s-2"):
            pass
    assert tracing.attrs("other-provider-span") == {}
    assert other.attrs("inner") == {"session.id": "s-2"}
