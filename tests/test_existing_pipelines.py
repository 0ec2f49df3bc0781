"""install() on tracing someone else set up: a plain SDK provider, Phoenix's, a thread-pool one, non-SDK ones.

Exporting pipelines send real OTLP to the loopback receivers; what arrives there is checked.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import get_current
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp
from otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver
from spanstamp import SessionSpanProcessor

APPS = Path(__file__).parent / "apps"
IDS = {"session.id": "s-1", "user.id": "u-1"}


def _turn(provider: Any, name: str = "turn", **start: Any) -> None:
    with spanstamp.using_session("s-1"), spanstamp.using_user("u-1"):
        with provider.get_tracer("app").start_as_current_span(name, **start):
            pass


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "spanstamp" and r.levelno >= logging.WARNING]


# --- (a) a plain SDK provider someone else configured ------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_plain_sdk_provider_exports_stamped_spans_through_its_own_exporter(
    protocol: str, http_receiver: OtlpHttpReceiver, grpc_receiver: OtlpGrpcReceiver
) -> None:
    receiver: OtlpHttpReceiver | OtlpGrpcReceiver
    if protocol == "http":
        receiver, exporter = http_receiver, HttpExporter(endpoint=http_receiver.traces_url)
    else:
        receiver, exporter = grpc_receiver, GrpcExporter(endpoint=grpc_receiver.endpoint, insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "their-service"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        processor = spanstamp.install(provider)
        assert spanstamp.install(provider) is processor
        _turn(provider)
        with provider.get_tracer("app").start_as_current_span("outside"):
            pass
        assert provider.force_flush()
    finally:
        provider.shutdown()
    turn, outside = receiver.by_name("turn"), receiver.by_name("outside")
    assert {k: turn.attributes[k] for k in IDS} == IDS
    assert turn.resource["service.name"] == "their-service"
    assert outside.attributes == {}


# --- (b) the provider phoenix.otel.register() builds ---------------------------------------------


@pytest.fixture
def phoenix_provider(http_receiver: OtlpHttpReceiver, request: pytest.FixtureRequest) -> Iterator[TracerProvider]:
    # arize-phoenix-otel works with SDK 1.45 from 0.17.2, which needs Python 3.11+ (the test extra
    # installs it only there): on 3.10 these tests are listed as skipped.
    phoenix_otel = pytest.importorskip("phoenix.otel", reason="arize-phoenix-otel is installed on Python 3.11+ only")
    provider = phoenix_otel.register(
        endpoint=http_receiver.traces_url,
        project_name="chatbot",
        batch=request.param,
        set_global_tracer_provider=False,
        verbose=False,
    )
    try:
        yield provider
    finally:
        provider.shutdown()


@pytest.mark.parametrize("phoenix_provider", [False, True], ids=["simple", "batch"], indirect=True)
def test_phoenix_register_keeps_exporting_and_spans_carry_the_ids(
    phoenix_provider: TracerProvider, http_receiver: OtlpHttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Phoenix's provider removes its own exporting processor when another processor is
    # added, unless told not to: without care, install() would silence all its spans.
    processor = spanstamp.install(phoenix_provider)
    assert spanstamp.install(phoenix_provider) is processor
    _turn(phoenix_provider)
    assert phoenix_provider.force_flush()
    (span,) = http_receiver.wait_for(1)
    assert {k: span.attributes[k] for k in IDS} == IDS
    assert span.resource["openinference.project.name"] == "chatbot"
    assert _warnings(caplog) == []


@pytest.mark.parametrize("phoenix_provider", [False], ids=["simple"], indirect=True)
def test_phoenix_provider_takes_install_options(
    phoenix_provider: TracerProvider, http_receiver: OtlpHttpReceiver
) -> None:
    spanstamp.install(phoenix_provider, attributes=["session.id"], gen_ai_conversation_id=True)
    _turn(phoenix_provider)
    (span,) = http_receiver.wait_for(1)
    # gen_ai.conversation.id comes from spanstamp's processor. user.id is there although
    # `attributes` leaves it out: Phoenix's tracers are OpenInference's OITracer, which
    # copies every context attribute it knows onto its spans by itself.
    assert span.attributes == {"session.id": "s-1", "user.id": "u-1", "gen_ai.conversation.id": "s-1"}


# --- (c) span processors in a thread pool: ConcurrentMultiSpanProcessor ---------------------------


def _pool_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(active_span_processor=ConcurrentMultiSpanProcessor(num_threads=2))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_thread_pool_provider_gets_a_warning_that_says_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    provider, exporter = _pool_provider()
    try:
        processor = spanstamp.install(provider)
        (message,) = _warnings(caplog)
        assert message.startswith(
            "install(tracer_provider): this provider runs span processors in a thread pool "
            "(ConcurrentMultiSpanProcessor), where the application's Context is not visible"
        )
        assert "opentelemetry-instrumentation-threading" in message
        assert message.endswith("the processor is added, but stamps only what a span's explicit parent context holds")
        assert spanstamp.install(provider) is processor  # added once, warned once
        assert len(_warnings(caplog)) == 1

        # As the warning says: the scopes are invisible in the pool thread ...
        _turn(provider, "implicit")
        # ... but a span started with an explicit context is stamped from it.
        with spanstamp.using_session("s-1"), spanstamp.using_user("u-1"):
            context = get_current()
        _turn(provider, "explicit", context=context)
    finally:
        provider.shutdown()
    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    assert spans == {"implicit": {}, "explicit": IDS}


def test_a_thread_pool_provider_raises_in_strict_mode_and_gets_nothing_added() -> None:
    provider, exporter = _pool_provider()
    spanstamp.configure_rules(strict=True)
    try:
        with pytest.raises(ValueError, match=r"thread pool \(ConcurrentMultiSpanProcessor\)"):
            spanstamp.install(provider)
        spanstamp.configure_rules(strict=False)
        with spanstamp.using_session("s-1"):
            context = get_current()
        _turn(provider, "explicit", context=context)
    finally:
        provider.shutdown()
    assert [dict(span.attributes or {}) for span in exporter.get_finished_spans()] == [{}]


@pytest.mark.parametrize(
    ("argument", "warned", "attributes"),
    [([], True, {}), (["threading"], False, IDS)],
    ids=["empty-pool-context", "threading-instrumented"],
)
def test_a_thread_pool_provider_works_once_pool_threads_carry_the_context(
    argument: list[str], warned: bool, attributes: dict[str, str]
) -> None:
    # In a fresh process: the threading instrumentation patches every thread pool.
    done = subprocess.run(
        [sys.executable, str(APPS / "concurrent_pool_threads.py"), *argument],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert bool(result["warnings"]) is warned
    assert result["attributes"] == attributes


def test_a_pool_nested_under_the_default_processor_needs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    # Only the provider's own (active) processor decides where on_start runs: spanstamp's
    # processor sits beside the pool, in the thread that starts the span.
    exporter = InMemorySpanExporter()
    pool = ConcurrentMultiSpanProcessor(num_threads=2)
    pool.add_span_processor(SimpleSpanProcessor(exporter))
    provider = TracerProvider()
    provider.add_span_processor(pool)
    try:
        spanstamp.install(provider)
        _turn(provider)
    finally:
        provider.shutdown()
    assert _warnings(caplog) == []
    assert [dict(span.attributes or {}) for span in exporter.get_finished_spans()] == [IDS]


# --- (d) providers that are not the SDK's -------------------------------------------------------


class _VendorProvider(trace.TracerProvider):
    """A provider that implements only the API, as a vendor's own SDK would."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return trace.NoOpTracer()


