"""configure() honours the standard OpenTelemetry variables, as the SDK's configurator does.

OTEL_TRACES_EXPORTER picks exporters through their ``opentelemetry_traces_exporter`` entry
points (real OTLP, console and OTLP JSON file exporters; spans are checked where they
arrive: the loopback OTLP receiver, the process's stdout, the file). OTEL_BSP_* reach the
BatchSpanProcessor, OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT the OTLP exporters. Explicit
arguments win; a bad value is reported by the variable's name, never its content.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanstamp
from otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver
from spanstamp import using_session
from spanstamp.batching import batch_settings

SECRET = "Bearer sk-live-0123456789"


# Only the variables a test sets may steer its pipeline (conftest.py).
pytestmark = pytest.mark.usefixtures("no_outside_settings")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "spanstamp" and r.levelno == logging.WARNING]


def _one_span(provider: TracerProvider, name: str = "work", session: str = "s-1") -> None:
    with using_session(session), provider.get_tracer("t").start_as_current_span(name):
        pass


def _exporters(provider: TracerProvider) -> list[SpanExporter]:
    # What configure() wired up; the SDK has no public way to list it, so this reads the
    # BatchSpanProcessor's span_exporter (public) under spanstamp's processor.
    (processor,) = provider._active_span_processor._span_processors
    downstream = processor.downstream
    if downstream is None:
        return []
    batchers = getattr(downstream, "_span_processors", (downstream,))
    return [b.span_exporter for b in batchers]


def _json_lines(path: Path) -> list[dict[str, object]]:
    """Every span in an OTLP JSON-lines file, as {"name", "attributes"} with plain values."""
    spans: list[dict[str, object]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    attributes = {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}
                    spans.append({"name": span["name"], "attributes": attributes})
    return spans


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANSTAMP_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- OTEL_TRACES_EXPORTER ------------------------------------------------------------------


def test_console_exporter_prints_stamped_spans_and_sends_nothing_over_otlp(http_receiver: OtlpHttpReceiver) -> None:
    # In a child process: the console exporter writes to the stdout it was imported with.
    result = _run(
        """
        import spanstamp
        provider = spanstamp.configure(service_name="console-test", set_global=False)
        with spanstamp.using_session("s-console"), provider.get_tracer("t").start_as_current_span("work"):
            pass
        provider.shutdown()
        """,
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": http_receiver.traces_url},
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["name"] == "work"
    assert printed["attributes"]["session.id"] == "s-console"
    assert http_receiver.spans == []


@pytest.mark.parametrize("value", ["none", " NONE "])
def test_none_exports_nothing(value: str, http_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http_receiver.traces_url)
    provider = spanstamp.configure(set_global=False)
    assert _exporters(provider) == []
    _one_span(provider)
    provider.shutdown()
    assert http_receiver.spans == []


@pytest.mark.parametrize("value", ["", "otlp", "otlp_proto_http"])
def test_otlp_by_default_and_by_name(
    value: str, http_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http_receiver.traces_url)
    provider = spanstamp.configure(set_global=False)
    _one_span(provider)
    provider.shutdown()
    (span,) = http_receiver.wait_for(1)
    assert span.attributes["session.id"] == "s-1"


def test_otlp_follows_the_protocol_variable(grpc_receiver: OtlpGrpcReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_receiver.endpoint)
    provider = spanstamp.configure(set_global=False)
    _one_span(provider)
    provider.shutdown()
    (span,) = grpc_receiver.wait_for(1)
    assert span.attributes["session.id"] == "s-1"


def test_the_protocol_argument_wins_over_the_protocol_a_name_implies(
    grpc_receiver: OtlpGrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp_proto_http")
    provider = spanstamp.configure(protocol="grpc", endpoint=grpc_receiver.endpoint, set_global=False)
    _one_span(provider)
    provider.shutdown()
    assert len(grpc_receiver.wait_for(1)) == 1


def test_a_comma_list_gives_every_exporter_named(
    http_receiver: OtlpHttpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.json.file", reason="the json-file extra is not installed")
    path = tmp_path / "spans.jsonl"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, otlp_json_file")
    monkeypatch.setenv("SPANSTAMP_JSON_FILE", str(path))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http_receiver.traces_url)
    provider = spanstamp.configure(set_global=False)
    _one_span(provider, session="s-both")
    provider.shutdown()
    (received,) = http_receiver.wait_for(1)
    assert received.attributes["session.id"] == "s-both"
    # One file exporter, though both the variable and SPANSTAMP_JSON_FILE ask for it.
    assert _json_lines(path) == [{"name": "work", "attributes": {"session.id": "s-both"}}]


def test_an_unknown_name_is_reported_and_the_others_are_kept(
    http_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "no_such_exporter,otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http_receiver.traces_url)
    provider = spanstamp.configure(set_global=False)
    _one_span(provider)
    provider.shutdown()
    assert len(http_receiver.wait_for(1)) == 1
    (warning,) = _warnings(caplog)
    assert "OTEL_TRACES_EXPORTER" in warning
    assert "'no_such_exporter'" in warning


def test_a_value_with_nothing_usable_keeps_the_default_and_never_echoes_it(
    http_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", SECRET)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http_receiver.traces_url)
    provider = spanstamp.configure(set_global=False)
    _one_span(provider)
    provider.shutdown()
    assert len(http_receiver.wait_for(1)) == 1  # the default, otlp
    warnings = _warnings(caplog)
    assert any("OTEL_TRACES_EXPORTER" in w and "using otlp" in w for w in warnings)
    assert "sk-live" not in caplog.text


def test_a_name_that_is_not_a_span_exporter_is_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # A real distribution on sys.path whose entry point names a class that is no exporter.
    _fake_distribution(tmp_path, "opentelemetry_traces_exporter", "not_an_exporter", "json:JSONDecoder")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "not_an_exporter,console")
    provider = spanstamp.configure(set_global=False)
    try:
        assert [type(e).__name__ for e in _exporters(provider)] == ["ConsoleSpanExporter"]
        assert any("'not_an_exporter' is not a span exporter" in w for w in _warnings(caplog))
    finally:
        provider.shutdown()


def test_an_explicit_exporter_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    provider = spanstamp.configure(exporter=[first, second], batch=False, set_global=False)
    _one_span(provider)
    provider.shutdown()
    for exporter in (first, second):
        (span,) = exporter.get_finished_spans()
        assert span.attributes == {"session.id": "s-1"}


def test_an_explicit_exporter_that_is_not_one_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    memory = InMemorySpanExporter()
    provider = spanstamp.configure(exporter=[memory, "console"], batch=False, set_global=False)  # type: ignore[list-item]
    _one_span(provider)
    provider.shutdown()
    assert len(memory.get_finished_spans()) == 1
    assert _warnings(caplog) == [
        "configure(exporter): expected a SpanExporter, got a str of 7 characters; the value is left out"
    ]


def _fake_distribution(root: Path, group: str, name: str, value: str, requires: Sequence[str] = ()) -> None:
    """A minimal installed distribution (``*.dist-info``) under ``root`` with one entry point."""
    info = root / f"spanstamp_fake_{name}-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: spanstamp-fake-{name}", "Version: 1.0"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {value}\n", encoding="utf-8")


# --- the OTLP JSON file ----------------------------------------------------------------------


def test_json_file_appends_stamped_spans_as_otlp_json_lines(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.json.file", reason="the json-file extra is not installed")
    path = tmp_path / "spans.jsonl"
    for run in ("s-a", "s-b"):  # append mode: a second process run adds to the same file
        provider = spanstamp.configure(json_file=path, exporter=[], set_global=False)
        _one_span(provider, session=run)
        provider.shutdown()
    assert _json_lines(path) == [
        {"name": "work", "attributes": {"session.id": "s-a"}},
        {"name": "work", "attributes": {"session.id": "s-b"}},
    ]
    record = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    # The ExportTraceServiceRequest shape the Collector's file exporter writes: ids in hex.
    (span,) = record["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(span["traceId"]) == 32
    assert len(span["spanId"]) == 16


def test_json_file_comes_on_top_of_the_otlp_export(http_receiver: OtlpHttpReceiver, tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.json.file", reason="the json-file extra is not installed")
    path = tmp_path / "spans.jsonl"
    provider = spanstamp.configure(endpoint=http_receiver.traces_url, json_file=path, set_global=False)
    _one_span(provider)
    provider.shutdown()
    assert len(http_receiver.wait_for(1)) == 1
    assert len(_json_lines(path)) == 1


def test_a_json_file_that_cannot_be_opened_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.json.file", reason="the json-file extra is not installed")
    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(
        exporter=exporter, json_file=tmp_path / "no-such-folder" / "spans.jsonl", batch=False, set_global=False
    )
    _one_span(provider)
    provider.shutdown()
    assert len(exporter.get_finished_spans()) == 1
    (warning,) = _warnings(caplog)
    assert warning.startswith("configure(json_file): the file cannot be opened (FileNotFoundError)")
    assert "no-such-folder" not in warning


# --- OTEL_BSP_* ---------------------------------------------------------------------------------


class _HeldExporter(SpanExporter):
    """Keeps what it gets; its first export waits until released, as a stalled backend does."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.exporting = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        self.release.wait(timeout=60)
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _burst(provider: TracerProvider, exporter: _HeldExporter, count: int) -> int:
    """Start an export that stalls, end ``count`` spans meanwhile; how many reach the exporter."""
    tracer = provider.get_tracer("t")
    while not exporter.exporting.is_set():  # spans until the worker takes a batch and stalls
        tracer.start_span("first").end()
        exporter.exporting.wait(timeout=0.01)
    before = len(exporter.spans)
    for _ in range(count):
        tracer.start_span("burst").end()
    exporter.release.set()
    provider.shutdown()
    return sum(1 for span in exporter.spans[before:] if span.name == "burst")


