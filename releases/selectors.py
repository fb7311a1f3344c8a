"""Reads for the pages: each returns exactly what a page shows, in few queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from .models import (
    Application,
    ApprovalRequest,
    AuditEvent,
    Environment,
    Release,
    ReleaseStatus,
    Stage,
)


@dataclass
class DashboardRow:
    application: Application
    cells: list[Environment | None]  # one per stage, in stage order


def dashboard_rows(*, team: str = "") -> tuple[list[Stage], list[DashboardRow]]:
    stages = list(Stage)
    environments = Environment.objects.select_related("slot", "slot__current_release").order_by("position")
    applications = Application.objects.prefetch_related(Prefetch("environments", queryset=environments))
    if team:
        applications = applications.filter(team=team)
    rows = []
    for application in applications:
        by_stage = {env.stage: env for env in application.environments.all()}
        rows.append(DashboardRow(application, [by_stage.get(stage) for stage in stages]))
    return stages, rows


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
