"""What the API reads and writes: request bodies and filters (strict), and the resources it returns.

Requests are strict: unknown fields are refused, every string has a maximum length, and no string
may carry control characters (which PostgreSQL cannot store, and which no version or branch has).
Responses are built from the models by the `*_out` functions at the bottom, so the endpoints and
the idempotency store serialise them the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from django.urls import reverse
from ninja import Schema
from pydantic import ConfigDict, Field, field_validator

from releases.approvals.models import ApprovalRequest
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release, ReleaseStatus, Stage, StrategyKind
from strategies.operations.models import Operation, OperationStatus

SLUG = r"^[a-z0-9][a-z0-9-]*$"
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"  # printable: no control characters
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # printable, plus tabs and line breaks
HEX = r"^([0-9a-fA-F]{4,64})?$"

ReleaseStatusName = Literal[tuple(ReleaseStatus.values)]  # type: ignore[valid-type]
OperationStatusName = Literal[tuple(OperationStatus.values)]  # type: ignore[valid-type]
OperationKindName = Literal[tuple(Operation.Kind.values)]  # type: ignore[valid-type]
StrategyName = Literal[tuple(StrategyKind.values)]  # type: ignore[valid-type]
StageName = Literal[tuple(Stage.values)]  # type: ignore[valid-type]


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- request bodies --------------------------------------------------------------------------------------


class ReleaseIn(StrictIn):
    """A build the pipeline has deployed (usually to the pre-production slot)."""

    application: str = Field(max_length=60, pattern=SLUG, description="The application's slug.")
    version: str = Field(
        min_length=1, max_length=100, pattern=ONE_LINE, description="Unique per application; names one build."
    )
    build_id: str = Field("", max_length=100, pattern=ONE_LINE, description="The CI run or build number.")
    commit_sha: str = Field("", max_length=64, pattern=HEX, description="The commit built, 4 to 64 hex digits.")
    committed_at: datetime | None = Field(
        None,
        description="When that commit was made (ISO 8601 with a zone): where lead time for changes starts. "
        "Without it, lead time starts at registration.",
    )
    branch: str = Field("", max_length=200, pattern=ONE_LINE)
    notes: str = Field("", max_length=10_000, pattern=TEXT, description="Release notes (plain text).")
    artifact_url: str = Field("", max_length=500, pattern=ONE_LINE, description="An http(s) link to the build.")
    deployed_slot: str | None = Field(
        None,
        max_length=60,
        pattern=SLUG,
        description="The slot the build was deployed to (e.g. staging); approval is requested for the next stage.",
    )

    @field_validator("committed_at")
    @classmethod
    def _committed_in_the_past(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("give the time zone, e.g. 2026-11-26T09:30:00Z")
        if value > datetime.now(UTC):
            raise ValueError("the commit time is in the future; give the time the commit was made")
        return value

    @field_validator("artifact_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        from django.core.exceptions import ValidationError
        from django.core.validators import URLValidator

        if value:
            try:
                URLValidator(schemes=["http", "https"])(value)
            except ValidationError:
                raise ValueError("Give an http(s) URL, like https://ci.example.com/builds/1234.") from None
        return value


class ApprovalRequestIn(StrictIn):
    environment: StageName | None = Field(
        None, description="The stage to be approved into; by default the one after the slot the release runs in."
    )
    reason: str = Field("", max_length=1000, pattern=TEXT)


class PromoteIn(StrictIn):
    strategy: StrategyName | None = Field(None, description="By default the application's default strategy.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The strategy's options (see the strategy); omitted ones keep defaults."
    )
    reason: str = Field("", max_length=1000, pattern=TEXT)


class ControlIn(StrictIn):
    reason: str = Field("", max_length=1000, pattern=TEXT, description="Recorded in the audit trail.")


class RollbackIn(StrictIn):
    reason: str = Field(min_length=1, max_length=1000, pattern=TEXT, description="Why; recorded in the audit trail.")


# --- filters -----------------------------------------------------------------------------------------------


class PageQuery(StrictIn):
    cursor: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_=-]*$", description="From `next`.")
    limit: int = Field(50, ge=1, le=100, description="Items per page.")


class ApplicationFilters(PageQuery):
    team: str | None = Field(None, max_length=100, pattern=ONE_LINE)


class ReleaseFilters(PageQuery):
    application: str | None = Field(None, max_length=60, pattern=SLUG, description="An application's slug.")
    status: ReleaseStatusName | None = None
    version: str | None = Field(None, max_length=100, pattern=ONE_LINE)


class OperationFilters(PageQuery):
    application: str | None = Field(None, max_length=60, pattern=SLUG)
    release: int | None = Field(None, ge=1, le=2**63 - 1, description="A release's id.")
    status: OperationStatusName | None = None
    kind: OperationKindName | None = None


class AuditFilters(PageQuery):
    application: str | None = Field(None, max_length=60, pattern=SLUG)
    action: str | None = Field(
        None, max_length=80, pattern=r"^[a-z_.]*$", description="An action, or its start: `release.` for all."
    )
    object_type: str | None = Field(None, max_length=60, pattern=r"^[a-z_.]*$", description="e.g. releases.release")
    object_id: str | None = Field(None, max_length=64, pattern=ONE_LINE)
    since: datetime | None = Field(None, description="Only events at or after this moment (ISO 8601).")

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except OverflowError:
            raise ValueError("That moment is out of range.") from None


# --- resources -----------------------------------------------------------------------------------------


class Links(Schema):
    self: str | None = None
    html: str | None = None
    approval: str | None = None
    operations: str | None = None


class SlotOut(Schema):
    name: str
    is_production: bool
    running_version: str
    traffic_percent: int
    health: str
    refreshed_at: datetime | None


class EnvironmentOut(Schema):
    stage: str
    name: str
    position: int
    slot: SlotOut


class ReleaseRef(Schema):
    id: int
    version: str
    status: str


class ApplicationOut(Schema):
    slug: str
    name: str
    team: str
    description: str
    provider: str
    default_strategy: str
    environments: list[EnvironmentOut]
    live_release: ReleaseRef | None
    links: Links


class ReleaseOut(Schema):
    id: int
    application: str = Field(description="The application's slug.")
    version: str
    build_id: str
    commit_sha: str
    committed_at: datetime | None
    branch: str
    notes: str
    artifact_url: str
    deployed_slot: str | None
    status: ReleaseStatusName  # type: ignore[valid-type]
    created_by: str | None
    created_at: datetime
    status_changed_at: datetime
    approved_at: datetime | None
    live_at: datetime | None
    links: Links


class DecisionOut(Schema):
    approver: str
    verdict: str
    comment: str
    decided_at: datetime


class ApprovalRequestOut(Schema):
    id: int
    environment: str = Field(description="The stage it asks approval for.")
    environment_name: str
    status: str
    approvals_required: int
    approvals: int
    requested_by: str | None
    created_at: datetime
    expires_at: datetime
    settled_at: datetime | None
    auto_promote_after: datetime | None
    decisions: list[DecisionOut]
    links: Links


class ApprovalStatusOut(Schema):
    release: ReleaseRef
    requests: list[ApprovalRequestOut] = Field(description="Newest first; the first is the current one.")


class StepOut(Schema):
    position: int
    kind: str
    title: str
    status: str
    attempts: int
    progress: int
    detail: dict[str, Any]
    started_at: datetime | None
    finished_at: datetime | None


class OperationOut(Schema):
    id: int
    kind: str
    status: OperationStatusName  # type: ignore[valid-type]
    application: str
    release: ReleaseRef
    environment: str
    strategy: str
    parameters: dict[str, Any]
    reason: str
    error: str
    waiting_for: str
    started_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepOut]
    links: Links


class AuditEventOut(Schema):
    id: int
    created_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    object_repr: str
    application: str | None
    before: Any = Field(description="The object's state before (JSON), or null.")
    after: Any = Field(description="The object's state after (JSON), or null.")
    reason: str
    origin: dict[str, Any] = Field(description="How it came in: via web, api (with the token's prefix), job, …")


class ApplicationPage(Schema):
    items: list[ApplicationOut]
    next: str | None = Field(description="The next page's URL, or null on the last page.")


class ReleasePage(Schema):
    items: list[ReleaseOut]
    next: str | None


class OperationPage(Schema):
    items: list[OperationOut]
    next: str | None


class AuditEventPage(Schema):
    items: list[AuditEventOut]
    next: str | None


# --- models → resources -------------------------------------------------------------------------------


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def release_ref(release: Release) -> dict[str, Any]:
    return {"id": release.pk, "version": release.version, "status": release.status}


def application_out(application: Application) -> dict[str, Any]:
    environments = application.environments.all()  # prefetched by the caller
    live = next((r for r in getattr(application, "live_releases", [])), None)
    return {
        "slug": application.slug,
        "name": application.name,
        "team": application.team,
        "description": application.description,
        "provider": application.provider,
        "default_strategy": application.default_strategy,
        "environments": [
            {
                "stage": env.stage,
                "name": env.name,
                "position": env.position,
                "slot": {
                    "name": env.slot.name,
                    "is_production": env.slot.is_production,
                    "running_version": env.slot.running_version,
                    "traffic_percent": env.slot.traffic_percent,
                    "health": env.slot.health,
                    "refreshed_at": env.slot.refreshed_at,
                },
            }
            for env in environments
        ],
        "live_release": release_ref(live) if live else None,
        "links": {
            "self": reverse("api_application_detail", args=[application.slug]),
            "html": application.get_absolute_url(),
        },
    }


def release_out(release: Release) -> dict[str, Any]:
    return {
        "id": release.pk,
        "application": release.application.slug,
        "version": release.version,
        "build_id": release.build_id,
        "commit_sha": release.commit_sha,
        "committed_at": release.committed_at,
        "branch": release.branch,
        "notes": release.notes,
        "artifact_url": release.artifact_url,
        "deployed_slot": release.deployed_slot.name if release.deployed_slot else None,
        "status": release.status,
        "created_by": _username(release.created_by),
        "created_at": release.created_at,
        "status_changed_at": release.status_changed_at,
        "approved_at": release.approved_at,
        "live_at": release.live_at,
        "links": {
            "self": reverse("api_release_detail", args=[release.pk]),
            "html": release.get_absolute_url(),
            "approval": reverse("api_release_approval", args=[release.pk]),
            "operations": f"{reverse('api_operation_list')}?release={release.pk}",
        },
    }


def approval_request_out(request: ApprovalRequest) -> dict[str, Any]:
    decisions = list(request.decisions.all())  # prefetched by the caller
    return {
        "id": request.pk,
        "environment": request.environment.stage,
        "environment_name": request.environment.name,
        "status": request.status,
        "approvals_required": request.approvals_required,
        "approvals": sum(d.verdict == "approve" for d in decisions),
        "requested_by": _username(request.requested_by),
        "created_at": request.created_at,
        "expires_at": request.expires_at,
        "settled_at": request.settled_at,
        "auto_promote_after": request.auto_promote_after,
        "decisions": [
            {
                "approver": d.approver.get_username(),
                "verdict": d.verdict,
                "comment": d.comment,
                "decided_at": d.decided_at,
            }
            for d in decisions
        ],
        "links": {"html": reverse("approval_detail", args=[request.pk])},
    }


def operation_out(operation: Operation) -> dict[str, Any]:
    return {
        "id": operation.pk,
        "kind": operation.kind,
        "status": operation.status,
        "application": operation.application.slug,
        "release": release_ref(operation.release),
        "environment": operation.environment.stage,
        "strategy": operation.strategy,
        "parameters": operation.parameters or {},
        "reason": operation.reason,
        "error": operation.error,
        "waiting_for": operation.waiting_for,
        "started_by": _username(operation.started_by),
        "created_at": operation.created_at,
        "started_at": operation.started_at,
        "finished_at": operation.finished_at,
        "steps": [
            {
                "position": step.position,
                "kind": step.kind,
                "title": step.title,
                "status": step.status,
                "attempts": step.attempts,
                "progress": step.progress,
                "detail": step.detail if isinstance(step.detail, dict) else {},
                "started_at": step.started_at,
                "finished_at": step.finished_at,
            }
            for step in operation.steps.all()
        ],
        "links": {
            "self": reverse("api_operation_detail", args=[operation.pk]),
            "html": reverse("operation_detail", args=[operation.pk]),
        },
    }


def audit_event_out(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "created_at": event.created_at,
        "actor": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "application": event.application.slug if event.application else None,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "origin": event.origin if isinstance(event.origin, dict) else {},
    }
