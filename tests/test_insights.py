"""analyze() over OTLP JSON lines files: exact figures on known-answer data, inputs, bad input."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

pytest.importorskip("duckdb")

import insights_data as data
from insights_data import assert_close, without_skipped
from spanstamp.insights import analyze


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    return data.write(tmp_path / "spans.jsonl", data.scenario())


def test_known_answer_figures(scenario_file: Path) -> None:
    result = analyze(scenario_file)
    assert result["skipped"] == []
    assert_close(without_skipped(result), data.EXPECTED)


def test_result_is_plain_json(scenario_file: Path) -> None:
    result = analyze([scenario_file])
    assert json.loads(json.dumps(result)) == result


@pytest.mark.parametrize("per_line", [1, 16])
def test_figures_do_not_depend_on_batching_or_order(tmp_path: Path, per_line: int) -> None:
    path = data.write(tmp_path / "spans.jsonl", data.scenario(), per_line=per_line, seed=per_line)
    assert_close(without_skipped(analyze(path)), data.EXPECTED)


def test_shorter_idle_splits_more_and_ends_more(scenario_file: Path) -> None:
    # 40 s: C's two turns (46 s apart) are two visits, B's end by event, C still open
    # (11 s before the newest span); one more visit and the same three ended sessions.
    result = analyze(scenario_file, idle_s=40.0)
    assert result["idle_s"] == 40.0
    assert result["sessions"]["visits"] == 6
    assert result["sessions"]["ended"] == 3
    # 5 s: C ends too (its last turn ended 11 s before the newest span).
    assert analyze(scenario_file, idle_s=5.0)["sessions"]["ended"] == 4


def test_top_limits_the_users_listed(scenario_file: Path) -> None:
    top = analyze(scenario_file, top=2)["users"]["top"]
    assert [u["user_id"] for u in top] == ["u1", "u3"]
    assert analyze(scenario_file, top=0)["users"]["top"] == []


def test_directory_glob_and_gzip_give_the_same_figures(tmp_path: Path) -> None:
    spans = data.scenario()
    (tmp_path / "run").mkdir()
    data.write(tmp_path / "run" / "part-1.jsonl", spans[:7])
    data.write(tmp_path / "run" / "part-2.jsonl.gz", spans[7:])
    (tmp_path / "run" / "notes.txt").write_text("not a trace file, not read")
    assert_close(without_skipped(analyze(tmp_path / "run")), data.EXPECTED)
    assert_close(without_skipped(analyze(str(tmp_path / "run" / "part-*"))), data.EXPECTED)
    assert_close(
        without_skipped(analyze([tmp_path / "run" / "part-1.jsonl", tmp_path / "run" / "part-2.jsonl.gz"])),
        data.EXPECTED,
    )


def test_the_same_file_named_twice_is_read_once(scenario_file: Path) -> None:
    assert analyze([scenario_file, str(scenario_file)])["spans"] == data.EXPECTED["spans"]


def test_empty_data(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    result = analyze(path)
    assert result["skipped"] == [{"file": str(path), "line": None, "reason": "empty file"}]
    assert (result["spans"], result["turns"], result["newest"]) == (0, 0, None)
    assert result["sessions"]["count"] == 0
    assert result["sessions"]["duration_s"] == {"mean": None, "p50": None, "p90": None}
    assert result["users"] == {"count": 0, "returning": 0, "top": []}
    assert result["endings"]["last_turn_failed_share"] is None
    assert result["endings"]["top_last_inputs"] == []
    assert result["endings"]["reasons"] == []
    assert result["charts"] == {"turns_per_session": [], "session_duration_s": [], "sessions_per_day": []}


def test_bad_lines_are_named_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spans = data.scenario()
    broken = dict(spans[0])
    del broken["traceId"]
    lines = [
        data.request_line(spans[:8]),
        "this is not json",
        json.dumps({"hello": "world"}),
        data.request_line([*spans[8:], {**spans[3], "spanId": ""}]),
        data.request_line([{"spanId": "ab", "traceId": "cd"}]),  # no times
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab"',  # cut short, no newline
    ]
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines))
    with caplog.at_level(logging.WARNING, logger="spanstamp"):
        result = analyze(path)
    assert_close(without_skipped(result), data.EXPECTED)
    f = str(path)
    assert result["skipped"] == [
        {"file": f, "line": 2, "reason": "not JSON"},
        {"file": f, "line": 3, "reason": "not OTLP JSON (no resourceSpans list of the OTLP shape)"},
        {"file": f, "line": 4, "reason": "span without ids"},
        {"file": f, "line": 5, "reason": "span without start/end time"},
        {"file": f, "line": 6, "reason": "truncated line"},
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert f"spanstamp insights: {f}:6: truncated line, left out" in messages
    assert len(messages) == 5


def test_valid_json_bad_rows_found_by_the_fast_read(tmp_path: Path) -> None:
    # Valid JSON that DuckDB reads without complaint: the bad rows are counted in SQL and
    # only then located by line.
    spans = data.scenario()
    no_ids = {k: v for k, v in spans[0].items() if k not in ("traceId", "spanId")}
    path = tmp_path / "spans.jsonl"
    path.write_text(
        data.request_line(spans) + "\n" + json.dumps({"other": 1}) + "\n" + data.request_line([no_ids]) + "\n"
    )
    result = analyze(path)
    assert_close(without_skipped(result), data.EXPECTED)
    assert [(s["line"], s["reason"]) for s in result["skipped"]] == [
        (2, "not OTLP JSON (no resourceSpans list of the OTLP shape)"),
        (3, "span without ids"),
    ]


def test_one_bad_file_among_good_ones(tmp_path: Path) -> None:
    spans = data.scenario()
    data.write(tmp_path / "a.jsonl", spans[:9])
    (tmp_path / "b.jsonl").write_text("[1, 2, 3]\n")
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress((data.request_line(spans[9:]) + "\n{oops\n").encode()))
    result = analyze(tmp_path)
    assert_close(without_skipped(result), data.EXPECTED)
    assert result["skipped"] == [
        {
            "file": str(tmp_path / "b.jsonl"),
            "line": 1,
            "reason": "not OTLP JSON (no resourceSpans list of the OTLP shape)",
        },
        {"file": str(gz), "line": 2, "reason": "not JSON"},
    ]


def test_missing_paths_are_reported(tmp_path: Path, scenario_file: Path) -> None:
    result = analyze([scenario_file, tmp_path / "nope.jsonl", str(tmp_path / "*.none")])
    assert result["spans"] == data.EXPECTED["spans"]
    assert [s["reason"] for s in result["skipped"]] == ["no such file or directory", "pattern matches no file"]


def test_nothing_readable(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("garbage\n")
    result = analyze(path)
    assert result["spans"] == 0
    assert result["skipped"] == [{"file": str(path), "line": 1, "reason": "not JSON"}]


def test_argument_checks(scenario_file: Path) -> None:
    with pytest.raises(ValueError, match="idle_s"):
        analyze(scenario_file, idle_s=-1)
    with pytest.raises(ValueError, match="top"):
        analyze(scenario_file, top=True)


def test_written_by_the_official_file_exporter(tmp_path: Path) -> None:
    # The real pipeline: configure(json_file=...) (the official OTLP JSON file exporter
    # through a BatchSpanProcessor), spanstamp's session(), task() and end_session() on the
    # SDK, then analyze() over the file it wrote.
    pytest.importorskip("opentelemetry.exporter.otlp.json.file", reason="the json-file extra is not installed")
    from opentelemetry import trace

    import spanstamp
    from support import reset_trace_globals

    path = tmp_path / "spans.jsonl"
    reset_trace_globals()
    provider = spanstamp.configure(json_file=path, exporter=[])
    try:
        tracer = trace.get_tracer("app")
        with spanstamp.session("conv-1", user_id="user-1") as s:
            with spanstamp.task(input="What is OTel?") as t:
                with tracer.start_as_current_span("llm"):
                    t.set_output("A standard.")
            with pytest.raises(RuntimeError), spanstamp.task(input="  Thanks, BYE "):
                raise RuntimeError("the model timed out")
        spanstamp.end_session(s.id, reason="user_closed_chat")
        with spanstamp.using_session("conv-2"), tracer.start_as_current_span("no task here"):
            pass
    finally:
        provider.shutdown()
        reset_trace_globals()
    result = analyze(path)
    assert result["skipped"] == []
    assert result["spans"] == 5  # two task spans, the llm span, the session.end span, one plain span
    assert result["turns"] == 3
    assert result["sessions"]["count"] == 2
    assert result["sessions"]["ended"] == 1  # conv-1 by its event; conv-2 is the newest
    assert result["users"]["top"][0]["user_id"] == "user-1"
    assert result["users"]["top"][0]["turns"] == 2
    endings = result["endings"]
    assert endings["last_turn_failed_share"] == 1.0
    assert endings["all_turns_failed_share"] == 0.5
    assert endings["top_last_inputs"] == [{"input": "thanks, bye", "count": 1}]
    assert endings["reasons"] == [{"reason": "user_closed_chat", "count": 1}]


# --- the lead's known-answer scenario (tests/insights_scenario.py), written by the official exporter ---


@pytest.mark.parametrize("per_line", [1, 4, 64])
def test_scenario_through_the_official_file_exporter(tmp_path: Path, per_line: int) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.json.file", reason="the json-file extra is not installed")
    import insights_scenario as scenario

    path = scenario.write_jsonl(scenario.scenario_spans(), tmp_path / "spans.jsonl", per_line=per_line)
    result = analyze([path], idle_s=scenario.IDLE_S)
    assert result["skipped"] == []
    scenario.assert_matches(result)


def test_scenario_gzip_and_split_files(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.json.file", reason="the json-file extra is not installed")
    import insights_scenario as scenario

    spans = scenario.scenario_spans()
    scenario.write_jsonl(spans[:10], tmp_path / "a.jsonl")
    plain = scenario.write_jsonl(spans[10:], tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    scenario.assert_matches(analyze(tmp_path))


def test_spans_whose_parent_is_missing(tmp_path: Path) -> None:
    # Trace 1: the root is a task span, so a span whose parent never arrived still belongs
    # to its turn (its failure and its end count). Trace 2: the root is a web request; a
    # task span whose parent is missing is a turn of its own, the plain orphan no turn.
    root = data.span(1, 0, 10, session="S", user="u", task="t1", input="first")
    orphan = data.span(1, 5, 12, parent="00000000000000ff", session="S", failed=True)
    web = data.span(2, 100, 140, session="S", input="web")
    lost_task = data.span(2, 110, 120, parent="00000000000000fe", session="S", task="t2")
    lost_plain = data.span(2, 125, 130, parent="00000000000000fd", session="S", failed=True)
    path = data.write(tmp_path / "spans.jsonl", [root, orphan, web, lost_task, lost_plain])
    result = analyze(path, idle_s=1.0)
    assert result["turns"] == 2
    assert result["sessions"]["duration_s"]["mean"] == 120.0  # 0 .. 120: the first turn ends at 12
    assert result["sessions"]["active_s"]["mean"] == 22.0  # 12 + 10
    assert result["endings"]["all_turns_failed_share"] == 0.5  # the first turn (its orphan) failed
    assert result["endings"]["top_last_inputs"] == [{"input": "web", "count": 1}]  # the trace root's


def test_file_names_that_look_like_patterns(tmp_path: Path) -> None:
    # DuckDB would read "spans[1].jsonl" as a pattern; the file itself is read.
    path = data.write(tmp_path / "spans[1] *.jsonl", data.scenario())
    assert_close(without_skipped(analyze(path)), data.EXPECTED)


def test_the_sql_takes_attribute_names_from_spanstamp_attributes() -> None:
    from spanstamp import attributes as attr
    from spanstamp.insights.engine import SQL_NAMES, sql_text, statements

    text = sql_text()
    for name, value in SQL_NAMES.items():
        assert getattr(attr, name) == value
        assert f"'{value}'" not in text  # spelled only as $NAME in the template
        assert f"${name}" in text
    filled = "\n".join(statements(["spans.jsonl"], idle_s=60.0, top=5))
    assert "$" not in filled.replace("$.", "")  # every placeholder filled in
    assert f"'{attr.SESSION_ID}'" in filled
