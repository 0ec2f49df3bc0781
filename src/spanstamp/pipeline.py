"""Pipeline setup: add the processor to a provider, or build a whole OTLP pipeline.

install()                                   # next to an existing SDK setup
configure(service_name="chatbot")           # or one call that builds it all
"""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace
from opentelemetry.context import Context, attach, create_key, detach, get_value, set_value
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler

from spanstamp import rules
from spanstamp.batching import exporting_processor
from spanstamp.exporting import select_exporters
from spanstamp.instrumenting import instrument_installed
from spanstamp.options import ProcessorOptions
from spanstamp.processor import SessionSpanProcessor

if TYPE_CHECKING:
    from typing_extensions import Unpack

_installed: weakref.WeakKeyDictionary[TracerProvider, SessionSpanProcessor] = weakref.WeakKeyDictionary()
_install_lock: Final = threading.Lock()
_POOL_PROBE_KEY: Final = create_key("spanstamp-pool-probe")


def install(tracer_provider: Any = None, **options: Unpack[ProcessorOptions]) -> SessionSpanProcessor:
    """Add a :class:`SessionSpanProcessor` to ``tracer_provider`` (default: the global one).

    Keyword options go to :class:`SessionSpanProcessor`. Calling it again for the same
    provider adds nothing and returns the processor already there (with a warning if
    options given now differ from it). A provider that is not the SDK's gets a warning
    (an error in strict mode) and the processor comes back unattached::

        trace.set_tracer_provider(provider)
        install()

    Phoenix's provider (``phoenix.otel.register()``) keeps its exporting processor. On a
    provider whose span processors run in a thread pool (``ConcurrentMultiSpanProcessor``)
    the scopes are invisible unless the pool threads carry the Context
    (``opentelemetry-instrumentation-threading``): then it warns, and adds the processor,
    which stamps only what a span's explicit parent context holds.
    """
    provider = trace.get_tracer_provider() if tracer_provider is None else tracer_provider
    if not isinstance(provider, TracerProvider):
        _reject_provider(provider)
        return SessionSpanProcessor(**options)
    with _install_lock:
        existing = _installed.get(provider) or _already_added(provider)
        processor = SessionSpanProcessor(**options)
        if existing is not None:
            if _differs(existing, processor, options):
                rules.logger.warning(
                    "install(): this provider already has a SessionSpanProcessor; "
                    "the options of this call are ignored and the existing processor is kept"
                )
            return existing
        if isinstance(getattr(provider, "_active_span_processor", None), ConcurrentMultiSpanProcessor):
            _check_pool_threads()
        if not _add(provider, processor):
            return processor
        _installed[provider] = processor
    _check_value_length(provider, "install()")
    return processor


def _reject_provider(provider: object) -> None:
    if isinstance(provider, trace.ProxyTracerProvider):
        hint = " (no provider is set yet: call install() after setting one, or use configure())"
    elif callable(getattr(provider, "add_span_processor", None)):
        hint = (
            " (it has add_span_processor(): if it feeds an SDK pipeline, pass it "
            "spanstamp.SessionSpanProcessor() yourself, or call install() with the SDK provider it wraps)"
        )
    else:
        hint = ""
    rules.reject(
        "install(tracer_provider)",
        f"spans can only be stamped on an SDK TracerProvider, got {type(provider).__name__}{hint}",
        TypeError,
        outcome="the processor is returned unattached",
    )


def _differs(existing: SessionSpanProcessor, candidate: SessionSpanProcessor, options: Mapping[str, object]) -> bool:
    # Only options the caller gave count: a bare install() means "make sure there is one".
    # Each option is readable back under its own name on the processor.
    return any(getattr(existing, name, None) != getattr(candidate, name, None) for name in options)


def _add(provider: TracerProvider, processor: SessionSpanProcessor) -> bool:
    adder = provider.add_span_processor
    try:
        accepted = set(inspect.signature(adder).parameters)
    except (TypeError, ValueError):  # a callable without a readable signature
        accepted = set()
    try:
        if "replace_default_processor" in accepted:
            # Phoenix's TracerProvider drops (and shuts down) its own exporting processor
            # when another one is added, unless asked not to: spans would stop arriving.
            adder(processor, replace_default_processor=False)  # type: ignore[call-arg]
        else:
            adder(processor)
    except Exception as exc:  # a vendor's subclass may refuse; the application must go on
        rules.reject(
            "install(tracer_provider)",
            f"{type(provider).__name__}.add_span_processor() failed ({type(exc).__name__})",
            TypeError,
            outcome="the processor is returned unattached",
        )
        return False
    return True


