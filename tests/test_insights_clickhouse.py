"""The ClickHouse query file, run by chDB on an ``otel_traces`` table loaded with the scenario.

The table has the schema the OpenTelemetry Collector's ClickHouse exporter creates, and its
rows are what that exporter writes for the scenario's SDK spans (tests/otel_traces.py).
chDB is ClickHouse in-process; the tests that need it skip without it (the
``insights-clickhouse`` extra). chDB cannot serve ClickHouse's HTTP interface (and Debian's
clickhouse-server, 18.16, predates recursive queries), so ``analyze_clickhouse`` is tested
against a small HTTP server on 127.0.0.1 that runs each query it receives in chDB and
answers as ClickHouse does (status, body, ``X-ClickHouse-Exception-Code``): that stand-in is
the one substitute here. Another local server plays one that is not ClickHouse at all.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from insights_scenario import DAY, EXPECTED, IDLE_S, T0, assert_matches, iso, scenario_spans, write_jsonl
from otel_traces import SHORT_STATUS, load
from spanstamp import attributes as attr
from spanstamp.insights.clickhouse import (
    QUERY_FILE,
    ClickHouseError,
    analyze_chdb,
    analyze_clickhouse,
    query_parameters,
    query_text,
)


def _later_spans() -> list[ReadableSpan]:
    """Two turns of one session spelled with and without padding, and a span three hours later."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("later")
    # Padded with tabs and newlines too: both engines strip ASCII whitespace, as spanstamp does.
    for start, end, session, text in ((200, 210, "\ts-pad \n", "A"), (300, 305, "s-pad", "  B  ")):
        # One trace each, no task span: a root without input, its child has one.
        root = tracer.start_span("POST /chat", start_time=_at(2 * DAY + start), attributes={attr.SESSION_ID: session})
        child = tracer.start_span(
            "retrieve",
            context=trace.set_span_in_context(root),
            start_time=_at(2 * DAY + start + 1),
            attributes={attr.SESSION_ID: session, attr.USER_ID: "erin", attr.INPUT_VALUE: text},
        )
        child.end(end_time=_at(2 * DAY + end - 1))
        root.end(end_time=_at(2 * DAY + end))
    tracer.start_span("GET /health", start_time=_at(2 * DAY + 3 * 3600)).end(end_time=_at(2 * DAY + 3 * 3600 + 1))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _at(seconds_after_t0: float) -> int:
    return T0 * 1_000_000_000 + round(seconds_after_t0 * 1_000_000_000)


@pytest.fixture(scope="module")
def chdb_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("chdb", reason="the insights-clickhouse extra (chdb) is not installed")
    from chdb.session import Session

    session = Session(str(tmp_path_factory.mktemp("chdb")))
    spans = scenario_spans()
    load(session, "otel_traces", spans)
    for database in ("newer", "empty", "later"):
        session.query(f"CREATE DATABASE {database}")
    load(session, "newer.otel_traces", spans, SHORT_STATUS)
    load(session, "empty.otel_traces", [])
    load(session, "later.otel_traces", [*spans, *_later_spans()])
    yield session
    session.close()


# --- the query file ----------------------------------------------------------------------


def test_the_query_spells_the_names_spanstamp_attributes_defines() -> None:
    sql = QUERY_FILE.read_text(encoding="utf-8")
    names = (
        attr.SESSION_ID,
        attr.USER_ID,
        attr.TASK_ID,
        attr.FEEDBACK_TASK_ID,
        attr.INPUT_VALUE,
        attr.OUTPUT_VALUE,
        attr.SESSION_END_EVENT,
        attr.SESSION_END_REASON,
    )
    for name in names:
        assert f"'{name}'" in sql, name
    # ... and no other attribute name: every quoted dotted lower-case literal is one of them.
    literals = set(re.findall(r"'([a-z_]+(?:\.[a-z_]+)+)'", sql))
    assert literals == set(names)


def test_the_file_runs_as_it_is_and_names_its_table_once() -> None:
    assert query_text() == QUERY_FILE.read_text(encoding="utf-8")
    assert "FROM `otel`.`traces`\n" in query_text("otel.traces")
    assert {"{idle_s:Float64}", "{top:UInt32}"} == set(re.findall(r"\{\w+:\w+\}", query_text()))


@pytest.mark.parametrize("table", ["otel traces", "x; DROP TABLE y", "a.b.c", "`t`", "", 3])
def test_a_table_name_that_could_change_the_query_is_refused(table: Any) -> None:
    with pytest.raises(ValueError, match="table must be"):
        query_text(table)


