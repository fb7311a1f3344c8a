"""Requests and decisions: opening, deciding (race-free), settling, expiry, reminders, auto-promote."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.core import clock, events
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, has_role
from releases.approvals import freeze, notifications
from releases.approvals.common import R, Verdict, needs_approval, policy_of
from releases.approvals.models import ApprovalDecision, ApprovalRequest
from releases.approvals.policies import approvers_for, ineligibility
from releases.audit.services import audit_record, snapshot
from releases.catalog import services
from releases.catalog.models import Environment, Release, ReleaseStatus, Slot, Stage
from releases.catalog.providers import ProviderError
from releases.catalog.providers.registry import provider_for

REQUEST_AUDIT_FIELDS = ["status", "approvals_required", "expires_at", "settled_at", "waited"]


def _drives_lifecycle(environment: Environment) -> bool:
    """The release lifecycle has one approval: the one for production."""
    return environment.stage == Stage.PRODUCTION


def approval_target(release: Release) -> Environment | None:
    """The environment `release` would be promoted into next: the one after the environment its slot serves.

    Production when Slipway does not know where the release runs; None when it already runs in the last one.
    """
    environments = list(release.application.environments.order_by("position"))
    if not environments:
        return None
    if release.deployed_slot_id is not None:
        for position, environment in enumerate(environments):
            if environment.slot_id == release.deployed_slot_id:
                return environments[position + 1] if position + 1 < len(environments) else None
    production = [env for env in environments if env.stage == Stage.PRODUCTION]
    return production[0] if production else environments[-1]


def source_slot(release: Release, environment: Environment) -> Slot | None:
    """The slot where approvers see `release` before it enters `environment` (usually the pre-production slot)."""
    if release.deployed_slot_id is not None:
        return release.deployed_slot
    before = (
        Environment.objects.filter(application_id=environment.application_id, position__lt=environment.position)
        .select_related("slot")
        .order_by("-position")
        .first()
    )
    return before.slot if before else None


def _out_of_order(release: Release, environment: Environment) -> DomainError | None:
    """Stage order: `release` is approved only into the environment after the one whose slot runs it."""
    following = approval_target(release)
    if following is not None and following.pk == environment.pk:
        return None
    where = f"on the {release.deployed_slot.name} slot" if release.deployed_slot_id else "where Slipway cannot say"
    then = f"its next approval is for {following.name}" if following else "it already runs in the last environment"
    message = (
        f"{release} runs {where}, so {then}, not {environment.name}: each environment is approved "
        "from the stage before it."
    )
    return DomainError(ErrorCode.CONFLICT, message, fields={"environment": message})


def _not_requestable(release: Release) -> DomainError | None:
    if release.status == ReleaseStatus.REGISTERED:
        return None
    return DomainError(
        ErrorCode.TRANSITION_NOT_ALLOWED,
        f"{release} is {release.get_status_display().lower()}, so approval cannot be requested. "
        "Only a registered release (or one whose request lapsed) can be sent for approval.",
    )


def build_problem(release: Release, environment: Environment) -> DomainError | None:
    """What is wrong with showing approvers `release` on the slot before `environment` now: that slot must run
    its build (read from the provider, not from what Slipway last saw), or they would judge another one."""
    slot = source_slot(release, environment)
    if slot is None:
        return DomainError(
            ErrorCode.CONFLICT, f"Slipway does not know which slot runs {release}; set the release's deployed slot."
        )
    try:
        states = provider_for(release.application).slot_states(release.application, probe=False)
    except ProviderError as exc:
        return DomainError(
            ErrorCode.PROVIDER_UNAVAILABLE,
            f"The provider could not say what the {slot.name} slot runs, so approvers could be shown another build "
            f"than {release.version}: {exc}",
        )
    running = next((s.version for s in states if s.name == slot.name), "")
    if running != release.version:
        return DomainError(
            ErrorCode.CONFLICT,
            f"The {slot.name} slot runs {running or 'nothing'}, not {release.version}: approvers would be shown "
            f"another build. Deploy {release.version} there, or register what runs there.",
        )
    return None


def approval_request_open(
    *, release: Release, actor: Any, environment: Environment | None = None, reason: str = ""
) -> ApprovalRequest:
    """Ask for approval of `release` into `environment` (its next one by default); approvers are notified.

    Only into the environment after the one the release runs in (stage order), and only while its build
    runs on the slot approvers will open (`build_problem`)."""
    environment = environment or approval_target(release)
    if environment is None:
        raise DomainError(
            ErrorCode.CONFLICT, f"{release} already runs in the last environment; there is nothing to approve it for."
        )
    if environment.application_id != release.application_id:
        raise DomainError(
            ErrorCode.INVALID,
            f"{environment} is not an environment of {release.application.name}.",
            fields={"environment": f"Not an environment of {release.application.name}."},
        )
    # (A release waiting already is told so under the lock below, where a double click is caught.)
    requestable = _not_requestable(release) if release.status != ReleaseStatus.AWAITING_APPROVAL else None
    refused = _out_of_order(release, environment) or requestable or build_problem(release, environment)
    if refused:
        raise refused
    policy = policy_of(environment)
    if policy is None or policy.approvals_required == 0:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"{environment.name} needs no approval (its policy asks for none), so there is none to ask.",
        )
    now = clock.now()
    with transaction.atomic():
        # One request at a time per release: the lock makes a double click open one request, not two.
        locked = Release.objects.select_for_update(no_key=True).get(pk=release.pk)
        pending = ApprovalRequest.objects.filter(release=locked, environment=environment, status=R.PENDING).first()
        if pending is not None:
            raise DomainError(
                ErrorCode.CONFLICT,
                f"{release} already waits for approval into {environment.name} "
                f"(asked {timezone.localtime(pending.created_at):%d %b %H:%M}); decide that request instead.",
            )
        if refused := _not_requestable(locked):
            raise refused
        for older in ApprovalRequest.objects.select_for_update(no_key=True).filter(
            environment=environment, status=R.PENDING, release__application_id=release.application_id
        ):
            _settle(
                older, R.SUPERSEDED, actor=actor, now=now, reason=f"Superseded by the request for {release.version}"
            )
        if _drives_lifecycle(environment):
            services.release_request_approval(release=locked, actor=actor, reason=reason)
        request = ApprovalRequest.objects.create(
            release=locked,
            environment=environment,
            approvals_required=policy.approvals_required,
            requested_by=actor if getattr(actor, "pk", None) else None,
            created_at=now,
            expires_at=now + timedelta(hours=policy.expiry_hours),
        )
        needed = f"{policy.approvals_required} approval{'s' if policy.approvals_required != 1 else ''}"
        audit_record(
            actor=actor,
            action="approval.requested",
            obj=request,
            application=release.application,
            after=snapshot(request, REQUEST_AUDIT_FIELDS),
            reason=reason or f"{needed} needed before {environment.name}",
        )
        events.publish("approval.requested", request, release.application)
        _notify(request, notifications.Kind.OPENED)
    release.refresh_from_db()
    return request


def approval_request_open_on_arrival(*, release: Release, actor: Any) -> ApprovalRequest | None:
    """Called when a release is registered: open its request if the next environment's policy needs approval."""
    if release.deployed_slot_id is None:
        return None
    target = approval_target(release)
    if target is None or not needs_approval(target):
        return None
    if build_problem(release, target) is not None:
        return None  # the build is not where it was said to be: nothing to show approvers yet (the page says why)
    slot_name = release.deployed_slot.name if release.deployed_slot else "its"
    return approval_request_open(
        release=release, actor=actor, environment=target, reason=f"{release.version} arrived on the {slot_name} slot"
    )


