"""Reads of approval requests."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from releases.approvals.models import ApprovalRequest
from releases.approvals.policies import inbox_filter
from releases.catalog.models import Release


def approval_requests_of(release: Release) -> QuerySet[ApprovalRequest]:
    return (
        release.approval_requests.select_related("environment", "requested_by")
        .annotate(approvals=Count("decisions", filter=Q(decisions__verdict="approve")))
        .order_by("-created_at", "-id")
    )


def inbox_for(user: Any) -> QuerySet[ApprovalRequest]:
    """Pending requests the user may still decide, newest first (the caller checks the approver role)."""
    return (
        ApprovalRequest.objects.filter(inbox_filter(user))
        .select_related("release__application", "environment", "requested_by")
        .annotate(approvals=Count("decisions", filter=Q(decisions__verdict="approve")))
        .order_by("-created_at", "-id")
    )
