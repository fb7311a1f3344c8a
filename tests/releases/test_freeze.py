"""Freeze windows: weekly ones on their zone's wall clock (across midnight, the weekend and DST), dated ones in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from releases.approvals import freeze
from releases.approvals.models import FreezeWindow


def weekly(
    start: tuple[int, time], end: tuple[int, time], zone: str = "Europe/London", name: str = "W"
) -> FreezeWindow:
    return FreezeWindow(
        name=name,
        kind=FreezeWindow.Kind.WEEKLY,
        timezone=zone,
        start_weekday=start[0],
        start_time=start[1],
        end_weekday=end[0],
        end_time=end[1],
    )


def dated(starts: datetime, ends: datetime, zone: str = "UTC", name: str = "D") -> FreezeWindow:
    return FreezeWindow(name=name, kind=FreezeWindow.Kind.DATED, timezone=zone, starts_at=starts, ends_at=ends)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


FRI, SAT, SUN, MON, TUE, WED = 4, 5, 6, 0, 1, 2
WEEKEND = weekly((FRI, time(16)), (MON, time(8)))  # Friday 16:00 to Monday 08:00, London


@pytest.mark.parametrize(
    ("moment", "frozen"),
    [
        (utc(2026, 1, 16, 15, 59), False),  # Friday afternoon, GMT (= UTC) in winter
        (utc(2026, 1, 16, 16, 0), True),  # the window opens on the minute
        (utc(2026, 1, 16, 23, 59), True),
        (utc(2026, 1, 17, 0, 0), True),  # past midnight into Saturday
        (utc(2026, 1, 18, 12, 0), True),  # Sunday
        (utc(2026, 1, 19, 7, 59), True),  # Monday morning
        (utc(2026, 1, 19, 8, 0), False),  # ends on the minute
        (utc(2026, 1, 21, 12, 0), False),  # Wednesday
    ],
)
def test_a_weekend_freeze_covers_friday_evening_to_monday_morning(moment: datetime, frozen: bool) -> None:
    assert bool(freeze.active_freezes([WEEKEND], moment)) is frozen


def test_a_weekend_freeze_follows_the_clocks_going_forward() -> None:
    # 29 March 2026: London moves from GMT to BST. The freeze opens at 16:00 GMT (16:00 UTC) on
    # Friday and ends at 08:00 BST (07:00 UTC) on Monday: an hour shorter in UTC.
    [occurrence] = freeze.active_freezes([WEEKEND], utc(2026, 3, 28, 12))

    assert occurrence.starts_at == utc(2026, 3, 27, 16)
    assert occurrence.ends_at == utc(2026, 3, 30, 7)
    assert freeze.active_freezes([WEEKEND], utc(2026, 3, 30, 6, 59))
    assert not freeze.active_freezes([WEEKEND], utc(2026, 3, 30, 7, 0))  # 08:00 BST


def test_a_weekend_freeze_follows_the_clocks_going_back() -> None:
    # 25 October 2026: BST ends. Friday 16:00 BST is 15:00 UTC; Monday 08:00 GMT is 08:00 UTC.
    [occurrence] = freeze.active_freezes([WEEKEND], utc(2026, 10, 25, 1, 30))  # during the repeated hour

    assert occurrence.starts_at == utc(2026, 10, 23, 15)
    assert occurrence.ends_at == utc(2026, 10, 26, 8)
    assert not freeze.active_freezes([WEEKEND], utc(2026, 10, 23, 14, 59))


def test_a_window_crossing_midnight_in_another_zone() -> None:
    # A nightly maintenance freeze, Tuesday 22:00 to Wednesday 02:00 in New York (EST, UTC-5, in January).
    nightly = weekly((TUE, time(22)), (WED, time(2)), zone="America/New_York")

    assert not freeze.active_freezes([nightly], utc(2026, 1, 21, 2, 59))  # Tuesday 21:59 EST
    assert freeze.active_freezes([nightly], utc(2026, 1, 21, 3, 0))  # Tuesday 22:00 EST
    assert freeze.active_freezes([nightly], utc(2026, 1, 21, 6, 30))  # Wednesday 01:30 EST
    assert not freeze.active_freezes([nightly], utc(2026, 1, 21, 7, 0))  # Wednesday 02:00 EST


def test_the_same_wall_clock_window_is_a_different_utc_span_in_each_zone() -> None:
    tokyo = weekly((FRI, time(18)), (SAT, time(0)), zone="Asia/Tokyo")  # JST, UTC+9, no DST
    moment = utc(2026, 6, 5, 9, 0)  # Friday 18:00 in Tokyo, 10:00 in London

    assert freeze.active_freezes([tokyo], moment)
    assert not freeze.active_freezes([weekly((FRI, time(18)), (SAT, time(0)))], moment)


def test_a_window_ending_before_it_starts_on_the_same_weekday_lasts_almost_a_week() -> None:
    almost_always = weekly((MON, time(10)), (MON, time(9)), zone="UTC")

    assert freeze.active_freezes([almost_always], utc(2026, 1, 14, 12))  # Wednesday
    assert not freeze.active_freezes([almost_always], utc(2026, 1, 19, 9, 30))  # the Monday gap


def test_a_dated_freeze_covers_its_span_and_nothing_else() -> None:
    christmas = dated(utc(2026, 12, 24), utc(2027, 1, 2), zone="Europe/London")

    assert not freeze.active_freezes([christmas], utc(2026, 12, 23, 23, 59))
    assert freeze.active_freezes([christmas], utc(2026, 12, 24))
    assert freeze.active_freezes([christmas], utc(2027, 1, 1, 23, 59))
    assert not freeze.active_freezes([christmas], utc(2027, 1, 2))


def test_the_next_open_moment_follows_back_to_back_windows() -> None:
    christmas = dated(utc(2026, 12, 24), utc(2027, 1, 4, 8))  # ends on a Monday 08:00 UTC
    friday = utc(2026, 12, 18, 17)

    assert freeze.next_open_moment([WEEKEND, christmas], friday) == utc(2026, 12, 21, 8)
    # Christmas runs into the weekend freeze of 1-4 January, which ends at 08:00 on Monday 4 January.
    assert freeze.next_open_moment([WEEKEND, christmas], utc(2026, 12, 25)) == utc(2027, 1, 4, 8)
    assert freeze.next_open_moment([WEEKEND], utc(2026, 12, 16, 12)) == utc(2026, 12, 16, 12)


def test_weekly_windows_that_overlap_are_found_even_across_zones() -> None:
    friday_night = weekly((FRI, time(20)), (SAT, time(2)), name="Friday night")
    new_york_evening = weekly((FRI, time(10)), (FRI, time(12)), zone="America/New_York", name="NY")  # 15:00-17:00 UK
    tuesday = weekly((TUE, time(9)), (TUE, time(10)), name="Tuesday")
    windows = [WEEKEND, friday_night, tuesday, new_york_evening]

    assert freeze.overlapping_pairs(windows, utc(2026, 1, 1)) == [(0, 1), (0, 3)]


def test_a_holiday_freeze_may_cover_the_weekend_freeze_but_not_another_holiday() -> None:
    christmas = dated(utc(2026, 12, 24), utc(2027, 1, 2), name="Christmas")
    new_year = dated(utc(2027, 1, 1), utc(2027, 1, 3), name="New year")
    easter = dated(utc(2027, 3, 26), utc(2027, 3, 30), name="Easter")

    assert freeze.overlapping_pairs([WEEKEND, christmas, new_year, easter], utc(2026, 12, 1)) == [(1, 2)]


def test_the_problems_of_a_window_are_named_by_field() -> None:
    assert freeze.window_problems(WEEKEND) == {}
    assert "end_time" in freeze.window_problems(weekly((MON, time(9)), (MON, time(9))))  # empty
    assert freeze.window_problems(weekly((MON, time(9)), (TUE, time(9)), zone="Mars/Olympus")) == {
        "timezone": "“Mars/Olympus” is not a time zone Slipway knows; use an IANA name such as Europe/London or UTC."
    }
    assert freeze.window_problems(dated(utc(2026, 1, 2), utc(2026, 1, 1))) == {
        "ends_at": "The freeze must end after it starts."
    }
    assert set(freeze.window_problems(FreezeWindow(name=" ", kind="weekly", timezone="UTC"))) == {
        "name",
        "start_weekday",
        "start_time",
        "end_weekday",
        "end_time",
    }


def test_a_window_is_described_on_its_own_clock() -> None:
    assert freeze.describe(WEEKEND) == "every Friday 16:00 to Monday 08:00 (Europe/London)"
    summer = dated(utc(2026, 7, 31, 15), utc(2026, 8, 3, 7), zone="Europe/London")
    assert freeze.describe(summer) == "Fri 31 Jul 2026 16:00 to Mon 03 Aug 2026 08:00 (Europe/London)"
    assert freeze.local_time(utc(2026, 3, 30, 7), WEEKEND) == "Mon 30 Mar 2026 08:00 BST"
