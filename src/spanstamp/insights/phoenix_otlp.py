"""Phoenix's REST span objects turned back into OTLP JSON, the shape the OTLP JSON file exporter writes.

Phoenix stores attributes nested (``{"session": {"id": ...}}``) and its REST API hands them
back flattened to dotted keys, with the few attributes OpenInference sends as JSON strings
(``metadata``, ``llm.prompt_template.variables``, ...) parsed into objects and flattened
too; the span kind comes apart from the attributes. This module undoes all that::

    request = export_request(phoenix_page["data"], {"openinference.project.name": "default"})
    line = json.dumps(request)   # one ExportTraceServiceRequest, as the file exporter writes it

Phoenix keeps times to the microsecond, so nanoseconds come back as whole microseconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from spanstamp.attributes import SPAN_KIND

#: The resource attribute that names a span's Phoenix project (OpenInference's convention).
RESOURCE_PROJECT: Final = "openinference.project.name"
#: The instrumentation scope of the downloaded spans: Phoenix keeps neither scope nor resource.
SCOPE_NAME: Final = "spanstamp.insights.phoenix"
# The attributes Phoenix parses from JSON strings on the way in (phoenix.trace.attributes'
# JSON_STRING_ATTRIBUTES): sent as JSON text, they are written back as JSON text.
_JSON_STRING_ATTRIBUTES: Final = ("metadata", "llm.prompt_template.variables", "tool.parameters", "document.metadata")
# What Phoenix reports as the kind of a span that had no openinference.span.kind.
_NO_KIND: Final = "UNKNOWN"
_STATUS_CODES: Final = {"UNSET": 0, "OK": 1, "ERROR": 2}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND: Final = timedelta(microseconds=1)


def export_request(spans: list[Any], resource: Mapping[str, Any]) -> dict[str, Any]:
    """One OTLP ``ExportTraceServiceRequest`` (JSON form) holding ``spans``, Phoenix REST span objects.

    request = export_request(page["data"], {"openinference.project.name": "default"})
    request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]   # hex, as Phoenix gave it
    """
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": key_values(dict(resource))},
                "scopeSpans": [{"scope": {"name": SCOPE_NAME}, "spans": [otlp_span(span) for span in spans]}],
            }
        ]
    }


def otlp_span(span: Any) -> dict[str, Any]:
    """One Phoenix REST span object as an OTLP JSON span (hex ids, nanosecond strings, typed attribute values).

    otlp_span({"name": "turn", "context": {"trace_id": "ab" * 16, "span_id": "cd" * 8}, ...})
    # -> {"traceId": "abab...", "spanId": "cdcd...", "name": "turn", "startTimeUnixNano": "...", ...}
    """
    if not isinstance(span, Mapping):
        return {}  # the file reader reports it as a span without ids
    raw_context = span.get("context")
    context: Mapping[str, Any] = raw_context if isinstance(raw_context, Mapping) else {}
    out: dict[str, Any] = {}
    for key, value in (("traceId", context.get("trace_id")), ("spanId", context.get("span_id"))):
        if isinstance(value, str) and value:
            out[key] = value
    if isinstance(span.get("parent_id"), str) and span["parent_id"]:
        out["parentSpanId"] = span["parent_id"]
    out["name"] = span.get("name") or ""
    for key, field in (("startTimeUnixNano", "start_time"), ("endTimeUnixNano", "end_time")):
        nanos = unix_nanos(span.get(field))
        if nanos is not None:
            out[key] = str(nanos)
    attributes = dict(span.get("attributes") or {}) if isinstance(span.get("attributes"), Mapping) else {}
    kind = span.get("span_kind")
    if isinstance(kind, str) and kind and kind != _NO_KIND and SPAN_KIND not in attributes:
        attributes[SPAN_KIND] = kind
    # Empty lists and zero codes are left out, as the file exporter (proto3 JSON) leaves them out.
    if attributes:
        out["attributes"] = key_values(_rejoin_json_strings(attributes))
    events = [_event(event) for event in span.get("events") or () if isinstance(event, Mapping)]
    if events:
        out["events"] = events
    out["status"] = _status(span.get("status_code"), span.get("status_message"))
    return out


def unix_nanos(value: Any) -> int | None:
    """Nanoseconds since the epoch of an ISO 8601 time as Phoenix writes it (UTC when it has no offset).

    unix_nanos("2026-12-01T10:00:00.123456+00:00")   # -> 1796119200123456000
    """
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    # Integer arithmetic: a float timestamp() would be off by up to a few hundred nanoseconds.
    return (moment - _EPOCH) // _MICROSECOND * 1000


def key_values(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OTLP ``KeyValue`` list of ``attributes``; nested mappings become dotted keys, None and {} are left out.

    key_values({"session": {"id": "s-1"}, "n": 3})
    # -> [{"key": "session.id", "value": {"stringValue": "s-1"}}, {"key": "n", "value": {"intValue": "3"}}]
    """
    return [{"key": key, "value": any_value(value)} for key, value in _flat(attributes, "") if value is not None]


