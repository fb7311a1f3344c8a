"""Delivery metrics (/metrics/): the definitions on constructed history, the filters, and the page."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from portal.core import clock
from releases.approvals.models import ApprovalRequestStatus
from releases.catalog.models import Application, Release, ReleaseStatus, Stage
from releases.history.charts import Axis, Series, chart, duration_label
from releases.history.delivery import delivery_metrics, percentile_of
from strategies.operations.models import Operation, OperationStatus, StepStatus
from tests.factories import (
    ApplicationFactory,
    ApprovalRequestFactory,
    OperationFactory,
    OperationStepFactory,
    ReleaseFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)  # a Wednesday; the 7-day window starts on Thursday 12 March


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def promotion(
    application: Application,
    *,
    registered: datetime,
    started: datetime,
    finished: datetime | None,
    committed: datetime | None = None,
    requested: datetime | None = None,
    approved: datetime | None = None,
    status: str = OperationStatus.SUCCEEDED,
    failed_step_at: datetime | None = None,
) -> Operation:
    """A release's way into production: registration, a production approval request, the promotion."""
    release = ReleaseFactory(
        application=application,
        status=ReleaseStatus.SUPERSEDED,
        committed_at=committed,
        created_at=registered,
        status_changed_at=finished or started,
        approved_at=approved,
    )
    if requested is not None:
        ApprovalRequestFactory(
            release=release,
            created_at=requested,
            status=ApprovalRequestStatus.APPROVED,
            settled_at=approved,
        )
    operation = OperationFactory(
        release=release, status=status, created_at=started, started_at=started, finished_at=finished
    )
    if failed_step_at is not None:
        OperationStepFactory(
            operation=operation, status=StepStatus.FAILED, started_at=started, finished_at=failed_step_at
        )
    return operation


def rollback(release: Release, *, asked: datetime, finished: datetime | None, status: str) -> Operation:
    return OperationFactory(
        release=release,
        kind=Operation.Kind.ROLLBACK,
        reason="Orders stuck in reserving",
        status=status,
        created_at=asked,
        started_at=asked,
        finished_at=finished,
    )


@pytest.fixture
def history() -> dict[str, Application]:
    """Six production changes in the week to Wednesday 18 March 12:00 (UTC), four incidents, and noise.

    Lead times of the four deployments: 8 h 40 min, 25 h 20 min, 6 h, 3 h. Incidents restored after
    10 min, 15 min and 4 h, and one not yet.
    """
    a, b, c = ApplicationFactory(name="Alpha"), ApplicationFactory(name="Bravo"), ApplicationFactory(name="Charlie")
    # Alpha d1: 2 h to register, 30 min to the first request into production (which lapsed and was asked
    # again: the wait counts from the first), 4 h waiting for approval, 2 h to promote, 10 min rolling out.
    d1 = promotion(
        a,
        committed=at(12, 8),
        registered=at(12, 10),
        requested=at(12, 12),
        approved=at(12, 14, 30),
        started=at(12, 16, 30),
        finished=at(12, 16, 40),
    )
    ApprovalRequestFactory(
        release=d1.release,
        created_at=at(12, 10, 30),
        status=ApprovalRequestStatus.EXPIRED,
        settled_at=at(12, 12),
    )
    # A request into pre-production is not the production approval.
    ApprovalRequestFactory(
        release=d1.release,
        environment=a.environments.get(stage=Stage.PREPRODUCTION),
        created_at=at(12, 10, 5),
        status=ApprovalRequestStatus.APPROVED,
        settled_at=at(12, 10, 6),
    )
    # Alpha d2: no commit time (lead time from registration), 24 h approval, 1 h to promote, 20 min out.
    promotion(
        a, registered=at(13, 9), requested=at(13, 9), approved=at(14, 9), started=at(14, 10), finished=at(14, 10, 20)
    )
    # Alpha c3: the canary failed its analysis at 11:30 and was rolled back by 11:40.
    promotion(
        a,
        committed=at(15, 8),
        registered=at(15, 9),
        requested=at(15, 9),
        approved=at(15, 10),
        started=at(15, 11),
        finished=at(15, 11, 40),
        status=OperationStatus.ROLLED_BACK,
        failed_step_at=at(15, 11, 30),
    )
    # Alpha d4: went live at 12:00 (6 h after its commit), taken back by an application rollback 13:00-13:15.
    d4 = promotion(
        a,
        committed=at(16, 6),
        registered=at(16, 8),
        requested=at(16, 8),
        approved=at(16, 9),
        started=at(16, 11, 30),
        finished=at(16, 12),
    )
    rollback(d4.release, asked=at(16, 13), finished=at(16, 13, 15), status=OperationStatus.SUCCEEDED)
    # Bravo e1: the promotion failed at 10:00 and so did its undo; e2 put a good release out at 14:00.
    promotion(
        b,
        committed=at(17, 8),
        registered=at(17, 8, 30),
        requested=at(17, 8, 30),
        approved=at(17, 9),
        started=at(17, 9, 30),
        finished=at(17, 10, 5),
        status=OperationStatus.FAILED,
        failed_step_at=at(17, 10),
    )
    promotion(
        b,
        committed=at(17, 11),
        registered=at(17, 11, 30),
        requested=at(17, 11, 30),
        approved=at(17, 12, 30),
        started=at(17, 13, 30),
        finished=at(17, 14),
    )
    # Charlie: live since before the window (a 30-day window sees it), being rolled back right now.
    earlier = promotion(
        c, committed=at(11, 10), registered=at(11, 12), approved=at(11, 20), started=at(11, 22), finished=at(11, 23)
    )
    rollback(earlier.release, asked=at(18, 11), finished=None, status=OperationStatus.RUNNING)
    # Noise: a promotion still running, and a cancelled one, are no production changes.
    promotion(b, registered=at(18, 9), started=at(18, 10), finished=None, status=OperationStatus.RUNNING)
    promotion(c, registered=at(14, 9), started=at(14, 10), finished=at(14, 10), status=OperationStatus.CANCELLED)
    return {"a": a, "b": b, "c": c}


