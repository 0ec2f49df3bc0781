"""Real OTLP trace receivers on loopback, for tests (a helper module, not a test file).

Both receivers decode the real protobuf the OTLP exporters send
(``ExportTraceServiceRequest``) and keep every span they get as a :class:`ReceivedSpan`::

    with OtlpHttpReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.traces_url)
        ...
        (span,) = receiver.wait_for(1)
        assert span.attributes["session.id"] == "s-1"

    with OtlpGrpcReceiver() as receiver:
        exporter = GrpcOTLPSpanExporter(endpoint=receiver.endpoint)  # http://127.0.0.1:<port>

Servers listen on 127.0.0.1 on a free port (port 0) and stop on ``stop()`` / ``__exit__``.
Spans are recorded before the reply goes out, so once an exporter's ``export()`` (or a
provider's ``force_flush()`` / ``shutdown()``) has returned, its spans are already here.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

__all__ = [
    "OtlpGrpcReceiver",
    "OtlpHttpReceiver",
    "ReceivedRequest",
    "ReceivedSpan",
    "decode_any_value",
    "decode_attributes",
]

TRACES_PATH = "/v1/traces"


# --- Decoding ---------------------------------------------------------------------------


def decode_any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a plain Python value (arrays as lists, kvlists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [decode_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return getattr(value, kind)


def decode_attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict (a repeated key keeps its last value)."""
    return {pair.key: decode_any_value(pair.value) for pair in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived, decoded from protobuf. Ids are lowercase hex."""

    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    span_id: str
    trace_id: str
    parent_span_id: str | None
    dropped_attributes_count: int
    scope_name: str = ""
    #: Each link as (trace id, span id), lowercase hex.
    links: tuple[tuple[str, str], ...] = ()
    #: Each event as (name, attributes).
    events: tuple[tuple[str, dict[str, Any]], ...] = ()


@dataclass(frozen=True)
class ReceivedRequest:
    """One export request: its headers (lowercase names), how many spans it held, and its
    body as the exporter sent it, decompressed (serialized protobuf), for byte searches."""

    headers: dict[str, str]
    span_count: int
    content_encoding: str | None = None
    body: bytes = b""


def decode_request(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = decode_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        attributes=decode_attributes(span.attributes),
                        resource=dict(resource),
                        span_id=span.span_id.hex(),
                        trace_id=span.trace_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        dropped_attributes_count=span.dropped_attributes_count,
                        scope_name=scope_spans.scope.name,
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                        events=tuple((event.name, decode_attributes(event.attributes)) for event in span.events),
                    )
                )
    return spans


# --- Collecting -------------------------------------------------------------------------


@dataclass
class _Collector:
    """Thread-safe store of what a receiver got; the server threads write, the test reads."""

    _spans: list[ReceivedSpan] = field(default_factory=list)
    _requests: list[ReceivedRequest] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest, received: ReceivedRequest) -> None:
        spans = decode_request(request)
        with self._changed:
            self._spans.extend(spans)
            self._requests.append(received)
            self._changed.notify_all()

    @property
    def spans(self) -> list[ReceivedSpan]:
        """A copy of every span received so far, in arrival order."""
        with self._changed:
            return list(self._spans)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A copy of every export request received so far."""
        with self._changed:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least ``count`` spans arrived; return them all, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._spans) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [span.name for span in self._spans]
                    raise TimeoutError(f"expected {count} span(s) within {timeout} s, got {len(names)}: {names}")
                self._changed.wait(left)
            return list(self._spans)

    def by_name(self, name: str) -> ReceivedSpan:
        """The one span received with this name (AssertionError if none or several)."""
        found = [span for span in self.spans if span.name == name]
        assert len(found) == 1, f"expected exactly one span named {name!r}, got {len(found)}"
        return found[0]

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()
            self._requests.clear()


class _Receiver:
    def __init__(self) -> None:
        self._collector = _Collector()

    @property
    def spans(self) -> list[ReceivedSpan]:
        return self._collector.spans

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self._collector.requests

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        return self._collector.wait_for(count, timeout)

    def by_name(self, name: str) -> ReceivedSpan:
        return self._collector.by_name(name)

    def clear(self) -> None:
        self._collector.clear()

    def start(self) -> _Receiver:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- OTLP/HTTP (protobuf) ---------------------------------------------------------------


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if encoding in (None, "", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class _OtlpHttpHandler(http.server.BaseHTTPRequestHandler):
    server: _OtlpHttpServer

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._reply(404, b"", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower() or None
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            raw = _decompress(body, encoding)
            request.ParseFromString(raw)
        except Exception as exc:  # a bad body is the client's error, reported back as 400
            self._reply(400, f"cannot decode request: {exc}".encode(), "text/plain")
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        span_count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        self.server.collector.add(request, ReceivedRequest(headers, span_count, encoding, raw))
        response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self._reply(200, response, "application/x-protobuf")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass


class _OtlpHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, collector: _Collector) -> None:
        self.collector = collector
        super().__init__(("127.0.0.1", 0), _OtlpHttpHandler)


class OtlpHttpReceiver(_Receiver):
    """OTLP/HTTP receiver: ``POST /v1/traces`` with a protobuf body, plain, gzip or deflate."""

    def __init__(self) -> None:
        super().__init__()
        self._server: _OtlpHttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OtlpHttpReceiver:
        if self._server is not None:
            raise RuntimeError("receiver already started")
        self._server = _OtlpHttpServer(self._collector)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-http-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("receiver not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, as in ``OTEL_EXPORTER_OTLP_ENDPOINT``: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        """Full traces URL, as in ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``."""
        return self.url + TRACES_PATH

    def __enter__(self) -> OtlpHttpReceiver:
        return self.start()


# --- OTLP/gRPC --------------------------------------------------------------------------


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: _Collector) -> None:
        self._collector = collector

    def Export(  # noqa: N802 - the gRPC method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        metadata: Mapping[str, Any] = dict(context.invocation_metadata())
        headers = {str(key).lower(): str(value) for key, value in metadata.items()}
        span_count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        received = ReceivedRequest(headers, span_count, headers.get("grpc-encoding"), request.SerializeToString())
        self._collector.add(request, received)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpGrpcReceiver(_Receiver):
    """OTLP/gRPC receiver (insecure) on ``127.0.0.1:<port>``."""

    def __init__(self) -> None:
        super().__init__()
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._port: int | None = None

    def start(self) -> OtlpGrpcReceiver:
        if self._server is not None:
            raise RuntimeError("receiver already started")
        executor = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc-receiver")
        server = grpc.server(executor)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self._collector), server)
        port = server.add_insecure_port("127.0.0.1:0")
        if not port:
            executor.shutdown(wait=False)
            raise RuntimeError("could not bind a gRPC port on 127.0.0.1")
        server.start()
        self._server, self._executor, self._port = server, executor, port
        return self

    def stop(self) -> None:
        server, executor = self._server, self._executor
        self._server = self._executor = None
        if server is not None:
            server.stop(grace=None).wait(timeout=5)
        if executor is not None:
            executor.shutdown(wait=True)

    @property
    def port(self) -> int:
        if self._port is None or self._server is None:
            raise RuntimeError("receiver not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """What the gRPC exporter takes: ``http://127.0.0.1:<port>`` (insecure)."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OtlpGrpcReceiver:
        return self.start()
