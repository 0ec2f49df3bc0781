"""The HTML report of an insights result: one self-contained page with inline SVG charts.

The page opens offline from a file: no script, no external style sheet, font or image, and a
Content-Security-Policy that forbids loading anything, so even text that slipped past escaping
could neither run nor call out. Each chart has a data table beside it (in a `<details>`), for
screen readers and for copying the figures.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from spanstamp.insights import _format as fmt
from spanstamp.insights._html import figure, page, table
from spanstamp.insights._svg import Bar, columns, rows

__all__ = ["render"]

# Sessions per day fills the days without sessions with empty bars up to this many days;
# a longer range shows only the days that have sessions (one bar per day would be a hairline).
_MAX_FILLED_DAYS = 400


def render(result: dict[str, Any]) -> str:
    """The whole HTML page for `result` (the dict `analyze()` returns), ready to write to a file.

    page = render(analyze(["traces.jsonl"]))
    Path("insights.html").write_text(page, encoding="utf-8")
    """
    sessions = result.get("sessions") or {}
    users = result.get("users") or {}
    endings = result.get("endings") or {}
    charts = result.get("charts") or {}
    body = [
        "<header><h1>spanstamp insights</h1>",
        f'<p class="muted">{fmt.count(result.get("spans", 0))} spans, {fmt.count(result.get("turns", 0))} turns;'
        f" newest span {escape(fmt.timestamp(result.get('newest')))}; idle gap"
        f" {escape(fmt.duration(result.get('idle_s')))}.</p></header>",
        _tiles(result, sessions, users),
        '<section id="sessions"><h2>Sessions</h2>',
        _stats_table(sessions),
        _turns_chart(charts.get("turns_per_session") or []),
        _duration_chart(charts.get("session_duration_s") or []),
        _days_chart(charts.get("sessions_per_day") or []),
        "</section>",
        '<section id="users"><h2>Users</h2>',
        _users(users),
        "</section>",
        '<section id="endings"><h2>What ends sessions</h2>',
        _endings(endings),
        "</section>",
    ]
    skipped = result.get("skipped") or []
    if skipped:
        body.append(
            f'<p class="muted">{fmt.count(len(skipped))} inputs were left out (bad lines, unreadable files);'
            " the terminal report lists them.</p>"
        )
    return page("spanstamp insights", body)


def _tiles(result: dict[str, Any], sessions: dict[str, Any], users: dict[str, Any]) -> str:
    tiles = [
        ("sessions", fmt.count(sessions.get("count", 0))),
        ("turns", fmt.count(result.get("turns", 0))),
        ("users", fmt.count(users.get("count", 0))),
        ("returning users", fmt.count(users.get("returning", 0))),
        ("ended sessions", fmt.count(sessions.get("ended", 0))),
        ("visits", fmt.count(sessions.get("visits", 0))),
    ]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in tiles)
    return f'<dl class="tiles">{items}</dl>'


def _stats_table(sessions: dict[str, Any]) -> str:
    def row(label: str, key: str, show: Any) -> list[str]:
        stats = sessions.get(key) or {}
        return [label, *(show(stats.get(k)) for k in ("mean", "p50", "p90"))]

    total = sessions.get("count", 0)
    counts = [
        ["single-turn", fmt.count(sessions.get("single_turn", 0)), _share_of(sessions.get("single_turn"), total)],
        ["multi-user", fmt.count(sessions.get("multi_user", 0)), _share_of(sessions.get("multi_user"), total)],
        ["ended", fmt.count(sessions.get("ended", 0)), _share_of(sessions.get("ended"), total)],
    ]
    stats = [
        row("turns", "turns_per_session", fmt.number),
        row("duration", "duration_s", fmt.duration),
        row("active time", "active_s", fmt.duration),
        row("visit duration", "visit_duration_s", fmt.duration),
    ]
    return table(["sessions", "count", "share"], counts) + "\n" + table(["per session", "mean", "p50", "p90"], stats)


def _share_of(part: Any, whole: Any) -> str:
    return fmt.share(part / whole) if part is not None and whole else fmt.MISSING


def _turns_chart(data: list[dict[str, Any]]) -> str:
    bars = [
        Bar(
            fmt.count(d["turns"]),
            d["sessions"],
            fmt.count(d["sessions"]),
            f"{d['turns']} turns: {d['sessions']} sessions",
        )
        for d in data
    ]
    svg = columns(
        "chart-turns-per-session",
        "Turns per session",
        "Number of sessions for each number of turns.",
        bars,
        axis="sessions",
    )
    return figure("Turns per session", svg, bars, ("turns", "sessions"))


def _duration_chart(data: list[dict[str, Any]]) -> str:
    # Each bucket holds the sessions longer than the previous bound, up to its own ("le").
    bars, previous = [], None
    for d in data:
        le = d.get("le")
        if le is None:
            label = f"> {fmt.short_duration(previous or 0)}"
        elif previous is None:
            label = f"\u2264 {fmt.short_duration(le)}"
        else:
            label = f"{fmt.short_duration(previous)}\u2013{fmt.short_duration(le)}"
        bars.append(Bar(label, d["sessions"], fmt.count(d["sessions"]), f"{label}: {d['sessions']} sessions"))
        previous = le
    svg = columns(
        "chart-session-duration",
        "Session duration",
        "Number of sessions in each duration bucket (last turn end minus first turn start).",
        bars,
        axis="sessions",
    )
    return figure("Session duration", svg, bars, ("duration", "sessions"))


def _days(data: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Days with their session counts, the days in between without sessions filled in with 0."""
    given = {d["day"]: d["sessions"] for d in data}
    try:
        first, last = (dt.date.fromisoformat(day) for day in (min(given), max(given)))
    except ValueError:
        return sorted(given.items())
    if (last - first).days >= _MAX_FILLED_DAYS:
        return sorted(given.items())
    days = (first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    return [(day.isoformat(), given.get(day.isoformat(), 0)) for day in days]


def _days_chart(data: list[dict[str, Any]]) -> str:
    bars = [Bar(day, n, fmt.count(n), f"{day}: {n} sessions") for day, n in (_days(data) if data else [])]
    svg = columns(
        "chart-sessions-per-day",
        "Sessions per day",
        "Sessions started on each UTC day (by the first turn's start).",
        bars,
        axis="sessions",
    )
    return figure("Sessions per day (UTC)", svg, bars, ("day", "sessions"))


def _users(users: dict[str, Any]) -> str:
    top = users.get("top") or []
    bars = [
        Bar(
            fmt.clip(u.get("user_id"), 200),
            u.get("turns") or 0,
            fmt.count(u.get("turns")),
            f"{fmt.clip(u.get('user_id'), 200)}: {u.get('turns')} turns in {u.get('sessions')} sessions",
        )
        for u in top
    ]
    svg = rows("chart-top-users", "Top users by turns", "Turns of each of the most active users.", bars)
    listing = table(
        fmt.USER_COLUMNS,
        [fmt.user_row(u, 40) for u in top],
        text_columns=(0,),
    )
    intro = (
        f"<p>{fmt.count(users.get('count', 0))} users, {fmt.count(users.get('returning', 0))} returning"
        " (active on at least 2 UTC days).</p>"
    )
    # No folded data table here: the full table of the top users follows the chart.
    chart = f"<figure><figcaption>Top users by turns</figcaption>\n{svg}\n</figure>"
    return "\n".join([intro, chart, listing if top else ""])


def _endings(endings: dict[str, Any]) -> str:
    ended = endings.get("ended", 0)
    intro = f"<p>Over the {fmt.count(ended)} ended sessions.</p>"
    shares = [
        ("last turn failed", endings.get("last_turn_failed_share")),
        ("any turn failed", endings.get("all_turns_failed_share")),
        ("single-turn session", endings.get("single_turn_share")),
    ]
    share_bars = [Bar(label, value, fmt.share(value)) for label, value in shares if value is not None]
    svg = rows(
        "chart-ending-shares",
        "What ends sessions: shares",
        "Share of ended sessions whose last turn failed, share of all their turns that failed,"
        " share of ended sessions with one turn.",
        share_bars,
        full=1.0,
    )
    parts = [intro, figure("Failures and single-turn sessions", svg, share_bars, ("share of", "value"))]
    latency = endings.get("last_turn_latency_ratio") or {}
    parts.append(
        table(
            ["last turn latency / session median", "mean", "p50"],
            [["ratio", fmt.ratio(latency.get("mean")), fmt.ratio(latency.get("p50"))]],
        )
    )
    inputs = endings.get("top_last_inputs") or []
    input_bars = [
        Bar(
            fmt.clip(i.get("input")),
            i.get("count") or 0,
            fmt.count(i.get("count")),
            f"{fmt.clip(i.get('input'), 200)}: {i.get('count')} sessions",
        )
        for i in inputs
    ]
    svg = rows(
        "chart-last-inputs",
        "Most frequent last inputs",
        "How many ended sessions ended on each last input (case and spaces ignored).",
        input_bars,
    )
    parts.append(figure("Most frequent last inputs", svg, input_bars, ("last input", "sessions")))
    reasons = endings.get("reasons") or []
    if reasons:
        parts.append(
            table(
                ["end_session() reason", "sessions"],
                [[fmt.clip(r.get("reason")), fmt.count(r.get("count"))] for r in reasons],
                text_columns=(0,),
            )
        )
    return "\n".join(parts)
