"""Freeze windows: when promotion into an environment is refused. Pure functions, no database access.

A weekly window recurs in its own IANA time zone ("Friday 16:00 to Monday 08:00 in Europe/London"),
so it follows daylight saving: the same wall-clock hours all year, a different UTC span in summer.
It may cross midnight and the weekend (end weekday before start weekday). A dated window is a
fixed span stored in UTC. The functions take `FreezeWindow` rows, saved or not, so a form can
check the windows it is about to save with the very rules that will later apply them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from releases.approvals.models import FreezeWindow

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WEEK = timedelta(days=7)
# Weekly windows are compared over a year of occurrences, so that daylight-saving changes in
# different zones, which fall in different weeks, are all seen.
OVERLAP_HORIZON_WEEKS = 54


@dataclass(frozen=True)
class Freeze:
    """One occurrence of a window, in UTC: frozen from `starts_at` (inclusive) to `ends_at` (exclusive)."""

    window: FreezeWindow
    starts_at: datetime
    ends_at: datetime


def zone(name: str) -> ZoneInfo | None:
    """The time zone called `name`, or None when there is no such IANA zone."""
    if not name or name != name.strip():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _weekly_span_days(start_weekday: int, start_time: time, end_weekday: int, end_time: time) -> int:
    days = (end_weekday - start_weekday) % 7
    if days == 0 and end_time < start_time:
        days = 7  # e.g. Monday 10:00 to Monday 09:00: almost a whole week
    return days


def is_empty(window: FreezeWindow) -> bool:
    """A window that never freezes anything: it ends when (or before) it starts."""
    if window.kind == FreezeWindow.Kind.DATED:
        return window.starts_at is None or window.ends_at is None or window.ends_at <= window.starts_at
    if None in (window.start_weekday, window.start_time, window.end_weekday, window.end_time):
        return True
    return window.start_weekday == window.end_weekday and window.start_time == window.end_time


def occurrences(window: FreezeWindow, since: datetime, until: datetime) -> Iterator[Freeze]:
    """Every occurrence of `window` that overlaps [since, until), in order."""
    if is_empty(window):
        return
    if window.kind == FreezeWindow.Kind.DATED:
        if window.starts_at and window.ends_at and window.starts_at < until and window.ends_at > since:
            yield Freeze(window, window.starts_at, window.ends_at)
        return
    start_weekday, start_time, end_weekday, end_time = (
        window.start_weekday,
        window.start_time,
        window.end_weekday,
        window.end_time,
    )
    if start_weekday is None or start_time is None or end_weekday is None or end_time is None:
        return
    tz = zone(window.timezone) or UTC
    span = timedelta(days=_weekly_span_days(start_weekday, start_time, end_weekday, end_time))
    # Start a week early: an occurrence that began last week may still be running.
    first: date = since.astimezone(tz).date() - WEEK
    day = first + timedelta(days=(start_weekday - first.weekday()) % 7)
    while True:
        # Wall-clock times in the window's zone; zoneinfo resolves the DST gap and fold (fold=0).
        starts_at = datetime.combine(day, start_time, tzinfo=tz).astimezone(UTC)
        if starts_at >= until:
            return
        ends_at = datetime.combine(day + span, end_time, tzinfo=tz).astimezone(UTC)
        if ends_at > since and ends_at > starts_at:
            yield Freeze(window, starts_at, ends_at)
        day += WEEK


def active_freezes(windows: Iterable[FreezeWindow], at: datetime) -> list[Freeze]:
    """The occurrences that freeze the moment `at`."""
    moment_after = at + timedelta(microseconds=1)
    return [freeze for window in windows for freeze in occurrences(window, at, moment_after)]


def next_open_moment(windows: Iterable[FreezeWindow], at: datetime) -> datetime:
    """`at` if nothing is frozen then, else the end of the freeze (following back-to-back windows)."""
    windows = list(windows)
    moment = at
    for _ in range(100):  # windows that together cover the whole week would chain forever
        active = active_freezes(windows, moment)
        if not active:
            return moment
        moment = max(freeze.ends_at for freeze in active)
    return moment


def overlapping_pairs(windows: list[FreezeWindow], now: datetime) -> list[tuple[int, int]]:
    """Index pairs (i < j) of windows of the same kind that freeze some moment twice.

    A dated holiday freeze may cover a weekly weekend freeze (that is what holidays do), so
    only weekly-with-weekly and dated-with-dated count as overlapping.
    """
    horizon = now + OVERLAP_HORIZON_WEEKS * WEEK
    spans: list[list[Freeze]] = []
    for window in windows:
        if window.kind == FreezeWindow.Kind.DATED:
            spans.append(list(occurrences(window, datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))))
        else:
            spans.append(list(occurrences(window, now, horizon)))
    pairs = []
    for i, first in enumerate(windows):
        for j in range(i + 1, len(windows)):
            if windows[j].kind != first.kind:
                continue
            if any(a.starts_at < b.ends_at and b.starts_at < a.ends_at for a in spans[i] for b in spans[j]):
                pairs.append((i, j))
    return pairs


def describe(window: FreezeWindow) -> str:
    """The window in words, in its own time zone: "Friday 16:00 to Monday 08:00 (Europe/London)"."""
    tz = zone(window.timezone) or UTC
    if window.kind == FreezeWindow.Kind.DATED:
        if window.starts_at is None or window.ends_at is None:
            return "(incomplete)"
        starts, ends = window.starts_at.astimezone(tz), window.ends_at.astimezone(tz)
        return f"{starts:%a %d %b %Y %H:%M} to {ends:%a %d %b %Y %H:%M} ({window.timezone})"
    if window.start_weekday is None or window.end_weekday is None or not window.start_time or not window.end_time:
        return "(incomplete)"
    return (
        f"every {WEEKDAYS[window.start_weekday]} {window.start_time:%H:%M} to "
        f"{WEEKDAYS[window.end_weekday]} {window.end_time:%H:%M} ({window.timezone})"
    )


def local_time(moment: datetime, window: FreezeWindow) -> str:
    """`moment` on the window's wall clock, with its zone abbreviation: "Mon 30 Mar 08:00 BST"."""
    tz = zone(window.timezone) or UTC
    return f"{moment.astimezone(tz):%a %d %b %Y %H:%M %Z}"


def window_problems(window: FreezeWindow) -> dict[str, str]:
    """What is wrong with one window, by field name; empty when it is fine."""
    problems: dict[str, str] = {}
    if not window.name.strip():
        problems["name"] = "Give the window a name people recognise, e.g. “Weekend freeze”."
    if zone(window.timezone) is None:
        problems["timezone"] = (
            f"“{window.timezone}” is not a time zone Slipway knows; use an IANA name such as Europe/London or UTC."
        )
    if window.kind == FreezeWindow.Kind.WEEKLY:
        for field in ("start_weekday", "start_time", "end_weekday", "end_time"):
            if getattr(window, field) is None:
                problems[field] = "A weekly window needs a start and an end day and time."
        if not problems.keys() & {"start_weekday", "start_time", "end_weekday", "end_time"} and is_empty(window):
            problems["end_time"] = "The window ends when it starts, so it would never freeze anything."
    elif window.kind == FreezeWindow.Kind.DATED:
        for field in ("starts_at", "ends_at"):
            if getattr(window, field) is None:
                problems[field] = "A dated window needs a start and an end."
        if window.starts_at and window.ends_at and window.ends_at <= window.starts_at:
            problems["ends_at"] = "The freeze must end after it starts."
    else:
        problems["kind"] = "Choose weekly or dated."
    return problems
