"""Known-answer trace data for the insights tests, written as OTLP JSON lines.

Times are seconds after T0 (2026-11-02T00:00:00Z); each span is a dict in the OTLP JSON
shape that the file exporter writes. EXPECTED holds the figures worked out by hand from the
definitions in docs/insights.md (see the comments beside each session).
"""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path
from typing import Any

from spanstamp import attributes as attr

T0 = 1_793_577_600  # 2026-11-02T00:00:00Z
_ids = iter(range(1, 10_000))


def _value(v: Any) -> dict[str, Any]:
    return {"stringValue": v}


def span(
    trace: int,
    start: float,
    end: float,
    *,
    parent: str | None = None,
    session: str | None = None,
    user: str | None = None,
    task: str | None = None,
    input: str | None = None,
    failed: bool | str = False,
    feedback: str | None = None,
    end_event: tuple[str, str | None] | None = None,
    span_id: str | None = None,
) -> dict[str, Any]:
    attrs: dict[str, str] = {}
    for key, value in (
        (attr.SESSION_ID, session),
        (attr.USER_ID, user),
        (attr.TASK_ID, task),
        (attr.INPUT_VALUE, input),
        (attr.FEEDBACK_TASK_ID, feedback),
    ):
        if value is not None:
            attrs[key] = value
    attrs["other.attribute"] = "x"
    out: dict[str, Any] = {
        "traceId": f"{trace:032x}",
        "spanId": span_id or f"{next(_ids):016x}",
        "name": "span",
        "kind": 1,
        "startTimeUnixNano": str(int((T0 + start) * 1_000_000_000)),
        "endTimeUnixNano": str(int((T0 + end) * 1_000_000_000)),
        "attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()]
        + [{"key": "n", "value": {"intValue": "3"}}],
        "status": {"code": failed if isinstance(failed, str) else 2} if failed else {},
    }
    if parent is not None:
        out["parentSpanId"] = parent
    if end_event is not None:
        event_attrs = [{"key": attr.SESSION_ID, "value": _value(end_event[0])}]
        if end_event[1] is not None:
            event_attrs.append({"key": attr.SESSION_END_REASON, "value": _value(end_event[1])})
        out["events"] = [
            {"timeUnixNano": out["endTimeUnixNano"], "name": attr.SESSION_END_EVENT, "attributes": event_attrs}
        ]
    return out


def scenario() -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    # Session A (u1): three turns; an idle hour before the last one (two visits), which
    # failed (a child span's ERROR). A1 holds a nested task span (one turn); A2's task
    # span sits under a server span without session (not part of the turn) whose input
    # the turn takes; the turns' latencies are 10, 10, 10.
    a1 = span(1, 0, 10, session="A", user="u1", task="t-a1", input="Hello  there")
    spans += [a1, span(1, 1, 9, parent=a1["spanId"], session="A", user="u1", task="t-inner")]
    root = span(2, 19, 31, input="What's up?")
    spans += [root, span(2, 20, 30, parent=root["spanId"], session="A", user="u1", task="t-a2")]
    a3 = span(3, 3630, 3640, session="A", user="u1", task="t-a3", input="  Thanks\tBYE ")
    spans += [a3, span(3, 3631, 3639, parent=a3["spanId"], session="A", failed=True)]
    # Session B (u2 first, then u1: multi-user): overlapping turns [100,105] (failed, the
    # status written as its name) and [103,112]; ended by end_session(reason=...).
    spans.append(span(4, 100, 105, session="B", user="u2", task="t-b1", input="hi", failed="STATUS_CODE_ERROR"))
    spans.append(span(5, 103, 112, session="B", user="u1", task="t-b2", input="OK   bye"))
    spans.append(span(6, 113, 113, end_event=("B", "user_closed_chat")))
    # Session C (u3, the next day): traces without task spans, one turn per trace; still
    # open (its last turn ended 11 s before the newest span).
    c1 = span(7, 86400, 86404, session="C", user="u3", input="Hi")
    spans += [c1, span(7, 86401, 86402, parent=c1["spanId"], session="C")]
    c2 = span(8, 86450, 86460, session="C")
    spans += [c2, span(8, 86452, 86455, parent=c2["spanId"], session="C", input="Thanks  BYE")]
    # Session D (u3): one turn, ended by inactivity.
    spans.append(span(9, 200, 201, session="D", user="u3", task="t-d1", input="help"))
    # Never turns: a feedback span (it is the newest span) and a span without a session.
    spans.append(span(10, 86470, 86471, session="A", feedback="t-a3"))
    spans.append(span(11, 5, 6))
    return spans


