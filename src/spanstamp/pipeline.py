"""Pipeline setup: add the processor to a provider, or build a whole OTLP pipeline.

install()                                   # next to an existing SDK setup
configure(service_name="chatbot")           # or one call that builds it all
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from spanstamp import rules
from spanstamp.processor import SessionSpanProcessor

HTTP_PROTOBUF: Final = "http/protobuf"
GRPC: Final = "grpc"
_PROTOCOLS: Final = (HTTP_PROTOBUF, GRPC)

_installed: weakref.WeakKeyDictionary[TracerProvider, SessionSpanProcessor] = weakref.WeakKeyDictionary()
_install_lock: Final = threading.Lock()


def install(
    tracer_provider: Any = None,
    *,
    attributes: Iterable[str] | None = None,
    gen_ai_conversation_id: bool = False,
) -> SessionSpanProcessor:
    """Add a :class:`SessionSpanProcessor` to ``tracer_provider`` (default: the global one).

    Calling it again for the same provider adds nothing and returns the processor
    already there. A provider that is not the SDK's gets a warning (an error in strict
    mode) and the processor comes back unattached::

        trace.set_tracer_provider(provider)
        install()
    """
    provider = trace.get_tracer_provider() if tracer_provider is None else tracer_provider
    if not isinstance(provider, TracerProvider):
        rules.reject(
            "install(tracer_provider)",
            f"spans can only be stamped on an SDK TracerProvider, got {type(provider).__name__}"
            + (
                " (no provider is set yet: call install() after setting one, or use configure())"
                if isinstance(provider, trace.ProxyTracerProvider)
                else ""
            ),
            TypeError,
        )
        return SessionSpanProcessor(attributes=attributes, gen_ai_conversation_id=gen_ai_conversation_id)
    with _install_lock:
        existing = _installed.get(provider) or _already_added(provider)
        processor = SessionSpanProcessor(attributes=attributes, gen_ai_conversation_id=gen_ai_conversation_id)
        if existing is not None:
            if (existing.attributes, existing.gen_ai_conversation_id) != (
                processor.attributes,
                processor.gen_ai_conversation_id,
            ):
                rules.logger.warning(
                    "install(): this provider already has a SessionSpanProcessor; "
                    "the options of this call are ignored and the existing processor is kept"
                )
            return existing
        provider.add_span_processor(processor)
        _installed[provider] = processor
        return processor


def _already_added(provider: TracerProvider) -> SessionSpanProcessor | None:
    # A processor the user added by hand counts too. The SDK has no public way to
    # list processors, so this looks and, where it cannot, assumes none.
    multi = getattr(provider, "_active_span_processor", None)
    for processor in getattr(multi, "_span_processors", ()):
        if isinstance(processor, SessionSpanProcessor):
            return processor
    return None


def configure(
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    protocol: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
    batch: bool = True,
    attributes: Iterable[str] | None = None,
    gen_ai_conversation_id: bool = False,
    set_global: bool = True,
) -> TracerProvider:
    """Build an SDK TracerProvider that stamps and exports over OTLP; set it as global.

    Unset arguments fall back to the standard variables: ``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``
    (``http/protobuf``, the default, or ``grpc``), ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``
    and ``..._HEADERS``. ``endpoint`` is the full traces URL, as in
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``. ``exporter`` replaces the OTLP exporter
    (a console exporter, say)::

        provider = configure(service_name="chatbot", endpoint="http://127.0.0.1:6006/v1/traces")

    The stamped ids survive the attribute count limit in this pipeline: the
    processor restores them before the exporter sees the span.
    """
    resource_values: dict[str, Any] = dict(resource_attributes or {})
    if service_name is not None:
        resource_values[SERVICE_NAME] = service_name
    provider = TracerProvider(resource=Resource.create(resource_values))
    if exporter is None:
        exporter = _otlp_exporter(protocol, endpoint, headers)
    exporting: SpanProcessor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    processor = SessionSpanProcessor(
        attributes=attributes, gen_ai_conversation_id=gen_ai_conversation_id, downstream=exporting
    )
    provider.add_span_processor(processor)
    with _install_lock:
        _installed[provider] = processor
    if set_global:
        _set_global(provider)
    return provider


def _set_global(provider: TracerProvider) -> None:
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        rules.logger.warning(
            "configure(): a global TracerProvider is already set and OpenTelemetry does not "
            "allow replacing it; the new provider is returned but is not global. "
            "Use spanstamp.install() to add stamping to the existing provider."
        )
        return
    trace.set_tracer_provider(provider)


def _otlp_exporter(protocol: str | None, endpoint: str | None, headers: Mapping[str, str] | None) -> SpanExporter:
    # An empty variable counts as unset, as the OpenTelemetry spec says.
    chosen = (
        (protocol or "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or HTTP_PROTOBUF
    ).lower()
    if chosen not in _PROTOCOLS:
        rules.reject(
            "configure(protocol)",
            f"unsupported OTLP protocol ({rules.describe(chosen)}); expected one of {', '.join(_PROTOCOLS)}",
            outcome=f"using {HTTP_PROTOBUF}",
        )
        chosen = HTTP_PROTOBUF
    options: dict[str, Any] = {}
    if endpoint is not None:
        options["endpoint"] = endpoint
    if headers is not None:
        options["headers"] = dict(headers)
    if chosen == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(**options)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(**options)
