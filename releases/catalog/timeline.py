"""A release's story for its page: every audited event of the release, its approval requests
(decisions included), and its operations, oldest first, each told in a sentence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q

from releases.audit.models import AuditEvent
from releases.catalog.models import Release

# What each action means, as the page says it; {after.x} and {before.x} come from the event.
SENTENCES: dict[str, str] = {
    "release.registered": "registered the build",
    "release.approval_requested": "asked for approval",
    "release.approval_lapsed": "the approval request lapsed",
    "release.approved": "the release is approved",
    "release.rejected": "the release is rejected",
    "release.rollout_started": "the rollout started",
    "release.went_live": "the release went live",
    "release.rollout_failed": "the rollout failed",
    "release.rolled_back": "the release was rolled back",
    "release.superseded": "a newer release replaced it in production",
    "release.restored": "the release was restored to production",
    "approval.requested": "asked for approval",
    "approval.decided": "decided",
    "approval.approved": "the approval request is approved",
    "approval.rejected": "the approval request is rejected",
    "approval.expired": "the approval request lapsed",
    "approval.superseded": "the approval request was superseded by a newer build",
    "approval.auto_promote_due": "auto-promote was scheduled",
    "freeze.overridden": "overrode the freeze",
    "gate.evaluated": "evaluated the gates",
    "operation.created": "started an operation",
    "operation.running": "a worker picked the operation up",
    "operation.paused": "the operation paused",
    "operation.resumed": "resumed the operation",
    "operation.promoted_now": "skipped the remaining bake (promote now)",
    "operation.rolling_back": "the operation is rolling back",
    "operation.rolled_back": "the operation rolled back",
    "operation.succeeded": "the operation succeeded",
    "operation.failed": "the operation failed",
    "operation.recovered": "a stalled operation was resumed by the recovery pass",
    "operation.ring_approved": "approved the next ring",
}
# Recorded for both the release and its approval request at the same moment: the timeline tells it once.
SAID_TWICE = ("slot.observed", "release.approval_requested", "approval.approved", "approval.rejected")
# The kind of milestone, for the marker beside it (shown as text too).
KIND_OF = {
    "release.went_live": "good",
    "release.approved": "good",
    "operation.succeeded": "good",
    "release.rejected": "bad",
    "release.rolled_back": "bad",
    "release.rollout_failed": "bad",
    "operation.failed": "bad",
    "operation.rolled_back": "bad",
    "operation.rolling_back": "bad",
}


@dataclass
class Moment:
    at: datetime
    who: str
    action: str
    sentence: str
    detail: str  # e.g. "approve" / "canary", from the event
    reason: str
    kind: str  # "good", "bad" or ""
    event: AuditEvent


def _detail(event: AuditEvent) -> str:
    after: dict[str, Any] = event.after or {}
    if event.action == "approval.decided":
        return str(after.get("verdict", ""))
    if event.action == "operation.created":
        return str(after.get("strategy") or after.get("kind") or "")
    return ""


def release_timeline(release: Release) -> list[Moment]:
    """Three queries: the ids of the release's approval requests and operations, then their events."""
    request_ids = list(release.approval_requests.values_list("pk", flat=True))
    operation_ids = list(release.operations.values_list("pk", flat=True))
    mine = (
        Q(object_type="releases.release", object_id=str(release.pk))
        | Q(object_type="releases.approvalrequest", object_id__in=[str(pk) for pk in request_ids])
        | Q(object_type="releases.operation", object_id__in=[str(pk) for pk in operation_ids])
    )
    events = AuditEvent.objects.filter(mine).exclude(action__in=SAID_TWICE).order_by("created_at", "id")
    return [
        Moment(
            at=event.created_at,
            who=event.actor_label,
            action=event.action,
            sentence=SENTENCES.get(event.action, event.action),
            detail=_detail(event),
            reason=event.reason,
            kind=KIND_OF.get(event.action, ""),
            event=event,
        )
        for event in events
    ]