def _iso(seconds: float) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(T0 + seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


EXPECTED: dict[str, Any] = {
    "spans": 16,
    "turns": 8,
    "idle_s": 1800.0,
    "newest": _iso(86471),
    "sessions": {
        "count": 4,
        "single_turn": 1,
        "multi_user": 1,
        "ended": 3,
        "turns_per_session": {"mean": 2.0, "p50": 2.0, "p90": 2.7},  # [1, 2, 2, 3]
        "duration_s": {"mean": 928.25, "p50": 36.0, "p90": 2566.0},  # [1, 12, 60, 3640]
        "active_s": {"mean": 14.25, "p50": 13.0, "p90": 25.2},  # [1, 12, 14, 30]
        "visits": 5,
        "visit_duration_s": {"mean": 22.6, "p50": 12.0, "p90": 48.0},  # [1, 10, 12, 30, 60]
    },
    "users": {
        "count": 3,
        "returning": 1,
        "top": [
            {
                "user_id": "u1",
                "sessions": 1,
                "turns": 3,
                "mean_turns_per_session": 3.0,
                "mean_session_duration_s": 3640.0,
                "first_seen": _iso(0),
                "last_seen": _iso(3640),
                "active_days": 1,
            },
            {
                "user_id": "u3",
                "sessions": 2,
                "turns": 3,
                "mean_turns_per_session": 1.5,
                "mean_session_duration_s": 30.5,
                "first_seen": _iso(200),
                "last_seen": _iso(86460),
                "active_days": 2,
            },
            {
                "user_id": "u2",
                "sessions": 1,
                "turns": 2,
                "mean_turns_per_session": 2.0,
                "mean_session_duration_s": 12.0,
                "first_seen": _iso(100),
                "last_seen": _iso(112),
                "active_days": 1,
            },
        ],
    },
    "endings": {
        "ended": 3,
        "last_turn_failed_share": 1 / 3,
        "all_turns_failed_share": 2 / 6,
        "last_turn_latency_ratio": {"mean": 23 / 21, "p50": 1.0},  # [1, 9/7, 1]
        "single_turn_share": 1 / 3,
        "top_last_inputs": [
            {"input": "help", "count": 1},
            {"input": "ok bye", "count": 1},
            {"input": "thanks bye", "count": 1},
        ],
        "reasons": [{"reason": "user_closed_chat", "count": 1}],
    },
    "charts": {
        "turns_per_session": [{"turns": 1, "sessions": 1}, {"turns": 2, "sessions": 2}, {"turns": 3, "sessions": 1}],
        "session_duration_s": [
            {"le": 10.0, "sessions": 1},
            {"le": 30.0, "sessions": 1},
            {"le": 60.0, "sessions": 1},
            {"le": 300.0, "sessions": 0},
            {"le": 600.0, "sessions": 0},
            {"le": 1800.0, "sessions": 0},
            {"le": 3600.0, "sessions": 0},
            {"le": None, "sessions": 1},
        ],
        "sessions_per_day": [{"day": "2026-11-02", "sessions": 3}, {"day": "2026-11-03", "sessions": 1}],
    },
}


def request_line(spans: list[dict[str, Any]]) -> str:
    """One ExportTraceServiceRequest as a JSON line."""
    return json.dumps(
        {
            "resourceSpans": [
                {"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}
            ]
        }
    )


def write(path: Path, spans: list[dict[str, Any]], *, per_line: int = 3, seed: int = 7) -> Path:
    """Write the spans shuffled, ``per_line`` to a line (gzip when the name ends with .gz)."""
    shuffled = list(spans)
    random.Random(seed).shuffle(shuffled)
    text = "".join(request_line(shuffled[i : i + per_line]) + "\n" for i in range(0, len(shuffled), per_line))
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def assert_close(got: Any, want: Any, where: str = "result") -> None:
    """Equal, floats to 1e-9 relative (the SQL sums in another order than the hand count)."""
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {got!r}"
        assert sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list), f"{where}: {got!r}"
        assert len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
        assert type(got) is type(want) or {type(got), type(want)} <= {int, float}, f"{where}: type {type(got)}"


def without_skipped(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "skipped"}