H = 3600


def test_the_four_metrics_follow_their_definitions(history: dict[str, Application]) -> None:
    metrics = delivery_metrics(days=7, now=NOW)
    o = metrics.overall

    assert (o.changes, o.deployments, o.failures) == (6, 4, 3)
    assert o.per_day == pytest.approx(4 / 7)
    assert o.per_week == pytest.approx(4)
    assert o.change_failure_rate == pytest.approx(0.5)
    # Lead times 10 800, 21 600, 31 200, 91 200 s.
    assert o.lead.measured == 4
    assert o.lead.fallback == 1
    assert o.lead.median == pytest.approx(26_400, abs=0.01)
    assert o.lead.p90 == pytest.approx(31_200 + 0.7 * 60_000, abs=0.01)
    medians = {p.key: p.median for p in o.lead.parts}
    assert medians == pytest.approx(
        {"commit": 4_500, "request": 0, "approval": 9_000, "promote": 5_400, "rollout": 1_500}, abs=0.01
    )
    # Incidents: the canary (10 min), the application rollback (15 min), the failed promotion (4 h), Charlie's.
    assert (o.restore.incidents, o.restore.unrestored, o.restore.restored) == (4, 1, 3)
    assert o.restore.median == pytest.approx(900, abs=0.01)


def test_each_part_of_a_lead_time_is_measured_between_its_own_moments(history: dict[str, Application]) -> None:
    bucket = {b.start.day: b.figures for b in delivery_metrics(days=7, now=NOW).buckets}[12]

    assert bucket.deployments == 1
    assert {p.key: p.median for p in bucket.lead.parts} == pytest.approx(
        {"commit": 2 * H, "request": 1800, "approval": 4 * H, "promote": 2 * H, "rollout": 600}, abs=0.01
    )
    assert bucket.lead.median == pytest.approx(sum(p.median for p in bucket.lead.parts), abs=0.01)


def test_trends_are_per_day_in_a_short_window_and_per_week_in_a_long_one(history: dict[str, Application]) -> None:
    daily = delivery_metrics(days=7, now=NOW)

    assert daily.window.per == "day"
    assert [b.start.day for b in daily.buckets] == [12, 13, 14, 15, 16, 17, 18]
    assert [b.figures.deployments for b in daily.buckets] == [1, 0, 1, 0, 1, 1, 0]
    assert [b.figures.changes for b in daily.buckets] == [1, 0, 1, 1, 1, 2, 0]
    assert [b.figures.restore.incidents for b in daily.buckets] == [0, 0, 0, 1, 1, 1, 1]
    assert daily.buckets[4].figures.change_failure_rate == 1.0  # the release taken back by the rollback
    assert daily.buckets[1].figures.change_failure_rate is None  # nothing changed: no rate, not 0 %

    weekly = delivery_metrics(days=90, now=NOW)

    assert weekly.window.per == "week"
    assert all(b.start.weekday() == 0 for b in weekly.buckets)
    assert sum(b.figures.deployments for b in weekly.buckets) == weekly.overall.deployments == 5
    assert weekly.buckets[-1].start == at(16, 0).date()
    assert weekly.buckets[-1].figures.days == 3  # Monday to today, Wednesday


