"""The overhead benchmark runs end to end and reports every case and ratio (timings are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_overhead.py"

CASES = (
    "bare",
    "noop_processor",
    "sdk_two_attrs",
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
)

RATIOS = (
    "stamping_vs_unavoidable",
    "stamping_vs_baggage",
    "empty_vs_bare",
    "empty_child_vs_bare",
    "scope_vs_openinference",
    "reused_scope_vs_openinference",
    "decorated_vs_openinference",
)


def test_quick_run_reports_every_case_and_ratio(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads(out.read_text(encoding="utf-8"))
    for name in CASES:
        assert name in results["cases"], name
        assert results["cases"][name]["median_ns"] > 0, name
        assert name in done.stdout
    for name in RATIOS:
        assert name in results["ratios"], name
        ratio = results["ratios"][name]
        assert {"value", "target", "pass", "numerator_ns", "denominator_ns"} <= ratio.keys(), name
        assert name in done.stdout
