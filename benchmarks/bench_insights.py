"""How fast ``spanstamp insights --json`` reads OTLP JSON lines, against a parse-only Python pass.

Generates 1,000,000 spans (200,000 turns of 5 spans, 20,000 sessions, 2,000 users) and
100,000 spans (a tenth of each) as OTLP JSON lines, 512 spans per line like a
BatchSpanProcessor export, then measures in subprocesses, each on its own:

- ``spanstamp insights --json FILE`` end to end (interpreter start, DuckDB, the report);
- the reference: ``json.loads`` per line and one dict per span, nothing else.

Targets (issue 12): insights at least 2x faster than the reference on 1,000,000 spans,
peak memory at most 1 GB. ``--check`` exits 1 when one is missed.

    python benchmarks/bench_insights.py [--check] [--spans 1000000] [--dir /tmp/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPANS_PER_TURN = 5
TURNS_PER_SESSION = 10
SESSIONS_PER_USER = 10
BATCH = 512
TARGET_RATIO = 2.0
TARGET_PEAK_MB = 1024.0
BASE_NS = 1_795_000_000_000_000_000  # 2026-11-18 UTC


def _attr(key: str, value: str) -> str:
    return '{"key":"' + key + '","value":{"stringValue":' + json.dumps(value) + "}}"


def _int_attr(key: str, value: int) -> str:
    return '{"key":"' + key + '","value":{"intValue":"' + str(value) + '"}}'


def _span(
    trace: str, span: str, parent: str | None, name: str, start: int, end: int, attrs: list[str], err: bool
) -> str:
    parent_part = f'"parentSpanId":"{parent}",' if parent else ""
    status = '{"code":2,"message":"boom"}' if err else "{}"
    return (
        f'{{"traceId":"{trace}","spanId":"{span}",{parent_part}"flags":256,"name":"{name}","kind":1,'
        f'"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}","attributes":[{",".join(attrs)}],'
        f'"status":{status}}}'
    )


_RESOURCE = (
    '{"attributes":[{"key":"telemetry.sdk.language","value":{"stringValue":"python"}},'
    '{"key":"telemetry.sdk.name","value":{"stringValue":"opentelemetry"}},'
    '{"key":"service.name","value":{"stringValue":"chatbot"}}]}'
)
_QUESTIONS = ["How do I reset my password?", "thanks", "What are your opening hours?", "ok bye", "Can I get a refund?"]


def generate(path: Path, spans: int) -> int:
    """Write about ``spans`` spans as OTLP JSON lines; returns the number written."""
    turns = spans // SPANS_PER_TURN
    sessions = max(1, turns // TURNS_PER_SESSION)
    written = 0
    batch: list[str] = []
    with path.open("w") as out:

        def flush() -> None:
            out.write(
                '{"resourceSpans":[{"resource":'
                + _RESOURCE
                + ',"scopeSpans":[{"scope":{"name":"spanstamp"},"spans":['
                + ",".join(batch)
                + "]}]}]}\n"
            )
            batch.clear()

        for s in range(sessions):
            user = f"user-{s % max(1, sessions // SESSIONS_PER_USER)}"
            session = f"session-{s:08d}"
            # Sessions start over 30 days; every 7th has an idle gap of 45 minutes mid-way.
            t = BASE_NS + (s * 7_919 % 30) * 86_400 * 10**9 + (s % 86_400) * 10**9
            for k in range(TURNS_PER_SESSION):
                if s % 7 == 0 and k == TURNS_PER_SESSION // 2:
                    t += 45 * 60 * 10**9
                n = s * TURNS_PER_SESSION + k
                trace = f"{n:032x}"
                ids = [f"{n * SPANS_PER_TURN + j:016x}" for j in range(SPANS_PER_TURN)]
                question = _QUESTIONS[(s + k) % len(_QUESTIONS)]
                err = (n % 13) == 0
                common = [_attr("session.id", session), _attr("user.id", user)]
                answer = "Here is what I found about that: " + "lorem ipsum " * 8
                spans_of_turn = [
                    (
                        ids[0],
                        None,
                        "chat turn",
                        0,
                        2_000,
                        [
                            *common,
                            _attr("spanstamp.task.id", f"task-{n}"),
                            _attr("openinference.span.kind", "CHAIN"),
                            _attr("input.value", question),
                            _attr("output.value", answer),
                        ],
                    ),
                    (
                        ids[1],
                        ids[0],
                        "retrieve",
                        10,
                        300,
                        [*common, _attr("openinference.span.kind", "RETRIEVER"), _attr("input.value", question)],
                    ),
                    (
                        ids[2],
                        ids[0],
                        "ChatCompletion",
                        320,
                        1_900,
                        [
                            *common,
                            _attr("openinference.span.kind", "LLM"),
                            _attr("llm.model_name", "gpt-4o-mini"),
                            _attr("input.value", question),
                            _attr("output.value", answer),
                            _int_attr("llm.token_count.prompt", 42 + k),
                            _int_attr("llm.token_count.completion", 87),
                        ],
                    ),
                    (
                        ids[3],
                        ids[2],
                        "POST",
                        330,
                        1_880,
                        [
                            *common,
                            _attr("http.method", "POST"),
                            _attr("url.full", "http://127.0.0.1:8000/v1/chat"),
                            _int_attr("http.status_code", 500 if err else 200),
                        ],
                    ),
                    (ids[4], ids[0], "format", 1_910, 1_990, [*common, _attr("openinference.span.kind", "TOOL")]),
                ]
                for span_id, parent, name, a, b, attrs in spans_of_turn:
                    failed = err and span_id in (ids[2], ids[3])
                    batch.append(_span(trace, span_id, parent, name, t + a * 10**6, t + b * 10**6, attrs, failed))
                    written += 1
                    if len(batch) == BATCH:
                        flush()
                t += 30 * 10**9
        if batch:
            flush()
    return written


def parse_only(path: Path) -> int:
    """The reference: ``json.loads`` per line and one dict per span; returns the span count."""
    count = 0
    with path.open("rb") as stream:
        for line in stream:
            request = json.loads(line)
            for resource in request.get("resourceSpans", ()):
                for scope in resource.get("scopeSpans", ()):
                    for span in scope.get("spans", ()):
                        row = {
                            "trace_id": span.get("traceId"),
                            "span_id": span.get("spanId"),
                            "parent_id": span.get("parentSpanId"),
                            "name": span.get("name"),
                            "start_ns": int(span["startTimeUnixNano"]),
                            "end_ns": int(span["endTimeUnixNano"]),
                            "status": (span.get("status") or {}).get("code"),
                            "attributes": {a["key"]: a["value"] for a in span.get("attributes", ())},
                        }
                        count += row["end_ns"] >= row["start_ns"]
    return count


def _measure(argv: list[str]) -> tuple[float, float, float, bytes]:
    # Wall time, CPU time (user + system) and peak RSS (MB) of one child process, from its
    # own rusage (os.wait4), so that each figure is that child's alone.
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    output = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv} exited {code}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, output


def _run(path: Path, repeat: int) -> dict[str, float]:
    # Runs alternate (insights, reference, insights, ...) so that a change in the machine's
    # load hits both; the median of each is kept.
    insights: list[tuple[float, float, float]] = []
    parse: list[tuple[float, float, float]] = []
    spans = 0
    for _ in range(repeat):
        wall, cpu, mb, out = _measure([sys.executable, "-m", "spanstamp", "insights", "--json", str(path)])
        spans = json.loads(out)["spans"]
        insights.append((wall, cpu, mb))
        wall, cpu, mb, _ = _measure([sys.executable, __file__, "--parse-only", str(path)])
        parse.append((wall, cpu, mb))
    i = [statistics.median(column) for column in zip(*insights, strict=True)]
    p = [statistics.median(column) for column in zip(*parse, strict=True)]
    return {
        "spans": spans,
        "insights_s": i[0],
        "insights_cpu_s": i[1],
        "insights_mb": max(m for _, _, m in insights),
        "parse_s": p[0],
        "parse_cpu_s": p[1],
        "parse_mb": max(m for _, _, m in parse),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the generated files go (kept)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command per size (the median is shown)")
    parser.add_argument("--parse-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parse_only is not None:
        print(parse_only(args.parse_only))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-insights-") as tmp:
        where = args.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in (args.spans // 10, args.spans):
            path = where / f"spans-{n}.jsonl"
            if not path.exists():
                generate(path, n)
            row = _run(path, args.repeat)
            row["mb_file"] = path.stat().st_size / 2**20
            rows.append(row)
    header = (
        "spans",
        "file MB",
        "insights s",
        "(cpu s)",
        "parse-only s",
        "(cpu s)",
        "ratio",
        "insights MB",
        "parse MB",
    )
    widths = (10, 8, 11, 8, 13, 8, 6, 12, 9)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for r in rows:
        ratio = r["parse_s"] / r["insights_s"]
        print(
            f"{r['spans']:>10,} {r['mb_file']:>8.0f} {r['insights_s']:>11.2f} {r['insights_cpu_s']:>8.2f}"
            f" {r['parse_s']:>13.2f} {r['parse_cpu_s']:>8.2f} {ratio:>5.2f}x {r['insights_mb']:>12.0f}"
            f" {r['parse_mb']:>9.0f}"
        )
    small, big = rows
    growth = big["insights_s"] / small["insights_s"]
    parse_growth = big["parse_s"] / small["parse_s"]
    print(f"time growth {small['spans']:,} -> {big['spans']:,} spans: {growth:.1f}x (parse-only {parse_growth:.1f}x)")
    ratio = big["parse_s"] / big["insights_s"]
    print(f"cpu time ratio at {big['spans']:,} spans: {big['parse_cpu_s'] / big['insights_cpu_s']:.2f}x")
    missed = []
    if ratio < TARGET_RATIO:
        missed.append(f"insights only {ratio:.2f}x faster than parse-only (target {TARGET_RATIO}x)")
    if big["insights_mb"] > TARGET_PEAK_MB:
        missed.append(f"peak memory {big['insights_mb']:.0f} MB (target {TARGET_PEAK_MB:.0f} MB)")
    for line in missed:
        print("MISSED:", line)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