class _WrappingVendorProvider(_VendorProvider):
    """A vendor provider with its own add_span_processor (feeding an SDK provider inside)."""

    def __init__(self) -> None:
        self.inner = TracerProvider()

    def add_span_processor(self, processor: SpanProcessor) -> None:
        self.inner.add_span_processor(processor)


class _RefusingProvider(TracerProvider):
    """An SDK subclass that refuses extra processors."""

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        raise RuntimeError("this provider is sealed")


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        pytest.param(trace.ProxyTracerProvider(), "got ProxyTracerProvider (no provider is set yet", id="proxy"),
        pytest.param(_VendorProvider(), "got _VendorProvider; the processor is returned unattached", id="vendor"),
        pytest.param(
            _WrappingVendorProvider(),
            "got _WrappingVendorProvider (it has add_span_processor(): if it feeds an SDK pipeline, pass it "
            "spanstamp.SessionSpanProcessor() yourself",
            id="vendor-with-add_span_processor",
        ),
        pytest.param(object(), "got object; the processor is returned unattached", id="not-a-provider"),
        pytest.param("provider", "got str; the processor is returned unattached", id="a-str"),
    ],
)
def test_a_provider_that_is_not_the_sdks_gets_a_clear_message(
    provider: object, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    processor = spanstamp.install(provider)
    assert isinstance(processor, SessionSpanProcessor)
    (message,) = _warnings(caplog)
    assert message.startswith("install(tracer_provider): spans can only be stamped on an SDK TracerProvider, ")
    assert expected in message
    spanstamp.configure_rules(strict=True)
    with pytest.raises(TypeError, match=r"^install\(tracer_provider\): spans can only be stamped"):
        spanstamp.install(provider)


def test_an_sdk_provider_that_refuses_the_processor_gets_a_message_not_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = _RefusingProvider()
    processor = spanstamp.install(provider)
    assert isinstance(processor, SessionSpanProcessor)
    assert _warnings(caplog) == [
        "install(tracer_provider): _RefusingProvider.add_span_processor() failed (RuntimeError); "
        "the processor is returned unattached"
    ]
    assert spanstamp.install(provider) is not processor  # nothing was remembered
    spanstamp.configure_rules(strict=True)
    with pytest.raises(TypeError, match=r"add_span_processor\(\) failed \(RuntimeError\)"):
        spanstamp.install(provider)
