"""Server-rendered SVG charts for the reports page: no chart library to vendor, nothing
executed in the browser but our own page script, and testable here.

``bar_chart(series, ...)`` draws one bar group per period label and one bar per series
(e.g. offered / answered / abandoned), or, with ``line=True``, a polyline per series
(service level, ASA). Every text is escaped; sizes are fixed so the page lays out
before the chart arrives. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

#: Series colours (colour-blind safe: Okabe–Ito).
PALETTE = ("#0072B2", "#009E73", "#D55E00", "#CC79A7", "#E69F00", "#56B4E9")


def _fmt(v: float, percent: bool) -> str:
    if percent:
        return f"{v * 100:.0f}%"
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def bar_chart(labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *,
              title: str = "", width: int = 720, height: int = 260,
              line: bool = False, percent: bool = False) -> str:
    pad_l, pad_r, pad_t, pad_b = 48, 12, 28, 46
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    values = [v for vs in series.values() for v in vs if v is not None]
    top = max(values, default=0.0)
    if percent:
        top = max(top, 1.0)
    top = top or 1.0
    n = max(len(labels), 1)
    group = plot_w / n
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
           'font-family="sans-serif" font-size="11">']
    out.append(f'<text x="{pad_l}" y="16" font-size="13" font-weight="bold">'
               f'{escape(title)}</text>')
    for i in range(5):  # grid and y labels
        y = pad_t + plot_h - plot_h * i / 4
        out.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" text-anchor="end">'
                   f'{_fmt(top * i / 4, percent)}</text>')
    names = list(series)
    for s, name in enumerate(names):
        colour = PALETTE[s % len(PALETTE)]
        vals = series[name]
        if line:
            pts = [(pad_l + group * (i + 0.5), pad_t + plot_h - plot_h * v / top)
                   for i, v in enumerate(vals) if v is not None]
            if pts:
                out.append('<polyline fill="none" stroke-width="2" stroke="' + colour
                           + '" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                           + '"/>')
                out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>'
                        for x, y in pts]
            continue
        bar = group * 0.8 / max(len(names), 1)
        for i, v in enumerate(vals):
            if v is None:
                continue
            h = plot_h * v / top
            x = pad_l + group * i + group * 0.1 + bar * s
            out.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar:.1f}" '
                       f'height="{h:.1f}" fill="{colour}"><title>{escape(name)} '
                       f'{escape(labels[i])}: {_fmt(v, percent)}</title></rect>')
    # one day's intervals: the time of day is enough
    days = {lb.split(" ")[0] for lb in labels if " " in lb}
    shown = [lb.split(" ", 1)[1] if len(days) == 1 and " " in lb else lb[-11:]
             for lb in labels]
    widest = max((len(lb) for lb in shown), default=1) * 6.5 + 6
    step = max(1, math.ceil(widest / group))
    for i, label in enumerate(shown):
        if i % step:
            continue
        x = pad_l + group * (i + 0.5)
        out.append(f'<text x="{x:.1f}" y="{height - pad_b + 14}" text-anchor="middle">'
                   f'{escape(label)}</text>')
    for s, name in enumerate(names):  # legend
        x = pad_l + s * 130
        out.append(f'<rect x="{x}" y="{height - 16}" width="10" height="10" '
                   f'fill="{PALETTE[s % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14}" y="{height - 7}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
