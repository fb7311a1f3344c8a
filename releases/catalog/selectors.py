"""Reads for the pages: each returns exactly what a page shows, in few queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, Prefetch, Q, QuerySet, Sum

from releases.approvals.models import ApprovalDecision, ApprovalRequest, ApprovalRequestStatus
from releases.audit.fulltext import search_audit_events
from releases.audit.models import AuditEvent
from releases.audit.services import audit_type
from releases.catalog.models import Application, Environment, Release, ReleaseStatus, Slot, Stage
from strategies.operations.models import OPERATION_ACTIVE, Operation, OperationStep, StepStatus


@dataclass
class DashboardCell:
    environment: Environment
    pending_request: ApprovalRequest | None = None  # an approval request into this environment, waiting
    operation: Operation | None = None  # the running operation into this environment
    current_step: OperationStep | None = None


@dataclass
class DashboardRow:
    application: Application
    cells: list[DashboardCell | None]  # one per stage, in stage order


def dashboard_rows(*, team: str = "", search: str = "") -> tuple[list[Stage], list[DashboardRow]]:
    """The grid: per application and stage, the slot, pending approvals and the running operation.

    Five queries whatever the number of applications: applications with their environments and
    slots, pending approval requests, active operations, and their unfinished steps.
    """
    stages = list(Stage)
    environments = Environment.objects.select_related("slot", "slot__current_release").order_by("position")
    applications = Application.objects.prefetch_related(Prefetch("environments", queryset=environments))
    if team:
        applications = applications.filter(team=team)
    if search:
        applications = applications.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    applications = list(applications)
    ids = [a.pk for a in applications]
    pending = {
        r.environment_id: r
        for r in ApprovalRequest.objects.filter(status=ApprovalRequestStatus.PENDING, release__application_id__in=ids)
        .select_related("release")
        .annotate(approvals=Count("decisions", filter=Q(decisions__verdict="approve")))
        .order_by("created_at")
    }
    operations = {
        o.environment_id: o
        for o in Operation.objects.filter(status__in=OPERATION_ACTIVE, application_id__in=ids).select_related("release")
    }
    steps: dict[int, OperationStep] = {}
    for step in OperationStep.objects.filter(
        operation__in=list(operations.values()), status__in=[StepStatus.RUNNING, StepStatus.WAITING, StepStatus.PENDING]
    ).order_by("operation_id", "position"):
        steps.setdefault(step.operation_id, step)  # the first unfinished step is the current one
    rows = []
    for application in applications:
        by_stage = {env.stage: env for env in application.environments.all()}
        cells: list[DashboardCell | None] = []
        for stage in stages:
            env = by_stage.get(stage)
            if env is None:
                cells.append(None)
                continue
            operation = operations.get(env.pk)
            cells.append(
                DashboardCell(
                    environment=env,
                    pending_request=pending.get(env.pk),
                    operation=operation,
                    current_step=steps.get(operation.pk) if operation else None,
                )
            )
        rows.append(DashboardRow(application, cells))
    return stages, rows


def dashboard_is_live(rows: list[DashboardRow]) -> bool:
    """Something on the grid is moving: an operation runs, or a slot refresh was asked for."""
    return any(
        (cell is not None and cell.operation is not None) or row.application.slots_refresh_pending
        for row in rows
        for cell in row.cells
    )


def dashboard_fingerprint(*, team: str = "") -> str:
    """What the grid shows changes only with an audited change, or a running operation's progress.

    Four aggregate queries, no rendering: the newest audit event, the slots' last observation, the
    progress of active operations' steps, and the last slot refresh asked for. A poll with the same
    fingerprint is answered 304.
    """
    latest_event = AuditEvent.objects.aggregate(latest=Max("id"))["latest"]
    slots = Slot.objects.all() if not team else Slot.objects.filter(application__team=team)
    observed = slots.aggregate(at=Max("refreshed_at"), traffic=Sum("traffic_percent"))
    active = OperationStep.objects.filter(operation__status__in=OPERATION_ACTIVE).aggregate(
        started=Max("started_at"),
        finished=Max("finished_at"),
        progress=Sum("progress"),
        attempts=Sum("attempts"),
        done=Count("id", filter=~Q(status__in=[StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING])),
    )
    asked = Application.objects.aggregate(at=Max("slots_refresh_requested_at"))["at"]  # not audited: a click
    return f"{latest_event}|{observed}|{sorted(active.items())}|{asked}"


def teams() -> list[str]:
    return list(Application.objects.order_by("team").values_list("team", flat=True).distinct())


def releases_for(*, application: Application | None = None, status: str = "") -> QuerySet[Release]:
    qs = Release.objects.select_related("application", "created_by")
    if application is not None:
        qs = qs.filter(application=application)
    if status:
        qs = qs.filter(status=status)
    return qs


def audit_trail_of(obj: object) -> QuerySet[AuditEvent]:
    """The events about one object, newest first (its page shows them and links to `audit_trail_url`)."""
    return AuditEvent.objects.filter(
        object_type=audit_type(obj),
        object_id=str(obj.pk),  # type: ignore[attr-defined]
    ).select_related("application")


# --- history and the audit trail -------------------------------------------------------------------


def _utc_day_range(since: date | None, until: date | None) -> Q:
    """`created_at` within the UTC days `since` to `until`, both included."""
    condition = Q()
    if since is not None:
        condition &= Q(created_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until is not None:
        condition &= Q(created_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC))
    return condition


def release_history(
    *,
    application: Application | None = None,
    stage: str = "",
    status: str = "",
    person: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[Release]:
    """Releases for the history page, newest first (the page walks them by `(created_at, id)` with a cursor).

    `stage`: dev, test or preprod — the build was deployed to that environment's slot when it was
    registered; prod — it reached production (went live at some point, whatever it is now).
    `person` (a username): who registered it, decided an approval of it, or started an operation on it.
    """
    qs = Release.objects.select_related("application", "created_by").defer("notes")
    if application is not None:
        qs = qs.filter(application=application)
    if stage == Stage.PRODUCTION:
        qs = qs.filter(Q(live_at__isnull=False) | Q(deployed_slot__environment__stage=stage))
    elif stage:
        qs = qs.filter(deployed_slot__environment__stage=stage)
    if status:
        qs = qs.filter(status=status)
    if person:
        decided = ApprovalDecision.objects.filter(request__release=OuterRef("pk"), approver__username=person)
        started = Operation.objects.filter(release=OuterRef("pk"), started_by__username=person)
        qs = qs.filter(Q(created_by__username=person) | Exists(decided) | Exists(started))
    return qs.filter(_utc_day_range(since, until))


def live_release_of(application: Application) -> Release | None:
    return Release.objects.filter(application=application, status=ReleaseStatus.LIVE).first()


def releases_between(older: Release, newer: Release, *, limit: int) -> list[Release]:
    """The releases after `older` up to and including `newer` (same application), newest first.

    What changes when going from `older` to `newer`. At most `limit + 1` rows, so the caller can
    tell that there are more than `limit` without counting them.
    """
    after_older = Q(created_at__gt=older.created_at) | Q(created_at=older.created_at, pk__gt=older.pk)
    up_to_newer = Q(created_at__lt=newer.created_at) | Q(created_at=newer.created_at, pk__lte=newer.pk)
    return list(
        Release.objects.filter(after_older, up_to_newer, application_id=older.application_id)
        .select_related("created_by")
        .order_by("-created_at", "-id")[: limit + 1]
    )


def audit_events(
    *,
    application: str = "",
    action: str = "",
    actor: str = "",
    text: str = "",
    object_type: str = "",
    object_id: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """The audit trail, filtered, newest first (pages walk it by `(created_at, id)` with a cursor).

    `application` is a slug, `action` a prefix ("release." finds every release event), `actor` the
    label shown (a username, a token, "system"; any case), `text` a full-text search over the reason
    and the object's name (see `releases.audit.fulltext`), `since`/`until` UTC days, both included.
    """
    qs = AuditEvent.objects.select_related("application")
    if application:
        qs = qs.filter(application__slug=application)
    if action:
        qs = qs.filter(action__startswith=action)
    if actor:
        qs = qs.filter(actor_label__iexact=actor)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    return search_audit_events(qs.filter(_utc_day_range(since, until)), text)


# --- approvals -------------------------------------------------------------------------------------


def inbox_for(user: Any) -> QuerySet[ApprovalRequest]:
    """Pending requests the user may still decide, newest first (the caller checks the approver role)."""
    from releases.approvals.policies import inbox_filter

    return (
        ApprovalRequest.objects.filter(inbox_filter(user))
        .select_related("release__application", "environment", "requested_by")
        .annotate(approvals=Count("decisions", filter=Q(decisions__verdict="approve")))
        .order_by("-created_at", "-id")
    )


def inbox_count(user: Any) -> int:
    """Release approvals and flag changes the user may decide."""
    from releases.approvals.policies import inbox_filter
    from strategies.flags.changes import inbox_for as flag_changes_for

    return ApprovalRequest.objects.filter(inbox_filter(user)).count() + len(flag_changes_for(user))


def releases_since_live(release: Release) -> list[Release]:
    """The releases between the one live in production (exclusive) and `release` (inclusive), newest first.

    Their notes are what changes for users when `release` reaches production.
    """
    live = Release.objects.filter(application_id=release.application_id, status=ReleaseStatus.LIVE).first()
    qs = Release.objects.filter(application_id=release.application_id).filter(
        Q(created_at__lt=release.created_at) | Q(created_at=release.created_at, pk__lte=release.pk)
    )
    if live is not None:
        qs = qs.filter(Q(created_at__gt=live.created_at) | Q(created_at=live.created_at, pk__gt=live.pk))
    return list(qs.select_related("created_by").order_by("-created_at", "-id")[:50])


def approval_requests_of(release: Release) -> QuerySet[ApprovalRequest]:
    return (
        release.approval_requests.select_related("environment", "requested_by")
        .annotate(approvals=Count("decisions", filter=Q(decisions__verdict="approve")))
        .order_by("-created_at", "-id")
    )


# --- the application page ---------------------------------------------------------------------------


@dataclass
class TrafficShare:
    slot: str
    version: str
    percent: int
    offset: int  # where its bar starts, in percent


def traffic_split(environments: list[Environment]) -> list[TrafficShare]:
    """Who takes production's visitors: the routed slots' shares, and production the rest."""
    slots = [env.slot for env in environments]
    routed = [s for s in slots if not s.is_production and s.traffic_percent]
    production = next((s for s in slots if s.is_production), None)
    shares = []
    if production is not None:
        rest = max(0, 100 - sum(s.traffic_percent for s in routed))
        shares.append(TrafficShare(production.name, production.running_version, rest, 0))
    offset = shares[0].percent if shares else 0
    for slot in routed:
        shares.append(TrafficShare(slot.name, slot.running_version, slot.traffic_percent, offset))
        offset += slot.traffic_percent
    return shares
