"""Known-answer data for the insights: real SDK spans with exact times, and what insights must say.

The spans are made by the real SDK (a ``TracerProvider`` with an in-memory exporter and
sequential ids), so every source starts from the same ``ReadableSpan`` objects: the file
test writes them with the official OTLP JSON file exporter, the ClickHouse test loads them
as ``otel_traces`` rows, the Phoenix test sends them over OTLP. ``EXPECTED`` was worked out
by hand from the layout below (each figure's derivation is in the comment beside it); it is
not the output of any engine.

Times are seconds after ``T0`` (Monday 2026-11-02 09:00:00 UTC); ``DAY`` is 86,400 s.

    spans = scenario_spans()
    write_jsonl(spans, tmp_path / "spans.jsonl")
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, Status, StatusCode, Tracer, set_span_in_context

from spanstamp import attributes as attr

T0 = int(datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc).timestamp())
DAY = 86_400
IDLE_S = 1800.0
PROJECT = "insights-scenario"
RESOURCE = Resource.create({"service.name": PROJECT, "openinference.project.name": PROJECT})


def iso(seconds_after_t0: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, as the result document spells times.

    iso(0)  # '2026-11-02T09:00:00.000Z'
    """
    moment = datetime.fromtimestamp(T0 + seconds_after_t0, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _SequentialIds(IdGenerator):
    """Ids 1, 2, 3, ... so the data is the same on every run (and readable in a failure)."""

    def __init__(self) -> None:
        self._spans = itertools.count(1)
        self._traces = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._spans)

    def generate_trace_id(self) -> int:
        return 0xA000_0000_0000_0000_0000_0000_0000_0000 + next(self._traces)


@dataclass
class _Builder:
    tracer: Tracer
    made: list[Span] = field(default_factory=list)

    @contextmanager
    def span(
        self,
        name: str,
        start: float,
        end: float,
        parent: Span | None = None,
        *,
        error: bool = False,
        **attributes: Any,
    ) -> Iterator[Span]:
        context = set_span_in_context(parent) if parent is not None else None
        names = {
            "session": attr.SESSION_ID,
            "user": attr.USER_ID,
            "task": attr.TASK_ID,
            "input": attr.INPUT_VALUE,
            "output": attr.OUTPUT_VALUE,
            "feedback_of": attr.FEEDBACK_TASK_ID,
        }
        span = self.tracer.start_span(
            name,
            context=context,
            start_time=_ns(start),
            attributes={names.get(k, k): v for k, v in attributes.items()},
        )
        yield span
        if error:
            span.set_status(Status(StatusCode.ERROR, "failed"))
        span.end(end_time=_ns(end))

    def task(self, start: float, end: float, session: str, user: str, text: str, **kw: Any) -> Iterator[Span]:
        """A ``task()`` span: kind CHAIN, a task id, the turn's input and an answer."""
        task_id = f"task-{start:g}"
        return self.span(
            "turn",
            start,
            end,
            kw.pop("parent", None),
            session=session,
            user=user,
            task=task_id,
            input=text,
            output=f"answer to {text.strip()}",
            **{attr.SPAN_KIND: "CHAIN"},
            **kw,
        )

    def llm(self, parent: Span, start: float, end: float, session: str, user: str, *, error: bool = False) -> None:
        """An instrumentor's span inside a turn (stamped by spanstamp, so it has the ids)."""
        with self.span("ChatCompletion", start, end, parent, error=error, session=session, user=user):
            pass

    def event_span(self, name: str, at: float, event: dict[str, Any]) -> None:
        """What lifecycle.record_event makes: a short root with the ids in its one event only."""
        with self.span(name, at, at + 0.001) as span:
            span.add_event(name, event, timestamp=_ns(at))


def _ns(seconds_after_t0: float) -> int:
    # Integer arithmetic: a float of ~1.8e18 ns cannot hold a millisecond exactly.
    return T0 * 1_000_000_000 + round(seconds_after_t0 * 1_000_000_000)


