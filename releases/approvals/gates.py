"""Freeze windows in force, the break-glass override, the gates, and what blocks a promotion now."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, has_role, missing_role_message
from releases.approvals import freeze
from releases.approvals.common import R, Verdict, policy_of
from releases.approvals.models import ApprovalRequest, FreezeOverride, GateResult
from releases.approvals.workflow import source_slot
from releases.audit.services import audit_record
from releases.catalog.models import Environment, Release
from releases.catalog.providers import ProviderError
from releases.catalog.providers.registry import provider_for

# --- freeze windows and the break-glass override ---------------------------------------------------


def freeze_state(environment: Environment, at: datetime) -> list[freeze.Freeze]:
    policy = policy_of(environment)
    if policy is None:
        return []
    return freeze.active_freezes(policy.freeze_windows.all(), at)


def active_override(release: Release, environment: Environment, at: datetime) -> FreezeOverride | None:
    return (
        FreezeOverride.objects.filter(release=release, environment=environment, created_at__lte=at, expires_at__gt=at)
        .select_related("created_by")
        .first()
    )


def freeze_override(*, release: Release, environment: Environment, actor: Any, reason: str) -> FreezeOverride:
    """Break glass: let `release` into a frozen `environment` until the freeze ends. Admins only, with a reason."""
    if not has_role(actor, Role.ADMIN):
        raise DomainError(ErrorCode.FORBIDDEN, missing_role_message(actor, Role.ADMIN))
    reason = reason.strip()
    if not reason:
        raise DomainError(
            ErrorCode.INVALID,
            "Say why the freeze must be broken; an override needs a reason.",
            fields={"reason": "An override needs a reason."},
        )
    now = clock.now()
    policy = policy_of(environment)
    active = freeze_state(environment, now)
    if policy is None or not active:
        raise DomainError(ErrorCode.CONFLICT, f"{environment.name} is not frozen now; there is nothing to override.")
    until = freeze.next_open_moment(policy.freeze_windows.all(), now)
    with transaction.atomic():
        override = FreezeOverride.objects.create(
            release=release, environment=environment, reason=reason, created_by=actor, created_at=now, expires_at=until
        )
        audit_record(
            actor=actor,
            action="freeze.overridden",
            obj=override,
            application=release.application,
            after={
                "release": release.version,
                "environment": environment.name,
                "windows": [f.window.name for f in active],
                "until": until.isoformat(),
            },
            reason=reason,
        )
    return override


# --- gates -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateCheck:
    gate: str
    passed: bool
    detail: str


def _slot_health_gate(release: Release, environment: Environment) -> GateCheck:

    gate = GateResult.Gate.SLOT_HEALTH
    slot = source_slot(release, environment)
    if slot is None:
        return GateCheck(gate, False, f"Slipway does not know which slot runs {release.version}.")
    try:
        result = provider_for(release.application).check_health(release.application, slot.name)
    except ProviderError as exc:
        return GateCheck(gate, False, f"The provider could not check the {slot.name} slot: {exc}"[:500])
    code = f"HTTP {result.status_code}" if result.status_code is not None else "no answer"
    detail = f"The {slot.name} slot answers its health check: {code}"
    if result.latency_ms is not None:
        detail += f" in {result.latency_ms:.0f} ms"
    if result.detail:
        detail += f" ({result.detail})"
    return GateCheck(gate, result.healthy, detail[:500])


def _freeze_gate(release: Release, environment: Environment, at: datetime) -> GateCheck:
    gate = GateResult.Gate.NO_FREEZE
    active = freeze_state(environment, at)
    if not active:
        return GateCheck(gate, True, f"No freeze window of {environment.name} is active.")
    first = max(active, key=lambda f: f.ends_at)
    frozen = f"“{first.window.name}” freezes {environment.name} until {freeze.local_time(first.ends_at, first.window)}"
    override = active_override(release, environment, at)
    if override is not None:
        return GateCheck(gate, True, f"{frozen}, overridden by {override.created_by}: {override.reason}"[:500])
    return GateCheck(gate, False, f"{frozen}."[:500])


# Gates other concepts contribute: a check of the release about to be promoted. The operations app adds
# "no other operation runs" from its ready(); the approvals layer knows nothing of operations.
ContributedGate = Callable[[Release], GateCheck]
_contributed_gates: list[ContributedGate] = []


def gate_contribute(check: ContributedGate) -> None:
    """Evaluate `check` with every gate evaluation from now on, after the freeze gate (once per function)."""
    if check not in _contributed_gates:
        _contributed_gates.append(check)


def gates_evaluate(
    *, release: Release, environment: Environment, actor: Any = None, at: datetime | None = None
) -> list[GateResult]:
    """Evaluate every gate of promoting `release` into `environment` now, and record the results."""
    at = at or clock.now()
    policy = policy_of(environment)
    checks = []
    if policy is None or policy.require_healthy_slot:
        checks.append(_slot_health_gate(release, environment))
    checks += [_freeze_gate(release, environment, at), *(check(release) for check in _contributed_gates)]
    evaluated_at = clock.now()
    with transaction.atomic():
        return GateResult.objects.bulk_create(
            GateResult(
                release=release,
                environment=environment,
                gate=check.gate,
                passed=check.passed,
                detail=check.detail,
                evaluated_at=evaluated_at,
                evaluated_by=actor if getattr(actor, "pk", None) else None,
            )
            for check in checks
        )


def gates_refresh(*, release: Release, environment: Environment, actor: Any) -> list[GateResult]:
    """An approver asks for the gates now, as they decide. It calls the provider and records results; the others
    read the last evaluation (promotion evaluates the gates again before it starts)."""
    if not has_role(actor, Role.APPROVER):
        raise DomainError(ErrorCode.FORBIDDEN, missing_role_message(actor, Role.APPROVER))
    return gates_evaluate(release=release, environment=environment, actor=actor)


def latest_gate_results(release: Release, environment: Environment) -> list[GateResult]:
    """The most recent evaluation of each gate (the last batch recorded), or [] when never evaluated."""
    latest: dict[str, GateResult] = {}
    recent = GateResult.objects.filter(release=release, environment=environment).select_related("evaluated_by")
    for result in recent.order_by("-id")[: len(GateResult.Gate)]:
        if result.gate in latest:  # the batch before
            break
        latest[result.gate] = result
    return sorted(latest.values(), key=lambda r: r.pk)


def approval_blocker(release: Release, environment: Environment) -> str:
    """What the approval lacks for promoting `release` into `environment`, in words; "" when nothing."""
    policy = policy_of(environment)
    if policy is None or policy.approvals_required == 0:
        return ""
    request = ApprovalRequest.objects.filter(release=release, environment=environment).order_by("-created_at").first()
    needed = f"{policy.approvals_required} approval{'s' if policy.approvals_required != 1 else ''}"
    if request is None:
        return f"{environment.name} needs {needed} and none has been asked for."
    if request.status == R.APPROVED:
        return ""
    if request.status == R.PENDING:
        given = request.decisions.filter(verdict=Verdict.APPROVE).count()
        return (
            f"Waiting for approval: {given} of {request.approvals_required} so far "
            f"(the request lapses {timezone.localtime(request.expires_at):%d %b %Y %H:%M})."
        )
    if request.status == R.REJECTED:
        rejection = request.decisions.filter(verdict=Verdict.REJECT).select_related("approver").first()
        said = f" by {rejection.approver}: {rejection.comment}" if rejection else ""
        return f"The approval was rejected{said}."
    return f"The last approval request was {request.get_status_display().lower()}; ask for approval again."


@dataclass(frozen=True)
class Exposure:
    """May `version` reach `environment` (a production-facing surface) now, by that environment's own rules?

    `frozen` and `approval` say what stands in the way in words ("" for nothing); `opens_at` is when
    the freeze ends. Judged by the environment's application's release of that version — for a ring
    target, that application's own release, approved under its own policy, outside its own freeze."""

    environment: Environment
    version: str
    release: Release | None
    frozen: str
    opens_at: datetime | None
    approval: str

    @property
    def blockers(self) -> list[str]:
        return [reason for reason in (self.frozen, self.approval) if reason]


