"""The endpoints of /api/v1. Each one looks up what the path names, calls a service, returns the resource.

Scopes, roles, rate limits, idempotency, the audit origin and errors are `routing.endpoint`'s job;
the rules are the services'. (No `from __future__ import annotations` here: Django Ninja reads these
signatures through the decorator's wrapper, whose module could not resolve postponed annotations.)
"""

from typing import Any

from django.urls import reverse
from ninja import Path, Query

from portal.api import services
from portal.api.models import ApiToken
from portal.api.pagination import paginate
from portal.api.problems import ApiProblem
from portal.api.routing import Reply, endpoint
from portal.api.schemas import (
    SLUG,
    ApplicationFilters,
    ApplicationOut,
    ApplicationPage,
    ApprovalRequestIn,
    ApprovalRequestOut,
    ApprovalStatusOut,
    AuditEventPage,
    AuditFilters,
    ControlIn,
    OperationFilters,
    OperationOut,
    OperationPage,
    PromoteIn,
    ReleaseFilters,
    ReleaseIn,
    ReleaseOut,
    ReleasePage,
    RollbackIn,
    application_out,
    approval_request_out,
    audit_event_out,
    operation_out,
    release_out,
    release_ref,
)
from portal.core.roles import Role
from releases.audit import selectors as audit_selectors
from releases.catalog.models import Release
from strategies.operations import services as operations
from strategies.operations.models import Operation as OperationRow

READ = ApiToken.Scope.READ
RELEASES_WRITE = ApiToken.Scope.RELEASES_WRITE
OPERATIONS_WRITE = ApiToken.Scope.OPERATIONS_WRITE
MAX_ID = 2**63 - 1

ReleaseId = Path(..., ge=1, le=MAX_ID, description="The release's id.")
OperationId = Path(..., ge=1, le=MAX_ID, description="The operation's id.")
Slug = Path(..., max_length=60, pattern=SLUG, description="The application's slug.")


def _release(release_id: int) -> Release:
    release = services.releases().filter(pk=release_id).first()
    if release is None:
        raise ApiProblem("not-found", f"There is no release {release_id}.")
    return release


def _operation(operation_id: int) -> OperationRow:
    operation = services.operations_list().filter(pk=operation_id).first()
    if operation is None:
        raise ApiProblem("not-found", f"There is no operation {operation_id}.")
    return operation


def _operation_reply(operation_id: int, *, status: int = 200) -> Reply:
    body = operation_out(_operation(operation_id))
    headers = {"Location": body["links"]["self"]} if status == 201 else {}
    return Reply(body, status, headers)


# --- applications ---------------------------------------------------------------------------------------


@endpoint(
    "GET",
    "/applications",
    name="api_application_list",
    scope=READ,
    role=Role.VIEWER,
    response=ApplicationPage,
    summary="List applications",
    tag="Applications",
)
def application_list(request: Any, filters: Query[ApplicationFilters]) -> dict[str, Any]:
    """Every application with its environments, the slot each runs in, and its live release."""
    queryset = services.applications()
    if filters.team:
        queryset = queryset.filter(team=filters.team)
    return paginate(request, queryset, cursor=filters.cursor, limit=filters.limit, render=application_out)


@endpoint(
    "GET",
    "/applications/{slug}",
    name="api_application_detail",
    scope=READ,
    role=Role.VIEWER,
    response=ApplicationOut,
    summary="Read an application",
    tag="Applications",
)
def application_detail(request: Any, slug: str = Slug) -> dict[str, Any]:
    """One application: its environments, slots (version, traffic, health) and live release."""
    application = services.applications().filter(slug=slug).first()
    if application is None:
        raise ApiProblem("not-found", f"There is no application {slug!r}.")
    return application_out(application)


@endpoint(
    "POST",
    "/applications/{slug}/rollback",
    name="api_application_rollback",
    scope=OPERATIONS_WRITE,
    role=Role.RELEASE_MANAGER,
    response={201: OperationOut},
    summary="Roll back production",
    tag="Operations",
)
def application_rollback(request: Any, payload: RollbackIn, slug: str = Slug) -> Reply:
    """Abort the operation running on the application, or swap the live release back for the previous one.

    The previous build must still be warm in the slot the live one came from; otherwise the rollback is
    refused (409) with what to do instead.
    """
    application = services.application_by_slug(slug)
    operation = operations.application_rollback(application=application, actor=request.auth.user, reason=payload.reason)
    return _operation_reply(operation.pk, status=201)


