"""How much spanstamp adds to a span, to a scope and to a decorated call.

Run it from the repository root::

    python benchmarks/bench_overhead.py                 # full run, ~30-90 s on 2 cores
    python benchmarks/bench_overhead.py --quick         # a few seconds, numbers only indicative
    python benchmarks/bench_overhead.py --json out.json --check   # exit 1 if a target is missed

Every case runs in this one process, interleaved: each round times one batch of
``--batch`` operations of every case (in a shuffled order, with ``gc`` disabled while
a batch is timed), so drift in CPU frequency or load spreads over all cases alike.
A case's figure is the median over the rounds of its ns per operation; the spread is
the inter-quartile range (p25-p75) of the same per-round figures.

Span cases time ``tracer.start_span("x").end()`` on their own SDK ``TracerProvider``
whose exporting processor is a ``SimpleSpanProcessor`` over a no-op exporter; the
global provider is never set.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import openinference.instrumentation as oi
from opentelemetry import baggage
from opentelemetry.context import Context, attach, detach
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, Tracer, set_span_in_context

import spanstamp

SESSION_ID = "session-3f2a9c1e"
USER_ID = "user-0042"

DEFAULT_ROUNDS = 200
DEFAULT_BATCH = 2000
QUICK_ROUNDS = 12
QUICK_BATCH = 100
WARMUP_ROUNDS = 3

Batch = Callable[[int], None]


# --- The pieces the cases are built from -----------------------------------------------


class NoOpExporter(SpanExporter):
    """Accepts every span and does nothing with it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class NoOpProcessor(SpanProcessor):
    """A span processor that does nothing: the cost of being called at all."""

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        return None


def make_tracer(*extra: SpanProcessor) -> Tracer:
    """A tracer on a fresh provider: ``extra`` processors first, then the exporting one."""
    provider = TracerProvider(shutdown_on_exit=False)
    for processor in extra:
        provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(NoOpExporter()))
    return provider.get_tracer("spanstamp-bench")


def span_batch(tracer: Tracer) -> Batch:
    start_span = tracer.start_span

    def run(n: int) -> None:
        for _ in range(n):
            start_span("x").end()

    return run


def span_with_two_attrs_batch(tracer: Tracer) -> Batch:
    start_span = tracer.start_span

    def run(n: int) -> None:
        for _ in range(n):
            span = start_span("x")
            span.set_attribute("session.id", SESSION_ID)
            span.set_attribute("user.id", USER_ID)
            span.end()

    return run


def openinference_way_batch(tracer: Tracer) -> Batch:
    start_span = tracer.start_span
    get_attributes_from_context = oi.get_attributes_from_context

    def run(n: int) -> None:
        for _ in range(n):
            span = start_span("x")
            span.set_attributes(dict(get_attributes_from_context()))
            span.end()

    return run


def spanstamp_scope_batch() -> Batch:
    using_attributes = spanstamp.using_attributes

    def run(n: int) -> None:
        for _ in range(n):
            with using_attributes(session_id=SESSION_ID, user_id=USER_ID):
                pass

    return run


def oi_scope_batch() -> Batch:
    using_attributes = oi.using_attributes

    def run(n: int) -> None:
        for _ in range(n):
            with using_attributes(session_id=SESSION_ID, user_id=USER_ID):
                pass

    return run


def reused_scope_batch(scope: AbstractContextManager[Any]) -> Batch:
    """Enter and exit one scope object built beforehand: the Context work alone."""

    def run(n: int) -> None:
        for _ in range(n):
            with scope:
                pass

    return run


def call_batch(func: Callable[[], object]) -> Batch:
    def run(n: int) -> None:
        for _ in range(n):
            func()

    return run


def plain() -> None:
    return None


@spanstamp.using_session(SESSION_ID)
def decorated() -> None:
    return None


@oi.using_session(SESSION_ID)
def oi_decorated() -> None:
    return None


# --- What is active while a case's batch runs ------------------------------------------


