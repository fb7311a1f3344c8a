"""The results page's SVG charts: intervals against zero, and the cumulative effect over time.

Server-rendered like `releases.history.charts` (whose label helpers this reuses): no script and no style
attribute, colours from CSS classes (static/css/experiments.css), a <title> on every mark, and the
same figures in the page's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from portal.core.charts import nice_number

WIDTH = 720
LEFT, RIGHT, TOP, BOTTOM = 150, 24, 16, 34
ROW = 34


def _f(value: float) -> str:
    return f"{value:.1f}"


def pct(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.{digits}f} %"


def _scale(values: Sequence[float]) -> float:
    top = max([abs(v) for v in values] + [1e-9])
    return nice_number(top * 1.1)


def intervals(*, chart_id: str, title: str, rows: Sequence[dict[str, Any]]) -> SafeString:
    """One row per comparison: the relative lift's interval as an error bar, a point, and the zero line.

    `rows`: {label, value, ci: [low, high] | None, css} with fractions (0.05 = +5 %).
    """
    drawable = [r for r in rows if r.get("value") is not None]
    if not drawable:
        return format_html('<p class="chart-none" id="{}">No interval yet: not enough data.</p>', chart_id)
    ends = [v for r in drawable for v in (r["value"], *(r.get("ci") or []))]
    half = _scale(ends)
    height = TOP + BOTTOM + ROW * len(drawable)
    plot_w = WIDTH - LEFT - RIGHT

    def x(value: float) -> float:
        return LEFT + (value + half) / (2 * half) * plot_w

    parts = []
    for i in range(-2, 3):
        tick = half * i / 2
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/><text class="tick" x="{}" y="{}" '
                'text-anchor="middle">{}</text>',
                _f(x(tick)),
                _f(x(tick)),
                TOP,
                height - BOTTOM,
                _f(x(tick)),
                height - BOTTOM + 16,
                pct(tick, 0 if half >= 0.1 else 1),
            )
        )
    parts.append(
        format_html('<line class="zero" x1="{}" x2="{}" y1="{}" y2="{}"/>', _f(x(0)), _f(x(0)), TOP, height - BOTTOM)
    )
    for i, row in enumerate(drawable):
        y = TOP + ROW * i + ROW / 2
        ci = row.get("ci")
        words = f"{row['label']}: {pct(row['value'])}"
        if ci:
            words += f" (interval {pct(ci[0])} to {pct(ci[1])})"
            parts.append(
                format_html(
                    '<g class="{}"><title>{}</title><line class="bar" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                    '<line class="cap" x1="{}" x2="{}" y1="{}" y2="{}"/><line class="cap" x1="{}" x2="{}" y1="{}" '
                    'y2="{}"/></g>',
                    row.get("css", "s-neutral"),
                    words,
                    _f(x(ci[0])),
                    _f(x(ci[1])),
                    _f(y),
                    _f(y),
                    _f(x(ci[0])),
                    _f(x(ci[0])),
                    _f(y - 7),
                    _f(y + 7),
                    _f(x(ci[1])),
                    _f(x(ci[1])),
                    _f(y - 7),
                    _f(y + 7),
                )
            )
        parts.append(
            format_html(
                '<g class="{}"><title>{}</title><circle class="point" cx="{}" cy="{}" r="5"/></g>'
                '<text class="label" x="{}" y="{}" text-anchor="end">{}</text>',
                row.get("css", "s-neutral"),
                words,
                _f(x(row["value"])),
                _f(y),
                LEFT - 8,
                _f(y + 4),
                row["label"] if len(row["label"]) <= 20 else row["label"][:19] + "…",
            )
        )
    return format_html(
        '<svg class="chart experiment-chart" id="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-t">'
        '<title id="{}-t">{}</title>{}</svg>',
        chart_id,
        WIDTH,
        height,
        chart_id,
        chart_id,
        title,
        mark_safe("".join(parts)),  # noqa: S308 - every part was built with format_html
    )


def over_time(*, chart_id: str, title: str, labels: Sequence[str], series: Sequence[dict[str, Any]]) -> SafeString:
    """The cumulative relative lift at each analysis, one line per treatment, with its interval as a band.

    `series`: {label, css, values: [fraction | None], lows: [...], highs: [...]} aligned with `labels`.
    """
    points = [v for s in series for v in (*s["values"], *s["lows"], *s["highs"]) if v is not None]
    if len(labels) < 1 or not points:
        return format_html('<p class="chart-none" id="{}">No analyses over time yet.</p>', chart_id)
    half = _scale(points)
    height = 240
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    n = len(labels)

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h / 2 - value / half * plot_h / 2

    parts = []
    for i in range(-2, 3):
        tick = half * i / 2
        parts.append(
            format_html(
                '<line class="{}" x1="{}" x2="{}" y1="{}" y2="{}"/><text class="tick" x="{}" y="{}" '
                'text-anchor="end">{}</text>',
                "zero" if i == 0 else "grid",
                LEFT,
                WIDTH - RIGHT,
                _f(y(tick)),
                _f(y(tick)),
                LEFT - 8,
                _f(y(tick) + 4),
                pct(tick, 0 if half >= 0.1 else 1),
            )
        )
    step = max(1, n // 7)
    for i in range(0, n, step):
        parts.append(
            format_html(
                '<text class="tick" x="{}" y="{}" text-anchor="{}">{}</text>',
                _f(x(i)),
                height - BOTTOM + 18,
                "end" if i == n - 1 and n > 1 else "middle",
                labels[i],
            )
        )
    for s in series:
        band_top = [(x(i), y(h)) for i, h in enumerate(s["highs"]) if h is not None]
        band_bottom = [(x(i), y(lo)) for i, lo in enumerate(s["lows"]) if lo is not None]
        if len(band_top) > 1 and len(band_top) == len(band_bottom):
            pts = " ".join(f"{_f(a)},{_f(b)}" for a, b in band_top + band_bottom[::-1])
            parts.append(format_html('<polygon class="band {}" points="{}"/>', s["css"], pts))
        line = [(x(i), y(v)) for i, v in enumerate(s["values"]) if v is not None]
        if len(line) > 1:
            pts = " ".join(f"{_f(a)},{_f(b)}" for a, b in line)
            parts.append(format_html('<polyline class="line {}" points="{}"/>', s["css"], pts))
        for i, v in enumerate(s["values"]):
            if v is not None:
                parts.append(
                    format_html(
                        '<circle class="point {}" cx="{}" cy="{}" r="3"><title>{}: {} at {}</title></circle>',
                        s["css"],
                        _f(x(i)),
                        _f(y(v)),
                        s["label"],
                        pct(v),
                        labels[i],
                    )
                )
    return format_html(
        '<svg class="chart experiment-chart" id="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-t">'
        '<title id="{}-t">{}</title>{}</svg>',
        chart_id,
        WIDTH,
        height,
        chart_id,
        chart_id,
        title,
        mark_safe("".join(parts)),  # noqa: S308 - every part was built with format_html
    )
