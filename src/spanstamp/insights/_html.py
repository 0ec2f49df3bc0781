"""HTML building blocks of the report page: the page shell with its one style sheet, tables, figures.

Every text passed in is escaped here (cells, captions); SVG text comes escaped from `_svg`.
"""

from __future__ import annotations

from html import escape
from typing import Final

from spanstamp.insights._svg import Bar

_STYLE: Final = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #59636e; --bar: #3b6fd1; --line: #d0d7de; --bg: #fff; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #9198a1; --bar: #6d9cf0; --line: #3d444d; --bg: #0d1117; }
}
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg);
       max-width: 960px; margin: 2rem auto; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid var(--line); }
.muted, figcaption, summary { color: var(--muted); }
dl.tiles { display: flex; flex-wrap: wrap; gap: 0.6rem; }
dl.tiles div { border: 1px solid var(--line); border-radius: 6px; padding: 0.4rem 0.8rem; min-width: 7rem; }
dl.tiles dt { color: var(--muted); font-size: 12px; } dl.tiles dd { margin: 0; font-size: 20px; }
figure { margin: 1.4rem 0; } figcaption { font-weight: 600; margin-bottom: 0.3rem; }
svg.chart { max-width: 100%; height: auto; display: block; font-size: 12px; }
svg.chart text { fill: var(--muted); } svg.chart .value { fill: var(--fg); }
svg.chart .axis line { stroke: var(--line); } svg.chart rect.bar { fill: var(--bar); }
div.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.4rem 0; }
th, td { padding: 0.15rem 0.6rem; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
td { white-space: nowrap; }
td.text { white-space: normal; min-width: 10rem; max-width: 24rem; overflow-wrap: anywhere; }
"""


def page(title: str, body: list[str]) -> str:
    """A whole HTML document around `body` (HTML fragments): the inline style sheet, and a
    Content-Security-Policy that lets the page load nothing at all, so no text in it can call out.

        html = page("spanstamp insights", ["<p>hello</p>"])
        html.startswith("<!DOCTYPE html>")  # True
    """
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def table(headers: list[str], body: list[list[str]], text_columns: tuple[int, ...] = ()) -> str:
    """An HTML table (scrolling sideways when too wide); every cell is escaped here.

    `text_columns` are the columns of user text, which wrap instead of widening the table.

        table(["user", "turns"], [["alice", "30"]], text_columns=(0,))
    """
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    lines = [f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>']
    for cells in body:
        tds = "".join(
            f'<td class="text">{escape(c)}</td>' if i in text_columns else f"<td>{escape(c)}</td>"
            for i, c in enumerate(cells)
        )
        lines.append(f"<tr>{tds}</tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def figure(caption: str, svg: str, bars: list[Bar], headers: tuple[str, str]) -> str:
    """A chart with its caption and, folded below it, the same figures as a table (label, shown value).

    figure("Turns per session", svg, bars, ("turns", "sessions"))
    """
    data = table(list(headers), [[bar.label, bar.shown] for bar in bars], text_columns=(0,))
    return (
        f"<figure><figcaption>{escape(caption)}</figcaption>\n{svg}\n"
        f"<details><summary>Data table</summary>\n{data}\n</details></figure>"
    )