@contextmanager
def spanstamp_ids() -> Iterator[None]:
    with spanstamp.using_session(SESSION_ID), spanstamp.using_user(USER_ID):
        yield


@contextmanager
def oi_ids() -> Iterator[None]:
    with oi.using_attributes(session_id=SESSION_ID, user_id=USER_ID):
        yield


@contextmanager
def baggage_ids() -> Iterator[None]:
    context = baggage.set_baggage("session.id", SESSION_ID)
    context = baggage.set_baggage("user.id", USER_ID, context=context)
    token = attach(context)
    try:
        yield
    finally:
        detach(token)


@contextmanager
def parent_span() -> Iterator[None]:
    """A sampled parent span in the Context and nothing else: where most child spans start."""
    parent = SpanContext(
        trace_id=0x5CA1AB1E, span_id=0xB0B, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    token = attach(set_span_in_context(NonRecordingSpan(parent)))
    try:
        yield
    finally:
        detach(token)


@dataclass
class Case:
    name: str
    what: str
    batch: Batch
    active: Callable[[], AbstractContextManager[Any]] = nullcontext
    per_op_ns: list[float] = field(default_factory=list)


def build_cases() -> list[Case]:
    return [
        Case("bare", "span start+end, exporting processor only", span_batch(make_tracer())),
        Case("noop_processor", "+ a no-op SpanProcessor", span_batch(make_tracer(NoOpProcessor()))),
        Case(
            "sdk_two_attrs", "bare + span.set_attribute x2 (SDK's own cost)", span_with_two_attrs_batch(make_tracer())
        ),
        Case(
            "stamp_ids",
            "+ SessionSpanProcessor, session+user in context",
            span_batch(make_tracer(spanstamp.SessionSpanProcessor())),
            spanstamp_ids,
        ),
        Case(
            "stamp_empty",
            "+ SessionSpanProcessor, nothing in context",
            span_batch(make_tracer(spanstamp.SessionSpanProcessor())),
        ),
        Case(
            "noop_child",
            "+ a no-op SpanProcessor, child of a parent span",
            span_batch(make_tracer(NoOpProcessor())),
            parent_span,
        ),
        Case(
            "stamp_empty_child",
            "+ SessionSpanProcessor, child of a parent span, no scope",
            span_batch(make_tracer(spanstamp.SessionSpanProcessor())),
            parent_span,
        ),
        Case(
            "baggage",
            "+ BaggageSpanProcessor(ALLOW_ALL), 2 baggage keys",
            span_batch(make_tracer(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))),
            baggage_ids,
        ),
        Case(
            "openinference_way",
            "bare + set_attributes(get_attributes_from_context())",
            openinference_way_batch(make_tracer()),
            oi_ids,
        ),
        Case("scope_enter_exit", "with spanstamp.using_attributes(...): pass", spanstamp_scope_batch()),
        Case("oi_scope_enter_exit", "with openinference using_attributes(...): pass", oi_scope_batch()),
        Case(
            "scope_reused",
            "with scope: pass, one spanstamp scope built beforehand",
            reused_scope_batch(spanstamp.using_attributes(session_id=SESSION_ID, user_id=USER_ID)),
        ),
        Case(
            "oi_scope_reused",
            "with scope: pass, one openinference scope built beforehand",
            reused_scope_batch(oi.using_attributes(session_id=SESSION_ID, user_id=USER_ID)),
        ),
        Case("decorated_call", "call via @spanstamp.using_session", call_batch(decorated)),
        Case("oi_decorated_call", "call via @openinference using_session", call_batch(oi_decorated)),
        Case("plain_call", "undecorated call", call_batch(plain)),
    ]


# --- Timing ------------------------------------------------------------------------------


def time_batch(case: Case, n: int) -> float:
    """ns per operation for one batch of ``n``, with the case's context active and gc off."""
    with case.active():
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            case.batch(n)
            elapsed = time.perf_counter_ns() - start
        finally:
            if gc_was_enabled:
                gc.enable()
    return elapsed / n


