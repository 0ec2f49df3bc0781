"""spanstamp reads and sets the OpenTelemetry Context the way the API does, by either route."""

from __future__ import annotations

import contextvars
import logging
import subprocess
import sys
import textwrap

import opentelemetry.context as api
import pytest
from opentelemetry.context import Context

from spanstamp import _runtime


def test_the_default_runtime_context_is_used_directly() -> None:
    assert _runtime.is_direct()
    assert _runtime.get_current() is api.get_current()


def test_attach_and_detach_mix_with_the_api() -> None:
    outer = api.get_current()
    ours = _runtime.attach(api.set_value("k", "ours"))
    assert api.get_value("k") == "ours"
    theirs = api.attach(api.set_value("k", "theirs"))
    assert _runtime.get_current().get("k") == "theirs"
    api.detach(theirs)
    assert _runtime.get_current().get("k") == "ours"
    _runtime.detach(ours)
    assert api.get_current() is outer


def test_a_token_from_another_context_is_reported_like_the_api_does(caplog: pytest.LogCaptureFixture) -> None:
    # A token made in another contextvars.Context cannot be reset here: the API logs
    # the failure and carries on, and so must we.
    token = contextvars.copy_context().run(_runtime.attach, Context({"k": 1}))
    before = api.get_current()
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        _runtime.detach(token)
    assert api.get_current() is before
    assert [r.getMessage() for r in caplog.records if r.name == "opentelemetry.context"] == ["Failed to detach context"]


def test_another_runtime_context_goes_through_the_public_functions() -> None:
    # A runtime context of the application's own (what OTEL_PYTHON_CONTEXT selects): the
    # scopes and the processor must still see exactly what the API sees. Run in a fresh
    # interpreter, since the API picks its runtime context once, at import.
    script = textwrap.dedent(
        """
        import threading
        import opentelemetry.context as api
        from opentelemetry.context.context import Context, _RuntimeContext

        class ThreadLocalRuntimeContext(_RuntimeContext):
            def __init__(self):
                self._local = threading.local()
            def attach(self, context):
                previous = self.get_current()
                self._local.context = context
                return previous
            def get_current(self):
                return getattr(self._local, "context", Context())
            def detach(self, token):
                self._local.context = token

        api._RUNTIME_CONTEXT = ThreadLocalRuntimeContext()

        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import spanstamp
        from spanstamp import _runtime

        assert not _runtime.is_direct()
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        spanstamp.install(provider)
        tracer = provider.get_tracer("t")

        @spanstamp.using_user("u-1")
        def handle():
            with tracer.start_as_current_span("inside"):
                pass

        with spanstamp.using_session("s-1"):
            assert api.get_value("session.id") == "s-1"
            handle()
        assert api.get_value("session.id") is None
        with spanstamp.using_session("outer"):
            with spanstamp.using_session("inner"):
                api.attach(Context())  # left attached: leaving must not raise
        (span,) = exporter.get_finished_spans()
        assert dict(span.attributes) == {"session.id": "s-1", "user.id": "u-1"}, span.attributes
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
