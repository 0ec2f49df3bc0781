"""The overhead benchmark runs end to end and reports every case and ratio (timings are not checked)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_overhead.py"

CASES = (
    "bare",
    "noop_processor",
    "sdk_two_attrs",
    "bare_scoped",
    "stamp_ids",
    "stamp_empty",
    "noop_child",
    "stamp_empty_child",
    "baggage",
    "openinference_way",
    "scope_enter_exit",
    "oi_scope_enter_exit",
    "scope_reused",
    "oi_scope_reused",
    "decorated_call",
    "oi_decorated_call",
    "plain_call",
    "metadata_1",
    "metadata_10",
    "metadata_20",
    "oi_metadata_1",
    "oi_metadata_20",
    "tags_100",
    "oi_tags_100",
    "pipeline_200",
    "batch_200",
    "pipeline_1",
    "pipeline_1_nofill",
    "batch_1",
)

# Issue 14's table: every row's ratio (two rows have two) and its target.
TARGETS = {
    "stamping_vs_unavoidable": 0.5,
    "empty_vs_bare": 0.015,
    "empty_child_vs_bare": 0.015,
    "scope_vs_openinference": 0.8,
    "decorated_vs_openinference": 1.0,
    "metadata_nested_vs_openinference": 1.5,
    "metadata_per_level_flat": 1.5,
    "tags_vs_openinference": 2.0,
    "pipeline_200_vs_batch": 1.10,
}
REPORTED = (
    "pipeline_1_vs_batch",
    "pipeline_1_nofill_vs_batch",
    "scoped_context_vs_bare",
    "stamping_vs_baggage",
    "stamping_vs_openinference_way",
    "reused_scope_vs_openinference",
    "metadata_levels_11_20",
    "oi_metadata_per_level_flat",
)
ROUNDS = 5


def test_quick_run_reports_every_case_and_paired_ratio(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--rounds", str(ROUNDS), "--seed", "7", "--check", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    results = json.loads(out.read_text(encoding="utf-8"))
    # --check: exit 1 exactly when a target is missed, and the missed ones are named.
    assert done.returncode == (0 if results["all_pass"] else 1)
    assert results["missed"] == [name for name in TARGETS if results["ratios"][name]["pass"] is False]
    assert ("MISSED: " in done.stdout) is bool(results["missed"])
    assert results["config"] == {
        "rounds": ROUNDS,
        "batch": 100,
        "repeats": 5,
        "clock": "cpu",
        "unit": "ns",
        "quick": True,
        "seed": 7,
    }

    for name in CASES:
        case = results["cases"][name]
        assert case["median_ns"] > 0, name
        assert case["samples"] == ROUNDS, name
        assert case["p25_ns"] <= case["median_ns"] <= case["p75_ns"], name
        assert name in done.stdout
    for name, target in TARGETS.items():
        ratio = results["ratios"][name]
        assert ratio["target"] == target, name
        assert ratio["pass"] is (ratio["value"] <= target), name
        assert name in done.stdout
    for name in (*TARGETS, *REPORTED):
        ratio = results["ratios"][name]
        # Paired: one value per round, summarized by its median and inter-quartile range
        # (a round whose denominator, a difference of two cases, came out <= 0 is left out).
        assert 1 <= ratio["rounds"] <= ROUNDS, name
        if " - " not in ratio["formula"].split(" / ")[-1]:
            assert ratio["rounds"] == ROUNDS, name
        assert ratio["p25"] <= ratio["value"] <= ratio["p75"], name
        assert ratio["within_noise"] is (
            ratio["target"] is not None and ratio["p25"] <= ratio["target"] <= ratio["p75"]
        )
        assert {"formula", "numerator_ns", "denominator_ns", "measures"} <= ratio.keys(), name
    for name in REPORTED:
        assert results["ratios"][name]["target"] is None
        assert results["ratios"][name]["pass"] is None
    assert results["within_noise"] == [name for name in results["ratios"] if results["ratios"][name]["within_noise"]]
    if results["within_noise"]:
        assert "within noise" in done.stdout


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed (apt install valgrind)")
def test_instructions_are_counted_per_case_and_repeat_exactly(tmp_path: Path) -> None:
    """--clock instructions: each case counted under callgrind; a second count gives the same figures."""
    only = "bare,noop_processor,stamp_empty"
    count = [sys.executable, str(SCRIPT), "--clock", "instructions"]
    counts = []
    for run in range(2):
        out = tmp_path / f"i{run}.json"
        done = subprocess.run(
            [*count, "--only", only, "--batch", "200", "--layouts", "1", "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        results = json.loads(out.read_text(encoding="utf-8"))
        assert results["config"]["clock"] == results["config"]["unit"] == "instructions"
        assert "instr/op" in done.stdout
        assert "within noise" not in done.stdout
        counts.append({name: case["median_ns"] for name, case in results["cases"].items()})
        assert all(case["samples"] == 1 and case["ops_per_batch"] == 200 for case in results["cases"].values())
        ratio = results["ratios"]["empty_vs_bare"]
        assert ratio["rounds"] == 1
        assert ratio["within_noise"] is False
        last = counts[-1]
        assert ratio["value"] == pytest.approx((last["stamp_empty"] - last["noop_processor"]) / last["bare"])
    first, second = counts
    assert set(first) == set(only.split(","))
    # A span costs tens of thousands of instructions, and calling a processor that does
    # nothing adds a thousand or more (the SDK's dispatch). Counted, not timed: with the
    # addresses fixed (setarch -R) and the hash seed set, a second count gives the same.
    assert 20_000 < first["bare"] < 1_000_000
    assert first["noop_processor"] - first["bare"] > 500
    for name in first:
        assert second[name] == pytest.approx(first[name], rel=0.002), name
