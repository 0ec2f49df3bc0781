"""The insights reports: the terminal text for a known result, and the HTML page, checked for
escaping and then loaded in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) where each chart must have rendered with the expected bars, offline and without errors."""

from __future__ import annotations

import copy
import itertools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import insights_scenario as scenario
from spanstamp.insights import _format, analyze, report_html, report_text

# Text that would run, load something or restyle the page if it reached the HTML unescaped.
HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> & 'q'"


def known_result() -> dict[str, Any]:
    """A result of the contract's shape with every figure set, user text hostile in places."""
    return {
        "spans": 1234,
        "turns": 57,
        "idle_s": 1800.0,
        "newest": "2026-11-30T18:04:05.123Z",
        "sessions": {
            "count": 12,
            "single_turn": 3,
            "multi_user": 1,
            "ended": 8,
            "turns_per_session": {"mean": 4.75, "p50": 4.0, "p90": 9.0},
            "duration_s": {"mean": 412.5, "p50": 240.0, "p90": 3725.0},
            "active_s": {"mean": 80.25, "p50": 45.0, "p90": 200.0},
            "visits": 15,
            "visit_duration_s": {"mean": 300.0, "p50": 120.0, "p90": 900.0},
        },
        "users": {
            "count": 3,
            "returning": 1,
            "top": [
                _user("alice", 6, 30, 5.0, 500.0, "2026-11-28T09:00:00.000Z", "2026-11-30T18:04:05.123Z", 3),
                _user(HOSTILE, 4, 20, 5.0, 61.5, "2026-11-29T10:00:00.000Z", "2026-11-29T11:00:00.000Z", 1),
                _user("bob", 2, 7, 3.5, None, "2026-11-30T10:00:00.000Z", "2026-11-30T10:05:00.000Z", 1),
            ],
        },
        "endings": {
            "ended": 8,
            "last_turn_failed_share": 0.375,
            "all_turns_failed_share": 0.1,
            "last_turn_latency_ratio": {"mean": 1.8, "p50": 1.25},
            "single_turn_share": 0.25,
            "top_last_inputs": [
                {"input": "thanks, bye", "count": 3},
                {"input": HOSTILE, "count": 2},
                {"input": "x" * 300, "count": 1},
            ],
            "reasons": [{"reason": "user_closed", "count": 2}, {"reason": "timeout", "count": 1}],
        },
        "charts": {
            "turns_per_session": [
                {"turns": 1, "sessions": 3},
                {"turns": 4, "sessions": 5},
                {"turns": 9, "sessions": 4},
            ],
            "session_duration_s": [
                {"le": le, "sessions": n}
                for le, n in zip((10, 30, 60, 300, 600, 1800, 3600, None), (3, 0, 1, 4, 2, 0, 1, 1), strict=True)
            ],
            "sessions_per_day": [{"day": "2026-11-28", "sessions": 2}, {"day": "2026-11-30", "sessions": 10}],
        },
    }


def _user(
    uid: str, sessions: int, turns: int, tps: float, dur: float | None, first: str, last: str, days: int
) -> dict[str, Any]:
    return {
        "user_id": uid,
        "sessions": sessions,
        "turns": turns,
        "mean_turns_per_session": tps,
        "mean_session_duration_s": dur,
        "first_seen": first,
        "last_seen": last,
        "active_days": days,
    }


def empty_result() -> dict[str, Any]:
    """What the contract says empty data gives: counts 0, stats null, lists empty."""
    stats = {"mean": None, "p50": None, "p90": None}
    return {
        "spans": 0,
        "turns": 0,
        "idle_s": 1800.0,
        "newest": None,
        "sessions": {
            "count": 0,
            "single_turn": 0,
            "multi_user": 0,
            "ended": 0,
            "turns_per_session": stats,
            "duration_s": stats,
            "active_s": stats,
            "visits": 0,
            "visit_duration_s": stats,
        },
        "users": {"count": 0, "returning": 0, "top": []},
        "endings": {
            "ended": 0,
            "last_turn_failed_share": None,
            "all_turns_failed_share": None,
            "last_turn_latency_ratio": {"mean": None, "p50": None},
            "single_turn_share": None,
            "top_last_inputs": [],
            "reasons": [],
        },
        "charts": {"turns_per_session": [], "session_duration_s": [], "sessions_per_day": []},
    }


def _row(text: str, label: str) -> list[str]:
    """The cells of the report line that starts with `label` (cells are 2+ spaces apart)."""
    for line in text.splitlines():
        if line.strip().startswith(label + "  ") or line.strip() == label:
            return re.split(r"\s{2,}", line.strip())
    raise AssertionError(f"no line {label!r} in:\n{text}")


# --- the terminal report --------------------------------------------------------------------


