"""What the API adds to the domain's services: looking things up by the names a pipeline knows,
registering a version twice without an error, and promotion options checked before the state.

Everything that changes state is still done by `releases.catalog.services`, `releases.approvals` and
`strategies.operations.services`, which audit it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from portal.api.problems import ApiProblem, field_error
from portal.core.errors import DomainError, ErrorCode
from releases.approvals import workflow
from releases.approvals.models import ApprovalRequest
from releases.catalog.models import Application, Environment, Release, ReleaseStatus, Stage
from releases.intake.services import release_register
from strategies.operations import services as operations
from strategies.operations.models import Operation
from strategies.operations.registry import strategy_for


def application_by_slug(slug: str, *, field: str | None = None) -> Application:
    """The application, or a 404 (a path parameter) / 422 naming `field` (a body field)."""
    application = Application.objects.filter(slug=slug).first()
    if application is None:
        if field is not None:
            raise field_error(field, f"There is no application {slug!r}.")
        raise ApiProblem("not-found", f"There is no application {slug!r}.")
    return application


def release_register_or_get(
    *, application: Application, version: str, deployed_slot: str | None, actor: Any, **fields: Any
) -> tuple[Release, bool]:
    """Register a release, or return the one already registered under this version (created: False).

    A version names one build: the same version with another commit is refused rather than hidden.
    """
    slot = None
    if deployed_slot is not None:
        slot = application.slots.filter(name=deployed_slot).first()
        if slot is None:
            names = ", ".join(application.slots.values_list("name", flat=True)) or "none"
            raise field_error("deployed_slot", f"{application.name} has no slot {deployed_slot!r} (it has {names}).")
    existing = Release.objects.filter(application=application, version=version).first()
    created = False
    if existing is None:
        try:
            existing = release_register(
                application=application, version=version, actor=actor, deployed_slot=slot, **fields
            )
            created = True
        except DomainError as exc:
            # Registered by someone else since we looked (the unique constraint had the last word)?
            existing = Release.objects.filter(application=application, version=version).first()
            if exc.code != ErrorCode.CONFLICT or existing is None:
                raise
    commit = fields.get("commit_sha", "")
    if not created and commit and existing.commit_sha and commit.lower() != existing.commit_sha.lower():
        raise ApiProblem(
            "conflict",
            f"{application.name} {version} is already registered for commit {existing.commit_sha}, not {commit}; "
            "a version names one build, so give this build a new version.",
            errors=[{"field": "commit_sha", "message": f"Version {version} is commit {existing.commit_sha}."}],
        )
    return existing, created


def approval_request_open(*, release: Release, stage: str | None, actor: Any, reason: str) -> ApprovalRequest:
    environment = None
    if stage is not None:
        environment = release.application.environments.filter(stage=stage).first()
        if environment is None:
            raise field_error("environment", f"{release.application.name} has no {Stage(stage).label} environment.")
    return workflow.approval_request_open(release=release, actor=actor, environment=environment, reason=reason)


def operation_promote(
    *, release: Release, strategy: str | None, parameters: dict[str, Any], actor: Any, reason: str
) -> Operation:
    """Start the promotion of `release` to production.

    The options are checked before the release's state, so bad input is a 422 naming `strategy` or
    `parameters` whatever the release's status; a blocked promotion is the service's
    `promotion_blocked` refusal, whose `blockers` the problem document lists.
    """
    strategy = strategy or release.application.default_strategy
    strategy_for(strategy).clean(parameters)
    return operations.operation_start(
        release=release, strategy=strategy, parameters=parameters, actor=actor, reason=reason
    )


# --- reads ---------------------------------------------------------------------------------------------


def applications() -> QuerySet[Application]:
    return Application.objects.prefetch_related(
        Prefetch("environments", queryset=Environment.objects.select_related("slot").order_by("position")),
        Prefetch("releases", queryset=Release.objects.filter(status=ReleaseStatus.LIVE), to_attr="live_releases"),
    )


def releases() -> QuerySet[Release]:
    return Release.objects.select_related("application", "created_by", "deployed_slot")


def operations_list() -> QuerySet[Operation]:
    return Operation.objects.select_related("application", "release", "environment", "started_by").prefetch_related(
        "steps"
    )


def approval_requests_of(release: Release) -> QuerySet[ApprovalRequest]:
    return (
        release.approval_requests.select_related("environment", "requested_by")
        .prefetch_related("decisions__approver")
        .order_by("-created_at", "-id")
    )
