"""Phoenix's REST span objects back to OTLP JSON (spanstamp.insights.phoenix_otlp), and download()'s
checks that need no server. No Phoenix here: the span objects below have the shape Phoenix 20's
``GET /v1/projects/{project}/spans`` answers with (tests/test_insights_phoenix.py reads real ones).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

import servers
from spanstamp.insights.phoenix import PhoenixError, download
from spanstamp.insights.phoenix_otlp import any_value, export_request, key_values, otlp_span, unix_nanos

TRACE_ID = "d63870d8db2c8a4e1325db325720dad3"


def phoenix_span(**fields: Any) -> dict[str, Any]:
    """A span object as Phoenix's REST API writes it."""
    span: dict[str, Any] = {
        "id": "U3Bhbjox",
        "name": "turn",
        "context": {"trace_id": TRACE_ID, "span_id": "ec144c173dd78747"},
        "span_kind": "UNKNOWN",
        "parent_id": None,
        "start_time": "2026-11-30T00:53:20.123457+00:00",
        "end_time": "2026-11-30T00:53:21.623457+00:00",
        "status_code": "UNSET",
        "status_message": "",
        "attributes": {},
        "events": [],
    }
    return span | fields


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in span.get("attributes", [])}


def test_times_become_exact_nanosecond_strings() -> None:
    span = otlp_span(phoenix_span())
    assert span["startTimeUnixNano"] == "1796000000123457000"
    assert span["endTimeUnixNano"] == "1796000001623457000"
    # Integer arithmetic: timestamp() * 1e9 would give ...123457024 here.
    assert unix_nanos("2026-11-30T00:53:20.123457+00:00") == 1_796_000_000_123_457_000
    assert unix_nanos("2026-11-30T00:53:20.123457Z") == 1_796_000_000_123_457_000
    assert unix_nanos("2026-11-30T01:53:20.123457+01:00") == 1_796_000_000_123_457_000
    assert unix_nanos("2026-11-30T00:53:20") == 1_796_000_000_000_000_000  # no offset: UTC
    assert unix_nanos("yesterday") is None
    assert unix_nanos(None) is None


def test_the_span_shape_is_the_file_exporter_s() -> None:
    span = otlp_span(phoenix_span(parent_id="0123456789abcdef", status_code="ERROR", status_message="boom"))
    assert span == {
        "traceId": TRACE_ID,
        "spanId": "ec144c173dd78747",
        "parentSpanId": "0123456789abcdef",
        "name": "turn",
        "startTimeUnixNano": "1796000000123457000",
        "endTimeUnixNano": "1796000001623457000",
        "status": {"message": "boom", "code": 2},
    }
    # proto3 JSON leaves defaults out: no attributes, no events, an UNSET status as {}.
    assert otlp_span(phoenix_span())["status"] == {}
    assert otlp_span(phoenix_span(status_code="OK"))["status"] == {"code": 1}


def test_the_span_kind_goes_back_among_the_attributes_unless_phoenix_made_it_up() -> None:
    assert attrs(otlp_span(phoenix_span(span_kind="CHAIN"))) == {"openinference.span.kind": {"stringValue": "CHAIN"}}
    # Phoenix reports UNKNOWN for a span that had no kind at all.
    assert "attributes" not in otlp_span(phoenix_span(span_kind="UNKNOWN"))


def test_values_keep_their_otlp_types() -> None:
    assert any_value("s") == {"stringValue": "s"}
    assert any_value(True) == {"boolValue": True}  # not an int
    assert any_value(2**62) == {"intValue": str(2**62)}  # a string, as in OTLP JSON
    assert any_value(1.0) == {"doubleValue": 1.0}
    assert any_value(float("nan")) == {"doubleValue": "NaN"}
    assert any_value(float("-inf")) == {"doubleValue": "-Infinity"}
    assert any_value(["a", "b"]) == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
    assert any_value({"k": 1}) == {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "1"}}]}}


def test_nested_attribute_forms_become_dotted_keys_and_none_is_left_out() -> None:
    assert key_values({"session": {"id": "s-1"}, "user.id": "u-1", "gone": None, "empty": {}}) == [
        {"key": "session.id", "value": {"stringValue": "s-1"}},
        {"key": "user.id", "value": {"stringValue": "u-1"}},
    ]


def test_session_end_events_keep_their_attributes() -> None:
    event = {
        "name": "session.end",
        "timestamp": "2026-11-30T00:53:20.123457+00:00",
        "attributes": {"session.id": "s-1", "spanstamp.session.end_reason": "bye"},
    }
    (got,) = otlp_span(phoenix_span(events=[event]))["events"]
    assert got == {
        "timeUnixNano": "1796000000123457000",
        "name": "session.end",
        "attributes": [
            {"key": "session.id", "value": {"stringValue": "s-1"}},
            {"key": "spanstamp.session.end_reason", "value": {"stringValue": "bye"}},
        ],
    }