def test_text_report_shows_each_figure_of_a_known_result() -> None:
    text = report_text.render(known_result())

    assert _row(text, "spans") == ["spans", "1,234"]
    assert _row(text, "returning users") == ["returning users", "1 (33.3%)"]
    assert _row(text, "newest span") == ["newest span", "2026-11-30 18:04:05Z"]
    assert _row(text, "single-turn") == ["single-turn", "3 (25.0%)"]
    assert _row(text, "ended") == ["ended", "8 (66.7%)"]
    assert _row(text, "visits") == ["visits", "15"]
    assert _row(text, "turns") == ["turns", "57"]  # the overview's line comes first
    assert _row(text, "per session") == ["per session", "mean", "p50", "p90"]
    assert _row(text, "duration") == ["duration", "6m 52s", "4m 00s", "1h 02m"]
    assert _row(text, "active time") == ["active time", "1m 20s", "45s", "3m 20s"]
    assert _row(text, "visit duration") == ["visit duration", "5m 00s", "2m 00s", "15m 00s"]
    assert _row(text, "alice") == [
        "alice",
        "6",
        "30",
        "5",
        "8m 20s",
        "2026-11-28 09:00:00Z",
        "2026-11-30 18:04:05Z",
        "3",
    ]
    assert _row(text, "bob") == ["bob", "2", "7", "3.5", "-", "2026-11-30 10:00:00Z", "2026-11-30 10:05:00Z", "1"]
    assert _row(text, "last turn failed") == ["last turn failed", "37.5%"]
    assert _row(text, "any turn failed") == ["any turn failed", "10.0%"]
    assert _row(text, "single-turn sessions") == ["single-turn sessions", "25.0%"]
    assert "1.80x mean, 1.25x p50" in _row(text, "last turn latency")[1]
    assert "What ends sessions (8 ended)" in text
    assert "Top users (by turns; 3 of 3)" in text
    reasons = text[text.index("end_session() reason") :].splitlines()
    assert [line.split() for line in reasons[2:4]] == [["2", "user_closed"], ["1", "timeout"]]
    # Sessions' turns-per-session figures, in the table's own "turns" row (the second one).
    turn_rows = [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip().startswith("turns ")]
    assert turn_rows[1] == ["turns", "4.75", "4", "9"]


def test_text_report_columns_line_up() -> None:
    text = report_text.render(known_result())
    block = text[text.index("  user ") :].split("\n\n")[0].splitlines()
    # Every line of the top-users table ends its right-aligned "days" column at the same place.
    assert len({len(line) for line in block}) == 1, block


def test_text_report_caps_user_text_to_one_short_line() -> None:
    result = known_result()
    result["endings"]["top_last_inputs"].append({"input": "two\nlines\x1b[2J\ttab", "count": 1})
    text = report_text.render(result)

    long_line = next(line for line in text.splitlines() if "xxxx" in line)
    assert long_line.rstrip().endswith("x\u2026")
    assert len(long_line.split()[-1]) == _format.TEXT_CAP
    # A newline or an escape sequence in an input neither breaks the table nor reaches the terminal.
    assert "\x1b" not in text
    assert re.search(r"^\s+1  two lines \[2J tab$", text, re.MULTILINE)


def test_text_report_of_empty_data_has_no_figures_and_no_error() -> None:
    text = report_text.render(empty_result())

    assert _row(text, "sessions") == ["sessions", "0"]
    assert _row(text, "duration") == ["duration", "-", "-", "-"]
    assert "no users" in text
    assert "no ended sessions" in text
    # Even a result with parts missing renders.
    assert "spanstamp insights" in report_text.render({})


def test_text_report_lists_skipped_input_briefly() -> None:
    result = empty_result()
    result["skipped"] = [{"file": "t.jsonl", "line": n, "reason": "not JSON"} for n in range(1, 8)]
    result["skipped"].insert(0, {"file": "old/*.gz", "line": None, "reason": "pattern matches no file"})
    text = report_text.render(result)

    assert "Skipped input (8)" in text
    assert re.search(r"^  old/\*\.gz\s+pattern matches no file$", text, re.MULTILINE)
    assert "t.jsonl:4" in text
    assert "t.jsonl:5" not in text
    assert "... and 3 more" in text


# --- the HTML page, as text -----------------------------------------------------------------


