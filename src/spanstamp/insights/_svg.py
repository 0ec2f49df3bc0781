"""Chart primitives of the HTML report: bar charts as inline SVG text, no script, no external file.

Each chart is an `<svg role="img">` with a `<title>` and `<desc>` (what a screen reader says) and one
`<rect class="bar">` per bar, each with its own `<title>` (the tooltip). Every text that comes from
the data is escaped here, once: callers pass plain text.
"""

from __future__ import annotations

import math
from html import escape
from typing import NamedTuple

from spanstamp.insights import _format as fmt

_WIDTH = 720
_FONT = 12


class Bar(NamedTuple):
    """One bar: its axis label, its value, the value as shown, and an optional longer tooltip.

    bar = Bar("3 turns", 5, "5")
    bar.value  # 5
    """

    label: str
    value: float
    shown: str
    tip: str = ""


def _ticks(top: float, most: int = 5) -> list[float]:
    """Round axis ticks from 0 up to at least `top`: steps of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if step < 1 and top >= 1:
        step = 1
    count = math.ceil(top / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _open(chart_id: str, title: str, desc: str, height: int) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{cid}" class="chart" viewBox="0 0 {_WIDTH} {height}"'
        f' width="{_WIDTH}" height="{height}" role="img" aria-labelledby="{cid}-title {cid}-desc">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
    ]


def _empty(chart_id: str, title: str) -> str:
    lines = _open(chart_id, title, "No data.", 60)
    lines.append(f'<text class="empty" x="{_WIDTH / 2}" y="34" text-anchor="middle">No data</text></svg>')
    return "\n".join(lines)


def _tip(bar: Bar) -> str:
    return f"<title>{escape(bar.tip or f'{bar.label}: {bar.shown}')}</title>"


def columns(chart_id: str, title: str, desc: str, bars: list[Bar], *, axis: str = "") -> str:
    """A vertical bar chart (one column per bar, labels below, a value axis on the left) as SVG text.

    svg = columns("chart-x", "Sessions per day", "Sessions by day.", [Bar("2026-11-30", 4, "4")])
    svg.count('class="bar"')  # 1
    """
    if not bars:
        return _empty(chart_id, title)
    height, left, right, top, bottom = 260, 52, 12, 18, 44
    plot_w, plot_h = _WIDTH - left - right, height - top - bottom
    ticks = _ticks(max(bar.value for bar in bars))
    scale = plot_h / ticks[-1]
    band = plot_w / len(bars)
    # Labels below every column while they fit; past that every n-th, so they never overlap.
    label_px = max(fmt.cells(bar.label) for bar in bars) * _FONT * 0.6 + 8
    every = max(1, math.ceil(label_px / band))
    out = _open(chart_id, title, desc, height)
    out.append('<g class="axis">')
    for tick in ticks:
        y = top + plot_h - tick * scale
        out.append(f'<line x1="{left}" x2="{_WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt.number(tick)}</text>')
    if axis:
        out.append(
            f'<text x="12" y="{top + plot_h / 2:.1f}" transform="rotate(-90 12 {top + plot_h / 2:.1f})"'
            f' text-anchor="middle">{escape(axis)}</text>'
        )
    out.append("</g>")
    for i, bar in enumerate(bars):
        h = bar.value * scale
        x = left + i * band + band * 0.1
        out.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{band * 0.8:.1f}"'
            f' height="{h:.1f}">{_tip(bar)}</rect>'
        )
        cx = left + (i + 0.5) * band
        if i % every == 0:
            out.append(
                f'<text class="label" x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                f"{escape(bar.label)}</text>"
            )
        if len(bars) <= 16 and bar.value:
            out.append(
                f'<text class="value" x="{cx:.1f}" y="{top + plot_h - h - 4:.1f}" text-anchor="middle">'
                f"{escape(bar.shown)}</text>"
            )
    out.append("</svg>")
    return "\n".join(out)


def rows(chart_id: str, title: str, desc: str, bars: list[Bar], *, full: float | None = None) -> str:
    """A horizontal bar chart (one row per bar, labels on the left, values at the bar ends) as SVG text.

    `full` is the value of a full-width bar (1.0 for shares); by default the largest value.

        svg = rows("chart-u", "Top users", "Turns per user.", [Bar("alice", 30, "30")])
        svg.count('class="bar"')  # 1
    """
    if not bars:
        return _empty(chart_id, title)
    row, top, label_w, value_w = 26, 8, 250, 70
    height = top * 2 + row * len(bars)
    plot_w = _WIDTH - label_w - value_w
    scale = plot_w / (full or max(bar.value for bar in bars) or 1)
    out = _open(chart_id, title, desc, height)
    for i, bar in enumerate(bars):
        y = top + i * row
        w = bar.value * scale
        out.append(
            f'<text class="label" x="{label_w - 8}" y="{y + row / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(fmt.clip(bar.label, 30))}</text>"
        )
        out.append(f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 8}">{_tip(bar)}</rect>')
        out.append(
            f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + row / 2 + 4:.1f}">{escape(bar.shown)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
