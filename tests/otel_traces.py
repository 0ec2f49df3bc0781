"""Finished SDK spans as rows of ``otel_traces``, the table the Collector's ClickHouse exporter writes.

``load`` creates the table with the exporter's schema and inserts the spans as the
exporter's ``pushTraceData`` makes its rows: hex ids, the start as DateTime64(9), the
duration in ns, kind and status as enum names, every attribute value as a string::

    load(chdb_session, "otel_traces", scenario_spans())
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

# The exporter's CREATE TABLE (exporter/clickhouseexporter/internal/sql_templates/traces_table.sql,
# with its MergeTree engine and no TTL). Older releases lack ScopeName/ScopeVersion and have
# Duration Int64; the query reads neither difference.
_DDL = """
CREATE TABLE {table} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""
# traceutil.StatusCodeStr in older exporters; ptrace's StatusCode.String() in newer ones.
PROTO_STATUS = {
    StatusCode.UNSET: "STATUS_CODE_UNSET",
    StatusCode.OK: "STATUS_CODE_OK",
    StatusCode.ERROR: "STATUS_CODE_ERROR",
}
SHORT_STATUS = {StatusCode.UNSET: "Unset", StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}
# The rows as JSON, the times as ns integers (fromUnixTimestamp64Nano makes them DateTime64(9)
# exactly, whatever the server's time zone).
_STRUCTURE = (
    "ts Int64, TraceId String, SpanId String, ParentSpanId String, TraceState String, SpanName String, "
    "SpanKind String, ServiceName String, ResourceAttributes Map(String, String), ScopeName String, "
    "ScopeVersion String, SpanAttributes Map(String, String), Duration UInt64, StatusCode String, "
    "StatusMessage String, event_ts Array(Int64), `Events.Name` Array(String), "
    "`Events.Attributes` Array(Map(String, String)), `Links.TraceId` Array(String), `Links.SpanId` Array(String), "
    "`Links.TraceState` Array(String), `Links.Attributes` Array(Map(String, String))"
)
_COLUMNS = ", ".join(
    f"`{name}`"
    for name in (
        "TraceId",
        "SpanId",
        "ParentSpanId",
        "TraceState",
        "SpanName",
        "SpanKind",
        "ServiceName",
        "ResourceAttributes",
        "ScopeName",
        "ScopeVersion",
        "SpanAttributes",
        "Duration",
        "StatusCode",
        "StatusMessage",
        "Events.Name",
        "Events.Attributes",
        "Links.TraceId",
        "Links.SpanId",
        "Links.TraceState",
        "Links.Attributes",
    )
)


def _text(value: Any) -> str:
    """pcommon.Value.AsString(): strings as they are, bools and numbers as Go prints them, arrays as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")  # strconv.FormatFloat(v, 'f', -1, 64)
    return json.dumps([v for v in value], separators=(",", ":"))


def _attributes(attributes: Any) -> dict[str, str]:
    return {key: _text(value) for key, value in (attributes or {}).items()}


def _row(span: ReadableSpan, status: dict[StatusCode, str]) -> dict[str, Any]:
    context, scope = span.get_span_context(), span.instrumentation_scope
    assert context is not None
    assert span.start_time is not None
    assert span.end_time is not None
    return {
        "ts": span.start_time,
        "TraceId": f"{context.trace_id:032x}",
        "SpanId": f"{context.span_id:016x}",
        "ParentSpanId": f"{span.parent.span_id:016x}" if span.parent is not None else "",
        "TraceState": context.trace_state.to_header(),
        "SpanName": span.name,
        "SpanKind": f"SPAN_KIND_{span.kind.name}",
        "ServiceName": _text(span.resource.attributes.get("service.name", "")),
        "ResourceAttributes": _attributes(span.resource.attributes),
        "ScopeName": scope.name if scope is not None else "",
        "ScopeVersion": (scope.version or "") if scope is not None else "",
        "SpanAttributes": _attributes(span.attributes),
        "Duration": span.end_time - span.start_time,
        "StatusCode": status[span.status.status_code],
        "StatusMessage": span.status.description or "",
        "event_ts": [event.timestamp for event in span.events],
        "Events.Name": [event.name for event in span.events],
        "Events.Attributes": [_attributes(event.attributes) for event in span.events],
        "Links.TraceId": [f"{link.context.trace_id:032x}" for link in span.links],
        "Links.SpanId": [f"{link.context.span_id:016x}" for link in span.links],
        "Links.TraceState": [link.context.trace_state.to_header() for link in span.links],
        "Links.Attributes": [_attributes(link.attributes) for link in span.links],
    }


def load(session: Any, table: str, spans: Sequence[ReadableSpan], status: dict[StatusCode, str] = PROTO_STATUS) -> None:
    """Create ``table`` with the exporter's schema and insert ``spans`` as the exporter would."""
    session.query(_DDL.format(table=table))
    if not spans:
        return
    rows = "\n".join(json.dumps(_row(span, status)) for span in spans)
    session.query(
        f"INSERT INTO {table} (Timestamp, `Events.Timestamp`, {_COLUMNS}) "
        f"SELECT fromUnixTimestamp64Nano(ts), arrayMap(t -> fromUnixTimestamp64Nano(t), event_ts), {_COLUMNS} "
        f"FROM format(JSONEachRow, '{_STRUCTURE}', $${rows}$$)"
    )