class _Tags(HTMLParser):
    """The element and attribute names of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.attributes.update(name for name, _ in attrs)


def test_html_escapes_every_text_from_the_data() -> None:
    page = report_html.render(known_result())

    tags = _Tags()
    tags.feed(page)

    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;&lt;img src=x onerror=&quot;" in page
    assert not {"script", "img", "link", "iframe", "object"} & tags.names
    # Self-contained: no element points at anything to fetch, the style sheet imports nothing,
    # and the CSP forbids loading anything should something slip through.
    assert not {"src", "href", "srcset", "data"} & tags.attributes
    assert "@import" not in page
    assert "url(" not in page
    assert "default-src 'none'" in page


def test_html_of_empty_data_says_no_data() -> None:
    page = report_html.render(empty_result())

    assert page.count(">No data</text>") == 6
    assert 'class="bar"' not in page
    assert "spanstamp insights" in report_html.render({})


# --- the HTML page in a real headless browser -----------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing: install Debian's chromium package (apt-get install chromium)")
    with sync_api.sync_playwright() as driver:
        # Playwright's own browser download needs the internet; the system Chromium serves.
        # As root Chromium needs --no-sandbox, which Playwright passes by default.
        instance = driver.chromium.launch(executable_path=CHROMIUM)
        yield instance
        instance.close()


class LoadedPage:
    """A report page opened from a file, with every request and console error it made."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.url = path.as_uri()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(self.url, wait_until="load")

    def chart(self, chart_id: str) -> tuple[dict[str, float], list[dict[str, float]]]:
        """The bounding box of the chart's SVG and of each of its bars."""
        svg = self.page.locator(f"svg#{chart_id}")
        assert svg.count() == 1, chart_id
        bars = svg.locator("rect.bar")
        return svg.bounding_box(), [bars.nth(i).bounding_box() for i in range(bars.count())]


def _open(browser: Any, tmp_path: Path, result: dict[str, Any]) -> LoadedPage:
    path = tmp_path / "insights.html"
    path.write_text(report_html.render(result), encoding="utf-8")
    return LoadedPage(browser, path)


def _proportional(boxes: list[dict[str, float]], values: list[float], side: str) -> None:
    """Bars drawn in proportion to their values (to a pixel), zero values with no extent."""
    unit = max(box[side] for box in boxes) / max(values)
    for box, value in zip(boxes, values, strict=True):
        assert box[side] == pytest.approx(value * unit, abs=1.0), (boxes, values)


def _check_charts(loaded: LoadedPage, columns: dict[str, list[float]], rows: dict[str, list[float]]) -> None:
    """Each chart drawn with a real extent and one bar per value, in proportion, inside the chart."""
    for chart_id, values in {**columns, **rows}.items():
        svg, bars = loaded.chart(chart_id)
        assert svg["width"] > 100, chart_id
        assert svg["height"] > 40, chart_id
        assert len(bars) == len(values), chart_id
        _proportional(bars, values, "height" if chart_id in columns else "width")
        for bar in bars:
            assert svg["x"] <= bar["x"]
            assert bar["x"] + bar["width"] <= svg["x"] + svg["width"] + 0.5


def test_each_chart_renders_in_headless_chromium_offline(browser: Any, tmp_path: Path) -> None:
    result = known_result()
    loaded = _open(browser, tmp_path, result)
    charts = result["charts"]
    columns = {
        "chart-turns-per-session": [d["sessions"] for d in charts["turns_per_session"]],
        "chart-session-duration": [d["sessions"] for d in charts["session_duration_s"]],
        # The day without sessions between the two is drawn, empty.
        "chart-sessions-per-day": [2, 0, 10],
    }
    rows = {
        "chart-top-users": [u["turns"] for u in result["users"]["top"]],
        "chart-ending-shares": [0.375, 0.1, 0.25],
        "chart-last-inputs": [i["count"] for i in result["endings"]["top_last_inputs"]],
    }
    _check_charts(loaded, columns, rows)

    assert loaded.requests == [loaded.url]  # the page itself and nothing else
    assert loaded.errors == []
    # The hostile user text is shown as text and ran nothing.
    assert loaded.page.evaluate("window.__pwned") is None
    assert loaded.page.locator("script, img").count() == 0
    assert HOSTILE in loaded.page.locator("#chart-top-users").text_content()
    assert loaded.page.get_by_role("img", name="Turns per session").count() == 1
    # Nothing widens the page past a laptop window: wide tables scroll inside their box.
    loaded.page.set_viewport_size({"width": 820, "height": 900})
    assert loaded.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    loaded.page.close()


def test_empty_page_renders_without_errors(browser: Any, tmp_path: Path) -> None:
    loaded = _open(browser, tmp_path, empty_result())

    svg, bars = loaded.chart("chart-sessions-per-day")
    assert svg["width"] > 100
    assert bars == []
    assert loaded.requests == [loaded.url]
    assert loaded.errors == []
    loaded.page.close()