def any_value(value: Any) -> dict[str, Any]:
    """The OTLP JSON ``AnyValue`` of a JSON value (ints as strings, non-finite doubles as their names).

    any_value(3)   # -> {"intValue": "3"}
    """
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": [{"key": str(k), "value": any_value(v)} for k, v in value.items()]}}
    return {} if value is None else {"stringValue": str(value)}


def _flat(mapping: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):  # an empty one holds nothing an OTLP attribute could carry
            pairs.extend(_flat(value, f"{name}."))
        else:
            pairs.append((name, value))
    return pairs


def _event(event: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nanos = unix_nanos(event.get("timestamp"))
    if nanos is not None:
        out["timeUnixNano"] = str(nanos)
    out["name"] = event.get("name") or ""
    raw = event.get("attributes")
    if isinstance(raw, Mapping) and raw:
        out["attributes"] = key_values(raw)
    return out


def _status(code: Any, message: Any) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if isinstance(message, str) and message:
        status["message"] = message
    number = _STATUS_CODES.get(code if isinstance(code, str) else "", 0)
    if number:
        status["code"] = number
    return status


def _json_group(key: str) -> str | None:
    """The JSON-string attribute ``key`` is a part of (``metadata`` for ``metadata.a.b``), or None."""
    best: str | None = None
    for name in _JSON_STRING_ATTRIBUTES:
        if key.startswith(f"{name}."):
            group = name
        else:
            at = key.find(f".{name}.")
            if at < 0:
                continue
            group = key[: at + 1 + len(name)]
        if best is None or len(group) < len(best):
            best = group
    return best


def _rejoin_json_strings(attributes: dict[str, Any]) -> dict[str, Any]:
    """Put the flattened parts of each JSON-string attribute back together as its JSON text."""
    parts: dict[str, list[tuple[list[str], Any]]] = {}
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        group = _json_group(key)
        if group is not None:
            parts.setdefault(group, []).append((key[len(group) + 1 :].split("."), value))
            out.setdefault(group, None)  # keeps the attribute's place among the others
        elif key.endswith(_JSON_STRING_ATTRIBUTES) and not isinstance(value, str) and value is not None:
            out[key] = json.dumps(value, ensure_ascii=False)  # a JSON array or number Phoenix parsed
        else:
            out[key] = value
    for group, pieces in parts.items():
        nested = _nest(pieces)
        if nested is None:  # overlapping keys: no one JSON object; keep Phoenix's dotted keys
            del out[group]
            out.update((f"{group}.{'.'.join(path)}", value) for path, value in pieces)
        else:
            out[group] = json.dumps(_arrays(nested), ensure_ascii=False)
    return out


def _nest(pieces: list[tuple[list[str], Any]]) -> dict[str, Any] | None:
    root: dict[str, Any] = {}
    for path, value in pieces:
        node = root
        for step in path[:-1]:
            child = node.setdefault(step, {})
            if not isinstance(child, dict):
                return None
            node = child
        if path[-1] in node:
            return None
        node[path[-1]] = value
    return root


def _arrays(node: Any) -> Any:
    """Phoenix's rule backwards: an object keyed 0..n-1 whose values are all objects was a JSON array."""
    if not isinstance(node, dict):
        return node
    converted = {key: _arrays(value) for key, value in node.items()}
    indexes = sorted(int(key) for key in converted if key.isdigit() and key == str(int(key)))
    if converted and indexes == list(range(len(converted))) and all(isinstance(v, dict) for v in node.values()):
        return [converted[str(i)] for i in indexes]
    return converted
