"""Server-rendered SVG charts: bars (stacked), a line, axes, and an accessible title and description.

No script and no style attribute, so the pages keep their Content-Security-Policy: colours come
from CSS classes in static/css/slipway.css (`.chart .s-<name>`). Each bar and point carries a
<title> with its value in words, and the pages show the same figures in a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from portal.core.charts import nice_number

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 34
MAX_X_LABELS = 9


def duration_label(seconds: float | None) -> str:
    """A duration as people say it: "2 d 3 h", "3 h 20 min", "12 min", "40 s"; "—" for none."""
    if seconds is None:
        return "—"
    seconds = max(round(seconds), 0)  # SQLite's arithmetic on Julian days leaves a few microseconds off
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    rest = seconds % 60
    return f"{minutes} min {rest} s" if rest and minutes < 10 else f"{minutes} min"


def percent_label(fraction: float | None) -> str:
    if fraction is None:
        return "—"
    value = fraction * 100
    return f"{value:.0f} %" if value == round(value) or value >= 10 else f"{value:.1f} %"


def rate_label(value: float) -> str:
    """A frequency with the precision it deserves: 12, 3.4, 0.29."""
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def count_label(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if value == round(value) else f"{value:.1f}"


@dataclass(frozen=True)
class Axis:
    """How a value axis is scaled and labelled: `unit` is "count", "percent" (0..1) or "duration" (s)."""

    unit: str

    def ticks(self, top: float) -> tuple[float, list[tuple[float, str]]]:
        """A round step (at most five of them reach `top`), the axis maximum, and the labelled ticks."""
        if self.unit == "duration":
            scale, steps = _duration_steps(top)
        elif self.unit == "percent":
            scale, steps = 0.01, (1, 2, 5, 10, 20, 25)  # percentage points
        else:
            scale, steps = 1.0, (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)
        units = max(top / scale, 10 if self.unit == "percent" else 1e-9)
        step = next((s for s in steps if units / s <= 5), nice_number(units / 5))
        count = max(math.ceil(units / step - 1e-9), 1)
        high = count * step * scale
        if self.unit == "percent":
            high = min(high, 1.0)
            count = max(round(high / (step * scale)), 1)
        return high, [(i * step * scale, self.label(i * step * scale) if i else "0") for i in range(count + 1)]

    def label(self, value: float | None) -> str:
        return {"percent": percent_label, "duration": duration_label}.get(self.unit, count_label)(value)


def _duration_steps(seconds: float) -> tuple[float, tuple[float, ...]]:
    """The unit and the round steps of a duration axis whose top is `seconds`."""
    if seconds >= 2 * 86400:
        return 86400.0, (1, 2, 5, 7, 10, 14, 30)
    if seconds >= 2 * 3600:
        return 3600.0, (1, 2, 3, 4, 6, 12, 24)
    if seconds >= 2 * 60:
        return 60.0, (1, 2, 5, 10, 15, 20, 30, 60)
    return 1.0, (1, 2, 5, 10, 15, 20, 30, 60)


@dataclass(frozen=True)
class Series:
    """One series of values (None: no value) drawn with the CSS class `s-<css>`."""

    label: str
    values: Sequence[float | None]
    css: str


def chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    axis: Axis,
    bars: Sequence[Series] = (),
    line: Series | None = None,
) -> SafeString:
    """A bar chart (bars stacked in order) with an optional line over it, one slot per label."""
    n = max(len(labels), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    stack_tops = [sum(s.values[i] or 0.0 for s in bars) for i in range(len(labels))]
    line_values = [v for v in (line.values if line else []) if v is not None]
    high, ticks = axis.ticks(max([*stack_tops, *line_values, 0.0]))

    def y(value: float) -> float:
        return TOP + plot_h - (value / high) * plot_h if high else TOP + plot_h

    slot = plot_w / n
    grid: list[str] = []  # drawn first, then bars, the line and its points on top
    for value, text in ticks:
        grid.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                _f(y(value)),
                _f(y(value)),
                LEFT - 6,
                _f(y(value) + 4),
                text,
            )
        )
    every = math.ceil(n / MAX_X_LABELS)
    for i, text in enumerate(labels):
        if i % every == 0:
            grid.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _f(LEFT + slot * (i + 0.5)),
                    HEIGHT - BOTTOM + 16,
                    text,
                )
            )
    shapes: list[str] = []
    bar_w = slot * 0.7
    for i, text in enumerate(labels):
        base = 0.0
        for series in bars:
            value = series.values[i]
            if not value:
                continue
            shapes.append(
                format_html(
                    '<rect class="bar s-{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title></rect>',
                    series.css,
                    _f(LEFT + slot * i + (slot - bar_w) / 2),
                    _f(y(base + value)),
                    _f(bar_w),
                    _f(y(base) - y(base + value)),
                    text,
                    series.label.lower(),
                    axis.label(value),
                )
            )
            base += value
    shapes.append(
        format_html(
            '<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"></line>', LEFT, WIDTH - RIGHT, _f(y(0)), _f(y(0))
        )
    )
    if line is not None:
        segments: list[list[tuple[float, float]]] = [[]]
        points: list[str] = []
        for i, value in enumerate(line.values):
            if value is None:
                segments.append([])
                continue
            point = (LEFT + slot * (i + 0.5), y(value))
            segments[-1].append(point)
            points.append(
                format_html(
                    '<circle class="point s-{}" cx="{}" cy="{}" r="3.5"><title>{}: {} {}</title></circle>',
                    line.css,
                    _f(point[0]),
                    _f(point[1]),
                    labels[i],
                    line.label.lower(),
                    axis.label(value),
                )
            )
        for segment in segments:
            if len(segment) > 1:
                coordinates = " ".join(f"{_f(px)},{_f(py)}" for px, py in segment)
                shapes.append(format_html('<polyline class="line s-{}" points="{}"></polyline>', line.css, coordinates))
        shapes += points
    return format_html(
        '<svg class="chart" id="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        chart_id,
        WIDTH,
        HEIGHT,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        description,
        mark_safe("".join(grid + shapes)),  # noqa: S308 - every part was built with format_html
    )


def breakdown(
    *, chart_id: str, title: str, description: str, parts: Sequence[tuple[str, float | None, str]]
) -> SafeString:
    """One horizontal bar cut into parts (label, seconds, css), each as wide as its share."""
    width, bar_h = 720, 28
    total = sum(seconds or 0.0 for _label, seconds, _css in parts)
    pieces: list[str] = []
    x = 0.0
    for label, seconds, css in parts:
        if not seconds or not total:
            continue
        w = seconds / total * width
        pieces.append(
            format_html(
                '<rect class="bar s-{}" x="{}" y="0" width="{}" height="{}"><title>{}: {}</title></rect>',
                css,
                _f(x),
                _f(w),
                bar_h,
                label,
                duration_label(seconds),
            )
        )
        if w > 70:
            pieces.append(
                format_html(
                    '<text class="inbar" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _f(x + w / 2),
                    bar_h / 2 + 4,
                    duration_label(seconds),
                )
            )
        x += w
    return format_html(
        '<svg class="chart chart-breakdown" id="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        chart_id,
        width,
        bar_h,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        description,
        mark_safe("".join(pieces)),  # noqa: S308 - every piece was built with format_html
    )


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")