def test_many_days_and_long_labels_stay_inside_the_chart(browser: Any, tmp_path: Path) -> None:
    result = copy.deepcopy(known_result())
    result["charts"]["sessions_per_day"] = [
        {"day": f"2026-{month:02d}-{day:02d}", "sessions": day} for month in (10, 11) for day in range(1, 29)
    ]
    loaded = _open(browser, tmp_path, result)

    _svg, bars = loaded.chart("chart-sessions-per-day")
    assert len(bars) == 59  # 2026-10-01 .. 2026-11-28, the days in between filled in
    labels = loaded.page.locator("#chart-sessions-per-day text.label")
    boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
    assert 2 <= len(boxes) < 59
    for left, right in itertools.pairwise(boxes):  # thinned out so that no two overlap
        assert left["x"] + left["width"] < right["x"]
    loaded.page.close()


# --- the real thing: analyze() and the CLI on the lead's known-answer scenario -------------
# tests/insights_scenario.py: real SDK spans written by the official OTLP JSON file exporter.


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = scenario.write_jsonl(scenario.scenario_spans(), tmp_path_factory.mktemp("scenario") / "spans.jsonl")
    # The reports below show analyze()'s figures: pin them first, so a wrong figure is named here.
    scenario.assert_matches(analyze([path]))
    return path


def _cli(*args: str | Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "spanstamp", "insights", *map(str, args)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_text_report_of_the_scenario_from_the_cli(scenario_file: Path) -> None:
    text = _cli(scenario_file)

    assert text == report_text.render(analyze([scenario_file])) + "\n"  # print()ed
    assert _row(text, "spans") == ["spans", "28"]
    assert _row(text, "returning users") == ["returning users", "1 (25.0%)"]
    assert _row(text, "newest span") == ["newest span", "2026-11-04 09:01:52Z"]
    assert _row(text, "ended") == ["ended", "4 (80.0%)"]
    assert _row(text, "multi-user") == ["multi-user", "1 (20.0%)"]
    assert _row(text, "visits") == ["visits", "6"]
    assert _row(text, "duration") == ["duration", "13m 36s", "2m 10s", "37m 40s"]
    assert _row(text, "active time") == ["active time", "28.8s", "34s", "44s"]
    assert _row(text, "visit duration") == ["visit duration", "1m 24s", "1m 11s", "2m 47s"]
    assert _row(text, "alice") == [
        "alice",
        "2",
        "5",
        "2.5",
        "31m 20s",
        "2026-11-02 09:00:00Z",
        "2026-11-03 10:00:30Z",
        "2",
    ]
    assert _row(text, "bob") == ["bob", "1", "1", "1", "5s", "2026-11-02 09:10:00Z", "2026-11-02 09:10:05Z", "1"]
    assert _row(text, "last turn failed") == ["last turn failed", "50.0%"]
    assert _row(text, "any turn failed") == ["any turn failed", "22.2%"]
    assert "0.90x mean, 1.00x p50" in _row(text, "last turn latency")[1]
    assert re.search(r"^\s+3  thanks, bye\n\s+1  price\?$", text, re.MULTILINE)
    assert re.search(r"^\s+1  user_closed_chat$", text, re.MULTILINE)
    users = [line.split()[0] for line in text[text.index("  user ") :].split("\n\n")[0].splitlines()[2:]]
    assert users == ["alice", "carol", "dave", "bob"]


def test_scenario_page_from_the_cli_in_headless_chromium(browser: Any, scenario_file: Path, tmp_path: Path) -> None:
    page_path = tmp_path / "report.html"
    _cli(scenario_file, "--json", "--html", page_path)
    loaded = LoadedPage(browser, page_path)

    _check_charts(
        loaded,
        columns={
            "chart-turns-per-session": [1, 2, 2],  # sessions of 1, 2 and 3 turns
            "chart-session-duration": [1, 0, 0, 3, 0, 0, 0, 1],
            "chart-sessions-per-day": [3, 1, 1],
        },
        rows={
            "chart-top-users": [5, 3, 2, 1],
            "chart-ending-shares": [0.5, 2 / 9, 0.25],
            "chart-last-inputs": [3, 1],
        },
    )
    text = loaded.page.locator("#chart-sessions-per-day text.label").all_text_contents()
    assert text == ["2026-11-02", "2026-11-03", "2026-11-04"]
    text = loaded.page.locator("#chart-session-duration text.label").all_text_contents()
    assert text == [
        "\u2264 10s",
        "10s\u201330s",
        "30s\u20131m",
        "1m\u20135m",
        "5m\u201310m",
        "10m\u201330m",
        "30m\u20131h",
        "> 1h",
    ]
    text = loaded.page.locator("#chart-top-users text.label").all_text_contents()
    assert text == ["alice", "carol", "dave", "bob"]
    assert loaded.requests == [loaded.url]
    assert loaded.errors == []
    loaded.page.close()
