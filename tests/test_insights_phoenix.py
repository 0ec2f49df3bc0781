"""``spanstamp.insights.phoenix.download()`` against a real Phoenix server.

The spans go out through the SDK's real OTLP/HTTP exporter to Phoenix and, at the same
time, through the real OTLP JSON file exporter to a file; what download() reads back from
Phoenix's REST API must be that file's spans, attribute by attribute (Phoenix's own
losses named where they are checked). Needs the ``phoenix`` extra (skipped without it):

    .venv-phoenix/bin/python -m pytest -m phoenix_e2e tests/test_insights_phoenix.py
"""

from __future__ import annotations

import json
import math
import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Status, StatusCode

import insights_scenario as scenario
import servers
import spanstamp

# Skips this module when arize-phoenix is not installed.
from phoenix_server import clean_env, running_phoenix, until_found
from spanstamp import attributes as attr
from spanstamp.insights.phoenix import API_KEY_ENV, PhoenixError, download

pytestmark = pytest.mark.phoenix_e2e

PROJECT = "insights-e2e"
T0 = 1_796_000_000_000_000_000  # 2026-11-30T00:53:20Z, in nanoseconds
US = 1_000  # a microsecond: the precision Phoenix keeps
S = 1_000_000_000


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Phoenix for the module's tests (each start costs ~10 s of two shared cores)."""
    with running_phoenix(tmp_path_factory.mktemp("phoenix")) as url:
        yield url


def send(url: str, project: str, file: Path, headers: dict[str, str] | None = None) -> int:
    """Record the spans both to Phoenix (OTLP/HTTP) and to ``file`` (the file exporter); how many."""
    # Imported here: the lowest-versions run (test-core extra) collects this module, then skips it.
    from opentelemetry.exporter.otlp.json.file.trace_exporter import FileSpanExporter

    provider = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{url}/v1/traces", headers=headers)))
    provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(file)))
    spanstamp.install(provider)
    tracer = provider.get_tracer("insights-e2e")
    count = 0
    with spanstamp.using_attributes(session_id="s-1", user_id="u-1"):
        with spanstamp.using_metadata({"plan": "pro", "nested": {"k": [1, 2]}, "docs": [{"a": 1}, {"a": 2}]}):
            with spanstamp.using_tags(["red", "blue"]):
                turn = tracer.start_span(
                    "turn",
                    start_time=T0,
                    attributes={
                        attr.TASK_ID: "task-1",
                        attr.SPAN_KIND: "CHAIN",
                        attr.INPUT_VALUE: "héllo ✓ world",
                        attr.OUTPUT_VALUE: "bye",
                        "count": 3,
                        "ratio": 0.25,
                        "flag": True,
                        "sizes": [1, 2, 3],
                        "big": 2**62,
                    },
                )
        with trace.use_span(turn, end_on_exit=False):
            llm = tracer.start_span("llm", start_time=T0 + 10 * US, attributes={attr.SPAN_KIND: "LLM"})
            llm.add_event("retry", {"attempt": 2, "why": "rate limit"}, timestamp=T0 + 20 * US)
            llm.record_exception(RuntimeError("upstream failed"), {"http.status_code": 503}, timestamp=T0 + 30 * US)
            llm.set_status(Status(StatusCode.ERROR, "upstream failed"))
            llm.end(end_time=T0 + S)
            count += 1
        turn.set_status(Status(StatusCode.OK))
        turn.end(end_time=T0 + 2 * S)
        count += 1
        # Phoenix keeps whole microseconds: this span's 789 ns are rounded away.
        with tracer.start_as_current_span("odd-time", start_time=T0 + 3 * S + 123_456_789) as odd:
            odd.set_attribute("note", "sub-microsecond start")
        count += 1
    # As end_session() records it: a root span of its own, the ids only in the event.
    ended = tracer.start_span("session.end", start_time=T0 + 4 * S)
    ended.add_event(
        attr.SESSION_END_EVENT, {attr.SESSION_ID: "s-1", attr.SESSION_END_REASON: "user_left"}, timestamp=T0 + 4 * S
    )
    ended.end(end_time=T0 + 4 * S + US)
    count += 1
    with spanstamp.using_attributes(session_id="s-2", user_id="u-2"):
        for i in range(3):
            start = T0 + (10 + i) * S
            tracer.start_span(f"step-{i}", start_time=start, attributes={attr.INPUT_VALUE: f"q{i}"}).end(start + S)
            count += 1
    provider.shutdown()
    return count


