"""The terminal report of an insights result: plain text tables, aligned in columns.

Plain text on purpose (no `rich`): the report reads the same on a terminal, in a pipe, a file
or a CI log, has no terminal-width guessing, and the insights extra needs no further package.
Every user text (inputs, user ids, end reasons) is cut to one line of at most `TEXT_CAP` cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spanstamp.insights import _format as fmt

__all__ = ["render"]

_RULE = "="


def render(result: dict[str, Any]) -> str:
    """The readable report of `result` (the dict `analyze()` returns): lines of text, no final newline.

    text = render(analyze(["traces.jsonl"]))
    print(text)
    """
    sessions = result.get("sessions") or {}
    users = result.get("users") or {}
    endings = result.get("endings") or {}
    parts = [
        _overview(result, sessions, users),
        _sessions(sessions),
        _users(users),
        _endings(endings),
    ]
    skipped = result.get("skipped") or []
    if skipped:
        parts.append(_skipped(skipped))
    return "\n\n".join(parts)


def _heading(title: str) -> str:
    return f"{title}\n{_RULE * fmt.cells(title)}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    """Rows under headers in aligned columns, widths counted in terminal cells. `align` spells each
    column's side ("l" or "r"); by default the first column (a label) is flush left, figures right."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [fmt.cells(h) for h in headers]
    for row in rows:
        widths = [max(w, fmt.cells(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for side, cell, width in zip(align, cells, widths, strict=True):
            pad = " " * (width - fmt.cells(cell))
            out.append(cell + pad if side == "l" else pad + cell)
        return "  " + "  ".join(out).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _pairs(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """A label: value list, values aligned."""
    width = max(fmt.cells(label) for label, _ in pairs)
    return [f"  {label}{' ' * (width - fmt.cells(label))}  {value}" for label, value in pairs]


def _of(part: Any, whole: Any) -> str:
    """'3 (15.0%)': a count with its share of a whole, the share left out when there is no whole."""
    if part is None:
        return fmt.MISSING
    if not whole:
        return fmt.count(part)
    return f"{fmt.count(part)} ({fmt.share(part / whole)})"


def _overview(result: dict[str, Any], sessions: dict[str, Any], users: dict[str, Any]) -> str:
    idle = result.get("idle_s")
    lines = _pairs(
        [
            ("spans", fmt.count(result.get("spans", 0))),
            ("turns", fmt.count(result.get("turns", 0))),
            ("sessions", fmt.count(sessions.get("count", 0))),
            ("users", fmt.count(users.get("count", 0))),
            ("returning users", _of(users.get("returning", 0), users.get("count"))),
            ("newest span", fmt.timestamp(result.get("newest"))),
            ("idle gap", fmt.duration(idle) if idle is not None else fmt.MISSING),
        ]
    )
    return "\n".join([_heading("spanstamp insights"), *lines])


def _stats_row(label: str, stats: Any, show: Any) -> list[str]:
    stats = stats or {}
    return [label, *(show(stats.get(key)) for key in ("mean", "p50", "p90"))]


def _sessions(sessions: dict[str, Any]) -> str:
    total = sessions.get("count", 0)
    lines = _pairs(
        [
            ("sessions", fmt.count(total)),
            ("single-turn", _of(sessions.get("single_turn", 0), total)),
            ("multi-user", _of(sessions.get("multi_user", 0), total)),
            ("ended", _of(sessions.get("ended", 0), total)),
            ("visits", fmt.count(sessions.get("visits", 0))),
        ]
    )
    table = _table(
        ["per session", "mean", "p50", "p90"],
        [
            _stats_row("turns", sessions.get("turns_per_session"), fmt.number),
            _stats_row("duration", sessions.get("duration_s"), fmt.duration),
            _stats_row("active time", sessions.get("active_s"), fmt.duration),
            _stats_row("visit duration", sessions.get("visit_duration_s"), fmt.duration),
        ],
    )
    return "\n".join([_heading("Sessions"), *lines, "", *table])


def _users(users: dict[str, Any]) -> str:
    top = users.get("top") or []
    head = _heading(f"Top users (by turns; {len(top)} of {fmt.count(users.get('count', 0))})")
    if not top:
        return f"{head}\n  no users"
    rows = [fmt.user_row(user, 32) for user in top]
    headers = fmt.USER_COLUMNS
    return "\n".join([head, *_table(headers, rows)])


def _endings(endings: dict[str, Any]) -> str:
    ended = endings.get("ended", 0)
    head = _heading(f"What ends sessions ({fmt.count(ended)} ended)")
    if not ended:
        return f"{head}\n  no ended sessions"
    latency = endings.get("last_turn_latency_ratio") or {}
    lines = _pairs(
        [
            ("last turn failed", fmt.share(endings.get("last_turn_failed_share"))),
            ("any turn failed", fmt.share(endings.get("all_turns_failed_share"))),
            ("single-turn sessions", fmt.share(endings.get("single_turn_share"))),
            (
                "last turn latency",
                f"{fmt.ratio(latency.get('mean'))} mean, {fmt.ratio(latency.get('p50'))} p50"
                " of the session's median turn",
            ),
        ]
    )
    out = [head, *lines]
    inputs = endings.get("top_last_inputs") or []
    if inputs:
        rows = [[fmt.count(item.get("count")), fmt.clip(item.get("input"))] for item in inputs]
        out += ["", *_table(["count", "last input (normalized)"], rows, align="rl")]
    reasons = endings.get("reasons") or []
    if reasons:
        rows = [[fmt.count(item.get("count")), fmt.clip(item.get("reason"))] for item in reasons]
        out += ["", *_table(["count", "end_session() reason"], rows, align="rl")]
    return "\n".join(out)


def _skipped(skipped: Sequence[dict[str, Any]]) -> str:
    shown = 5
    rows = [[_where(item), fmt.clip(item.get("reason"))] for item in skipped[:shown]]
    lines = [_heading(f"Skipped input ({fmt.count(len(skipped))})"), *_table(["where", "why"], rows, align="ll")]
    if len(skipped) > shown:
        lines.append(f"  ... and {fmt.count(len(skipped) - shown)} more")
    return "\n".join(lines)


def _where(item: dict[str, Any]) -> str:
    """'file:line', or the file alone when the whole file (or a pattern) was left out."""
    where = fmt.clip(item.get("file"), 40)
    return where if item.get("line") is None else f"{where}:{item['line']}"