def exposure_check(environment: Environment, version: str, at: datetime | None = None) -> Exposure:
    """Whether `version` may be exposed on `environment` at `at`: checked when a promotion starts (for
    its ring targets) and again by the engine right before each step that exposes production."""
    at = at or clock.now()
    application = environment.application
    release = Release.objects.filter(application=application, version=version).order_by("-created_at").first()
    frozen, opens_at = "", None
    active = freeze_state(environment, at)
    if active and (release is None or active_override(release, environment, at) is None):
        first = max(active, key=lambda f: f.ends_at)
        opens_at = freeze.next_open_moment(policy_of(environment).freeze_windows.all(), at)
        frozen = (
            f"“{first.window.name}” freezes {application.name} {environment.name} "
            f"until {freeze.local_time(first.ends_at, first.window)}."
        )
    approval = ""
    policy = policy_of(environment)
    if policy is not None and policy.approvals_required > 0:
        if release is None:
            approval = (
                f"{application.name} {environment.name} needs {policy.approvals_required} "
                f"approval{'s' if policy.approvals_required != 1 else ''} of {version}, and {application.name} has "
                f"no release {version} to approve: register it there and ask for approval."
            )
        elif blocker := approval_blocker(release, environment):
            approval = f"{application.name} {release.version}: {blocker}"
    return Exposure(environment, version, release, frozen, opens_at, approval)


def promotion_blockers(
    release: Release, environment: Environment, at: datetime | None = None, *, actor: Any = None
) -> list[str]:
    """Why promoting `release` into `environment` is refused at `at` (now by default); [] when it may go.

    Evaluates the gates afresh (recording the results) and checks the approval. A freeze that an
    admin overrode for this release does not block it.
    """
    at = at or clock.now()
    results = {r.gate: r for r in gates_evaluate(release=release, environment=environment, actor=actor, at=at)}
    reasons = []
    frozen = results.pop(GateResult.Gate.NO_FREEZE)
    if not frozen.passed:
        reasons.append(frozen.detail)
    if approval := approval_blocker(release, environment):
        reasons.append(approval)
    reasons += [result.detail for result in results.values() if not result.passed]
    return reasons