def _check_value_length(provider: TracerProvider, where: str) -> None:
    # The SDK cuts string attributes at this length, ids included, and a cut id can
    # merge two sessions: what the id cap refuses to do, the limit must not do either.
    # The SDK keeps a provider's limits private; without them there is nothing to compare.
    limit = getattr(getattr(provider, "_span_limits", None), "max_span_attribute_length", None)
    cap = rules.max_id_length()
    if isinstance(limit, int) and limit < cap:
        rules.reject(
            where,
            f"this provider cuts span attribute values at {limit} characters "
            "(OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT or OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT), "
            f"below the id cap of {cap}, so a longer id would be cut and could merge two sessions; "
            f"raise the limit, or lower the cap to {limit} (SPANSTAMP_MAX_ID_LENGTH)",
            outcome="ids longer than the limit will be cut",
        )


def _check_pool_threads() -> None:
    if _pool_threads_see_context():
        return
    rules.reject(
        "install(tracer_provider)",
        "this provider runs span processors in a thread pool (ConcurrentMultiSpanProcessor), where the "
        "application's Context is not visible, so scopes cannot be read; use the SDK's default "
        "span processor, or carry the Context into pool threads with opentelemetry-instrumentation-threading "
        "(ThreadingInstrumentor().instrument() before install())",
        ValueError,
        outcome="the processor is added, but stamps only what a span's explicit parent context holds",
    )


class _PoolProbe(SpanProcessor):
    def __init__(self) -> None:
        self.saw_context = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.saw_context = get_value(_POOL_PROBE_KEY) is True


def _pool_threads_see_context() -> bool:
    """Whether ConcurrentMultiSpanProcessor's on_start sees the caller's Context here and now.

    It asks a throwaway provider of the same kind rather than assuming: an instrumentation
    that patches thread pools (opentelemetry-instrumentation-threading) changes the answer.
    """
    probe = _PoolProbe()
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=Resource.get_empty(),
        shutdown_on_exit=False,
        active_span_processor=ConcurrentMultiSpanProcessor(num_threads=1),
    )
    provider.add_span_processor(probe)
    token = attach(set_value(_POOL_PROBE_KEY, True))
    try:
        provider.get_tracer("spanstamp.probe").start_span("probe").end()
    finally:
        detach(token)
        provider.shutdown()
    return probe.saw_context


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
    timeout: float | None = None,
    exporter: SpanExporter | Sequence[SpanExporter] | None = None,
    json_file: str | os.PathLike[str] | None = None,
    batch: bool | Mapping[str, float] = True,
    sampler: Sampler | None = None,
    set_global: bool = True,
    auto_instrument: bool = False,
    **options: Unpack[ProcessorOptions],
) -> TracerProvider:
    """Build an SDK TracerProvider that stamps and exports over OTLP; set it as global.

    Unset arguments fall back to the standard variables, as the SDK's configurator reads them:
    ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_EXPORTER`` (``otlp``,
    the default, ``console``, ``otlp_json_file``, ``none``, any installed exporter, or a
    comma list), ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (``http/protobuf``, the default,
    or ``grpc``), ``..._ENDPOINT``, ``..._HEADERS``, ``..._TIMEOUT`` (seconds, as the Python
    exporters read it) and ``OTEL_BSP_*``. ``endpoint`` is the full traces URL.
    ``exporter`` (one or a list) replaces the exporters the variable names; ``json_file``
    (or ``SPANSTAMP_JSON_FILE``) also appends every span to that file as OTLP JSON lines;
    ``batch`` may be a mapping of BatchSpanProcessor arguments. ``sampler`` (default: the
    SDK's) can be :class:`~spanstamp.ParentBasedSessionIdRatio`. ``auto_instrument=True``
    instruments every installed instrumentor with this provider. Further keyword options
    go to :class:`SessionSpanProcessor`::

        provider = configure(service_name="chatbot", endpoint="http://127.0.0.1:6006/v1/traces")

    The stamped ids survive the attribute count limit in this pipeline: the
    processor restores them before the exporter sees the span. Every span of a local
    trace that carries one session also gets it, and its user, before export
    (``fill_traces=False`` turns that off; see :mod:`spanstamp.tracefill`).
    """
    resource_values: dict[str, Any] = dict(resource_attributes or {})
    if service_name is not None:
        resource_values[SERVICE_NAME] = service_name
    provider = TracerProvider(resource=Resource.create(resource_values), sampler=sampler)
    exporters = select_exporters(
        exporter, protocol=protocol, endpoint=endpoint, headers=headers, timeout=timeout, json_file=json_file
    )
    processor = SessionSpanProcessor(**options, downstream=exporting_processor(exporters, batch))
    provider.add_span_processor(processor)
    with _install_lock:
        _installed[provider] = processor
    _check_value_length(provider, "configure()")
    if set_global:
        _set_global(provider)
    if auto_instrument:
        instrument_installed(provider)
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