@pytest.mark.parametrize(("idle_s", "top"), [(-1, 20), (float("nan"), 20), ("30m", 20), (1800, -1), (1800, True)])
def test_bad_parameters_are_refused(idle_s: Any, top: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        query_parameters(idle_s, top)


# --- the known answers, in chDB ------------------------------------------------------------


@pytest.mark.clickhouse
@pytest.mark.parametrize("table", ["otel_traces", "newer.otel_traces"], ids=["STATUS_CODE_ERROR", "Error"])
def test_the_scenario_gives_the_known_answers(chdb_session: Any, table: str) -> None:
    result = analyze_chdb(chdb_session, idle_s=IDLE_S, table=table)
    assert_matches(result)
    assert set(result) == set(EXPECTED)


@pytest.mark.clickhouse
def test_an_empty_table_gives_zero_counts_null_figures_and_empty_lists(chdb_session: Any) -> None:
    result = analyze_chdb(chdb_session, table="empty.otel_traces")
    assert result["spans"] == result["turns"] == 0
    assert result["newest"] is None
    assert result["sessions"]["count"] == result["sessions"]["visits"] == 0
    assert result["sessions"]["duration_s"] == {"mean": None, "p50": None, "p90": None}
    assert result["users"] == {"count": 0, "returning": 0, "top": []}
    assert result["endings"]["last_turn_failed_share"] is None
    assert result["endings"]["top_last_inputs"] == result["endings"]["reasons"] == []
    assert all(chart == [] for chart in result["charts"].values())


@pytest.mark.clickhouse
def test_the_idle_threshold_and_top_are_parameters(chdb_session: Any) -> None:
    # Idle longer than the whole scenario: only the recorded end (s-alice-1) ends a session,
    # and s-alice-2's 3,580 s gap no longer splits it into two visits.
    result = analyze_chdb(chdb_session, idle_s=10 * DAY, top=2)
    assert result["idle_s"] == 10 * DAY
    assert result["sessions"]["ended"] == result["endings"]["ended"] == 1
    assert result["sessions"]["visits"] == 5
    assert result["endings"]["last_turn_failed_share"] == 0
    assert result["endings"]["single_turn_share"] == 0
    assert result["endings"]["top_last_inputs"] == [{"input": "thanks, bye", "count": 1}]
    assert [user["user_id"] for user in result["users"]["top"]] == ["alice", "carol"]
    assert result["users"]["top"][0]["last_seen"] == iso(DAY + 3630)
    assert analyze_chdb(chdb_session, top=0)["users"] == {**EXPECTED["users"], "top": []}


@pytest.mark.clickhouse
def test_trace_turns_take_the_earliest_input_and_padded_session_ids_are_one_session(chdb_session: Any) -> None:
    # Three hours after the scenario's newest span, s-open has ended too; its last turn (a
    # trace without task spans whose root has no input) shows its earliest span's input.
    result = analyze_chdb(chdb_session, table="later.otel_traces")
    assert result["spans"] == EXPECTED["spans"] + 5
    assert result["newest"] == iso(2 * DAY + 3 * 3600 + 1)
    assert result["sessions"]["count"] == 6
    assert result["sessions"]["ended"] == 6
    assert result["endings"]["top_last_inputs"] == [
        {"input": "thanks, bye", "count": 3},
        {"input": "b", "count": 1},
        {"input": "more?", "count": 1},
        {"input": "price?", "count": 1},
    ]
    assert result["endings"]["all_turns_failed_share"] == pytest.approx(2 / 13, rel=1e-9)
    (erin,) = [user for user in result["users"]["top"] if user["user_id"] == "erin"]
    assert erin["sessions"] == 1
    assert erin["turns"] == 2
    assert erin["first_seen"] == iso(2 * DAY + 200)


# --- over HTTP -----------------------------------------------------------------------------


class _ChdbHttp(BaseHTTPRequestHandler):
    """ClickHouse's HTTP interface as far as analyze_clickhouse uses it, answered by chDB."""

    session: Any
    seen: list[dict[str, Any]]

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.seen.append({"path": url.path, "query": query, "headers": dict(self.headers), "body": body})
        params = {key.removeprefix("param_"): value for key, value in query.items() if key.startswith("param_")}
        try:
            answer, status, code = self.session.query(body, "TSVRaw", params=params).bytes(), 200, None
        except Exception as error:  # ClickHouse answers 500 with "Code: N. DB::Exception: ..."
            answer, status = str(error).encode(), 500
            code = re.search(r"Code: (\d+)", str(error)).group(1)  # type: ignore[union-attr]
        self.send_response(status)
        if code:
            self.send_header("X-ClickHouse-Exception-Code", code)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_clickhouse(chdb_session: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_ChdbHttp,), {"session": chdb_session, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.clickhouse
def test_analyze_clickhouse_over_http_gives_the_known_answers(
    http_clickhouse: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = http_clickhouse
    host = base.removeprefix("http://")
    result = analyze_clickhouse(f"http://analyst:p%40ss@{host}/?max_threads=2", idle_s=IDLE_S)
    assert_matches(result)
    (request,) = seen
    assert request["body"] == query_text()
    assert request["query"] == {"max_threads": "2", "param_idle_s": "1800.0", "param_top": "20"}
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"analyst:p@ss").decode()


@pytest.mark.clickhouse
def test_credentials_come_from_the_environment_without_userinfo(
    http_clickhouse: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen = http_clickhouse
    monkeypatch.setenv("CLICKHOUSE_USER", "reader")
    monkeypatch.setenv("CLICKHOUSE_PASSWORD", "s3cret")
    analyze_clickhouse(base, table="newer.otel_traces")
    assert seen[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert "s3cret" not in json.dumps(seen[0]["query"])


@pytest.mark.clickhouse
def test_a_server_error_is_a_clear_message_without_the_password(
    http_clickhouse: tuple[str, list[dict[str, Any]]],
) -> None:
    base, _ = http_clickhouse
    host = base.removeprefix("http://")
    with pytest.raises(ClickHouseError) as raised:
        analyze_clickhouse(f"http://analyst:hunter2@{host}", table="missing.otel_traces")
    message = str(raised.value)
    assert message.startswith(f"ClickHouse at http://{host} answered HTTP 500: Code: ")
    assert "missing" in message
    assert "hunter2" not in message
    assert "analyst" not in message


def test_an_unreachable_server_is_a_clear_message() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClickHouseError, match=f"cannot reach ClickHouse at http://127.0.0.1:{port}: "):
        analyze_clickhouse(f"http://user:pw@127.0.0.1:{port}", timeout=5)


@pytest.mark.clickhouse
def test_the_command_reads_clickhouse(
    http_clickhouse: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("duckdb", reason="the CLI imports the insights extra")
    from spanstamp.insights.cli import main

    base, seen = http_clickhouse
    assert main(["--clickhouse", base, "--idle", "30m", "--json"]) == 0
    assert_matches(json.loads(capsys.readouterr().out))
    assert seen[0]["query"]["param_idle_s"] == "1800.0"
    # --top reaches the query as its parameter.
    assert main(["--clickhouse", base, "--top", "2", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["users"]["top"]
    assert [user["user_id"] for user in top] == ["alice", "carol"]
    assert seen[-1]["query"]["param_top"] == "2"


def test_the_command_says_in_one_line_when_clickhouse_cannot_be_reached(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("duckdb", reason="the CLI imports the insights extra")
    from spanstamp.insights.cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["--clickhouse", f"http://reader:pw@127.0.0.1:{port}", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert f"cannot reach ClickHouse at http://127.0.0.1:{port}" in line
    assert "reader" not in line
    assert "pw@" not in line


class _NotClickHouse(BaseHTTPRequestHandler):
    """A server that is not ClickHouse: a login page, or no answer at all."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/slow"):
            self.server.release.wait()  # type: ignore[attr-defined]
            return
        page = b"<html>please log in</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def not_clickhouse() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotClickHouse)
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.release.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join()


def test_an_answer_that_is_not_the_document_is_a_clear_message(not_clickhouse: str) -> None:
    with pytest.raises(
        ClickHouseError, match=rf"ClickHouse at http://{not_clickhouse} did not answer a JSON document: <html>"
    ):
        analyze_clickhouse(f"http://{not_clickhouse}/")


def test_a_server_that_does_not_answer_in_time_is_a_clear_message(not_clickhouse: str) -> None:
    with pytest.raises(ClickHouseError, match=rf"no answer from ClickHouse at http://{not_clickhouse} within 0.2 s"):
        analyze_clickhouse(f"http://{not_clickhouse}/slow", timeout=0.2)


@pytest.mark.parametrize("url", ["localhost:8123", "ftp://host/", "http://", "clickhouse://host:9000"])
def test_a_url_that_is_not_the_http_interface_is_refused(url: str) -> None:
    with pytest.raises(ClickHouseError, match="must be http://host:port"):
        analyze_clickhouse(url)


# --- the same figures from the files (DuckDB) and from ClickHouse --------------------------


@pytest.mark.clickhouse
@pytest.mark.parametrize(
    ("data", "idle_s", "top"),
    [("scenario", IDLE_S, 20), ("scenario", 10 * DAY, 2), ("later", IDLE_S, 20), ("later", 60, 3)],
)
def test_duckdb_and_clickhouse_agree(chdb_session: Any, tmp_path: Path, data: str, idle_s: float, top: int) -> None:
    pytest.importorskip("duckdb", reason="the insights extra (duckdb) is not installed")
    from spanstamp.insights import analyze

    spans = scenario_spans() if data == "scenario" else [*scenario_spans(), *_later_spans()]
    from_files = analyze([write_jsonl(spans, tmp_path / "spans.jsonl")], idle_s=idle_s, top=top)
    table = "otel_traces" if data == "scenario" else "later.otel_traces"
    from_clickhouse = analyze_chdb(chdb_session, idle_s=idle_s, top=top, table=table)
    assert from_files.pop("skipped") == []
    # Both ways round: the same keys, the same values (floats to 1e-9 relative).
    assert_matches(from_clickhouse, from_files)
    assert_matches(from_files, from_clickhouse)