# --- releases ---------------------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/releases",
    name="api_release_register",
    scope=RELEASES_WRITE,
    role=Role.RELEASE_MANAGER,
    response={201: ReleaseOut, 200: ReleaseOut},
    summary="Register a release",
    tag="Releases",
)
def release_register(request: Any, payload: ReleaseIn) -> Reply:
    """Register the build a pipeline deployed (201). The same version again answers 200 with the release
    registered before — unless it names another commit (409).

    When the build went to a slot whose next environment needs approval (pre-production → production),
    approval is requested at once; read it at the release's `links.approval`.
    """
    application = services.application_by_slug(payload.application, field="application")
    release, created = services.release_register_or_get(
        application=application,
        version=payload.version,
        deployed_slot=payload.deployed_slot,
        actor=request.auth.user,
        build_id=payload.build_id,
        commit_sha=payload.commit_sha,
        committed_at=payload.committed_at,
        branch=payload.branch,
        notes=payload.notes,
        artifact_url=payload.artifact_url,
    )
    body = release_out(_release(release.pk))
    return Reply(body, 201, {"Location": body["links"]["self"]}) if created else Reply(body, 200)


@endpoint(
    "GET",
    "/releases",
    name="api_release_list",
    scope=READ,
    role=Role.VIEWER,
    response=ReleasePage,
    summary="List releases",
    tag="Releases",
)
def release_list(request: Any, filters: Query[ReleaseFilters]) -> dict[str, Any]:
    """Releases, newest first, filtered by application, status and version."""
    queryset = services.releases()
    if filters.application:
        queryset = queryset.filter(application__slug=filters.application)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.version:
        queryset = queryset.filter(version=filters.version)
    return paginate(request, queryset, cursor=filters.cursor, limit=filters.limit, render=release_out)


@endpoint(
    "GET",
    "/releases/{release_id}",
    name="api_release_detail",
    scope=READ,
    role=Role.VIEWER,
    response=ReleaseOut,
    summary="Read a release",
    tag="Releases",
)
def release_detail(request: Any, release_id: int = ReleaseId) -> dict[str, Any]:
    """One release and its status: registered, awaiting_approval, approved, rolling_out, live, …"""
    return release_out(_release(release_id))


@endpoint(
    "GET",
    "/releases/{release_id}/approval",
    name="api_release_approval",
    scope=READ,
    role=Role.VIEWER,
    response=ApprovalStatusOut,
    summary="Read a release's approval",
    tag="Approvals",
)
def release_approval(request: Any, release_id: int = ReleaseId) -> dict[str, Any]:
    """The release's approval requests, newest first, each with its decisions so far."""
    release = _release(release_id)
    return {
        "release": release_ref(release),
        "requests": [approval_request_out(r) for r in services.approval_requests_of(release)],
    }


@endpoint(
    "POST",
    "/releases/{release_id}/approval",
    name="api_release_request_approval",
    scope=RELEASES_WRITE,
    role=Role.RELEASE_MANAGER,
    response={201: ApprovalRequestOut},
    summary="Request approval",
    tag="Approvals",
)
def release_request_approval(
    request: Any, payload: ApprovalRequestIn | None = None, release_id: int = ReleaseId
) -> Reply:
    """Ask the approvers of the next environment (or `environment`) to approve the release; they are told.

    Registering a build deployed to pre-production already asks, so this is for a release registered
    without a slot, or whose request lapsed.
    """
    payload = payload or ApprovalRequestIn()
    approval = services.approval_request_open(
        release=_release(release_id), stage=payload.environment, actor=request.auth.user, reason=payload.reason
    )
    approval = services.approval_requests_of(approval.release).get(pk=approval.pk)
    location = reverse("api_release_approval", args=[release_id])
    return Reply(approval_request_out(approval), 201, {"Location": location})


@endpoint(
    "POST",
    "/releases/{release_id}/promote",
    name="api_release_promote",
    scope=OPERATIONS_WRITE,
    role=Role.RELEASE_MANAGER,
    response={201: OperationOut},
    summary="Promote to production",
    tag="Operations",
)
def release_promote(request: Any, payload: PromoteIn | None = None, release_id: int = ReleaseId) -> Reply:
    """Start promoting an approved release into production with a strategy; a worker runs it.

    Refused with 409 while the policy is not satisfied (approval, freeze window, slot health): `code`
    `promotion_blocked`, and the problem's `blockers` lists each reason; `operation_active` while another
    operation runs, `transition_not_allowed` for a release that is not approved. Follow the operation at
    its `links.self`.
    """
    payload = payload or PromoteIn()
    operation = services.operation_promote(
        release=_release(release_id),
        strategy=payload.strategy,
        parameters=payload.parameters,
        actor=request.auth.user,
        reason=payload.reason,
    )
    return _operation_reply(operation.pk, status=201)


# --- operations -------------------------------------------------------------------------------------------


