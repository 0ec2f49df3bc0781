"""Two real services on loopback: one session across both, user ids only as pseudonyms.

Service A (tests/services/service_a.py) enters a propagating scope and calls service B
(tests/services/service_b.py, a wsgiref server behind OpenTelemetry's WSGI middleware)
with the instrumented httpx client; B calls an OpenAI-compatible stub with the instrumented
openai client. Each runs as its own process and exports over OTLP/HTTP through a tap that
keeps the raw request bodies, to the test's receiver.
"""

from __future__ import annotations

import gzip
import http.client
import importlib.util
import logging
import os
import queue
import secrets
import subprocess
import sys
import threading
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from openinference.instrumentation import using_user as openinference_using_user

import spanstamp
from otlp_receiver import OtlpHttpReceiver, ReceivedSpan
from processes import stop
from spanstamp.privacy import USER_ID_KEY_ENV, pseudonymize

SERVICES = Path(__file__).resolve().parent / "services"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

KEY = "cross-service-test-key-" + "0123456789abcdef" * 2
EMAIL = "ada.lovelace@example.com"
PSEUDONYM = pseudonymize(EMAIL, key=KEY)

# Spans per request: A's "a.handle" and httpx "GET"; B's server span, "b.answer",
# OpenInference's "ChatCompletion" and httpx's "POST" to the stub.
A_SPANS = 2
B_SPANS = 4


def _forms(raw: str) -> list[bytes]:
    # The raw id as it could appear anywhere: as is, and percent-encoded as in a header.
    return sorted({raw.encode(), quote(raw).encode(), quote_plus(raw).encode()})


# --- A tap in front of the receiver, keeping the exported bytes ---------------------------


class _Tap:
    """Forwards OTLP/HTTP requests to a receiver and keeps each body, decompressed."""

    def __init__(self, target: str) -> None:
        self.bodies: list[bytes] = []
        tap = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    tap.bodies.append(gzip.decompress(body))
                elif encoding == "deflate":
                    tap.bodies.append(zlib.decompress(body))
                else:
                    tap.bodies.append(body)
                forward = urllib.request.Request(target, data=body, method="POST")
                for name in ("Content-Type", "Content-Encoding"):
                    if self.headers.get(name):
                        forward.add_header(name, self.headers[name])
                with urllib.request.urlopen(forward, timeout=30) as reply:
                    answer = reply.read()
                    status = reply.status
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def payload(self) -> bytes:
        return b"".join(self.bodies)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def tap(http_receiver: OtlpHttpReceiver) -> Iterator[_Tap]:
    tapped = _Tap(http_receiver.traces_url)
    yield tapped
    tapped.stop()


# --- The LLM provider: the examples' stub, recording the headers it gets --------------------


def _load_stub_handler() -> type[BaseHTTPRequestHandler]:
    spec = importlib.util.spec_from_file_location("_example_stub_llm", EXAMPLES / "stub_llm.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: type[BaseHTTPRequestHandler] = module._Handler
    return handler


@dataclass
class _Provider:
    base_url: str
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def llm_provider() -> Iterator[_Provider]:
    """The stub on a free port, standing in for a third-party LLM provider."""
    provider = _Provider("")

    class Recording(_load_stub_handler()):  # type: ignore[misc]
        def do_POST(self) -> None:  # noqa: N802 - http.server's method name
            provider.headers.append({name.lower(): value for name, value in self.headers.items()})
            super().do_POST()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield provider
    server.shutdown()
    server.server_close()
    thread.join()


# --- Running the services ------------------------------------------------------------------


def _environment(**extra: str) -> dict[str, str]:
    # Nothing of the test process's own OpenTelemetry or spanstamp setup leaks in.
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANSTAMP_"))}
    environ["PYTHONUNBUFFERED"] = "1"
    environ.update(extra)
    return environ


@dataclass
class _Service:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def service_b(tmp_path: Path, otlp: str, llm: str, *flags: str, **environ: str) -> Iterator[_Service]:
    """Service B as its own process until the block ends; its log (stderr) goes to a file."""
    log = tmp_path / f"service-b-{uuid.uuid4().hex[:8]}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(SERVICES / "service_b.py"), "--otlp", otlp, "--llm", llm, *flags],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_environment(**environ),
            text=True,
        )
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=120)
        except queue.Empty:
            first = ""
        assert first.startswith("PORT "), f"service B did not start:\n{log.read_text(errors='replace')}"
        yield _Service(f"http://127.0.0.1:{int(first.split()[1])}", log)
    finally:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()


