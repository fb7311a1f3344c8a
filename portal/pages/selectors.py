"""Reads behind the pages that compose several concepts: the dashboard grid and the approver's inbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Prefetch, Q, Sum

from releases.approvals.models import ApprovalRequest, ApprovalRequestStatus
from releases.approvals.policies import inbox_filter
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Environment, Slot, Stage
from strategies.flags.changes import inbox_for as flag_changes_for
from strategies.operations.models import OPERATION_ACTIVE, Drift, Operation, OperationStep, StepStatus
from strategies.operations.services import rings_waiting_for


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


def open_drifts(applications: list[Application]) -> list[Drift]:
    """The unresolved drifts of these applications (strategies.operations.reconcile), oldest first."""
    return list(
        Drift.objects.filter(application__in=applications, resolved_at__isnull=True)
        .select_related("application")
        .order_by("found_at")
    )


def inbox_count(user: Any) -> int:
    """Release approvals, ring approvals and flag changes the user may decide."""
    releases = ApprovalRequest.objects.filter(inbox_filter(user)).count()
    return releases + len(flag_changes_for(user)) + len(rings_waiting_for(user))