def test_the_window_decides_what_counts(history: dict[str, Application]) -> None:
    month = delivery_metrics(days=30, now=NOW).overall

    assert (month.changes, month.deployments) == (7, 5)  # Charlie's promotion of 11 March is in
    assert month.per_day == pytest.approx(5 / 30)
    later = delivery_metrics(days=7, now=at(24, 12)).overall  # from Wednesday 18 March, 00:00

    assert later.changes == 0
    assert (later.restore.incidents, later.restore.unrestored) == (1, 1)  # Charlie's rollback, started at 11:00
    assert delivery_metrics(days=7, now=at(25, 12)).overall.restore.incidents == 0


def test_one_application_has_its_own_figures(history: dict[str, Application]) -> None:
    alpha = delivery_metrics(days=7, application=history["a"], now=NOW)

    assert (alpha.overall.changes, alpha.overall.deployments, alpha.overall.failures) == (4, 3, 2)
    assert alpha.overall.lead.median == pytest.approx(31_200, abs=0.01)  # 21 600, 31 200, 91 200
    assert alpha.overall.restore.incidents == 2
    assert alpha.overall.restore.median == pytest.approx(750, abs=0.01)
    assert alpha.by_application == ()

    overall = delivery_metrics(days=7, now=NOW)
    by_name = {row.application.name: row.figures for row in overall.by_application}
    assert list(by_name) == ["Alpha", "Bravo", "Charlie"]  # most deployments first
    assert (by_name["Bravo"].changes, by_name["Bravo"].failures) == (2, 1)
    assert by_name["Bravo"].restore.median == pytest.approx(4 * H, abs=0.01)
    assert (by_name["Charlie"].changes, by_name["Charlie"].restore.unrestored) == (0, 1)