def _notify(request: ApprovalRequest, kind: str) -> None:
    """Approvers who have not decided hear of an opened request and its reminder; the requester of its end."""
    if kind == notifications.Kind.SETTLED:
        requester = request.requested_by or request.release.created_by
        people = [requester] if requester is not None else []
    else:
        people = list(approvers_for(request).exclude(approval_decisions__request=request))
    notifications.queue(request, kind, people=people)


def _settled_message(request: ApprovalRequest) -> str:
    when = f"{timezone.localtime(request.settled_at):%d %b %Y %H:%M}" if request.settled_at else ""
    if request.status == R.EXPIRED:
        return f"This request lapsed on {when}, so it can no longer be decided. Ask for approval again."
    if request.status == R.SUPERSEDED:
        return f"This request was superseded on {when} by a request for a newer release; decide that one instead."
    return f"This request was already {request.get_status_display().lower()} on {when}; a decision cannot change it."


def approval_decide(*, request: ApprovalRequest, actor: Any, verdict: str, comment: str = "") -> ApprovalRequest:
    """Record one approver's decision; N distinct approvals approve the request, one rejection rejects it.

    Race-free: the request row is locked while the decision is counted, so two approvers clicking at
    once both count exactly once, and the unique (request, approver) constraint has the last word.
    """
    comment = comment.strip()
    if verdict not in Verdict.values:
        raise DomainError(
            ErrorCode.INVALID,
            f"“{verdict}” is not a decision; approve or reject.",
            fields={"verdict": "Approve or reject."},
        )
    if verdict == Verdict.REJECT and not comment:
        raise DomainError(
            ErrorCode.INVALID,
            "Say why you reject it; a rejection needs a comment.",
            fields={"comment": "A rejection needs a comment."},
        )
    lapsed = False
    with transaction.atomic():
        current = (
            ApprovalRequest.objects.select_for_update(no_key=True, of=("self",))
            .select_related("release__application", "environment")
            .get(pk=request.pk)
        )
        now = clock.now()
        if current.status != R.PENDING:
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, _settled_message(current))
        if now >= current.expires_at:
            _expire(current, now=now)  # make the lapse visible now rather than at the next sweep
            lapsed = True
        else:
            _decide(current, actor=actor, verdict=verdict, comment=comment, now=now)
    if lapsed:
        raise DomainError(
            ErrorCode.TRANSITION_NOT_ALLOWED,
            f"This request lapsed at {timezone.localtime(current.expires_at):%d %b %Y %H:%M} before your decision; "
            "ask for approval again.",
        )
    request.refresh_from_db()
    return request


