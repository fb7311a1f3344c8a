"""Template filters of the delivery metrics page."""

from __future__ import annotations

from django import template

from releases.history.charts import duration_label, percent_label, rate_label

register = template.Library()


@register.filter
def seconds(value: float | None) -> str:
    """A duration given in seconds, as people say it: "2 d 3 h", "3 h 20 min", "12 min"; "—" for none."""
    return duration_label(value)


@register.filter
def percent(value: float | None) -> str:
    """A fraction as a percentage: 0.125 → "12.5 %"; "—" for none."""
    return percent_label(value)


@register.filter
def rate(value: float) -> str:
    """A frequency with the precision it deserves: 12, 3.4, 0.29."""
    return rate_label(value)