def scenario_spans() -> list[ReadableSpan]:
    """The finished spans of five sessions, four users, lifecycle events, feedback and noise.

    spans = scenario_spans()
    assert len(spans) == EXPECTED["spans"]
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, id_generator=_SequentialIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    b = _Builder(provider.get_tracer("insights-scenario"))

    # s-alice-1 (alice, day 0): three turns, one visit, ended by end_session(reason=...).
    b.event_span(attr.SESSION_START_EVENT, -1, {attr.SESSION_ID: "s-alice-1"})
    with b.task(0, 10, "s-alice-1", "alice", "Hello") as t:
        b.llm(t, 1, 9, "s-alice-1", "alice")
    with b.task(60, 75, "s-alice-1", "alice", "What is OTel?") as t:
        # A task nested in a task is part of the outer turn, not a turn of its own.
        with b.task(62, 70, "s-alice-1", "alice", "inner question", parent=t) as inner:
            b.llm(inner, 63, 69, "s-alice-1", "alice")
    with b.task(120, 130, "s-alice-1", "alice", "Thanks, bye") as t:
        b.llm(t, 121, 129, "s-alice-1", "alice")
    b.event_span(
        attr.SESSION_END_EVENT, 140, {attr.SESSION_ID: "s-alice-1", attr.SESSION_END_REASON: "user_closed_chat"}
    )

    # s-bob-1 (bob, day 0): a single turn whose task span failed; ended by idleness.
    with b.task(600, 605, "s-bob-1", "bob", "price?", error=True) as t:
        b.llm(t, 601, 604, "s-bob-1", "bob")

    # s-shared (day 0): carol, then dave, then carol: a multi-user session; its user is carol.
    # Its first two turns are tasks under one web request span that is not a turn itself.
    with b.span("POST /chat", 999, 1121, session="s-shared", user="carol") as web:
        with b.task(1000, 1010, "s-shared", "carol", "Hi", parent=web) as t:
            b.llm(t, 1001, 1009, "s-shared", "carol")
        with b.task(1100, 1120, "s-shared", "dave", "thanks, bye", parent=web) as t:
            b.llm(t, 1101, 1119, "s-shared", "dave")
    with b.task(1200, 1204, "s-shared", "carol", "Thanks, bye") as t:
        pass

    # s-alice-2 (alice, day 1): two visits (a 3,580 s gap > idle); the last turn failed in a
    # child span only (its task span is fine); ended by idleness.
    with b.task(DAY + 0, DAY + 20, "s-alice-2", "alice", "hello") as t:
        b.llm(t, DAY + 1, DAY + 19, "s-alice-2", "alice")
    with b.task(DAY + 3600, DAY + 3630, "s-alice-2", "alice", "  Thanks,   BYE ") as t:
        b.llm(t, DAY + 3601, DAY + 3629, "s-alice-2", "alice", error=True)

    # s-open (dave, day 2): no task spans (each trace is one turn), still open at the end.
    d2 = 2 * DAY
    with b.span("POST /chat", d2 + 0, d2 + 8, session="s-open", user="dave", input="Hi") as root:
        with b.span("ChatCompletion", d2 + 1, d2 + 7, root, session="s-open", user="dave", input="inner"):
            pass
    # Noise that is no turn: a span without a session, feedback on a turn in its own trace.
    with b.span("GET /health", d2 + 20, d2 + 21):
        pass
    evaluator = {attr.SPAN_KIND: "EVALUATOR"}
    with b.span("feedback", d2 + 50, d2 + 50.001, session="s-open", user="dave", feedback_of="task-x", **evaluator):
        pass
    with b.span("POST /chat", d2 + 100, d2 + 112, session="s-open", user="dave") as root:
        with b.span("retrieve", d2 + 101, d2 + 104, root, session="s-open", user="dave", input="more?"):
            pass
        with b.span("ChatCompletion", d2 + 105, d2 + 111, root, session="s-open", user="dave", input="later"):
            pass

    provider.shutdown()
    return list(exporter.get_finished_spans())


def write_jsonl(spans: Sequence[ReadableSpan], path: Path, *, per_line: int = 4) -> Path:
    """Write ``spans`` with the official OTLP JSON file exporter, ``per_line`` spans per export.

    write_jsonl(scenario_spans(), tmp_path / "spans.jsonl")
    """
    from opentelemetry.exporter.otlp.json.file import FileSpanExporter

    exporter = FileSpanExporter(str(path))
    for i in range(0, len(spans), per_line):
        exporter.export(spans[i : i + per_line])
    exporter.shutdown()
    return path


# How the figures follow from the layout (idle = 1,800 s; newest span end = day 2 + 112 s):
#   turns per session: alice-1 3, bob-1 1, shared 3, alice-2 2, open 2 (traces) = 11 turns.
#   duration: alice-1 130, bob-1 5, shared 1204-1000 = 204, alice-2 3630, open 112.
#       sorted 5, 112, 130, 204, 3630: mean 816.2, p50 130, p90 204 + 0.6 * 3426 = 2259.6.
#   active (union of turns): 10+15+10 = 35, 5, 10+20+4 = 34, 20+30 = 50, 8+12 = 20.
#       sorted 5, 20, 34, 35, 50: mean 28.8, p50 34, p90 35 + 0.6 * 15 = 44.
#   visits: alice-2 splits in two (20 s and 30 s); the others are one each: 130, 5, 204, 112.
#       sorted 5, 20, 30, 112, 130, 204: mean 83.5, p50 (30+112)/2 = 71, p90 130 + 0.5 * 74 = 167.
#   turns per session sorted 1, 2, 2, 3, 3: mean 2.2, p50 2, p90 3.
#   ended: alice-1 (event), bob-1, shared, alice-2 (idle); open is not (its last turn is the newest).
#   endings over the 4 ended: last turns failed: alice-2 (child span), bob-1 -> 2/4;
#       failed turns 2 of 3+1+3+2 = 9 -> 2/9; single-turn 1/4;
#       last turn latency / median: alice-1 10/10, bob-1 5/5, shared 4/10, alice-2 30/25
#       -> 1.0, 1.0, 0.4, 1.2: mean 0.9, p50 1.0;
#       last inputs normalized: "thanks, bye" (alice-1, shared, alice-2) 3, "price?" 1.
#   users (by session user): alice 2 sessions 5 turns, carol 1/3, dave 1/2, bob 1/1; alice is
#       active on two days (returning).
EXPECTED: dict[str, Any] = {
    "spans": 28,
    "turns": 11,
    "idle_s": IDLE_S,
    "newest": iso(2 * DAY + 112),
    "sessions": {
        "count": 5,
        "single_turn": 1,
        "multi_user": 1,
        "ended": 4,
        "turns_per_session": {"mean": 2.2, "p50": 2.0, "p90": 3.0},
        "duration_s": {"mean": 816.2, "p50": 130.0, "p90": 2259.6},
        "active_s": {"mean": 28.8, "p50": 34.0, "p90": 44.0},
        "visits": 6,
        "visit_duration_s": {"mean": 83.5, "p50": 71.0, "p90": 167.0},
    },
    "users": {
        "count": 4,
        "returning": 1,
        "top": [
            {
                "user_id": "alice",
                "sessions": 2,
                "turns": 5,
                "mean_turns_per_session": 2.5,
                "mean_session_duration_s": 1880.0,
                "first_seen": iso(0),
                "last_seen": iso(DAY + 3630),
                "active_days": 2,
            },
            {
                "user_id": "carol",
                "sessions": 1,
                "turns": 3,
                "mean_turns_per_session": 3.0,
                "mean_session_duration_s": 204.0,
                "first_seen": iso(1000),
                "last_seen": iso(1204),
                "active_days": 1,
            },
            {
                "user_id": "dave",
                "sessions": 1,
                "turns": 2,
                "mean_turns_per_session": 2.0,
                "mean_session_duration_s": 112.0,
                "first_seen": iso(2 * DAY),
                "last_seen": iso(2 * DAY + 112),
                "active_days": 1,
            },
            {
                "user_id": "bob",
                "sessions": 1,
                "turns": 1,
                "mean_turns_per_session": 1.0,
                "mean_session_duration_s": 5.0,
                "first_seen": iso(600),
                "last_seen": iso(605),
                "active_days": 1,
            },
        ],
    },
    "endings": {
        "ended": 4,
        "last_turn_failed_share": 0.5,
        "all_turns_failed_share": 2 / 9,
        "last_turn_latency_ratio": {"mean": 0.9, "p50": 1.0},
        "single_turn_share": 0.25,
        "top_last_inputs": [{"input": "thanks, bye", "count": 3}, {"input": "price?", "count": 1}],
        "reasons": [{"reason": "user_closed_chat", "count": 1}],
    },
    "charts": {
        "turns_per_session": [{"turns": 1, "sessions": 1}, {"turns": 2, "sessions": 2}, {"turns": 3, "sessions": 2}],
        # Every bucket is listed, empty ones too; ``le`` None is the open last bucket.
        "session_duration_s": [
            {"le": 10, "sessions": 1},
            {"le": 30, "sessions": 0},
            {"le": 60, "sessions": 0},
            {"le": 300, "sessions": 3},
            {"le": 600, "sessions": 0},
            {"le": 1800, "sessions": 0},
            {"le": 3600, "sessions": 0},
            {"le": None, "sessions": 1},
        ],
        "sessions_per_day": [
            {"day": "2026-11-02", "sessions": 3},
            {"day": "2026-11-03", "sessions": 1},
            {"day": "2026-11-04", "sessions": 1},
        ],
    },
}


def assert_matches(result: dict[str, Any], expected: dict[str, Any] = EXPECTED, *, where: str = "") -> None:
    """Compare a result document with ``expected``: keys present, floats to 1e-9 relative.

    assert_matches(analyze([path]))
    """
    for key, want in expected.items():
        here = f"{where}.{key}" if where else key
        assert key in result, f"{here} missing"
        _compare(result[key], want, here)


def _compare(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not an object"
        assert_matches(got, want, where=where)
    elif isinstance(want, list):
        assert isinstance(got, list), f"{where}: {got!r} is not a list"
        assert len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _compare(g, w, f"{where}[{i}]")
    elif isinstance(want, float) or (isinstance(want, int) and isinstance(got, float)):
        assert isinstance(got, (int, float)), f"{where}: {got!r} is not a number"
        assert abs(got - want) <= 1e-9 * max(1.0, abs(want)), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