def test_the_default_queue_drops_a_burst_that_a_larger_bsp_queue_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    burst = 6000
    dropped_by_default = _HeldExporter()
    assert _burst(spanstamp.configure(exporter=dropped_by_default, set_global=False), dropped_by_default, burst) < burst

    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "20000")
    kept = _HeldExporter()
    assert _burst(spanstamp.configure(exporter=kept, set_global=False), kept, burst) == burst


def test_an_explicit_batch_mapping_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "600")
    kept = _HeldExporter()
    provider = spanstamp.configure(exporter=kept, batch={"max_queue_size": 20000}, set_global=False)
    assert _burst(provider, kept, 6000) == 6000


def test_bsp_variables_are_read_and_bad_ones_keep_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "1000")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", SECRET)
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0")
    assert batch_settings() == {
        "max_queue_size": 2048,
        "schedule_delay_millis": 250,
        "max_export_batch_size": 512,
        "export_timeout_millis": 1000,
    }
    warnings = _warnings(caplog)
    assert any(w.startswith("OTEL_BSP_MAX_QUEUE_SIZE is not a positive integer") for w in warnings)
    assert any(w.startswith("OTEL_BSP_MAX_EXPORT_BATCH_SIZE is not a positive integer") for w in warnings)
    assert "sk-live" not in caplog.text