def _decide(current: ApprovalRequest, *, actor: Any, verdict: str, comment: str, now: datetime) -> None:
    if problem := ineligibility(actor, current):
        raise DomainError(ErrorCode.APPROVAL_NOT_ELIGIBLE, problem)
    previous = current.decisions.filter(approver=actor).first()
    if previous is not None:
        raise DomainError(ErrorCode.CONFLICT, _already_decided(previous))
    try:
        with transaction.atomic():
            decision = ApprovalDecision.objects.create(
                request=current, approver=actor, verdict=verdict, comment=comment, decided_at=now
            )
    except IntegrityError:  # the constraint's last word, should a second decision slip past the lock
        raise DomainError(ErrorCode.CONFLICT, _already_decided(current.decisions.get(approver=actor))) from None
    approvals = current.decisions.filter(verdict=Verdict.APPROVE).count()
    audit_record(
        actor=actor,
        action="approval.decided",
        obj=current,
        application=current.release.application,
        before={"approvals": approvals - (verdict == Verdict.APPROVE)},
        after={"verdict": verdict, "approvals": approvals, "approvals_required": current.approvals_required},
        reason=comment,
    )
    if decision.verdict == Verdict.REJECT:
        _settle(current, R.REJECTED, actor=actor, now=now, reason=comment)
    elif approvals >= current.approvals_required:
        _settle(
            current, R.APPROVED, actor=actor, now=now, reason=f"{approvals} of {current.approvals_required} approvals"
        )


def _already_decided(decision: ApprovalDecision) -> str:
    return (
        f"You already {decision.get_verdict_display().lower()} this request on "
        f"{timezone.localtime(decision.decided_at):%d %b %Y %H:%M}; a decision cannot be changed."
    )