def file_spans(path: Path) -> dict[str, dict[str, Any]]:
    """The spans of an OTLP JSON lines file by span id."""
    spans: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    spans[span["spanId"]] = span
    return spans


def by_key(key_values: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in key_values}


def event(e: dict[str, Any], unit: int = 1) -> tuple[str, int, dict[str, Any]]:
    """An OTLP event as (name, time in ns rounded to ``unit``, attributes by key)."""
    return e["name"], to_unit(int(e["timeUnixNano"]), unit), by_key(e.get("attributes", []))


def to_unit(nanos: int, unit: int) -> int:
    """``nanos`` rounded to the nearest multiple of ``unit`` (integers: a float cannot hold 1.8e18 ns exactly)."""
    return (nanos + unit // 2) // unit * unit


def assert_same_spans(sent_file: Path, got_file: Path) -> dict[str, dict[str, Any]]:
    """The spans of ``got_file`` (a download) are those of ``sent_file`` (the file exporter's), field by
    field, but for what Phoenix does not keep: nanoseconds below the microsecond, resource, scope,
    OTel span kind and flags; and ``metadata``'s JSON text, equal as JSON. Returns the download's spans.
    """
    sent, got = file_spans(sent_file), file_spans(got_file)
    assert sorted(got) == sorted(sent)
    for span_id, want in sent.items():
        have = got[span_id]
        assert have["traceId"] == want["traceId"]
        assert have.get("parentSpanId") == want.get("parentSpanId")
        assert have["name"] == want["name"]
        for field in ("startTimeUnixNano", "endTimeUnixNano"):
            assert isinstance(have[field], str)
            assert int(have[field]) == to_unit(int(want[field]), US)  # whole microseconds
        assert have["status"].get("code", 0) == want["status"].get("code", 0)
        assert have["status"].get("message") == want["status"].get("message")
        want_attrs, have_attrs = by_key(want.get("attributes", [])), by_key(have.get("attributes", []))
        # Phoenix parses the JSON text of `metadata`; download() writes it back as JSON text.
        if attr.METADATA in want_attrs:
            assert json.loads(have_attrs.pop(attr.METADATA)["stringValue"]) == json.loads(
                want_attrs.pop(attr.METADATA)["stringValue"]
            )
        assert have_attrs == want_attrs
        want_events = [event(e, US) for e in want.get("events", [])]
        for name, _, attributes in want_events:
            if name == "exception":  # Phoenix keeps only the exception.* attributes of these
                for key in [k for k in attributes if not k.startswith("exception.")]:
                    del attributes[key]
        assert [event(e) for e in have.get("events", [])] == want_events
    return got


def wait_for(url: str, project: str, count: int, headers: dict[str, str] | None = None) -> None:
    """Until Phoenix has written ``count`` spans of the project (it inserts in the background)."""
    found = until_found(f"{url}/v1/projects/{project}/spans?limit=1000", count, headers=headers)
    assert len(found) == count


def test_download_gives_back_the_spans_the_file_exporter_wrote(phoenix: str, tmp_path: Path) -> None:
    sent_file = tmp_path / "sent.jsonl"
    count = send(phoenix, PROJECT, sent_file)
    wait_for(phoenix, PROJECT, count)

    out = download(phoenix, PROJECT, tmp_path / "phoenix.jsonl", progress=False, page_size=3)

    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == math.ceil(count / 3)  # one ExportTraceServiceRequest per page
    for line in lines:
        (resource,) = json.loads(line)["resourceSpans"]
        # Phoenix keeps no resource but the project, and no instrumentation scope.
        assert by_key(resource["resource"]["attributes"]) == {"openinference.project.name": {"stringValue": PROJECT}}
    got = assert_same_spans(sent_file, out)
    # What the analysis reads, spelled out once: the turn, its user and the recorded end.
    turn = next(s for s in got.values() if s["name"] == "turn")
    assert by_key(turn["attributes"])[attr.SESSION_ID] == {"stringValue": "s-1"}
    assert by_key(turn["attributes"])[attr.USER_ID] == {"stringValue": "u-1"}
    end = next(s for s in got.values() if s["name"] == "session.end")
    assert by_key(end["events"][0]["attributes"])[attr.SESSION_END_REASON] == {"stringValue": "user_left"}
    llm = next(s for s in got.values() if s["name"] == "llm")
    assert llm["status"]["code"] == 2
    assert [e["name"] for e in llm["events"]] == ["retry", "exception"]


def test_the_known_answer_scenario_from_phoenix_gives_the_file_s_figures(phoenix: str, tmp_path: Path) -> None:
    spans = scenario.scenario_spans()
    exporter = OTLPSpanExporter(f"{phoenix}/v1/traces")
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    wait_for(phoenix, scenario.PROJECT, scenario.EXPECTED["spans"])

    path = download(phoenix, scenario.PROJECT, tmp_path / "phoenix.jsonl", progress=False, page_size=10)

    # Every time in the scenario is whole milliseconds, so Phoenix keeps them exactly.
    assert_same_spans(scenario.write_jsonl(spans, tmp_path / "file.jsonl"), path)
    from spanstamp.insights import analyze

    result = analyze([path], idle_s=scenario.IDLE_S)
    assert result["skipped"] == []
    scenario.assert_matches(result)

    # The same through the command line: the report on stdout, the progress line on stderr.
    command = ["insights", "--phoenix", phoenix, "--project", scenario.PROJECT, "--json"]
    run = subprocess.run([sys.executable, "-m", "spanstamp", *command], env=clean_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr == f"Phoenix {scenario.PROJECT}: 28 spans of 28 (100%)\n"
    scenario.assert_matches(json.loads(run.stdout))


def test_the_command_line_reports_an_unknown_project_in_one_line(phoenix: str) -> None:
    command = ["insights", "--phoenix", phoenix, "--project", "no-such-project"]
    run = subprocess.run([sys.executable, "-m", "spanstamp", *command], env=clean_env(), capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stdout == ""
    assert re.fullmatch(
        rf"spanstamp insights: PhoenixError: Phoenix at {phoenix} has no project 'no-such-project' \(projects: .*\)\n",
        run.stderr,
    )


def test_progress_goes_to_stderr_and_the_file_is_replaced_only_when_complete(
    phoenix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    count = send(phoenix, "insights-progress", tmp_path / "sent.jsonl")
    wait_for(phoenix, "insights-progress", count)
    dest = tmp_path / "phoenix.jsonl"
    dest.write_text("old\n")

    assert download(phoenix, "insights-progress", dest, page_size=2) == dest

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"Phoenix insights-progress: {count} spans of {count} (100%)\n"
    assert len(file_spans(dest)) == count
    assert not (tmp_path / "phoenix.jsonl.part").exists()

    # On a terminal the line is redrawn in place after each page.
    main, secondary = pty.openpty()
    with os.fdopen(secondary, "w", encoding="utf-8") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        download(phoenix, "insights-progress", dest, page_size=2)
    shown = read_all(main)
    assert count == 7  # four pages of two
    done = [
        "0 spans of 7 (0%)",
        "2 spans of 7 (29%)",
        "4 spans of 7 (57%)",
        "6 spans of 7 (86%)",
        "7 spans of 7 (100%)",
    ]
    # Once at the start, once a page, once more at the end; the terminal's own \r before \n.
    assert shown.split("\r") == ["", *(f"Phoenix insights-progress: {d}\x1b[K" for d in [*done, done[-1]]), "\n"]


def read_all(fd: int) -> str:
    """Everything waiting on a pty's main side (a read returns a chunk at a time); closes it."""
    chunks = []
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed and nothing is left
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


def test_a_project_can_be_named_by_its_id(phoenix: str, tmp_path: Path) -> None:
    count = send(phoenix, "insights-by-id", tmp_path / "sent.jsonl")
    wait_for(phoenix, "insights-by-id", count)
    projects = until_found(f"{phoenix}/v1/projects")
    (project_id,) = [p["id"] for p in projects if p["name"] == "insights-by-id"]

    out = download(phoenix, project_id, tmp_path / "phoenix.jsonl", progress=False)

    assert_same_spans(tmp_path / "sent.jsonl", out)
    resource = json.loads(out.read_text(encoding="utf-8").splitlines()[0])["resourceSpans"][0]["resource"]
    assert by_key(resource["attributes"]) == {"openinference.project.name": {"stringValue": "insights-by-id"}}


def test_phoenix_s_own_attributes_derived_from_gen_ai_ones_come_back_too(phoenix: str, tmp_path: Path) -> None:
    # Phoenix fills in OpenInference attributes from OTel's gen_ai.* ones where a span has none
    # (phoenix.trace.gen_ai); it stores them like the others, so the download has them too, and
    # the analysis sees the conversation id as the session. docs/insights-phoenix.md says so.
    provider = TracerProvider(resource=Resource.create({"openinference.project.name": "insights-gen-ai"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{phoenix}/v1/traces")))
    gen_ai = {
        "gen_ai.operation.name": "chat",
        "gen_ai.conversation.id": "conv-7",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
    }
    provider.get_tracer("insights-e2e").start_span("chat gpt-4o-mini", attributes=gen_ai).end()
    provider.shutdown()
    wait_for(phoenix, "insights-gen-ai", 1)

    out = download(phoenix, "insights-gen-ai", tmp_path / "phoenix.jsonl", progress=False)

    (span,) = file_spans(out).values()
    got = by_key(span["attributes"])
    assert {k: got[k] for k in gen_ai} == {k: {"stringValue": v} for k, v in gen_ai.items()}
    assert got[attr.SESSION_ID] == {"stringValue": "conv-7"}
    assert got[attr.SPAN_KIND] == {"stringValue": "LLM"}
    assert json.loads(got[attr.OUTPUT_VALUE]["stringValue"]) == {"model": "gpt-4o-mini"}


def test_an_unknown_project_is_named_with_the_projects_there_are(phoenix: str, tmp_path: Path) -> None:
    count = send(phoenix, "insights-known", tmp_path / "sent.jsonl")
    wait_for(phoenix, "insights-known", count)
    dest = tmp_path / "out.jsonl"
    with pytest.raises(PhoenixError, match=r"has no project 'no-such-project' \(projects: .*insights-known"):
        download(phoenix, "no-such-project", dest, progress=False)
    assert not dest.exists()
    assert not (tmp_path / "out.jsonl.part").exists()


def test_a_url_that_is_not_phoenix_s_api_is_reported(phoenix: str, tmp_path: Path) -> None:
    # Phoenix's web app answers any unknown path with its HTML page, status 200.
    with pytest.raises(PhoenixError, match="did not answer with JSON: is that the URL of a Phoenix server"):
        download(f"{phoenix}/not-here", "default", tmp_path / "out.jsonl", progress=False)


def test_an_unreachable_server_is_reported(tmp_path: Path) -> None:
    (port,) = servers.free_ports(1)  # nothing listens there
    with pytest.raises(PhoenixError, match=rf"Phoenix at http://127.0.0.1:{port} cannot be reached"):
        download(f"http://127.0.0.1:{port}", "default", tmp_path / "out.jsonl", progress=False, timeout=5)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_phoenix_with_auth_takes_the_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PHOENIX_ADMIN_SECRET is a bearer token Phoenix accepts like a system API key.
    secret = "spanstamp-test-admin-secret-0123456789"
    auth = {
        "PHOENIX_ENABLE_AUTH": "true",
        "PHOENIX_SECRET": "spanstamp-test-secret-0123456789abcdef",
        "PHOENIX_ADMIN_SECRET": secret,
    }
    bearer = {"Authorization": f"Bearer {secret}"}
    with running_phoenix(tmp_path, auth) as url:
        count = send(url, PROJECT, tmp_path / "sent.jsonl", headers=bearer)
        wait_for(url, PROJECT, count, headers=bearer)
        monkeypatch.delenv(API_KEY_ENV, raising=False)
        with pytest.raises(PhoenixError, match=r"refused the request \(HTTP 401\): set PHOENIX_API_KEY") as refused:
            download(url, PROJECT, tmp_path / "out.jsonl", progress=False)
        with pytest.raises(PhoenixError, match=r"HTTP 401") as wrong:
            download(url, PROJECT, tmp_path / "out.jsonl", progress=False, api_key="not-the-key")
        assert "not-the-key" not in str(wrong.value)
        assert secret not in str(refused.value)

        monkeypatch.setenv(API_KEY_ENV, secret)
        out = download(url, PROJECT, tmp_path / "out.jsonl", progress=False)
        assert len(file_spans(out)) == count
