"""Which exporters configure() builds: ``OTEL_TRACES_EXPORTER`` through the exporters' entry
points, their OTLP protocol and timeout, and the OTLP JSON-lines file.

exporters = select_exporters(None, protocol=None, endpoint=None, headers=None, timeout=None, json_file=None)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Final

from opentelemetry.sdk.trace.export import SpanExporter

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


def env(name: str) -> str | None:
    """A variable's stripped value; None when unset or empty (the specification's rule).

    env("OTEL_TRACES_EXPORTER")  # -> "console"
    """
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
        or env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env("OTEL_EXPORTER_OTLP_PROTOCOL")
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
        if positive_number(timeout):
            return float(timeout)
        rules.reject(
            "configure(timeout)", f"expected a positive number of seconds, got {rules.describe(timeout)}", TypeError
        )
    for name in _TIMEOUT_ENVS:
        raw = env(name)
        if raw is None:
            continue
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if positive_number(seconds):
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


def positive_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float above zero (not a bool).

    positive_number(2.5)  # -> True
    """
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
    path = json_file if json_file is not None else env(JSON_FILE_ENV)
    file_where = "configure(json_file)" if json_file is not None else JSON_FILE_ENV
    if exporter is not None:
        # Explicit exporters replace the variable's; the JSON file still comes on top.
        chosen = _explicit(exporter)
        extra = json_file_exporter(path, file_where) if path is not None else None
        return [*chosen, extra] if extra is not None else chosen
    names = _exporter_names()
    exporters: list[SpanExporter] = []
    for name in names:
        built = _build(name, protocol, endpoint, headers, timeout, path, file_where)
        if built is not None:
            exporters.append(built)
    if names and not exporters and not any(name == _OTLP or name in _OTLP_BY_PROTOCOL.values() for name in names):
        rules.logger.warning("%s: none of the exporters named can be used; using otlp", TRACES_EXPORTER_ENV)
        fallback = _otlp(_OTLP, protocol, endpoint, headers, timeout)
        exporters.extend([fallback] if fallback is not None else [])
    if path is not None and JSON_FILE_EXPORTER not in names:
        extra = json_file_exporter(path, file_where)
        if extra is not None:
            exporters.append(extra)
    return exporters


def _explicit(exporter: object) -> list[SpanExporter]:
    items = [exporter] if isinstance(exporter, (SpanExporter, str)) or not isinstance(exporter, Iterable) else exporter
    chosen: list[SpanExporter] = []
    for item in items:
        if isinstance(item, SpanExporter):
            chosen.append(item)
        else:
            rules.reject("configure(exporter)", f"expected a SpanExporter, got {rules.describe(item)}", TypeError)
    return chosen


def json_file_exporter(path: str | os.PathLike[str], where: str = "configure(json_file)") -> SpanExporter | None:
    """An ``otlp_json_file`` exporter appending OTLP JSON lines to ``path``; None (reported) if it cannot.

    exporter = json_file_exporter("spans.jsonl")
    """
    factory = _entry_point(JSON_FILE_EXPORTER, where)
    if factory is None:
        return None
    try:
        return factory(path)
    except Exception as exc:  # a missing folder or no permission: the app goes on without the file
        rules.reject(where, f"the file cannot be opened ({type(exc).__name__})", outcome="no JSON file is written")
        return None


def _exporter_names() -> list[str]:
    raw = env(TRACES_EXPORTER_ENV)
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
    file_where: str,
) -> SpanExporter | None:
    if name == _OTLP or name in _OTLP_BY_PROTOCOL.values():
        return _otlp(name, protocol, endpoint, headers, timeout)
    if name == JSON_FILE_EXPORTER and path is not None:
        return json_file_exporter(path, file_where)
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
    # An explicit protocol= argument wins over a protocol the variable's name implies.
    chosen = _OTLP_BY_PROTOCOL[otlp_protocol(protocol)] if name == _OTLP or protocol is not None else name
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