@endpoint(
    "GET",
    "/operations",
    name="api_operation_list",
    scope=READ,
    role=Role.VIEWER,
    response=OperationPage,
    summary="List operations",
    tag="Operations",
)
def operation_list(request: Any, filters: Query[OperationFilters]) -> dict[str, Any]:
    """Promotions and rollbacks, newest first, filtered by application, release, status and kind."""
    queryset = services.operations_list()
    if filters.application:
        queryset = queryset.filter(application__slug=filters.application)
    if filters.release:
        queryset = queryset.filter(release_id=filters.release)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.kind:
        queryset = queryset.filter(kind=filters.kind)
    return paginate(request, queryset, cursor=filters.cursor, limit=filters.limit, render=operation_out)


@endpoint(
    "GET",
    "/operations/{operation_id}",
    name="api_operation_detail",
    scope=READ,
    role=Role.VIEWER,
    response=OperationOut,
    summary="Read an operation",
    tag="Operations",
)
def operation_detail(request: Any, operation_id: int = OperationId) -> dict[str, Any]:
    """An operation's status, and each step's status, progress and outcome (`detail`); `error` says why
    it failed. Poll it until `status` is succeeded, failed, rolled_back or cancelled."""
    return operation_out(_operation(operation_id))


@endpoint(
    "POST",
    "/operations/{operation_id}/pause",
    name="api_operation_pause",
    scope=OPERATIONS_WRITE,
    role=Role.RELEASE_MANAGER,
    response=OperationOut,
    summary="Pause an operation",
    tag="Operations",
)
def operation_pause(request: Any, payload: ControlIn | None = None, operation_id: int = OperationId) -> Reply:
    """Stop at the next step boundary (a step in progress finishes). Rollbacks cannot be paused."""
    reason = payload.reason if payload else ""
    operations.operation_pause(operation=_operation(operation_id), actor=request.auth.user, reason=reason)
    return _operation_reply(operation_id)


@endpoint(
    "POST",
    "/operations/{operation_id}/resume",
    name="api_operation_resume",
    scope=OPERATIONS_WRITE,
    role=Role.RELEASE_MANAGER,
    response=OperationOut,
    summary="Resume an operation",
    tag="Operations",
)
def operation_resume(request: Any, payload: ControlIn | None = None, operation_id: int = OperationId) -> Reply:
    """Go on from where it stopped; an inconclusive canary analysis it paused on counts as accepted."""
    reason = payload.reason if payload else ""
    operations.operation_resume(operation=_operation(operation_id), actor=request.auth.user, reason=reason)
    return _operation_reply(operation_id)


@endpoint(
    "POST",
    "/operations/{operation_id}/promote-now",
    name="api_operation_promote_now",
    scope=OPERATIONS_WRITE,
    role=Role.RELEASE_MANAGER,
    response=OperationOut,
    summary="Promote now",
    tag="Operations",
)
def operation_promote_now(request: Any, payload: ControlIn | None = None, operation_id: int = OperationId) -> Reply:
    """Skip the remaining bake, analysis and intermediate traffic shares: go straight to the completing steps."""
    reason = payload.reason if payload else ""
    operations.operation_promote_now(operation=_operation(operation_id), actor=request.auth.user, reason=reason)
    return _operation_reply(operation_id)


@endpoint(
    "POST",
    "/operations/{operation_id}/rollback",
    name="api_operation_rollback",
    scope=OPERATIONS_WRITE,
    role=Role.RELEASE_MANAGER,
    response=OperationOut,
    summary="Roll back an operation",
    tag="Operations",
)
def operation_rollback(request: Any, payload: RollbackIn, operation_id: int = OperationId) -> Reply:
    """Abort a running operation: undo what it did (traffic to 0 %, swap back) and roll the release back."""
    operations.operation_rollback(operation=_operation(operation_id), actor=request.auth.user, reason=payload.reason)
    return _operation_reply(operation_id)


# --- audit -------------------------------------------------------------------------------------------------


@endpoint(
    "GET",
    "/audit-events",
    name="api_audit_event_list",
    scope=READ,
    role=Role.VIEWER,
    response=AuditEventPage,
    summary="List audit events",
    tag="Audit",
)
def audit_event_list(request: Any, filters: Query[AuditFilters]) -> dict[str, Any]:
    """The audit trail, newest first: who did what to which object, with the state before and after and
    where it came from (`origin.via`: web, api — with the token's prefix —, job)."""
    queryset = audit_selectors.audit_events(application=filters.application or "", action=filters.action or "")
    if filters.object_type:
        queryset = queryset.filter(object_type=filters.object_type)
    if filters.object_id:
        queryset = queryset.filter(object_id=filters.object_id)
    if filters.since:
        queryset = queryset.filter(created_at__gte=filters.since)
    return paginate(request, queryset, cursor=filters.cursor, limit=filters.limit, render=audit_event_out)
