"""``spanstamp insights`` and ``python -m spanstamp insights`` as subprocesses: output, messages, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("duckdb")

import insights_data as data
from insights_data import assert_close, without_skipped
from spanstamp.insights.cli import parse_duration


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanstamp", "insights", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    return data.write(tmp_path / "spans.jsonl", data.scenario())


def test_json_output(scenario_file: Path) -> None:
    done = run(scenario_file, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert result["skipped"] == []
    assert_close(without_skipped(result), data.EXPECTED)


def test_idle_and_top_options(scenario_file: Path) -> None:
    result = json.loads(run(scenario_file, "--json", "--idle", "5s", "--top", "1").stdout)
    assert result["idle_s"] == 5.0
    assert result["sessions"]["ended"] == 4
    assert [u["user_id"] for u in result["users"]["top"]] == ["u1"]


def test_terminal_report_by_default(scenario_file: Path) -> None:
    done = run(scenario_file)
    assert done.returncode == 0, done.stderr
    assert "u1" in done.stdout  # the text report (or, before it exists, the JSON) names the top user


def test_html_report_file(scenario_file: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = run(scenario_file, "--json", "--html", page)
    assert done.returncode == 0, done.stderr
    assert page.read_text(encoding="utf-8").strip()
    assert json.loads(done.stdout)["spans"] == data.EXPECTED["spans"]


def test_bad_lines_named_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(data.request_line(data.scenario()) + "\nnot json\n" + '{"resourceSpans": [')
    done = run(path, "--json")
    assert done.returncode == 0
    assert_close(without_skipped(json.loads(done.stdout)), data.EXPECTED)
    assert done.stderr.splitlines() == [
        f"warning: spanstamp insights: {path}:2: not JSON, left out",
        f"warning: spanstamp insights: {path}:3: truncated line, left out",
    ]
    assert "Traceback" not in done.stderr


def test_nothing_read_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("hello\n")
    done = run(path, "--json")
    assert done.returncode == 1
    assert f"{path}:1: not JSON" in done.stderr
    assert json.loads(done.stdout)["spans"] == 0
    missing = run(tmp_path / "missing.jsonl", "--json")
    assert missing.returncode == 1
    assert "no such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),  # no source
        ("x.jsonl", "--idle", "soon"),
        ("x.jsonl", "--top", "-3"),
        ("x.jsonl", "--phoenix", "http://127.0.0.1:1"),  # --phoenix without --project
        ("--project", "p"),
        ("x.jsonl", "--clickhouse", "http://127.0.0.1:1"),  # two sources
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_unknown_command_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "spanstamp", "frobnicate"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "unknown command" in done.stderr


def test_console_script(scenario_file: Path) -> None:
    script = shutil.which("spanstamp", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the spanstamp console script is not installed in this environment")
    done = subprocess.run(
        [script, "insights", str(scenario_file), "--json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["turns"] == data.EXPECTED["turns"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1800", 1800.0), ("1.5h", 5400.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_insights.py"


def test_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    # Timings are not checked (they live in the benchmark); the table and its rows are.
    done = subprocess.run(
        [sys.executable, str(BENCH), "--spans", "2000", "--repeat", "1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["spans", "file", "MB"]
    assert lines[1].split()[0] == "200"
    assert lines[2].split()[0] == "2,000"
    assert lines[3].startswith("time growth 200 -> 2,000 spans:")


def test_benchmark_data_has_the_designed_shape(tmp_path: Path) -> None:
    # 2,000 spans: 400 turns of 5 spans, 40 sessions of 10 turns, 4 users; every 7th
    # session (0, 7, ..., 35) has a 45-minute gap, so 46 visits; 1 turn in 13 fails.
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_insights", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "spans.jsonl"
    assert bench.generate(path, 2000) == 2000
    assert bench.parse_only(path) == 2000
    from spanstamp.insights import analyze

    result = analyze(path)
    assert (result["spans"], result["turns"]) == (2000, 400)
    assert result["sessions"]["count"] == 40
    assert result["sessions"]["visits"] == 46
    assert result["users"]["count"] == 4
    assert result["sessions"]["turns_per_session"] == {"mean": 10.0, "p50": 10.0, "p90": 10.0}
    # Ended: the sessions whose last turn ended more than 30 minutes before the newest span,
    # worked out here from the generator's timetable (turns every 30 s, each 2 s long).
    day, second = 86_400 * 10**9, 10**9
    starts = {s: bench.BASE_NS + (s * 7_919 % 30) * day + s * second for s in range(40)}
    ends = {s: starts[s] + 9 * 30 * second + (45 * 60 * second if s % 7 == 0 else 0) + 2 * second for s in starts}
    newest = max(ends.values())
    ended = [s for s in ends if newest - ends[s] > 1800 * second]
    assert result["sessions"]["ended"] == len(ended)
    failed = sum(1 for s in ended for k in range(10) if (s * 10 + k) % 13 == 0)
    assert result["endings"]["all_turns_failed_share"] == failed / (10 * len(ended))
