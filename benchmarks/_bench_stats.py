"""Timing, paired ratios and the report of bench_overhead.py (no spanstamp import here).

Every round times one batch of every case, in an order shuffled per round, with ``gc``
off while a batch runs. A ratio is computed within each round, from that round's
figures alone (numerator and denominator measured seconds apart, so load and CPU
frequency changes cancel), and reported as the median over rounds with the
inter-quartile range of those per-round values.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

Batch = Callable[[int], None]
Row = dict[str, float]

WARMUP_ROUNDS = 3


@dataclass
class Case:
    """One thing timed: ``batch(n)`` runs it ``n`` times with ``active()`` entered around it.

    ``scale`` divides the run's batch size, so slow cases (a 200-attribute span, 20
    nested scopes) take a round of similar length to the fast ones. ``after`` runs
    untimed after every batch (a processor's flush).
    """

    name: str
    what: str
    batch: Batch
    active: Callable[[], AbstractContextManager[Any]] = nullcontext
    scale: int = 1
    after: Callable[[], object] | None = None
    ops: int = 0
    per_op_ns: list[float] = field(default_factory=list)


#: The clocks a batch can be timed with. "cpu" counts only the CPU time the OS gave the
#: timing thread, so time it gave other processes on a shared machine is left out (every
#: case does all its work in that thread: the pipelines' export worker is idle while a
#: batch is timed). "wall" is elapsed time, what a quiet machine measures alike.
CLOCKS: dict[str, Callable[[], int]] = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}


def time_batch(case: Case, clock: Callable[[], int] = time.thread_time_ns) -> float:
    """ns per operation for one batch, with the case's context active and gc off."""
    with case.active():
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            start = clock()
            case.batch(case.ops)
            elapsed = clock() - start
        finally:
            if gc_was_enabled:
                gc.enable()
    if case.after is not None:
        case.after()
    return elapsed / case.ops


def run_rounds(
    cases: list[Case], rounds: int, batch: int, repeats: int, seed: int, progress: bool, clock: str = "cpu"
) -> None:
    """Time ``rounds`` rounds (after a few warm-up ones) of every case, interleaved.

    A round times every case ``repeats`` times, each a batch of ``batch // (scale * repeats)``
    operations, in an order shuffled for each repeat; the case's figure for the round is
    its fastest batch. Load from other processes only ever adds time, in bursts: the
    fastest of a few short batches a few milliseconds apart is the one it touched least,
    and the cases a ratio pairs were timed within the same round.
    """
    for case in cases:
        case.ops = max(1, batch // (case.scale * repeats))
    rng = random.Random(seed)
    order = list(cases)
    for round_no in range(-WARMUP_ROUNDS, rounds):
        fastest = dict.fromkeys((case.name for case in cases), float("inf"))
        for _ in range(repeats):
            rng.shuffle(order)
            for case in order:
                fastest[case.name] = min(fastest[case.name], time_batch(case, CLOCKS[clock]))
        if round_no >= 0:
            for case in cases:
                case.per_op_ns.append(fastest[case.name])
        gc.collect()
        if progress and round_no >= 0 and (round_no + 1) % max(1, rounds // 10) == 0:
            print(f"  round {round_no + 1}/{rounds}", file=sys.stderr, flush=True)


def quartiles(samples: list[float]) -> tuple[float, float, float]:
    """(p25, median, p75) of ``samples``."""
    if len(samples) >= 2:
        p25, median, p75 = statistics.quantiles(samples, n=4, method="inclusive")
        return p25, median, p75
    return samples[0], samples[0], samples[0]


def summarize(case: Case) -> dict[str, float]:
    p25, median, p75 = quartiles(case.per_op_ns)
    return {
        "median_ns": median,
        "p25_ns": p25,
        "p75_ns": p75,
        "iqr_ns": p75 - p25,
        "ops_per_batch": case.ops,
        "samples": len(case.per_op_ns),
    }


@dataclass
class Ratio:
    """A ratio of two figures of one round, taken in every round.

    Passes when the median over rounds is at most ``target`` (None: reported only).
    ``target`` between the per-round p25 and p75 is *within noise*: another run may
    land on the other side of it.
    """

    name: str
    formula: str
    numerator: Callable[[Row], float]
    denominator: Callable[[Row], float]
    target: float | None
    measures: str = ""
    values: list[float] = field(default_factory=list)
    numerators: list[float] = field(default_factory=list)
    denominators: list[float] = field(default_factory=list)

    def compute(self, rows: list[Row]) -> None:
        """Take the ratio in every round; none at all if a case it needs was not run (--only)."""
        for row in rows:
            try:
                den = self.denominator(row)
                self.numerator(row)
            except KeyError:
                return
            if den > 0:
                num = self.numerator(row)
                self.numerators.append(num)
                self.denominators.append(den)
                self.values.append(num / den)

    @property
    def quartiles(self) -> tuple[float, float, float] | None:
        return quartiles(self.values) if self.values else None

    @property
    def passed(self) -> bool | None:
        q = self.quartiles
        if self.target is None or q is None:
            return None
        return q[1] <= self.target

    @property
    def within_noise(self) -> bool:
        # One value (instructions, counted exactly) has no noise to be within.
        q = self.quartiles
        return self.target is not None and q is not None and len(self.values) > 1 and q[0] <= self.target <= q[2]

    def as_json(self) -> dict[str, Any]:
        q = self.quartiles
        return {
            "measures": self.measures,
            "formula": self.formula,
            "value": None if q is None else q[1],
            "p25": None if q is None else q[0],
            "p75": None if q is None else q[2],
            "iqr": None if q is None else q[2] - q[0],
            "numerator_ns": statistics.median(self.numerators) if self.numerators else None,
            "denominator_ns": statistics.median(self.denominators) if self.denominators else None,
            "target": self.target,
            "pass": self.passed,
            "within_noise": self.within_noise,
            "rounds": len(self.values),
        }


def rows_of(cases: list[Case]) -> list[Row]:
    """Per round, every case's ns per operation in that round."""
    rounds = min(len(case.per_op_ns) for case in cases)
    return [{case.name: case.per_op_ns[i] for case in cases} for i in range(rounds)]


def fmt_ratio(value: float, target: float | None) -> str:
    # Targets below 0.1 (the empty-context ones) read best as percentages.
    return f"{100 * value:.2f}%" if target is not None and target < 0.1 else f"{value:.3f}"


def report(cases: list[Case], ratios: list[Ratio], header: str, unit: str = "ns") -> None:
    """Print every case's figures and every ratio; ``unit`` names what ``per_op_ns`` holds.

    A run with one figure per case (instructions, counted exactly) prints no spread.
    """
    rounds = min(len(case.per_op_ns) for case in cases)
    spread = rounds > 1
    print(header)
    print()
    label = ("median " if spread else "") + unit + "/op"
    print(f"{'case':<24}{'ops':>6}{label:>16}" + (f"{'p25':>12}{'p75':>12}{'IQR %':>8}" if spread else "") + "  what")
    for case in cases:
        s = summarize(case)
        iqr_pct = 100 * s["iqr_ns"] / s["median_ns"] if s["median_ns"] else 0.0
        figures = f"{s['p25_ns']:>12,.0f}{s['p75_ns']:>12,.0f}{iqr_pct:>7.1f}%" if spread else ""
        print(f"{case.name:<24}{case.ops:>6}{s['median_ns']:>16,.0f}{figures}  {case.what}")
    print()
    if spread:
        print("ratios: per round (numerator and denominator from the same round), median [p25 - p75] over rounds")
        print(f"{'ratio':<34}{'median':>9}{'p25':>9}{'p75':>9}{'target':>9}  result")
    else:
        print("ratios")
        print(f"{'ratio':<34}{'value':>9}{'target':>9}  result")
    for ratio in ratios:
        q = ratio.quartiles
        if q is None:
            print(f"{ratio.name:<34}{'n/a':>9}  (its cases were not run)")
            continue
        t = ratio.target
        target = "-" if t is None else f"<={fmt_ratio(t, t)}"
        result = {True: "PASS", False: "MISS", None: "info"}[ratio.passed]
        if ratio.within_noise and spread:
            result += " (within noise)"
        median, p25, p75 = (fmt_ratio(value, t) for value in (q[1], q[0], q[2]))
        quartile_columns = f"{p25:>9}{p75:>9}" if spread else ""
        print(f"{ratio.name:<34}{median:>9}{quartile_columns}{target:>9}  {result}")
        left_out = rounds - len(ratio.values)
        note = f" ({left_out} of {rounds} rounds left out: denominator <= 0)" if left_out else ""
        print(f"{'':<4}{ratio.measures}: {ratio.formula}{note}")


def verdict(ratios: list[Ratio]) -> tuple[list[str], list[str]]:
    """The names of the targeted ratios missed, and of those within noise."""
    missed = [ratio.name for ratio in ratios if ratio.passed is False]
    noisy = [ratio.name for ratio in ratios if ratio.within_noise]
    return missed, noisy
