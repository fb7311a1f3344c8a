"""Event types and their JSON payloads (schema version 1, documented in docs/webhooks.md)."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse

from portal.core import clock
from releases.approvals.models import ApprovalRequest
from releases.catalog.models import Application, Release
from strategies.operations.models import Operation, OperationStep

SCHEMA_VERSION = 1

EVENT_TYPES: dict[str, str] = {
    "release.registered": "Release registered",
    "approval.requested": "Approval requested",
    "approval.decided": "Approval decided (approved or rejected)",
    "operation.started": "Operation started",
    "operation.step_finished": "Operation step finished",
    "operation.succeeded": "Operation succeeded",
    "operation.rolled_back": "Operation rolled back",
    "operation.failed": "Operation failed",
}


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def _link(name: str, pk: int) -> str:
    return settings.SITE_URL + reverse(name, args=[pk])


def release_data(release: Release) -> dict[str, Any]:
    return {
        "id": release.pk,
        "version": release.version,
        "status": release.status,
        "build_id": release.build_id,
        "commit_sha": release.commit_sha,
        "branch": release.branch,
        "created_at": _iso(release.created_at),
        "url": _link("release_detail", release.pk),
    }


def approval_data(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "id": request.pk,
        "status": request.status,
        "environment": request.environment.name,
        "approvals_required": request.approvals_required,
        "created_at": _iso(request.created_at),
        "expires_at": _iso(request.expires_at),
        "settled_at": _iso(request.settled_at),
        "url": _link("approval_detail", request.pk),
    }


def operation_data(operation: Operation) -> dict[str, Any]:
    return {
        "id": operation.pk,
        "kind": operation.kind,
        "strategy": operation.strategy,
        "status": operation.status,
        "error": operation.error,
        "started_at": _iso(operation.started_at),
        "finished_at": _iso(operation.finished_at),
        "url": _link("operation_detail", operation.pk),
    }


def step_data(step: OperationStep) -> dict[str, Any]:
    return {
        "position": step.position,
        "kind": step.kind,
        "title": step.title,
        "status": step.status,
        "attempts": step.attempts,
        "started_at": _iso(step.started_at),
        "finished_at": _iso(step.finished_at),
    }


def objects_of(obj: Any) -> dict[str, Any]:
    """The objects an event is about, each under its own key."""
    if isinstance(obj, Release):
        return {"release": release_data(obj)}
    if isinstance(obj, ApprovalRequest):
        return {"approval_request": approval_data(obj), "release": release_data(obj.release)}
    if isinstance(obj, Operation):
        return {"operation": operation_data(obj), "release": release_data(obj.release)}
    if isinstance(obj, OperationStep):
        obj = OperationStep.objects.select_related("operation__release").get(pk=obj.pk)  # as saved, not as held
        operation = obj.operation
        return {
            "operation": operation_data(operation),
            "step": step_data(obj),
            "release": release_data(operation.release),
        }
    raise TypeError(f"No webhook payload for {type(obj).__name__}")


def build_payload(event_type: str, obj: Any, application: Application) -> dict[str, Any]:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {event_type!r}")
    return {
        "schema_version": SCHEMA_VERSION,
        "id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": clock.now().isoformat(),
        "application": {"slug": application.slug, "name": application.name, "url": application_url(application)},
        **objects_of(obj),
    }


def application_url(application: Application) -> str:
    return settings.SITE_URL + application.get_absolute_url()
