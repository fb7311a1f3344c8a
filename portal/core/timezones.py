"""Show times in the viewer's own time zone; store them in UTC.

The browser reports its IANA zone in the `slipway_tz` cookie (set by static/js/timezone.js, no inline
script); this middleware activates it for the request, so `|date` and `localtime` render in it.
Without the cookie, or with a zone Python does not know, pages use settings.TIME_ZONE.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "slipway_tz"


def zone_from(name: str) -> ZoneInfo | None:
    if not name or len(name) > 64 or name != name.strip():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class UserTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_from(request.COOKIES.get(COOKIE, ""))
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def utc_day_range(since: date | None, until: date | None) -> Q:
    """`created_at` within the UTC days `since` to `until`, both included."""
    condition = Q()
    if since is not None:
        condition &= Q(created_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until is not None:
        condition &= Q(created_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC))
    return condition
