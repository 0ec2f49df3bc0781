"""Spans go out through the real OTLP exporters and arrive stamped at a real receiver.

Every test builds its pipeline with ``spanstamp.configure(..., set_global=False)`` (or the
SDK by hand, for the contrast with ``install()``), sends spans over loopback with the
real HTTP/protobuf or gRPC exporter, and asserts on what the receiver decoded from protobuf.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spanstamp
from otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, ReceivedSpan, decode_any_value
from spanstamp import using_attributes, using_metadata, using_session, using_tags, using_user

HTTP = "http/protobuf"
GRPC = "grpc"
PROTOCOLS = [HTTP, GRPC]
STAMPED = ("session.id", "user.id", "metadata", "tag.tags", "gen_ai.conversation.id")

Receiver = OtlpHttpReceiver | OtlpGrpcReceiver


# Only the variables a test sets may steer its pipeline (conftest.py).
pytestmark = pytest.mark.usefixtures("no_outside_settings")


def _receiver(protocol: str, request: pytest.FixtureRequest) -> tuple[Receiver, str]:
    """The receiver for ``protocol`` and the endpoint configure() takes for it."""
    if protocol == HTTP:
        http_receiver: OtlpHttpReceiver = request.getfixturevalue("http_receiver")
        return http_receiver, http_receiver.traces_url
    grpc_receiver: OtlpGrpcReceiver = request.getfixturevalue("grpc_receiver")
    return grpc_receiver, grpc_receiver.endpoint


def _emit_one(
    provider: TracerProvider, name: str, *, session_id: str | None = None, user_id: str | None = None
) -> None:
    """One span named ``name`` inside using_session()/using_user() for the ids given."""
    with ExitStack() as scopes:
        if session_id is not None:
            scopes.enter_context(using_session(session_id))
        if user_id is not None:
            scopes.enter_context(using_user(user_id))
        with provider.get_tracer("t").start_as_current_span(name):
            pass


def _send_one(
    provider: TracerProvider, name: str, *, session_id: str | None = None, user_id: str | None = None
) -> None:
    """_emit_one(), then shut the provider down, which delivers the span."""
    try:
        _emit_one(provider, name, session_id=session_id, user_id=user_id)
    finally:
        provider.shutdown()


def _only_span(receiver: Receiver) -> ReceivedSpan:
    """The one span the receiver got; fails if it got any other number."""
    (span,) = receiver.spans
    return span


def _emit_conversation(provider: TracerProvider) -> None:
    """An outer and an inner span in nested scopes, and one span outside any scope."""
    tracer = provider.get_tracer("spanstamp.tests.export")
    with (
        using_attributes(session_id="s-outer", user_id="u-outer", metadata={"tier": "free", "region": "eu"}),
        using_tags(["web"]),
        tracer.start_as_current_span("outer"),
        using_session("s-inner"),
        using_user("u-inner"),
        using_metadata({"tier": "pro"}),
        using_tags(["beta", "web"]),
        tracer.start_as_current_span("inner"),
    ):
        pass
    with tracer.start_as_current_span("outside") as span:
        span.set_attributes({"count": 3, "ok": True, "ratio": 0.5, "names": ["a", "b"]})


def _assert_conversation(spans: list[ReceivedSpan], service_name: str) -> None:
    by_name = {span.name: span for span in spans}
    assert sorted(by_name) == ["inner", "outer", "outside"]
    outer, inner, outside = by_name["outer"], by_name["inner"], by_name["outside"]

    assert outer.attributes["session.id"] == "s-outer"
    assert outer.attributes["user.id"] == "u-outer"
    assert json.loads(outer.attributes["metadata"]) == {"tier": "free", "region": "eu"}
    assert outer.attributes["tag.tags"] == ["web"]

    # The inner scope wins for ids; metadata merges key by key; tags accumulate.
    assert inner.attributes["session.id"] == "s-inner"
    assert inner.attributes["user.id"] == "u-inner"
    assert json.loads(inner.attributes["metadata"]) == {"tier": "pro", "region": "eu"}
    assert inner.attributes["tag.tags"] == ["web", "beta"]
    assert inner.parent_span_id == outer.span_id
    assert inner.trace_id == outer.trace_id

    assert not set(STAMPED) & set(outside.attributes)
    assert outside.attributes == {"count": 3, "ok": True, "ratio": 0.5, "names": ["a", "b"]}
    assert outside.parent_span_id is None
    assert outside.trace_id != outer.trace_id

    for span in spans:
        assert span.resource["service.name"] == service_name
        assert span.dropped_attributes_count == 0
        assert span.scope_name == "spanstamp.tests.export"


# --- Both protocols, explicit arguments ---------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_nested_scopes_arrive_stamped(protocol: str, request: pytest.FixtureRequest) -> None:
    receiver, endpoint = _receiver(protocol, request)
    provider = spanstamp.configure(
        protocol=protocol, endpoint=endpoint, service_name=f"chatbot-{protocol}", set_global=False
    )
    try:
        _emit_conversation(provider)
        assert provider.force_flush(10_000)
        _assert_conversation(receiver.wait_for(3), f"chatbot-{protocol}")
    finally:
        provider.shutdown()
    assert len(receiver.spans) == 3  # each span exported once


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("deliver", ["force_flush", "shutdown"])
def test_flush_and_shutdown_deliver_before_returning(
    protocol: str, deliver: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A minute between scheduled batches: only force_flush()/shutdown() can send in time.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    receiver, endpoint = _receiver(protocol, request)
    provider = spanstamp.configure(protocol=protocol, endpoint=endpoint, service_name="flush", set_global=False)
    try:
        _emit_one(provider, "queued", session_id="s-flush")
        assert receiver.spans == []
        if deliver == "force_flush":
            assert provider.force_flush(10_000)
        else:
            provider.shutdown()
        # No waiting: the spans are at the receiver once the call has returned.
        span = _only_span(receiver)
        assert span.name == "queued"
        assert span.attributes["session.id"] == "s-flush"
        assert span.resource["service.name"] == "flush"
    finally:
        provider.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_headers_argument_reaches_the_receiver(protocol: str, request: pytest.FixtureRequest) -> None:
    receiver, endpoint = _receiver(protocol, request)
    provider = spanstamp.configure(
        protocol=protocol, endpoint=endpoint, headers={"x-api-key": "key-1"}, set_global=False
    )
    _send_one(provider, "with-headers", user_id="u-1")
    span = _only_span(receiver)
    assert span.attributes["user.id"] == "u-1"
    assert receiver.requests[0].headers["x-api-key"] == "key-1"


def test_protocol_argument_is_normalized(grpc_receiver: OtlpGrpcReceiver) -> None:
    provider = spanstamp.configure(protocol="  GRPC ", endpoint=grpc_receiver.endpoint, set_global=False)
    _send_one(provider, "normalized", session_id="s-grpc")
    span = _only_span(grpc_receiver)
    assert span.attributes["session.id"] == "s-grpc"


# --- Environment variables ------------------------------------------------------------------


def test_grpc_from_environment(grpc_receiver: OtlpGrpcReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=t-1")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env-chatbot")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=ai")
    provider = spanstamp.configure(set_global=False)
    try:
        _emit_conversation(provider)
    finally:
        provider.shutdown()
    spans = grpc_receiver.spans
    _assert_conversation(spans, "env-chatbot")
    for span in spans:
        assert span.resource["deployment.environment"] == "test"
        assert span.resource["team"] == "ai"
    assert grpc_receiver.requests[0].headers["x-tenant"] == "t-1"


def test_http_is_the_default_and_base_endpoint_from_environment(
    http_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No protocol anywhere: http/protobuf; the base URL gets /v1/traces appended;
    # the exporter compresses with gzip and the receiver decodes it.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")  # empty counts as unset
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env-http")
    provider = spanstamp.configure(set_global=False)
    try:
        _emit_conversation(provider)
    finally:
        provider.shutdown()
    _assert_conversation(http_receiver.spans, "env-http")
    assert {r.content_encoding for r in http_receiver.requests} == {"gzip"}


def test_traces_protocol_variable_wins_over_the_general_one(
    grpc_receiver: OtlpGrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", grpc_receiver.endpoint)
    provider = spanstamp.configure(set_global=False)
    _send_one(provider, "traces-protocol", session_id="s-traces")
    span = _only_span(grpc_receiver)
    assert span.attributes["session.id"] == "s-traces"


def test_arguments_win_over_environment(
    http_receiver: OtlpHttpReceiver, grpc_receiver: OtlpGrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env-name")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=env,region=eu")
    provider = spanstamp.configure(
        protocol="http/protobuf",
        endpoint=http_receiver.traces_url,
        service_name="arg-name",
        resource_attributes={"team": "arg"},
        set_global=False,
    )
    _send_one(provider, "args", session_id="s-args")
    assert grpc_receiver.spans == []
    span = _only_span(http_receiver)
    assert span.attributes["session.id"] == "s-args"
    assert span.resource["service.name"] == "arg-name"
    assert span.resource["team"] == "arg"
    assert span.resource["region"] == "eu"


# --- The attribute count limit ------------------------------------------------------------


def _flood(span_attributes: int) -> dict[str, str]:
    # What an LLM instrumentor does with a long conversation: flattened message lists.
    flat = {}
    for i in range(span_attributes // 2):
        flat[f"llm.input_messages.{i}.message.role"] = "user" if i % 2 else "assistant"
        flat[f"llm.input_messages.{i}.message.content"] = f"message {i}"
    return flat


LIMIT_CASES = [
    pytest.param(HTTP, None, id="http-default-128"),
    pytest.param(GRPC, None, id="grpc-default-128"),
    pytest.param(HTTP, 16, id="http-env-16"),
    pytest.param(GRPC, 16, id="grpc-env-16"),
]
STAMPED_ON_FLOODED = 4  # session.id, user.id, metadata, tag.tags
FLOOD = _flood(1000)


def _send_flooded_span(
    protocol: str, limit: int | None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[ReceivedSpan, ReceivedSpan, int]:
    """Through configure(): one span that sets 1,000 attributes after start, one short span."""
    if limit is not None:
        monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", str(limit))
    receiver, endpoint = _receiver(protocol, request)
    provider = spanstamp.configure(protocol=protocol, endpoint=endpoint, service_name="limits", set_global=False)
    try:
        tracer = provider.get_tracer("t")
        with using_attributes(session_id="s-long", user_id="u-long", metadata={"k": "v"}, tags=["llm"]):
            with tracer.start_as_current_span("llm-call") as span:
                span.set_attributes(FLOOD)
            with tracer.start_as_current_span("short-call") as span:
                span.set_attribute("llm.model_name", "stub")
    finally:
        provider.shutdown()
    return receiver.by_name("llm-call"), receiver.by_name("short-call"), 128 if limit is None else limit


@pytest.mark.parametrize(("protocol", "limit"), LIMIT_CASES)
def test_attribute_count_limit_is_kept_and_drops_are_reported(
    protocol: str, limit: int | None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_span, short_span, max_attributes = _send_flooded_span(protocol, limit, request, monkeypatch)
    attributes = long_span.attributes
    assert len(attributes) <= max_attributes
    # Every attribute set is either on the span or counted as dropped.
    assert long_span.dropped_attributes_count == STAMPED_ON_FLOODED + len(FLOOD) - len(attributes)
    assert long_span.dropped_attributes_count >= STAMPED_ON_FLOODED + len(FLOOD) - max_attributes
    # The newest attributes are kept, as the SDK keeps them; the oldest made room.
    assert attributes["llm.input_messages.499.message.content"] == "message 499"
    assert "llm.input_messages.0.message.content" not in attributes

    assert short_span.dropped_attributes_count == 0
    assert short_span.attributes["session.id"] == "s-long"
    assert short_span.attributes["user.id"] == "u-long"
    assert short_span.attributes["llm.model_name"] == "stub"


@pytest.mark.parametrize(("protocol", "limit"), LIMIT_CASES)
def test_stamped_ids_survive_the_attribute_count_limit(
    protocol: str, limit: int | None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_span, _, max_attributes = _send_flooded_span(protocol, limit, request, monkeypatch)
    attributes = long_span.attributes
    assert "session.id" in attributes
    assert "user.id" in attributes
    assert "metadata" in attributes
    assert "tag.tags" in attributes
    assert attributes["session.id"] == "s-long"
    assert attributes["user.id"] == "u-long"
    assert json.loads(attributes["metadata"]) == {"k": "v"}
    assert attributes["tag.tags"] == ["llm"]
    # Restoring the ids keeps the span within the limit and the drop count exact.
    assert len(attributes) <= max_attributes
    assert long_span.dropped_attributes_count == STAMPED_ON_FLOODED + len(FLOOD) - len(attributes)
    assert attributes["llm.input_messages.499.message.content"] == "message 499"


def test_install_next_to_a_separate_exporter_loses_ids_to_the_limit(http_receiver: OtlpHttpReceiver) -> None:
    # Documents the SDK behaviour that configure() works around: BoundedAttributes evicts
    # the oldest key, and install() cannot restore what the exporting processor sees.
    # If this starts failing, the SDK changed (and the docs about install() should too).
    provider = TracerProvider(resource=Resource.create({"service.name": "installed"}))
    provider.add_span_processor(BatchSpanProcessor(HttpSpanExporter(endpoint=http_receiver.traces_url)))
    spanstamp.install(provider)
    try:
        tracer = provider.get_tracer("t")
        with using_session("s-evicted"), using_user("u-evicted"):
            with tracer.start_as_current_span("llm-call") as span:
                span.set_attributes(FLOOD)
            with tracer.start_as_current_span("short-call") as span:
                span.set_attribute("llm.model_name", "stub")
    finally:
        provider.shutdown()

    short_span = http_receiver.by_name("short-call")
    assert short_span.attributes["session.id"] == "s-evicted"
    assert short_span.attributes["user.id"] == "u-evicted"

    long_span = http_receiver.by_name("llm-call")
    assert "session.id" not in long_span.attributes
    assert "user.id" not in long_span.attributes
    assert len(long_span.attributes) == 128
    assert long_span.dropped_attributes_count == 2 + len(FLOOD) - 128


# --- A bad protocol ---------------------------------------------------------------------


def test_bad_protocol_falls_back_to_http_with_a_warning(
    http_receiver: OtlpHttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        provider = spanstamp.configure(protocol="thrift", endpoint=http_receiver.traces_url, set_global=False)
    try:
        warnings = [r for r in caplog.records if r.name == "spanstamp" and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert "configure(protocol)" in message
        assert "unsupported OTLP protocol" in message
        assert message.endswith("; using http/protobuf")
        _emit_one(provider, "fallback", session_id="s-fallback")
    finally:
        provider.shutdown()
    span = _only_span(http_receiver)
    assert span.attributes["session.id"] == "s-fallback"


def test_bad_protocol_from_environment_falls_back_too(
    http_receiver: OtlpHttpReceiver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.url)
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        provider = spanstamp.configure(set_global=False)
    try:
        assert any("unsupported OTLP protocol" in r.getMessage() for r in caplog.records if r.name == "spanstamp")
        _emit_one(provider, "fallback", user_id="u-fallback")
    finally:
        provider.shutdown()
    span = _only_span(http_receiver)
    assert span.attributes["user.id"] == "u-fallback"


def test_bad_protocol_raises_in_strict_mode(http_receiver: OtlpHttpReceiver) -> None:
    spanstamp.configure_rules(strict=True)
    try:
        with pytest.raises(ValueError, match=r"configure\(protocol\): unsupported OTLP protocol"):
            spanstamp.configure(protocol="thrift", endpoint=http_receiver.traces_url, set_global=False)
    finally:
        spanstamp.configure_rules(strict=False)
    assert http_receiver.requests == []


# --- The receiver's own decoding ---------------------------------------------------------


def test_receiver_decodes_every_any_value_kind() -> None:
    kv = common_pb2.KeyValue
    value = common_pb2.AnyValue(
        kvlist_value=common_pb2.KeyValueList(
            values=[
                kv(key="s", value=common_pb2.AnyValue(string_value="x")),
                kv(key="i", value=common_pb2.AnyValue(int_value=-7)),
                kv(key="b", value=common_pb2.AnyValue(bool_value=False)),
                kv(key="d", value=common_pb2.AnyValue(double_value=1.5)),
                kv(key="raw", value=common_pb2.AnyValue(bytes_value=b"\x00\x01")),
                kv(key="empty", value=common_pb2.AnyValue()),
                kv(
                    key="a",
                    value=common_pb2.AnyValue(
                        array_value=common_pb2.ArrayValue(
                            values=[common_pb2.AnyValue(int_value=1), common_pb2.AnyValue(string_value="two")]
                        )
                    ),
                ),
            ]
        )
    )
    assert decode_any_value(value) == {
        "s": "x",
        "i": -7,
        "b": False,
        "d": 1.5,
        "raw": b"\x00\x01",
        "empty": None,
        "a": [1, "two"],
    }
