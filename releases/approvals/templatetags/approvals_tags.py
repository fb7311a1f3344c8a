"""Template filters of the approval pages."""

from __future__ import annotations

from datetime import timedelta

from django import template

from releases.approvals.notifications import duration_text

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A lead time as people say it: "2 d 3 h", "3 h 20 min", "12 min"."""
    return duration_text(value)
