"""Reads behind the release history."""

from __future__ import annotations

from datetime import date

from django.db.models import Exists, OuterRef, Q, QuerySet

from portal.core.timezones import utc_day_range
from releases.approvals.models import ApprovalDecision
from releases.catalog.models import Application, Release, Stage
from strategies.operations.models import Operation


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
    return qs.filter(utc_day_range(since, until))
