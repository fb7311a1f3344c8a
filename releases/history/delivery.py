"""Delivery metrics (DORA) over a window of days, overall or for one application.

Every figure comes from database aggregation, in a fixed number of queries whatever the number of
releases, operations or audit events: one statement for the production changes and one for the
incidents, each aggregating its rows over the whole window, per day or week, and per application
(plus `SET LOCAL jit = off` on PostgreSQL). Python only loops over the buckets of the window (at
most 53) and the applications with activity.

The definitions (also written on the page, `templates/releases/metrics.html`):

- A **production change** is a promotion into production that finished: it succeeded, was rolled
  back, or failed. It counts in the window in which it finished.
- A **deployment** is a production change that succeeded. Deployment frequency is deployments per
  day (and per week) over the window's days.
- **Lead time for changes** runs from the commit (`Release.committed_at`, or the registration when the
  pipeline gave no commit time: counted as `fallback`) to the end of the successful promotion. Not
  `Release.live_at`, which a later restore by a rollback moves. Its parts, which add up to it:
  commit → registered, registered → approval requested (the first request into production),
  waiting for approval (→ `Release.approved_at`), waiting to promote (→ the promotion's start),
  rolling out (→ the promotion's end). Median and 90th percentile; each part's own median.
- A change **failed** when its promotion was rolled back or failed, or when the release it made live
  was later taken back by an application rollback. Change failure rate = failed changes / changes.
- An **incident** is a promotion into production that was rolled back or failed, or an application
  rollback. It starts at the failure: the first failed step of the promotion (its start when a person
  aborted it), or the moment the rollback was asked for. Production is **restored** when it is on a
  good release again: the end of the promotion's own undo (rolled back), of the rollback (succeeded),
  or otherwise of the next successful operation on the application. Time to restore is the median;
  incidents not restored yet are counted apart. An incident counts in the window in which it started.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Case,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Coalesce, TruncDay, TruncWeek
from django.utils import timezone

from releases.approvals.models import ApprovalRequest
from releases.catalog.models import Application, Environment, Stage
from strategies.operations.models import Operation, OperationStatus, OperationStep, StepStatus

WINDOWS = (7, 30, 90, 365)
DEFAULT_WINDOW = 30
DAILY_UP_TO = 30  # windows of up to this many days are charted per day, longer ones per week

CHANGE_ENDS = (OperationStatus.SUCCEEDED, OperationStatus.ROLLED_BACK, OperationStatus.FAILED)
FAILED_ENDS = (OperationStatus.ROLLED_BACK, OperationStatus.FAILED)

# The parts of the lead time, in order: (key, label, start moment, end moment).
LEAD_PARTS: tuple[tuple[str, str, str, str], ...] = (
    ("commit", "Commit → registered", "committed", "registered"),
    ("request", "Registered → approval requested", "registered", "requested"),
    ("approval", "Waiting for approval", "requested", "approved"),
    ("promote", "Waiting to promote", "approved", "started"),
    ("rollout", "Rolling out", "started", "finished_at"),
)


# --- SQL helpers ------------------------------------------------------------------------------------------


def _seconds(end: str, start: str) -> str:
    """SQL for `end - start` in seconds (PostgreSQL: the interval's epoch; SQLite: Julian days)."""
    if connection.vendor == "postgresql":  # date_part is double precision; EXTRACT would be (slower) numeric
        return f"(date_part('epoch', {end}) - date_part('epoch', {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def _percentile(fraction: float, expression: str, where: str = "") -> str:
    """SQL for a continuous percentile (PostgreSQL's percentile_cont; on SQLite, ours) ignoring NULLs."""
    filtered = f" FILTER (WHERE {where})" if where else ""
    if connection.vendor == "postgresql":
        return f"percentile_cont({fraction!r}) WITHIN GROUP (ORDER BY {expression}){filtered}"
    return f"slipway_percentile({fraction!r}, {expression}){filtered}"


def percentile_of(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _SqlitePercentile:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, fraction: float, value: float | None) -> None:
        self.fraction = fraction
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        return percentile_of(self.values, self.fraction)


def _sqlite_functions() -> None:
    """Give this SQLite connection the percentile aggregate (no query: a function registration)."""
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        connection.connection.create_aggregate("slipway_percentile", 2, _SqlitePercentile)


# --- the window -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The last `days` calendar days up to now, in the viewer's time zone, cut into days or weeks."""

    days: int
    start: datetime  # local midnight, `days - 1` days before today
    end: datetime  # now
    zone: tzinfo
    per: str  # "day" | "week"
    buckets: tuple[date, ...]  # the first day of each bucket

    @classmethod
    def ending(cls, now: datetime, days: int, zone: tzinfo | None = None) -> Window:
        zone = zone or timezone.get_current_timezone()
        today = now.astimezone(zone).date()
        first = today - timedelta(days=days - 1)
        start = datetime.combine(first, time.min, zone)
        if days <= DAILY_UP_TO:
            return cls(days, start, now, zone, "day", tuple(first + timedelta(days=i) for i in range(days)))
        monday = first - timedelta(days=first.weekday())
        weeks = (today - monday).days // 7 + 1
        return cls(days, start, now, zone, "week", tuple(monday + timedelta(weeks=i) for i in range(weeks)))

    def trunc(self, expression: Any) -> Func:
        kind = TruncDay if self.per == "day" else TruncWeek
        return kind(expression, tzinfo=self.zone)

    def bucket_of(self, moment: datetime | date) -> date:
        return moment.astimezone(self.zone).date() if isinstance(moment, datetime) else moment


# --- results ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadPart:
    key: str
    label: str
    median: float | None  # seconds


@dataclass(frozen=True)
class LeadTime:
    measured: int  # deployments whose lead time is in the figures (all of them)
    fallback: int  # of which without a commit time: measured from registration
    median: float | None  # seconds
    p90: float | None
    parts: tuple[LeadPart, ...]


@dataclass(frozen=True)
class Restore:
    incidents: int
    unrestored: int  # production not on a good release again yet
    median: float | None  # seconds
    p90: float | None

    @property
    def restored(self) -> int:
        return self.incidents - self.unrestored


@dataclass(frozen=True)
class Figures:
    """The four metrics over one span: the window, a bucket of it, or one application."""

    days: float
    changes: int
    deployments: int
    failures: int
    lead: LeadTime
    restore: Restore

    @property
    def per_day(self) -> float:
        return self.deployments / self.days if self.days else 0.0

    @property
    def per_week(self) -> float:
        return self.per_day * 7

    @property
    def change_failure_rate(self) -> float | None:
        return self.failures / self.changes if self.changes else None

    @property
    def empty(self) -> bool:
        return not self.changes and not self.restore.incidents


@dataclass(frozen=True)
class Bucket:
    start: date
    figures: Figures


@dataclass(frozen=True)
class AppRef:
    pk: int
    name: str
    slug: str


@dataclass(frozen=True)
class AppFigures:
    application: AppRef
    figures: Figures


@dataclass(frozen=True)
class DeliveryMetrics:
    window: Window
    application: Application | None
    overall: Figures
    buckets: tuple[Bucket, ...]
    by_application: tuple[AppFigures, ...] = field(default=())  # overall only, applications with activity


# --- queries ----------------------------------------------------------------------------------------------
#
# Each metric family is one statement: the ORM builds one row per production change (or incident) with
# its moments, in a MATERIALIZED common table expression so that each row's subqueries run once; then
# plain SQL aggregates it three times over, UNION ALL: the whole window, per bucket, per application.


def production_changes(window: Window, application: Application | None = None) -> QuerySet[Operation]:
    """Promotions into production that finished in the window."""
    changes = Operation.objects.filter(
        kind=Operation.Kind.PROMOTE,
        environment__stage=Stage.PRODUCTION,
        status__in=CHANGE_ENDS,
        finished_at__gte=window.start,
        finished_at__lt=window.end,
    )
    return changes if application is None else changes.filter(application=application)


def _change_rows(window: Window, application: Application | None) -> QuerySet[Operation]:
    """One row per production change with the moments of its lead time and whether it failed."""
    first_request = (
        ApprovalRequest.objects.filter(release=OuterRef("release_id"), environment=OuterRef("environment_id"))
        .order_by("created_at")
        .values("created_at")[:1]
    )
    taken_back = Operation.objects.filter(kind=Operation.Kind.ROLLBACK, release=OuterRef("release_id")).exclude(
        status=OperationStatus.CANCELLED
    )
    return (
        production_changes(window, application)
        .order_by()
        .values(
            app=F("application_id"),
            app_name=F("application__name"),
            app_slug=F("application__slug"),
            bucket=window.trunc(F("finished_at")),
            ok=Case(When(status=OperationStatus.SUCCEEDED, then=1), default=0),
            failed=Case(
                When(status__in=FAILED_ENDS, then=1), When(Exists(taken_back), then=1), default=0
            ),  # rolled back or failed, or its release later taken back by an application rollback
            committed_at=F("release__committed_at"),
            registered=F("release__created_at"),
            requested=Subquery(first_request),
            approved_at=F("release__approved_at"),
            started=Coalesce("started_at", "created_at"),
            finished=F("finished_at"),
        )
    )


def _incident_rows(window: Window, application: Application | None) -> QuerySet[Operation]:
    """One row per incident whose failure is in the window, with when production was restored."""
    first_failed_step = (
        OperationStep.objects.filter(operation=OuterRef("pk"), status=StepStatus.FAILED)
        .order_by("finished_at")
        .values("finished_at")[:1]
    )
    next_good = (
        Operation.objects.filter(
            application=OuterRef("application_id"),
            environment=OuterRef("environment_id"),
            status=OperationStatus.SUCCEEDED,
            finished_at__gt=OuterRef("finished_at"),
        )
        .order_by("finished_at")
        .values("finished_at")[:1]
    )
    failed_at = Case(
        When(kind=Operation.Kind.ROLLBACK, then=F("created_at")),
        default=Coalesce(Subquery(first_failed_step), "started_at", "created_at"),
    )
    restored_at = Case(
        When(
            Q(kind=Operation.Kind.PROMOTE, status=OperationStatus.ROLLED_BACK)
            | Q(kind=Operation.Kind.ROLLBACK, status=OperationStatus.SUCCEEDED),
            then=F("finished_at"),
        ),
        default=Subquery(next_good),
    )
    production = Environment.objects.filter(pk=OuterRef("environment_id"), stage=Stage.PRODUCTION)
    rows = Operation.objects.filter(
        Q(kind=Operation.Kind.PROMOTE, status__in=FAILED_ENDS)
        | (Q(kind=Operation.Kind.ROLLBACK) & ~Q(status=OperationStatus.CANCELLED)),
        Exists(production),
        created_at__lt=window.end,  # the failure is never before the operation was created...
    ).exclude(finished_at__lt=window.start)  # ...nor after it finished: the index narrows these two
    if application is not None:
        rows = rows.filter(application=application)
    # The planner cannot estimate how few rows the failure filter leaves, so a join to the applications
    # or environments would be a nested loop over all of them: a lookup per incident is cheaper.
    application_of = Application.objects.filter(pk=OuterRef("application_id")).order_by()
    return (
        rows.alias(failed_at=failed_at)
        .filter(failed_at__gte=window.start, failed_at__lt=window.end)
        .order_by()
        .values(
            app=F("application_id"),
            app_name=Subquery(application_of.values("name")[:1]),
            app_slug=Subquery(application_of.values("slug")[:1]),
            bucket=window.trunc(F("failed_at")),
            failed_at=F("failed_at"),
            restored_at=restored_at,
        )
    )


# Levels of aggregation: the whole window, each bucket (day or week), each application.
WINDOW, BUCKET, APPLICATION = 0, 1, 2
EVERY_LEVEL = frozenset({WINDOW, BUCKET, APPLICATION})


def _change_aggregates() -> list[tuple[str, str, frozenset[int]]]:
    """(name, SQL, levels computing it): percentiles cost a sort each, so each level gets what it shows."""
    lead = _seconds("finished", "COALESCE(committed_at, registered)")
    moments = {
        "committed": "COALESCE(committed_at, registered)",
        "registered": "registered",
        "requested": "COALESCE(requested, registered)",
        "approved": "COALESCE(approved_at, requested, registered)",
        "started": "started",
        "finished_at": "finished",
    }
    return [
        ("changes", "COUNT(*)", EVERY_LEVEL),
        ("deployments", "SUM(ok)", EVERY_LEVEL),
        ("failures", "SUM(failed)", EVERY_LEVEL),
        ("fallback", "COUNT(*) FILTER (WHERE ok = 1 AND committed_at IS NULL)", EVERY_LEVEL),
        ("lead_median", _percentile(0.5, lead, "ok = 1"), EVERY_LEVEL),
        ("lead_p90", _percentile(0.9, lead, "ok = 1"), frozenset({WINDOW})),
        *(
            (
                f"part_{key}",
                _percentile(0.5, _seconds(moments[end], moments[start]), "ok = 1"),
                frozenset({WINDOW, BUCKET}),
            )
            for key, _label, start, end in LEAD_PARTS
        ),
    ]


def _incident_aggregates() -> list[tuple[str, str, frozenset[int]]]:
    restore = _seconds("restored_at", "failed_at")
    return [
        ("incidents", "COUNT(*)", EVERY_LEVEL),
        ("unrestored", "COUNT(*) FILTER (WHERE restored_at IS NULL)", EVERY_LEVEL),
        ("restore_median", _percentile(0.5, restore), EVERY_LEVEL),
        ("restore_p90", _percentile(0.9, restore), frozenset({WINDOW})),
    ]


def _aggregate(
    rows: QuerySet[Operation], aggregates: list[tuple[str, str, frozenset[int]]], *, per_application: bool
) -> tuple[dict[str, Any], dict[Any, dict[str, Any]], dict[AppRef, dict[str, Any]]]:
    """Aggregate `rows` over the window, per bucket and (optionally) per application, in one statement."""
    inner, params = rows.query.sql_with_params()

    def columns(level: int) -> str:
        return ", ".join(sql if level in levels else "NULL" for _name, sql, levels in aggregates)

    # Only our own SQL fragments are put together here; every value is a parameter of the inner query.
    # The first branch computes every column, and MIN() gives it the key columns' types, which the
    # NULLs of the other branches then take.
    branches = [
        f"SELECT 0, MIN(bucket), MIN(app), MIN(app_name), MIN(app_slug), {columns(WINDOW)} FROM delivery_rows",  # noqa: S608
        f"SELECT 1, bucket, NULL, NULL, NULL, {columns(BUCKET)} FROM delivery_rows GROUP BY bucket",  # noqa: S608
    ]
    if per_application:
        by_app = "GROUP BY app, app_name, app_slug"
        per_app = f"SELECT 2, NULL, app, app_name, app_slug, {columns(APPLICATION)} FROM delivery_rows {by_app}"  # noqa: S608
        branches.append(per_app)
    sql = f"WITH delivery_rows AS MATERIALIZED ({inner}) " + " UNION ALL ".join(branches)
    names = [name for name, _sql, _levels in aggregates]
    overall: dict[str, Any] = {}
    buckets: dict[Any, dict[str, Any]] = {}
    apps: dict[AppRef, dict[str, Any]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for level, bucket, app, name, slug, *values in cursor.fetchall():
            figures = dict(zip(names, values, strict=True))
            if level == WINDOW:
                overall = figures
            elif level == BUCKET:
                buckets[bucket] = figures
            else:
                apps[AppRef(app, name, slug)] = figures
    return overall, buckets, apps


def _figures(days: float, changes: dict[str, Any] | None, incidents: dict[str, Any] | None) -> Figures:
    c, i = changes or {}, incidents or {}
    deployments = int(c.get("deployments") or 0)
    lead = LeadTime(
        measured=deployments,
        fallback=c.get("fallback") or 0,
        median=c.get("lead_median"),
        p90=c.get("lead_p90"),
        parts=tuple(LeadPart(key, label, c.get(f"part_{key}")) for key, label, _s, _e in LEAD_PARTS),
    )
    restore = Restore(
        incidents=i.get("incidents") or 0,
        unrestored=i.get("unrestored") or 0,
        median=i.get("restore_median"),
        p90=i.get("restore_p90"),
    )
    return Figures(days, c.get("changes") or 0, deployments, int(c.get("failures") or 0), lead, restore)


def delivery_metrics(*, days: int, application: Application | None = None, now: datetime) -> DeliveryMetrics:
    """The four metrics over the window, per bucket, and (overall) per application with activity."""
    if days not in WINDOWS:
        raise ValueError(f"The window is one of {WINDOWS} days.")
    _sqlite_functions()
    window = Window.ending(now, days)
    overall_only = application is not None
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The row subqueries make the planner's estimate large enough to JIT-compile the statement,
            # which costs far more (0.3-0.5 s) than running it. For this transaction only.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        changes = _aggregate(_change_rows(window, application), _change_aggregates(), per_application=not overall_only)
        failures = _aggregate(
            _incident_rows(window, application), _incident_aggregates(), per_application=not overall_only
        )

    overall = _figures(days, changes[0], failures[0])
    change_buckets = {_bucket_day(k): v for k, v in changes[1].items()}
    incident_buckets = {_bucket_day(k): v for k, v in failures[1].items()}
    buckets = []
    first, after = window.start.date(), window.end.astimezone(window.zone).date() + timedelta(days=1)
    for i, start in enumerate(window.buckets):
        end = window.buckets[i + 1] if i + 1 < len(window.buckets) else after
        span = (min(end, after) - max(start, first)).days  # a week cut by the window counts its days in it
        buckets.append(Bucket(start, _figures(span, change_buckets.get(start), incident_buckets.get(start))))

    rows = [
        AppFigures(app, _figures(days, changes[2].get(app), failures[2].get(app)))
        for app in set(changes[2]) | set(failures[2])
    ]
    rows.sort(key=lambda r: (-r.figures.deployments, -r.figures.changes, r.application.name))
    return DeliveryMetrics(window, application, overall, tuple(buckets), tuple(rows))


def _bucket_day(value: datetime | date | str) -> date:
    """A truncated moment as the database returns it outside the ORM: local wall-clock time, or text on SQLite."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.date() if isinstance(value, datetime) else value