def _settle(request: ApprovalRequest, status: str, *, actor: Any, now: datetime, reason: str) -> None:
    """End a pending request (guarded update), audit it, carry it into the lifecycle, tell the requester."""
    settled_at = min(now, request.expires_at) if status == R.EXPIRED else now
    updated = ApprovalRequest.objects.filter(pk=request.pk, status=R.PENDING).update(
        status=status, settled_at=settled_at, waited=settled_at - request.created_at
    )
    if updated != 1:
        raise DomainError(ErrorCode.CONCURRENT_CHANGE, "This request changed while you were deciding; reload the page.")
    before = snapshot(request, REQUEST_AUDIT_FIELDS)
    request.refresh_from_db()
    application = request.release.application
    audit_record(
        actor=actor,
        action=f"approval.{status}",
        obj=request,
        application=application,
        before=before,
        after=snapshot(request, REQUEST_AUDIT_FIELDS),
        reason=reason,
    )
    if _drives_lifecycle(request.environment):
        release = request.release
        release.refresh_from_db()
        if status == R.APPROVED:
            services.release_approve(release=release, actor=actor, reason=reason)
        elif status == R.REJECTED:
            services.release_reject(release=release, actor=actor, reason=reason)
        elif release.status == ReleaseStatus.AWAITING_APPROVAL:  # expired or superseded
            services.release_lapse_approval(release=release, actor=actor, reason=reason)
    if status == R.APPROVED:
        _record_auto_promote(request, now=now)
    if status in (R.APPROVED, R.REJECTED):
        events.publish("approval.decided", request, application)
    _notify(request, notifications.Kind.SETTLED)


def _record_auto_promote(request: ApprovalRequest, *, now: datetime) -> None:
    """Auto-promote: record when the promotion is due. The operations engine performs it (not built yet)."""
    policy = policy_of(request.environment)
    if policy is None or not policy.auto_promote:
        return
    due = freeze.next_open_moment(policy.freeze_windows.all(), now)
    ApprovalRequest.objects.filter(pk=request.pk).update(auto_promote_after=due)
    request.auto_promote_after = due
    audit_record(
        actor=None,
        action="approval.auto_promote_due",
        obj=request,
        application=request.release.application,
        after={"promote_after": due.isoformat(), "environment": request.environment.name},
        reason=(
            "Approved under an auto-promote policy: promotion is due "
            + ("now" if due == now else f"at {timezone.localtime(due):%d %b %Y %H:%M}, when the freeze ends")
        ),
    )


def _expire(request: ApprovalRequest, *, now: datetime) -> None:
    hours = round((request.expires_at - request.created_at).total_seconds() / 3600)
    _settle(
        request,
        R.EXPIRED,
        actor=None,
        now=now,
        reason=f"Not settled within {hours} hours; ask for approval again.",
    )


def approval_expire_due(*, at: datetime | None = None) -> int:
    """Mark every pending request past its expiry as expired (audited); the periodic job calls this."""
    now = at or clock.now()
    count = 0
    due = ApprovalRequest.objects.filter(status=R.PENDING, expires_at__lte=now).values_list("pk", flat=True)
    for pk in list(due):
        with transaction.atomic():
            request = (
                ApprovalRequest.objects.select_for_update(no_key=True, of=("self",))
                .select_related("release__application", "environment")
                .filter(pk=pk, status=R.PENDING, expires_at__lte=now)
                .first()
            )
            if request is None:  # decided or expired by someone else meanwhile
                continue
            _expire(request, now=now)
            count += 1
    return count


def approval_remind_due(*, at: datetime | None = None) -> int:
    """Remind eligible approvers of requests that lapse within their policy's reminder time (once each)."""
    now = at or clock.now()
    candidates = ApprovalRequest.objects.filter(
        status=R.PENDING,
        reminded_at__isnull=True,
        expires_at__gt=now,
        environment__approval_policy__reminder_hours__gt=0,
    ).select_related("environment__approval_policy")
    count = 0
    for request in candidates:
        policy = request.environment.approval_policy
        if request.expires_at - timedelta(hours=policy.reminder_hours) > now:
            continue
        with transaction.atomic():
            claimed = ApprovalRequest.objects.filter(pk=request.pk, status=R.PENDING, reminded_at__isnull=True).update(
                reminded_at=now
            )
            if claimed != 1:  # another sweep got there first
                continue
            _notify(request, notifications.Kind.REMINDER)
            count += 1
    return count


def may_request(user: AbstractBaseUser, release: Release) -> Environment | None:
    """The environment a "Request approval" button would ask for, when it makes sense to offer it."""
    if release.status != ReleaseStatus.REGISTERED or not has_role(user, Role.RELEASE_MANAGER):
        return None
    target = approval_target(release)
    if target is None or not needs_approval(target):
        return None
    if ApprovalRequest.objects.filter(release=release, environment=target, status=R.PENDING).exists():
        return None
    return target
