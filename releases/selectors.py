"""Reads for the pages: each returns exactly what a page shows, in few queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Prefetch, Q, QuerySet, Sum

from .models import (
    OPERATION_ACTIVE,
    Application,
    ApprovalRequest,
    ApprovalRequestStatus,
    AuditEvent,
    Environment,
    Operation,
    OperationStep,
    Release,
    ReleaseStatus,
    Slot,
    Stage,
    StepStatus,
)


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


def dashboard_rows(*, team: str = "") -> tuple[list[Stage], list[DashboardRow]]:
    """The grid: per application and stage, the slot, pending approvals and the running operation.

    Five queries whatever the number of applications: applications with their environments and
    slots, pending approval requests, active operations, and their unfinished steps.
    """
    stages = list(Stage)
    environments = Environment.objects.select_related("slot", "slot__current_release").order_by("position")
    applications = Application.objects.prefetch_related(Prefetch("environments", queryset=environments))
    if team:
        applications = applications.filter(team=team)
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

    Three aggregate queries, no rendering: the newest audit event, the slots' last observation, and
    the progress of active operations' steps. A poll with the same fingerprint is answered 304.
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
    return f"{latest_event}|{observed}|{sorted(active.items())}"


def teams() -> list[str]:
    return list(Application.objects.order_by("team").values_list("team", flat=True).distinct())


def releases_for(*, application: Application | None = None, status: str = "") -> QuerySet[Release]:
    qs = Release.objects.select_related("application", "created_by")
    if application is not None:
        qs = qs.filter(application=application)
    if status:
        qs = qs.filter(status=status)
    return qs


def audit_events(*, application: str = "", action: str = "", actor: str = "", text: str = "") -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.select_related("application")
    if application:
        qs = qs.filter(application__slug=application)
    if action:
        qs = qs.filter(action__startswith=action)
    if actor:
        qs = qs.filter(actor_label=actor)
    if text:
        qs = qs.filter(Q(reason__icontains=text) | Q(object_repr__icontains=text))
    return qs


def audit_trail_of(obj: object) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))  # type: ignore[attr-defined]


# --- approvals -------------------------------------------------------------------------------------


def inbox_for(user: Any) -> QuerySet[ApprovalRequest]:
    """Pending requests the user may still decide, newest first (the caller checks the approver role)."""
    from .approvals import inbox_filter

    return (
        ApprovalRequest.objects.filter(inbox_filter(user))
        .select_related("release__application", "environment", "requested_by")
        .annotate(approvals=Count("decisions", filter=Q(decisions__verdict="approve")))
        .order_by("-created_at", "-id")
    )


def inbox_count(user: Any) -> int:
    from .approvals import inbox_filter

    return ApprovalRequest.objects.filter(inbox_filter(user)).count()


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
