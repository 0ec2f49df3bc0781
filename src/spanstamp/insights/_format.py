"""How the two reports spell figures: counts, shares, durations, times, and capped user text.

The terminal report and the HTML page both call these, so a figure reads the same in both.
Every function takes the result's raw value, which may be None (empty data), and returns text.
"""

from __future__ import annotations

import unicodedata
from typing import Any

#: What a missing figure (None in the result: nothing to compute it from) prints as.
MISSING = "-"
#: The widest user text (inputs, user ids, reasons) a report prints, in terminal cells.
TEXT_CAP = 60
_ELLIPSIS = "\u2026"


def count(value: Any) -> str:
    """An integer with thousands separators; MISSING for None.

    >>> count(1234567)
    '1,234,567'
    """
    if value is None:
        return MISSING
    return f"{int(value):,}"


def number(value: Any) -> str:
    """A mean or percentile of counts, to two decimals at most.

    >>> number(2.0), number(4.75), number(3.5)
    ('2', '4.75', '3.5')
    """
    if value is None:
        return MISSING
    return f"{float(value):,.2f}".rstrip("0").rstrip(".")


def share(value: Any) -> str:
    """A share in [0, 1] as a percentage with one decimal; MISSING for None.

    >>> share(0.25)
    '25.0%'
    """
    if value is None:
        return MISSING
    return f"{float(value) * 100:.1f}%"


def ratio(value: Any) -> str:
    """A latency ratio such as 1.8x; MISSING for None.

    >>> ratio(1.75)
    '1.75x'
    """
    if value is None:
        return MISSING
    return f"{float(value):.2f}x"


def duration(seconds: Any) -> str:
    """Seconds as the two largest units that matter: 850ms, 12.5s, 4m 05s, 2h 03m, 3d 04h.

    >>> duration(245), duration(0.85)
    ('4m 05s', '850ms')
    """
    if seconds is None:
        return MISSING
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def short_duration(seconds: float) -> str:
    """A round duration in its one unit, for axis labels: 30s, 5m, 1h.

    >>> short_duration(30), short_duration(300), short_duration(3600)
    ('30s', '5m', '1h')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def timestamp(value: Any) -> str:
    """An ISO 8601 UTC time of the result, to the second: '2026-11-30 09:15:00Z'.

    >>> timestamp("2026-11-30T09:15:00.250Z")
    '2026-11-30 09:15:00Z'
    """
    if not value:
        return MISSING
    text = str(value).replace("T", " ")
    # Milliseconds are noise at the scale of sessions; keep the zone marker.
    head, dot, _ = text.partition(".")
    return f"{head}Z" if dot else text


def cells(text: str) -> int:
    """The width of `text` in terminal cells: East Asian wide characters take two, combining marks none.

    >>> cells("abc"), cells("\u65e5\u672c")
    (3, 4)
    """
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def clip(value: Any, cap: int = TEXT_CAP) -> str:
    """User text made safe to print in a table row: one line, no control characters, at most `cap` cells.

    >>> clip("line one\\nline two \\x1b[31m", cap=12)
    'line one li\u2026'
    """
    if value is None:
        return MISSING
    # Newlines would break the table; escape sequences (ESC is a control character) would
    # let an input recolour or rewrite the reader's terminal.
    text = "".join(" " if unicodedata.category(char) == "Cc" else char for char in str(value))
    text = " ".join(text.split())
    if cells(text) <= cap:
        return text
    kept, width = [], 0
    for char in text:
        width += cells(char)
        if width > cap - 1:
            break
        kept.append(char)
    return "".join(kept).rstrip() + _ELLIPSIS


#: The columns of a top-users table, in both reports.
USER_COLUMNS = ["user", "sessions", "turns", "turns/session", "mean duration", "first seen", "last seen", "days"]


def user_row(user: dict[str, Any], id_cap: int) -> list[str]:
    """One entry of ``users.top`` as the cells of a top-users table (``USER_COLUMNS``).

    >>> user_row({"user_id": "ada", "sessions": 2, "turns": 5}, 32)[:3]
    ['ada', '2', '5']
    """
    return [
        clip(user.get("user_id"), id_cap),
        count(user.get("sessions")),
        count(user.get("turns")),
        number(user.get("mean_turns_per_session")),
        duration(user.get("mean_session_duration_s")),
        timestamp(user.get("first_seen")),
        timestamp(user.get("last_seen")),
        count(user.get("active_days")),
    ]