def run_rounds(cases: list[Case], rounds: int, batch: int, seed: int, progress: bool) -> None:
    rng = random.Random(seed)
    order = list(cases)
    for round_no in range(-WARMUP_ROUNDS, rounds):
        rng.shuffle(order)
        for case in order:
            per_op = time_batch(case, batch)
            if round_no >= 0:
                case.per_op_ns.append(per_op)
        gc.collect()
        if progress and round_no >= 0 and (round_no + 1) % max(1, rounds // 10) == 0:
            print(f"  round {round_no + 1}/{rounds}", file=sys.stderr, flush=True)


# --- Results -----------------------------------------------------------------------------


def summarize(samples: list[float]) -> dict[str, float]:
    if len(samples) >= 2:
        p25, median, p75 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        p25 = median = p75 = samples[0]
    return {"median_ns": median, "p25_ns": p25, "p75_ns": p75, "iqr_ns": p75 - p25, "samples": len(samples)}


@dataclass
class Ratio:
    name: str
    formula: str
    numerator: float
    denominator: float
    target: float | None  # pass when numerator <= target * denominator
    paired: float | None = None  # the same ratio from per-round paired figures

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator > 0 else None

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        return self.numerator <= self.target * self.denominator

    def as_json(self) -> dict[str, Any]:
        return {
            "formula": self.formula,
            "numerator_ns": self.numerator,
            "denominator_ns": self.denominator,
            "value": self.value,
            "paired_value": self.paired,
            "target": self.target,
            "pass": self.passed,
        }


def paired_ratio(
    cases: dict[str, Case],
    numerator: Callable[[dict[str, float]], float],
    denominator: Callable[[dict[str, float]], float],
) -> float | None:
    """Median over rounds of the ratio computed within each round (drift cancels in a round)."""
    rounds = len(next(iter(cases.values())).per_op_ns)
    values = []
    for i in range(rounds):
        row = {name: case.per_op_ns[i] for name, case in cases.items()}
        den = denominator(row)
        if den > 0:
            values.append(numerator(row) / den)
    return statistics.median(values) if values else None


def compute_ratios(cases: dict[str, Case]) -> list[Ratio]:
    m = {name: statistics.median(case.per_op_ns) for name, case in cases.items()}

    def stamping(r: dict[str, float]) -> float:
        return r["stamp_ids"] - r["bare"]

    def unavoidable(r: dict[str, float]) -> float:
        return (r["noop_processor"] - r["bare"]) + (r["sdk_two_attrs"] - r["bare"])

    def baggage_cost(r: dict[str, float]) -> float:
        return r["baggage"] - r["bare"]

    def empty_cost(r: dict[str, float]) -> float:
        return r["stamp_empty"] - r["noop_processor"]

    def empty_child_cost(r: dict[str, float]) -> float:
        return r["stamp_empty_child"] - r["noop_child"]

    specs: list[
        tuple[str, str, Callable[[dict[str, float]], float], Callable[[dict[str, float]], float], float | None]
    ] = [
        (
            "stamping_vs_unavoidable",
            "(stamp_ids-bare) / ((noop_processor-bare)+(sdk_two_attrs-bare))",
            stamping,
            unavoidable,
            1.3,
        ),
        ("stamping_vs_baggage", "(stamp_ids-bare) / (baggage-bare)", stamping, baggage_cost, 0.75),
        # "At most 2.5 % of a bare span": the bare span is the denominator, for a root
        # span (an empty Context) and for a child span (a parent span in the Context).
        ("empty_vs_bare", "(stamp_empty-noop_processor) / bare", empty_cost, lambda r: r["bare"], 0.025),
        (
            "empty_child_vs_bare",
            "(stamp_empty_child-noop_child) / bare",
            empty_child_cost,
            lambda r: r["bare"],
            0.025,
        ),
        (
            "scope_vs_openinference",
            "scope_enter_exit / oi_scope_enter_exit",
            lambda r: r["scope_enter_exit"],
            lambda r: r["oi_scope_enter_exit"],
            0.9,
        ),
        (
            "reused_scope_vs_openinference",
            "scope_reused / oi_scope_reused",
            lambda r: r["scope_reused"],
            lambda r: r["oi_scope_reused"],
            None,
        ),
        (
            "decorated_vs_openinference",
            "decorated_call / oi_decorated_call",
            lambda r: r["decorated_call"],
            lambda r: r["oi_decorated_call"],
            None,
        ),
    ]
    return [
        Ratio(name, formula, num(m), den(m), target, paired_ratio(cases, num, den))
        for name, formula, num, den, target in specs
    ]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in (
        "spanstamp",
        "opentelemetry-sdk",
        "openinference-instrumentation",
        "opentelemetry-processor-baggage",
        "wrapt",
    ):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(cases: list[Case], ratios: list[Ratio], rounds: int, batch: int) -> None:
    print(f"spanstamp overhead: {rounds} rounds x {batch} ops per case, interleaved, gc off while timing")
    print(", ".join(f"{k} {v}" for k, v in versions().items()))
    print()
    print(f"{'case':<22}{'median ns/op':>14}{'p25':>11}{'p75':>11}{'IQR %':>8}  what")
    for case in cases:
        s = summarize(case.per_op_ns)
        iqr_pct = 100 * s["iqr_ns"] / s["median_ns"] if s["median_ns"] else 0.0
        print(
            f"{case.name:<22}{s['median_ns']:>14,.0f}{s['p25_ns']:>11,.0f}{s['p75_ns']:>11,.0f}{iqr_pct:>7.1f}%  "
            f"{case.what}"
        )
    print()
    print(f"{'ratio':<28}{'value':>8}{'paired':>8}{'target':>9}  result  formula (numerator / denominator ns)")
    for ratio in ratios:
        target = "-" if ratio.target is None else f"<={ratio.target:g}"
        result = {True: "PASS", False: "MISS", None: "info"}[ratio.passed]
        print(
            f"{ratio.name:<28}{fmt(ratio.value):>8}{fmt(ratio.paired):>8}{target:>9}  {result:<6}  "
            f"{ratio.formula} ({ratio.numerator:,.0f} / {ratio.denominator:,.0f})"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=None, help=f"timed rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--batch", type=int, default=None, help=f"operations per timed batch (default {DEFAULT_BATCH})")
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny run: {QUICK_ROUNDS} rounds x {QUICK_BATCH} ops (smoke test)"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 if any target is missed")
    parser.add_argument("--seed", type=int, default=0, help="seed for the per-round case order")
    parser.add_argument("--progress", action="store_true", help="print progress to stderr")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS
    if args.batch is None:
        args.batch = QUICK_BATCH if args.quick else DEFAULT_BATCH
    if args.rounds < 1 or args.batch < 1:
        parser.error("--rounds and --batch must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = build_cases()
    started = time.perf_counter()
    run_rounds(cases, args.rounds, args.batch, args.seed, args.progress)
    elapsed = time.perf_counter() - started
    ratios = compute_ratios({case.name: case for case in cases})
    report(cases, ratios, args.rounds, args.batch)
    missed = [ratio.name for ratio in ratios if ratio.passed is False]
    print()
    print(f"{'all targets PASS' if not missed else 'MISSED: ' + ', '.join(missed)}  ({elapsed:.1f} s timing)")
    if args.json is not None:
        results = {
            "config": {"rounds": args.rounds, "batch": args.batch, "quick": args.quick, "seed": args.seed},
            "versions": versions(),
            "elapsed_s": elapsed,
            "cases": {case.name: {"what": case.what, **summarize(case.per_op_ns)} for case in cases},
            "ratios": {ratio.name: ratio.as_json() for ratio in ratios},
            "all_pass": not missed,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
