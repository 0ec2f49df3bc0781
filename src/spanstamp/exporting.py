"""The exporting half of configure(): which exporters (``OTEL_TRACES_EXPORTER``), their
OTLP settings, and how their spans are batched (``OTEL_BSP_*``).

exporters = select_exporters(protocol=None, endpoint=None, headers=None, timeout=None, json_file=None)
exporting = exporting_processor(exporters, batch=True)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Final

from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from spanstamp import rules

HTTP_PROTOBUF: Final = "http/protobuf"
GRPC: Final = "grpc"
_PROTOCOLS: Final = (HTTP_PROTOBUF, GRPC)

TRACES_EXPORTER_ENV: Final = "OTEL_TRACES_EXPORTER"
JSON_FILE_ENV: Final = "SPANSTAMP_JSON_FILE"
# The entry point names the SDK's exporters and opentelemetry-exporter-otlp-json-file register.
_GROUP: Final = "opentelemetry_traces_exporter"
_OTLP: Final = "otlp"
_OTLP_BY_PROTOCOL: Final = {HTTP_PROTOBUF: "otlp_proto_http", GRPC: "otlp_proto_grpc"}
JSON_FILE_EXPORTER: Final = "otlp_json_file"
_NONE: Final = "none"
_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

# The Python OTLP exporters read these in seconds (the specification says milliseconds;
# opentelemetry-python#4044): configure() reads them the same way, so one variable means
# the same under opentelemetry-instrument and here.
_TIMEOUT_ENVS: Final = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
DEFAULT_TIMEOUT_S: Final = 10.0

# BatchSpanProcessor's arguments, their variables and the specification's defaults.
_BATCH: Final = {
    "max_queue_size": ("OTEL_BSP_MAX_QUEUE_SIZE", 2048),
    "schedule_delay_millis": ("OTEL_BSP_SCHEDULE_DELAY", 5000),
    "max_export_batch_size": ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
    "export_timeout_millis": ("OTEL_BSP_EXPORT_TIMEOUT", 30000),
}


def _env(name: str) -> str | None:
    # An empty variable counts as unset, as the OpenTelemetry specification says.
    raw = os.environ.get(name, "").strip()
    return raw or None


def _shown(name: str) -> str:
    # Exporter names are echoed only when they look like names: a value pasted into the
    # wrong variable (a header, a token) is described by size instead.
    return repr(name) if _NAME.fullmatch(name) else rules.describe(name)


def otlp_protocol(protocol: str | None) -> str:
    """The OTLP protocol: the argument, else ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``, else http/protobuf.

    otlp_protocol(None)  # -> "grpc" when OTEL_EXPORTER_OTLP_PROTOCOL=grpc
    """
    chosen = (
        (protocol or "").strip()
        or _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or _env("OTEL_EXPORTER_OTLP_PROTOCOL")
        or HTTP_PROTOBUF
    ).lower()
    if chosen not in _PROTOCOLS:
        rules.reject(
            "configure(protocol)",
            f"unsupported OTLP protocol ({rules.describe(chosen)}); expected one of {', '.join(_PROTOCOLS)}",
            outcome=f"using {HTTP_PROTOBUF}",
        )
        chosen = HTTP_PROTOBUF
    return chosen


def otlp_timeout(timeout: float | None) -> float:
    """The OTLP export timeout in seconds: the argument, else the variables, else 10.

    otlp_timeout(None)  # -> 2.5 when OTEL_EXPORTER_OTLP_TIMEOUT=2.5
    """
    if timeout is not None:
        if _positive_seconds(timeout):
            return float(timeout)
        rules.reject(
            "configure(timeout)", f"expected a positive number of seconds, got {rules.describe(timeout)}", TypeError
        )
    for name in _TIMEOUT_ENVS:
        raw = _env(name)
        if raw is None:
            continue
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if _positive_seconds(seconds):
            return seconds
        # A bad value counts as unset; the exporter never reads it (see _hidden).
        rules.logger.warning("%s is not a positive number of seconds (%s); it is ignored", name, rules.describe(raw))
    return DEFAULT_TIMEOUT_S


@contextmanager
def _hidden(names: Sequence[str]) -> Iterator[None]:
    # The gRPC exporter parses OTEL_EXPORTER_OTLP_TRACES_TIMEOUT even when given a timeout,
    # and raises on a bad one (before SDK 1.3x, on any non-integer): configure() has read the
    # variables and passes the timeout itself, so they are out of sight while it builds one.
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _positive_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def select_exporters(
    exporter: SpanExporter | Sequence[SpanExporter] | None = None,
    *,
    protocol: str | None,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
    json_file: str | os.PathLike[str] | None,
) -> list[SpanExporter]:
    """``exporter``, else what ``OTEL_TRACES_EXPORTER`` names (default ``otlp``); plus a JSON-lines file if asked.

    select_exporters(None, protocol=None, endpoint=None, headers=None, timeout=None, json_file="spans.jsonl")

    Names are ``opentelemetry_traces_exporter`` entry points, as for the SDK's configurator:
    ``otlp`` (by protocol), ``otlp_proto_http``, ``otlp_proto_grpc``, ``console``,
    ``otlp_json_file``, or any installed exporter's; a comma list gives several; ``none`` none.
    A name that cannot be used is reported and left out; if none can, ``otlp`` is used.
    """
    path = json_file if json_file is not None else _env(JSON_FILE_ENV)
    if exporter is not None:
        # Explicit exporters replace the variable's; the JSON file still comes on top.
        chosen = [exporter] if isinstance(exporter, SpanExporter) else list(exporter)
        extra = json_file_exporter(path) if path is not None else None
        return [*chosen, extra] if extra is not None else chosen
    names = _exporter_names()
    exporters: list[SpanExporter] = []
    for name in names:
        exporter = _build(name, protocol, endpoint, headers, timeout, path)
        if exporter is not None:
            exporters.append(exporter)
    if names and not exporters and not any(name == _OTLP or name in _OTLP_BY_PROTOCOL.values() for name in names):
        rules.logger.warning("%s: none of the exporters named can be used; using otlp", TRACES_EXPORTER_ENV)
        fallback = _otlp(_OTLP, protocol, endpoint, headers, timeout)
        exporters.extend([fallback] if fallback is not None else [])
    if path is not None and JSON_FILE_EXPORTER not in names:
        extra = json_file_exporter(path)
        if extra is not None:
            exporters.append(extra)
    return exporters


def json_file_exporter(path: str | os.PathLike[str]) -> SpanExporter | None:
    """An ``otlp_json_file`` exporter appending OTLP JSON lines to ``path``; None (reported) if it cannot.

    exporter = json_file_exporter("spans.jsonl")
    """
    where = "configure(json_file)"
    factory = _entry_point(JSON_FILE_EXPORTER, where)
    if factory is None:
        return None
    try:
        return factory(path)
    except Exception as exc:  # a missing folder or no permission: the app goes on without the file
        rules.reject(where, f"the file cannot be opened ({type(exc).__name__})", outcome="no JSON file is written")
        return None


def _exporter_names() -> list[str]:
    raw = _env(TRACES_EXPORTER_ENV)
    if raw is None:
        return [_OTLP]
    names = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if any(name.lower() == _NONE for name in names):
        if len(names) > 1:
            rules.logger.warning("%s: 'none' together with other exporters is ignored", TRACES_EXPORTER_ENV)
        names = [name for name in names if name.lower() != _NONE]
    return names


def _build(
    name: str,
    protocol: str | None,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
    path: str | os.PathLike[str] | None,
) -> SpanExporter | None:
    if name == _OTLP or name in _OTLP_BY_PROTOCOL.values():
        return _otlp(name, protocol, endpoint, headers, timeout)
    if name == JSON_FILE_EXPORTER and path is not None:
        return json_file_exporter(path)
    factory = _entry_point(name, TRACES_EXPORTER_ENV)
    if factory is None:
        return None
    try:
        return factory()
    except Exception as exc:
        rules.logger.warning(
            "%s: exporter %s failed to start (%s); it is left out",
            TRACES_EXPORTER_ENV,
            _shown(name),
            type(exc).__name__,
        )
        return None


def _otlp(
    name: str, protocol: str | None, endpoint: str | None, headers: Mapping[str, str] | None, timeout: float | None
) -> SpanExporter | None:
    # "otlp" follows the protocol setting, as in the SDK's configurator; the default here is
    # http/protobuf (the specification's), where the Python SDK's configurator picks grpc.
    chosen = _OTLP_BY_PROTOCOL[otlp_protocol(protocol)] if name == _OTLP else name
    options: dict[str, Any] = {"timeout": otlp_timeout(timeout)}
    if endpoint is not None:
        options["endpoint"] = endpoint
    if headers is not None:
        options["headers"] = dict(headers)
    factory = _entry_point(chosen, TRACES_EXPORTER_ENV)
    if factory is None:  # both come with opentelemetry-exporter-otlp, a runtime dependency
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        factory = OTLPSpanExporter
    try:
        with _hidden(_TIMEOUT_ENVS):
            return factory(**options)
    except Exception as exc:  # another bad OTEL_EXPORTER_OTLP_* value: the app starts all the same
        rules.logger.warning(
            "the %s exporter failed to start (%s); check the OTEL_EXPORTER_OTLP_* variables", chosen, type(exc).__name__
        )
        return None


def _entry_point(name: str, where: str) -> Callable[..., SpanExporter] | None:
    found = [ep for ep in entry_points(group=_GROUP) if ep.name == name]
    if not found:
        hint = " (pip install 'spanstamp[json-file]')" if name == JSON_FILE_EXPORTER else ""
        rules.logger.warning("%s: no installed trace exporter is named %s%s; it is left out", where, _shown(name), hint)
        return None
    try:
        loaded = found[0].load()
    except Exception as exc:
        rules.logger.warning(
            "%s: exporter %s cannot be imported (%s); it is left out", where, _shown(name), type(exc).__name__
        )
        return None
    if not (isinstance(loaded, type) and issubclass(loaded, SpanExporter)):
        rules.logger.warning("%s: %s is not a span exporter; it is left out", where, _shown(name))
        return None
    return loaded


def batch_settings(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """BatchSpanProcessor's arguments: ``overrides``, else ``OTEL_BSP_*``, else the defaults.

    batch_settings()  # -> {"max_queue_size": 20000, ...} when OTEL_BSP_MAX_QUEUE_SIZE=20000
    """
    given = dict(overrides or {})
    for key in list(given):
        value = given[key]
        if key not in _BATCH:
            rules.reject("configure(batch)", f"unknown BatchSpanProcessor argument ({rules.describe(key)})")
            del given[key]
        elif not _positive_seconds(value) or (key != "schedule_delay_millis" and not isinstance(value, int)):
            rules.reject(
                f"configure(batch[{key!r}])", f"expected a positive number, got {rules.describe(value)}", TypeError
            )
            del given[key]
    settings: dict[str, float] = {}
    from_user: set[str] = set(given)
    for key, (variable, default) in _BATCH.items():
        if key in given:
            settings[key] = given[key]
            continue
        settings[key] = default
        raw = _env(variable)
        if raw is None:
            continue
        try:
            number = int(raw)
        except ValueError:
            number = 0
        if number > 0:
            settings[key] = number
            from_user.add(key)
        else:
            rules.logger.warning(
                "%s is not a positive integer (%s); using the default, %d", variable, rules.describe(raw), default
            )
    queue, batch = settings["max_queue_size"], settings["max_export_batch_size"]
    if batch > queue:
        # The SDK refuses a batch larger than the queue (a ValueError out of configure()).
        fitted = min(_BATCH["max_export_batch_size"][1], queue)
        if "max_export_batch_size" in from_user:
            rules.logger.warning(
                "the export batch size (%d) is larger than the queue (%d); using %d", batch, queue, fitted
            )
        settings["max_export_batch_size"] = fitted
    return settings


def exporting_processor(exporters: Sequence[SpanExporter], batch: bool | Mapping[str, float]) -> SpanProcessor | None:
    """One processor feeding every exporter (each its own batch queue), or None without exporters.

    exporting = exporting_processor([ConsoleSpanExporter()], batch=False)
    """
    if batch is False:
        processors: list[SpanProcessor] = [SimpleSpanProcessor(exporter) for exporter in exporters]
    else:
        settings = batch_settings(batch if isinstance(batch, Mapping) else None)
        # One queue per exporter, as the SDK's configurator does: a slow backend cannot hold up a file.
        processors = [BatchSpanProcessor(exporter, **settings) for exporter in exporters]  # type: ignore[arg-type]
    if len(processors) <= 1:
        return processors[0] if processors else None
    multi = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    for processor in processors:
        multi.add_span_processor(processor)
    return multi