def test_the_percentile_interpolates_like_postgresql() -> None:
    assert percentile_of([], 0.5) is None
    assert percentile_of([3.0], 0.9) == 3.0
    assert percentile_of([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile_of([10.0, 20.0, 30.0, 40.0], 0.9) == pytest.approx(37.0)


def test_durations_are_written_as_people_say_them() -> None:
    assert [duration_label(s) for s in (None, 42, 600, 3 * H + 1200, 2 * H, 26 * H, 48 * H)] == [
        "—",
        "42 s",
        "10 min",
        "3 h 20 min",
        "2 h",
        "1 d 2 h",
        "2 d",
    ]


def test_a_chart_escapes_its_text_and_has_no_style_or_script() -> None:
    svg = chart(
        chart_id="c",
        title="<b>Deployments</b>",
        description="Per day & more",
        labels=["1 Mar", "2 Mar", "3 Mar"],
        axis=Axis("count"),
        bars=[Series("Deployments", [2, None, 5], "deploy")],
        line=Series("Trend", [1, None, 3], "lead"),
    )

    assert svg.startswith('<svg class="chart" id="c"') and 'role="img"' in svg
    assert '<title id="c-title">&lt;b&gt;Deployments&lt;/b&gt;</title>' in svg
    assert '<desc id="c-desc">Per day &amp; more</desc>' in svg
    assert svg.count('<rect class="bar s-deploy"') == 2
    assert svg.count("<circle") == 2
    assert "<polyline" not in svg  # the gap splits the line into two single points
    assert "style" not in svg and "script" not in svg


# --- the page -----------------------------------------------------------------------------------------


def _main(response: object) -> str:
    return response.content.decode().split("<main", 1)[1]  # type: ignore[attr-defined]


def test_a_viewer_sees_the_figures_the_charts_and_the_definitions(
    client: Client, viewer: User, history: dict[str, Application]
) -> None:
    client.force_login(viewer)

    with clock.frozen(NOW):
        response = client.get(reverse("delivery_metrics"), {"days": "7"})

    assert response.status_code == 200
    page = _main(response)
    assert "4 deployments in 7 days" in page
    assert "3 of 6 production changes failed" in page
    assert "7 h 20 min" in page  # the median lead time, 26 400 s
    assert "1 without a commit time, measured from registration" in page
    assert "1 not restored yet" in page
    for chart_id in ("chart-deployments", "chart-lead", "chart-breakdown", "chart-cfr", "chart-restore"):
        assert re.search(rf'<svg class="chart[^"]*" id="{chart_id}"[^>]* role="img"', page), chart_id
        assert f'<title id="{chart_id}-title">' in page
    assert 'id="definitions"' in page and "Change failure rate</dt>" in page
    # Content-Security-Policy: no inline script or style anywhere on the page.
    whole = response.content.decode()
    assert "style=" not in whole
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", whole))
    assert 'href="/metrics/"' in whole  # the navigation's "Delivery"
    assert '<a href="?application=application-' in page  # the by-application table narrows the page


def test_the_filters_narrow_the_page_to_one_application(
    client: Client, viewer: User, history: dict[str, Application]
) -> None:
    client.force_login(viewer)

    with clock.frozen(NOW):
        response = client.get(reverse("delivery_metrics"), {"application": history["b"].slug, "days": "7"})

    assert response.status_code == 200
    assert response.context["application"] == history["b"]
    assert response.context["metrics"].overall.changes == 2
    assert 'id="metrics-by-application"' not in _main(response)
    assert f'<option value="{history["b"].slug}" selected>' in _main(response)


def test_a_filter_that_does_not_parse_says_so_and_shows_the_defaults(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    response = client.get(reverse("delivery_metrics"), {"application": "no-such-app", "days": "12"})

    assert response.status_code == 400
    assert response.context["days"] == 30 and response.context["application"] is None
    assert "Showing all applications." in _main(response)


def test_an_empty_window_says_what_to_do_next(client: Client, viewer: User) -> None:
    ApplicationFactory()
    client.force_login(viewer)

    response = client.get(reverse("delivery_metrics"))

    assert response.status_code == 200
    page = _main(response)
    assert "No production changes in this window — promote a release to see figures." in page
    assert "<svg" not in page
    assert 'href="?days=365"' in page


def test_an_anonymous_visitor_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(reverse("delivery_metrics"))

    assert response.status_code == 302
    assert response.headers["Location"] == f"{reverse('login')}?next=/metrics/"


def test_the_page_makes_the_same_queries_whatever_the_history(
    client: Client, viewer: User, history: dict[str, Application]
) -> None:
    client.force_login(viewer)
    url = reverse("delivery_metrics")
    client.get(url)  # the session and the user are cached alike from here on
    small: list[str] = []

    with clock.frozen(NOW), connection.execute_wrapper(recording(small)):
        assert client.get(url, {"days": "30"}).status_code == 200
    for n in range(8):
        app = ApplicationFactory()
        for day in range(1, 6):
            operation = promotion(
                app,
                committed=at(day + 10, 6),
                registered=at(day + 10, 8),
                requested=at(day + 10, 8),
                approved=at(day + 10, 9 + n % 3),
                started=at(day + 10, 13),
                finished=at(day + 10, 13, 30),
                status=OperationStatus.ROLLED_BACK if day == 3 else OperationStatus.SUCCEEDED,
                failed_step_at=at(day + 10, 13, 20) if day == 3 else None,
            )
        rollback(operation.release, asked=at(16, 15), finished=at(16, 15, 20), status=OperationStatus.SUCCEEDED)
    large: list[str] = []
    with clock.frozen(NOW), connection.execute_wrapper(recording(large)):
        response = client.get(url, {"days": "30"})

    assert response.context["metrics"].overall.changes == 7 + 8 * 5
    assert len(small) >= 7  # the filter's applications, then changes and incidents: overall, per day, per application
    assert len(large) == len(small), [sql[:120] for sql in large]


def recording(sqls: list[str]) -> Callable[..., object]:
    """A database execute wrapper keeping every statement (the test Client empties Django's own query log)."""

    def record(execute: Callable[..., object], sql: str, *args: object) -> object:
        sqls.append(sql)
        return execute(sql, *args)

    return record


def test_the_figures_are_computed_once_per_state_and_again_when_an_operation_finishes(
    client: Client, viewer: User, history: dict[str, Application]
) -> None:
    client.force_login(viewer)
    url = reverse("delivery_metrics")
    with clock.frozen(NOW):
        first = _main(client.get(url, {"days": "30"}))
        cold: list[str] = []
        warm: list[str] = []
        client.get(url, {"days": "7"})
        with connection.execute_wrapper(recording(warm)):
            assert _main(client.get(url, {"days": "30"})) == first
        app = ApplicationFactory()
        promotion(
            app,
            committed=at(17, 6),
            registered=at(17, 8),
            requested=at(17, 8),
            approved=at(17, 9),
            started=at(17, 13),
            finished=at(17, 13, 30),
            status=OperationStatus.SUCCEEDED,
        )
        with connection.execute_wrapper(recording(cold)):
            after = _main(client.get(url, {"days": "30"}))

    deployments = re.compile(r"(\d+) deployments?")
    assert after != first, "a finished operation is counted at once"
    counted = deployments.findall(after)[:1] != deployments.findall(first)[:1]
    assert counted or after.count(app.name) > first.count(app.name)
    assert len(warm) < len(cold), "the unchanged figures came from the cache"