def run_service_a(
    otlp: str, b_url: str, session_id: str, *flags: str, **environ: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SERVICES / "service_a.py"), "--otlp", otlp, "--b", b_url]
    command += ["--session", session_id, "--user", EMAIL, *flags]
    return subprocess.run(command, capture_output=True, text=True, env=_environment(**environ), timeout=120)


def _request(url: str, path: str, headers: dict[str, str]) -> int:
    """A raw HTTP client: sends exactly these headers, nothing injected."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _services(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    grouped: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        grouped.setdefault(span.resource.get("service.name", "?"), []).append(span)
    return grouped


# --- One session across services ----------------------------------------------------------


@pytest.mark.parametrize("configured_by", ["arguments", "environment"])
def test_every_span_of_both_services_carries_the_session_and_only_the_user_pseudonym(
    configured_by: str, tmp_path: Path, tap: _Tap, http_receiver: OtlpHttpReceiver, llm_provider: _Provider
) -> None:
    session_id = f"conv-{uuid.uuid4()}"
    if configured_by == "arguments":
        a_options: tuple[str, ...] = ()
        b_options: tuple[str, ...] = ("--trust-baggage", "--hash-user-ids")
        environ = {USER_ID_KEY_ENV: KEY}
    else:
        a_options = b_options = ("--from-environment",)
        environ = {
            USER_ID_KEY_ENV: KEY,
            "SPANSTAMP_PROPAGATE": "1",
            "SPANSTAMP_HASH_USER_IDS": "1",
            "SPANSTAMP_TRUST_BAGGAGE": "session.id,user.id",
        }

    with service_b(tmp_path, tap.url, llm_provider.base_url, *b_options, **environ) as b:
        a = run_service_a(tap.url, b.url, session_id, *a_options, **environ)
        assert a.returncode == 0, a.stderr[-4000:]
        assert a.stdout.startswith("200 ")
        spans = http_receiver.wait_for(A_SPANS + B_SPANS, timeout=60)

    by_service = _services(spans)
    assert sorted(span.name for span in by_service["service-a"]) == ["GET", "a.handle"]
    assert sorted(span.name for span in by_service["service-b"]) == [
        "ChatCompletion",
        "GET /answer",
        "POST",
        "b.answer",
    ]
    assert len({span.trace_id for span in spans}) == 1, "one trace across both services"
    for span in spans:
        assert span.attributes.get("session.id") == session_id, span.name
        assert span.attributes.get("user.id") == PSEUDONYM, span.name

    # The raw user id is nowhere: not in the exported bytes, not in either service's logs,
    # not in the headers that reached the LLM provider.
    payload = tap.payload()
    assert PSEUDONYM.encode() in payload  # the search can find what is there
    assert session_id.encode() in payload
    logs = a.stdout + a.stderr + b.log_text()
    assert "DEBUG httpcore" in a.stderr  # both logs were captured, at debug level
    assert '"GET /answer HTTP/1.1" 200' in b.log_text()
    for form in _forms(EMAIL):
        assert form not in payload
        assert form.decode() not in logs
    (headers,) = llm_provider.headers
    assert f"session.id={quote_plus(session_id)}" in headers["baggage"]
    assert f"user.id={PSEUDONYM}" in headers["baggage"]
    assert spans[0].trace_id in headers["traceparent"]
    for form in _forms(EMAIL):
        assert all(form.decode() not in value for value in headers.values())


# --- The trust boundary ----------------------------------------------------------------------


def test_a_spoofed_user_id_against_a_service_that_trusts_no_baggage_is_not_stamped(
    tmp_path: Path, tap: _Tap, http_receiver: OtlpHttpReceiver, llm_provider: _Provider
) -> None:
    with service_b(tmp_path, tap.url, llm_provider.base_url) as b:  # the default: trust nothing
        trace_id, traceparent = _traceparent()
        status = _request(b.url, "/answer", {"traceparent": traceparent, "baggage": "user.id=admin,session.id=forged"})
        assert status == 200
        spans = http_receiver.wait_for(B_SPANS, timeout=60)

    assert {span.trace_id for span in spans} == {trace_id}
    for span in spans:
        assert "user.id" not in span.attributes, span.name
        assert "session.id" not in span.attributes, span.name
    # Not stamped, yet still forwarded: OpenTelemetry's propagators pass inbound baggage on
    # to every outgoing call: why a gateway must drop it (next test, and the README).
    (headers,) = llm_provider.headers
    assert "user.id=admin" in headers.get("baggage", "")


def test_a_gateway_that_drops_inbound_baggage_forwards_only_its_own_ids(
    tmp_path: Path, tap: _Tap, http_receiver: OtlpHttpReceiver, llm_provider: _Provider
) -> None:
    with service_b(tmp_path, tap.url, llm_provider.base_url, "--gateway-session", "gw-1") as gateway:
        trace_id, traceparent = _traceparent()
        spoofed = {"traceparent": traceparent, "baggage": "user.id=admin,session.id=forged"}
        assert _request(gateway.url, "/answer", spoofed) == 200
        spans = http_receiver.wait_for(B_SPANS, timeout=60)

    assert {span.trace_id for span in spans} == {trace_id}  # the trace still continues
    assert all("user.id" not in span.attributes for span in spans)
    in_session = {span.name for span in spans if span.attributes.get("session.id") == "gw-1"}
    assert in_session == {"b.answer", "ChatCompletion", "POST"}  # the server span started before the scope
    (headers,) = llm_provider.headers
    assert headers["baggage"] == "session.id=gw-1"  # its own id, none of the caller's
    assert trace_id in headers["traceparent"]


# (label, baggage header, the ids a trusting service must stamp from it)
HOSTILE: list[tuple[str, str, dict[str, str]]] = [
    ("a 10 KB header", "session.id=" + "s" * 5000 + ",user.id=" + "u" * 5000, {}),
    ("entries over the id cap", "session.id=" + "s" * 4000 + ",user.id=" + "u" * 300, {}),
    (
        "malformed entries around a good one",
        "session.id=good-3,user.id=ad%0D%0Amin,=nokey,novalue,;;,user.id2=x;prop=1,%%%=bad",
        {"session.id": "good-3"},
    ),
    ("a bidi override and a good user", "session.id=%E2%80%AEevil,user.id=u-4", {"user.id": "u-4"}),
    ("a flood of unknown keys", "session.id=s-5," + ",".join(f"k{n}=v" for n in range(300)), {"session.id": "s-5"}),
]


def test_oversized_and_malformed_baggage_is_dropped_and_every_request_succeeds(
    tmp_path: Path, tap: _Tap, http_receiver: OtlpHttpReceiver, llm_provider: _Provider
) -> None:
    traces: dict[str, tuple[str, dict[str, str]]] = {}
    with service_b(tmp_path, tap.url, llm_provider.base_url, "--trust-baggage") as b:
        for label, header, expected in HOSTILE:
            trace_id, traceparent = _traceparent()
            traces[trace_id] = (label, expected)
            assert _request(b.url, "/answer", {"traceparent": traceparent, "baggage": header}) == 200, label
        spans = http_receiver.wait_for(B_SPANS * len(HOSTILE), timeout=60)

    assert {span.trace_id for span in spans} == set(traces)
    for span in spans:
        label, expected = traces[span.trace_id]
        stamped = {key: span.attributes[key] for key in ("session.id", "user.id") if key in span.attributes}
        assert stamped == expected, (label, span.name)

    log = b.log_text()
    assert "Traceback" not in log
    ours = [line for line in log.splitlines() if line.split(" ", 2)[1:2] == ["spanstamp"]]
    # Dropped quietly: debug lines that name the key, no warnings, none showing a value.
    assert any(line.startswith("DEBUG spanstamp inbound baggage entry user.id dropped") for line in ours)
    assert all(line.startswith("DEBUG ") for line in ours), ours
    assert not any(value in line for line in ours for value in ("admin", "evil", "sss", "uuu"))


# --- Hashing: the raw id reaches neither the exported bytes nor the logs --------------------


def test_with_hash_user_ids_no_raw_user_id_reaches_the_exporter_or_the_logs(
    tap: _Tap, http_receiver: OtlpHttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    provider = spanstamp.configure(
        service_name="hashing", endpoint=tap.url, batch=False, hash_user_ids=KEY, set_global=False
    )
    tracer = provider.get_tracer("tests")
    with caplog.at_level(logging.DEBUG):
        with spanstamp.using_user(EMAIL):
            tracer.start_span("scoped").end()
        with spanstamp.using_attributes(session_id="s-1", user_id=f"  {EMAIL}\n"):
            tracer.start_span("padded").end()
        with openinference_using_user(EMAIL):  # written by another library, hashed all the same
            tracer.start_span("openinference").end()
        with spanstamp.using_user(EMAIL * 20):  # over the id cap: rejected with a warning
            tracer.start_span("rejected").end()
        provider.shutdown()
    spans = {span.name: span for span in http_receiver.wait_for(4)}

    for name in ("scoped", "padded", "openinference"):
        assert spans[name].attributes["user.id"] == PSEUDONYM, name
    assert "user.id" not in spans["rejected"].attributes
    assert "using_user(user_id): got a str of 480 characters" in caplog.text
    payload = tap.payload()
    assert PSEUDONYM.encode() in payload
    for form in _forms(EMAIL):
        assert form not in payload
        assert form.decode() not in caplog.text