def test_a_small_queue_lowers_the_batch_instead_of_failing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The SDK itself raises ValueError when the batch (512 by default) exceeds the queue.
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    exporter = InMemorySpanExporter()
    provider = spanstamp.configure(exporter=exporter, set_global=False)
    _one_span(provider)
    provider.shutdown()
    assert len(exporter.get_finished_spans()) == 1
    assert _warnings(caplog) == []  # the batch size was not asked for: nothing to report
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000")
    assert batch_settings()["max_export_batch_size"] == 100
    assert "larger than the queue" in _warnings(caplog)[0]


def test_a_bad_batch_mapping_entry_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    settings = batch_settings({"max_queue_size": -1, "bogus": 3})  # type: ignore[dict-item]
    assert settings["max_queue_size"] == 2048
    assert "bogus" not in settings
    assert len(_warnings(caplog)) == 2


# --- OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT ------------------------------------------------------


def _otlp_timeout(provider: TracerProvider) -> float:
    (exporter,) = _exporters(provider)
    provider.shutdown()
    # No public reader exists: the gRPC exporter (and older HTTP ones) keep it on the
    # exporter, the HTTP exporter of SDK 1.45 on its client.
    holder = getattr(exporter, "_client", exporter)
    return float(getattr(holder, "_timeout", None) or exporter._timeout)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otlp_timeout_variables_in_seconds_and_the_argument_wins(
    protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = "http://127.0.0.1:9/v1/traces"
    assert _otlp_timeout(spanstamp.configure(protocol=protocol, endpoint=endpoint, set_global=False)) == 10
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "4")
    assert _otlp_timeout(spanstamp.configure(protocol=protocol, endpoint=endpoint, set_global=False)) == 4
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2.5")
    assert _otlp_timeout(spanstamp.configure(protocol=protocol, endpoint=endpoint, set_global=False)) == 2.5
    provider = spanstamp.configure(protocol=protocol, endpoint=endpoint, timeout=1, set_global=False)
    assert _otlp_timeout(provider) == 1


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_bad_timeout_is_reported_and_never_reaches_the_exporter(
    protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The gRPC exporter itself would raise ValueError on this value, out of configure().
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", SECRET)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "-3")
    provider = spanstamp.configure(protocol=protocol, endpoint="http://127.0.0.1:9/v1/traces", set_global=False)
    assert _otlp_timeout(provider) == 10
    warnings = _warnings(caplog)
    assert [w.split(" ")[0] for w in warnings] == ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]
    assert "sk-live" not in caplog.text
