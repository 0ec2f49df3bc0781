"""How much spanstamp adds to a span, a scope, a decorated call and an exporting pipeline.

Run it from the repository root::

    python benchmarks/bench_overhead.py                 # full run, 2-4 min on 2 cores
    python benchmarks/bench_overhead.py --quick         # a few seconds, numbers only indicative
    python benchmarks/bench_overhead.py --json out.json --check   # exit 1 if a target is missed
    python benchmarks/bench_overhead.py --clock instructions      # counted under valgrind, ~10 min

Every case runs in this one process, interleaved: each round times every case
``--repeats`` times (a batch each, in an order shuffled per repeat with ``--seed``,
``gc`` off while a batch is timed) and keeps its fastest batch, the one other
processes' load touched least. Batches are timed by the thread's CPU time (``--clock
cpu``, the default), which leaves out the time a shared machine gives other processes;
``--clock wall`` times elapsed time. Each ratio is computed per round from that round's
figures (paired) and reported as the median over rounds with its inter-quartile
range; a target inside that range is flagged "within noise". The targets are issue
14's (docs/performance.md). ``--clock instructions`` counts CPU instructions instead, each
case in child processes under valgrind (_bench_instructions.py).

Span cases time ``tracer.start_span("x").end()`` on their own SDK ``TracerProvider``
whose exporting processor is a ``SimpleSpanProcessor`` over a no-op exporter; the
global provider is never set. The pipeline cases time a span with 200 attributes
through ``spanstamp.configure()``'s pipeline and through a plain ``BatchSpanProcessor``,
both over a no-op exporter (see ``pipeline_cases``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from _bench_cases import pipeline_cases, span_cases
from _bench_instructions import COUNT_ONE, count_cases, count_one, valgrind
from _bench_scopes import DEPTH, scope_cases
from _bench_stats import CLOCKS, Ratio, Row, report, rows_of, run_rounds, summarize, verdict

DEFAULT_ROUNDS = 200
DEFAULT_BATCH = 2000
QUICK_ROUNDS = 12
QUICK_BATCH = 100
DEFAULT_REPEATS = 5


# --- The ratios: issue 14's table, then figures reported without a target ---------------


def _case(name: str) -> Callable[[Row], float]:
    return lambda row: row[name]


def _over(case: str, base: str) -> Callable[[Row], float]:
    return lambda row: row[case] - row[base]


def _per_level(name: str, levels: int) -> Callable[[Row], float]:
    return lambda row: row[name] / levels


def build_ratios() -> list[Ratio]:
    deep, oi_deep = f"metadata_{DEPTH}", f"oi_metadata_{DEPTH}"
    return [
        Ratio(
            "stamping_vs_unavoidable",
            "(stamp_ids - bare) / ((noop_processor - bare) + (sdk_two_attrs - bare))",
            _over("stamp_ids", "bare"),
            lambda r: (r["noop_processor"] - r["bare"]) + (r["sdk_two_attrs"] - r["bare"]),
            0.5,
            "stamping two ids, over a bare span, / (no-op dispatch + two set_attribute)",
        ),
        Ratio(
            "empty_vs_bare",
            "(stamp_empty - noop_processor) / bare",
            _over("stamp_empty", "noop_processor"),
            _case("bare"),
            0.015,
            "nothing in the context, root span, over the no-op processor / bare span",
        ),
        Ratio(
            "empty_child_vs_bare",
            "(stamp_empty_child - noop_child) / bare",
            _over("stamp_empty_child", "noop_child"),
            _case("bare"),
            0.015,
            "nothing in the context, child span, over the no-op processor / bare span",
        ),
        Ratio(
            "scope_vs_openinference",
            "scope_enter_exit / oi_scope_enter_exit",
            _case("scope_enter_exit"),
            _case("oi_scope_enter_exit"),
            0.8,
            "using_attributes(session_id, user_id) built, entered, left / OpenInference's",
        ),
        Ratio(
            "decorated_vs_openinference",
            "decorated_call / oi_decorated_call",
            _case("decorated_call"),
            _case("oi_decorated_call"),
            1.0,
            "call through @using_session / OpenInference's decorator",
        ),
        Ratio(
            "metadata_nested_vs_openinference",
            f"{deep} / {oi_deep}",
            _case(deep),
            _case(oi_deep),
            1.5,
            f"metadata scopes nested {DEPTH} deep, merging / OpenInference's, replacing",
        ),
        Ratio(
            "metadata_per_level_flat",
            f"({deep} / {DEPTH}) / metadata_1",
            _per_level(deep, DEPTH),
            _case("metadata_1"),
            1.5,
            f"flat nesting: cost per level at depth {DEPTH} / the cost of one level",
        ),
        Ratio(
            "tags_vs_openinference",
            "tags_100 / oi_tags_100",
            _case("tags_100"),
            _case("oi_tags_100"),
            2.0,
            "using_tags with 100 tags / OpenInference's",
        ),
        Ratio(
            "pipeline_200_vs_batch",
            "pipeline_200 / batch_200",
            _case("pipeline_200"),
            _case("batch_200"),
            1.10,
            "200-attribute span through configure()'s pipeline / through a plain BatchSpanProcessor",
        ),
        Ratio(
            "pipeline_1_vs_batch",
            "pipeline_1 / batch_1",
            _case("pipeline_1"),
            _case("batch_1"),
            None,
            "ordinary span through configure()'s pipeline / through a plain BatchSpanProcessor",
        ),
        Ratio(
            "pipeline_1_nofill_vs_batch",
            "pipeline_1_nofill / batch_1",
            _case("pipeline_1_nofill"),
            _case("batch_1"),
            None,
            "the same, trace filling off (fill_traces=False)",
        ),
        Ratio(
            "scoped_context_vs_bare",
            "(bare_scoped - bare) / bare",
            _over("bare_scoped", "bare"),
            _case("bare"),
            None,
            "what the SDK itself adds to a span started in a Context holding two ids, no processor",
        ),
        Ratio(
            "stamping_vs_baggage",
            "(stamp_ids - bare) / (baggage - bare)",
            _over("stamp_ids", "bare"),
            _over("baggage", "bare"),
            None,
            "stamping two ids / what BaggageSpanProcessor adds for two baggage keys",
        ),
        Ratio(
            "stamping_vs_openinference_way",
            "(stamp_ids - bare) / (openinference_way - bare)",
            _over("stamp_ids", "bare"),
            _over("openinference_way", "bare"),
            None,
            "stamping two ids / what OpenInference's instrumentors add reading the context",
        ),
        Ratio(
            "reused_scope_vs_openinference",
            "scope_reused / oi_scope_reused",
            _case("scope_reused"),
            _case("oi_scope_reused"),
            None,
            "entering and leaving a scope built beforehand / OpenInference's",
        ),
        Ratio(
            "metadata_levels_11_20",
            f"(({deep} - metadata_10) / 10) / metadata_1",
            lambda r: (r[deep] - r["metadata_10"]) / (DEPTH - 10),
            _case("metadata_1"),
            None,
            "cost of each of the levels 11 to 20 / the cost of one level (the marginal cost)",
        ),
        Ratio(
            "oi_metadata_per_level_flat",
            f"({oi_deep} / {DEPTH}) / oi_metadata_1",
            _per_level(oi_deep, DEPTH),
            _case("oi_metadata_1"),
            None,
            "OpenInference's cost per level at depth 20 / its cost of one level",
        ),
    ]


# --- Running and reporting -----------------------------------------------------------------


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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=None, help=f"timed rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help=f"operations per round of a span case, split into --repeats batches (default {DEFAULT_BATCH}; "
        "slower cases run proportionally fewer)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny run: {QUICK_ROUNDS} rounds x {QUICK_BATCH} ops (smoke test)"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help=f"batches per case per round, the fastest counts (default {DEFAULT_REPEATS}; 1: one batch per round)",
    )
    parser.add_argument(
        "--clock",
        choices=[*sorted(CLOCKS), "instructions"],
        default="cpu",
        help="cpu (default): the timing thread's CPU time, which load from other processes does not add to; "
        "wall: elapsed time; instructions: CPU instructions per operation counted by valgrind, one child "
        "process per case (--rounds and --repeats do not apply; see _bench_instructions.py)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if any target is missed")
    parser.add_argument("--seed", type=int, default=0, help="seed for the per-round case order")
    parser.add_argument("--progress", action="store_true", help="print progress to stderr")
    parser.add_argument(
        "--layouts",
        type=int,
        default=3,
        help="--clock instructions: count every case in this many interpreter layouts (hash seeds 0, 1, ...), "
        "each a round (default 3)",
    )
    parser.add_argument(COUNT_ONE, default=None, metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        default=None,
        metavar="NAMES",
        help="comma-separated case names to run (the ratios of the others show n/a); for before/after checks",
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS
    if args.batch is None:
        args.batch = QUICK_BATCH if args.quick else DEFAULT_BATCH
    if args.rounds < 1 or args.batch < 1 or args.repeats < 1 or args.layouts < 1:
        parser.error("--rounds, --batch, --repeats and --layouts must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The SDK logs a warning for every attribute the count limit evicts (72 per
    # 200-attribute span); unhandled, each is printed to stderr. That is the same cost in
    # both pipeline cases and would only dilute their ratio: it is silenced for both.
    logging.getLogger("opentelemetry.attributes").setLevel(logging.ERROR)
    # The pipelines size their batch queue by the run's batch size.
    cases = [*span_cases(), *scope_cases(), *pipeline_cases(args.batch)]
    if args.only is not None:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - {case.name for case in cases}
        if unknown or not wanted:
            print(f"--only: unknown case names: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        cases = [case for case in cases if case.name in wanted]
    if args.count_one is not None:  # a child of --clock instructions, under valgrind
        count_one(cases, args.count_one, args.batch)
        return 0
    started = time.perf_counter()
    if args.clock == "instructions":
        if valgrind() is None:
            print("--clock instructions needs valgrind (Debian: apt install valgrind)", file=sys.stderr)
            return 2
        for name, per_op in count_cases(cases, Path(__file__).resolve(), args.batch, args.layouts).items():
            next(case for case in cases if case.name == name).per_op_ns.extend(per_op)
    else:
        run_rounds(cases, args.rounds, args.batch, args.repeats, args.seed, args.progress, args.clock)
    elapsed = time.perf_counter() - started
    ratios = build_ratios()
    rows = rows_of(cases)
    for ratio in ratios:
        ratio.compute(rows)
    if args.clock == "instructions":
        header = (
            f"spanstamp overhead: CPU instructions per operation (valgrind callgrind, one process per case and "
            f"layout, every case warmed up first), span cases {args.batch} ops, {args.layouts} layouts (hash seeds) "
            f"as rounds"
        )
    else:
        header = (
            f"spanstamp overhead: {args.rounds} rounds; per round every case {args.repeats} batches (the fastest "
            f"counts), span cases {args.batch} ops in all; shuffled order (seed {args.seed}), gc off while timing, "
            f"{args.clock} clock"
        )
    header += "\n" + ", ".join(f"{k} {v}" for k, v in versions().items())
    report(cases, ratios, header, unit="instr" if args.clock == "instructions" else "ns")
    missed, noisy = verdict(ratios)
    print()
    doing = "counting" if args.clock == "instructions" else "timing"
    print(f"{'all targets PASS' if not missed else 'MISSED: ' + ', '.join(missed)}  ({elapsed:.1f} s {doing})")
    if noisy:
        print(f"within noise (the target lies inside the ratio's IQR): {', '.join(noisy)}")
    if args.json is not None:
        results = {
            "config": {
                "rounds": args.rounds,
                "batch": args.batch,
                "repeats": args.repeats,
                "clock": args.clock,
                "unit": "instructions" if args.clock == "instructions" else "ns",
                **({"layouts": args.layouts} if args.clock == "instructions" else {}),
                "quick": args.quick,
                "seed": args.seed,
            },
            "versions": versions(),
            "elapsed_s": elapsed,
            "cases": {case.name: {"what": case.what, **summarize(case)} for case in cases},
            "ratios": {ratio.name: ratio.as_json() for ratio in ratios},
            "all_pass": not missed,
            "missed": missed,
            "within_noise": noisy,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