def test_json_string_attributes_are_json_text_again() -> None:
    flattened = {
        "metadata.plan": "pro",
        "metadata.nested.k": [1, 2],
        "metadata.docs.0.a": 1,
        "metadata.docs.1.a": 2,
        "llm.prompt_template.variables.city": "Paris",
        "retrieval.documents.0.document.metadata.source": "wiki",
        "session.id": "s-1",
    }
    got = attrs(otlp_span(phoenix_span(attributes=flattened)))
    assert json.loads(got["metadata"]["stringValue"]) == {
        "plan": "pro",
        "nested": {"k": [1, 2]},
        "docs": [{"a": 1}, {"a": 2}],
    }
    assert json.loads(got["llm.prompt_template.variables"]["stringValue"]) == {"city": "Paris"}
    assert json.loads(got["retrieval.documents.0.document.metadata"]["stringValue"]) == {"source": "wiki"}
    assert got["session.id"] == {"stringValue": "s-1"}
    assert len(got) == 4
    # Metadata that was a JSON array comes back as an array value; it is JSON text again.
    assert attrs(otlp_span(phoenix_span(attributes={"metadata": [1, 2]}))) == {"metadata": {"stringValue": "[1, 2]"}}
    # Keys that overlap fit no one JSON object: Phoenix's dotted keys are kept as they are.
    overlapping = attrs(otlp_span(phoenix_span(attributes={"metadata.a": 1, "metadata.a.b": 2})))
    assert overlapping == {"metadata.a": {"intValue": "1"}, "metadata.a.b": {"intValue": "2"}}


def test_a_page_is_one_export_request() -> None:
    request = export_request([phoenix_span(), phoenix_span(name="second")], {"openinference.project.name": "p"})
    (resource_spans,) = request["resourceSpans"]
    assert resource_spans["resource"] == {
        "attributes": [{"key": "openinference.project.name", "value": {"stringValue": "p"}}]
    }
    (scope_spans,) = resource_spans["scopeSpans"]
    assert scope_spans["scope"] == {"name": "spanstamp.insights.phoenix"}
    assert [s["name"] for s in scope_spans["spans"]] == ["turn", "second"]


@pytest.mark.parametrize(
    ("url", "project", "message"),
    [
        ("127.0.0.1:6006", "default", "must start with http:// or https://"),
        ("ftp://127.0.0.1", "default", "must start with http:// or https://"),
        ("http://127.0.0.1:6006", "", "project name must be a non-empty string"),
        ("http://127.0.0.1:6006", "a/b", r"has / \? or #"),
        ("http://user:s3cret@127.0.0.1:6006", "default", r"^the Phoenix URL must not carry a user or password: set"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(url: str, project: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(PhoenixError, match=message):
        download(url, project, tmp_path / "out.jsonl", progress=False)


@pytest.mark.parametrize("page_size", [0, 1001, True, 2.5])
def test_page_size_is_one_to_phoenix_s_maximum(page_size: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="page_size"):
        download("http://127.0.0.1:6006", "default", tmp_path / "out.jsonl", page_size=page_size)


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    (port,) = servers.free_ports(1)  # nothing listens there
    with pytest.raises(PhoenixError, match=rf"^Phoenix at http://127.0.0.1:{port} cannot be reached \(") as raised:
        download(f"http://127.0.0.1:{port}/", "default", tmp_path / "out.jsonl", progress=False, timeout=5)
    assert raised.value.status is None
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_never_answers_is_a_timeout(tmp_path: Path) -> None:
    # A socket that listens and never answers: the kernel takes the connection, nobody replies.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(PhoenixError, match=r"^Phoenix at http://127.0.0.1:\d+ did not answer within 0.5 s$"):
            download(f"http://127.0.0.1:{port}", "default", tmp_path / "out.jsonl", progress=False, timeout=0.5)


@pytest.mark.parametrize("key", ["line\nbreak", "clé"])
def test_an_api_key_no_header_can_carry_is_refused_without_showing_it(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PhoenixError, match=r"^download\(api_key\) is not printable ASCII") as given:
        download("http://127.0.0.1:6006", "default", tmp_path / "out.jsonl", progress=False, api_key=key)
    monkeypatch.setenv("PHOENIX_API_KEY", key)
    with pytest.raises(PhoenixError, match=r"^PHOENIX_API_KEY is not printable ASCII") as from_env:
        download("http://127.0.0.1:6006", "default", tmp_path / "out.jsonl", progress=False)
    assert key not in str(given.value)
    assert key not in str(from_env.value)
