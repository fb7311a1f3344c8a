"""Approval of flag changes in environments that ask for it.

An environment's flag changes need approval when its `FlagApprovalSetting` is on and its
`ApprovalPolicy` asks for approvals (approvals_required > 0). There, turning a flag on, editing it
and adding or removing rules become a pending `FlagChangeRequest`; people eligible under the
environment's policy (the approver role, named in the policy's groups or people, and not the
proposer when the policy forbids self-approval — `releases.approvals.policies.eligible_approvers`)
approve or reject it with a comment. Enough approvals apply it through the flag services' path
(recompiled, republished, audited). The kill switch never waits: it is the safety valve.

Dark-launch steps (start, widen, roll out) and schedules are proposed as the service call itself
(`propose_action`): checked by a dry run when proposed (rolled back, so errors name the field at
once and approvers see the resulting definition), then made on the proposer's behalf when approved.
Killing a launch and scheduling a flag off never wait.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, has_role, missing_role_message, require_role
from releases.approvals.common import policy_of
from releases.approvals.policies import eligible_approvers
from releases.audit.services import audit_record
from releases.catalog.models import Environment
from strategies.flags import schedules, services
from strategies.flags.models import DarkLaunch, Flag, FlagApprovalSetting, FlagChangeRequest, Segment
from strategies.flags.selectors import definition_diff

Status = FlagChangeRequest.Status
Action = FlagChangeRequest.Action
CHANGEABLE = services.EDITABLE_FIELDS | {"enabled", "lifecycle"}  # lifecycle: archiving, which stops serving


def set_approval(*, environment: Environment, on: bool, actor: Any) -> FlagApprovalSetting:
    """Switch approval of the environment's flag changes on or off (admins; audited)."""
    require_role(actor, Role.ADMIN)
    with transaction.atomic():
        setting, created = FlagApprovalSetting.objects.select_for_update(no_key=True).get_or_create(
            environment=environment, defaults={"updated_at": clock.now()}
        )
        before = None if created else {"changes_need_approval": setting.changes_need_approval}
        setting.changes_need_approval = on
        setting.updated_at = clock.now()
        setting.save()
        audit_record(
            actor=actor,
            action="flag_approval.enabled" if on else "flag_approval.disabled",
            obj=setting,
            application=environment.application,
            before=before,
            after={"changes_need_approval": on},
        )
    return setting


def _encode(changes: dict[str, Any]) -> dict[str, Any]:
    encoded = {}
    for name, value in changes.items():
        if name == "owner":
            encoded["owner_id"] = value.pk if value is not None else None
        elif name == "planned_removal":
            encoded[name] = value.isoformat() if value else None
        else:
            encoded[name] = value
    return encoded


def _put(flag: Flag, encoded: dict[str, Any]) -> None:
    for name, value in encoded.items():
        if name == "planned_removal":
            value = date.fromisoformat(value) if value else None
        elif name == "rules":
            value = services.keep_launch_rule(flag, dict(value or {}))
        setattr(flag, name, value)
    if "owner_id" in encoded:
        flag.owner = get_user_model().objects.filter(pk=encoded["owner_id"]).first()


def propose(*, flag: Flag, actor: Any, changes: dict[str, Any], summary: str) -> FlagChangeRequest:
    """Record a change for approval; checked now (DefinitionError naming the field), applied later."""
    services.require_manager(actor)
    unknown = set(changes) - CHANGEABLE
    if unknown:
        raise ValueError(f"a change request cannot change {sorted(unknown)}")
    encoded = _encode(changes)
    with transaction.atomic():
        flag = services.flag_locked(flag)
        if "lifecycle" in changes:
            services.lifecycle_check(flag, changes["lifecycle"])
        before = services.flag_snapshot(flag)
        _put(flag, encoded)
        services.compile_flag(flag)  # raises DefinitionError for a bad change; nothing is saved
        after = services.flag_snapshot(flag)
        if after == before:
            raise DomainError(ErrorCode.INVALID, "That changes nothing.")
        return _record_proposal(flag, actor, summary, before, after, changes=encoded)


def _record_proposal(
    flag: Flag,
    actor: Any,
    summary: str,
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    changes: dict[str, Any] | None = None,
    action: str = Action.EDIT,
    arguments: dict[str, Any] | None = None,
) -> FlagChangeRequest:
    """The pending request and its audit event (in the caller's transaction)."""
    request = FlagChangeRequest.objects.create(
        flag=flag,
        summary=summary[:300],
        action=action,
        changes=changes or {},
        arguments=arguments or {},
        before=before,
        after=after,
        proposed_by=actor if getattr(actor, "pk", None) else None,
        proposed_at=clock.now(),
    )
    shown = after if action == Action.EDIT else {**after, "action": action, "arguments": arguments}
    audit_record(
        actor=actor,
        action="flag_change.proposed",
        obj=request,
        application=flag.environment.application,
        before=before,
        after=shown,
        reason=summary[:500],
    )
    return request


class _DryRun(Exception):
    """Raised to roll a trial run back."""


def _active_launch(flag: Flag) -> DarkLaunch:
    launch = flag.launches.filter(status=DarkLaunch.Status.ACTIVE).first()
    if launch is None:
        raise DomainError(ErrorCode.CONFLICT, f"{flag.key} has no active dark launch any more.")
    return launch


def _run(action: str, flag: Flag, arguments: dict[str, Any], actor: Any) -> None:
    """Make the approved service call (approved=True passes the approval gate)."""
    if action == Action.LAUNCH_START:
        services.launch_start(flag=flag, actor=actor, approved=True, **arguments)
    elif action == Action.LAUNCH_WIDEN:
        services.launch_widen(launch=_active_launch(flag), actor=actor, approved=True, **arguments)
    elif action == Action.LAUNCH_ROLLOUT:
        services.launch_rollout(launch=_active_launch(flag), actor=actor, approved=True, **arguments)
    elif action == Action.SCHEDULE:
        steps = [(datetime.fromisoformat(at), percent) for at, percent in arguments["steps"]]
        schedules.schedule_create(
            flag=flag,
            kind=arguments["kind"],
            variant=arguments.get("variant", ""),
            steps=steps,
            actor=actor,
            approved=True,
        )
    elif action == Action.SEGMENT:
        segment = Segment.objects.select_for_update(no_key=True).get(pk=arguments["segment"])
        if services.segment_snapshot(segment) != arguments["before"]:
            raise DomainError(ErrorCode.CONFLICT, f"The segment {segment.key} changed after this was proposed.")
        for name, value in arguments["after"].items():
            setattr(segment, name, value)
        services.segment_save(segment=segment, actor=actor, approved=True)
    else:
        raise ValueError(f"{action!r} is not an action a change request can make")


def propose_segment(*, segment: Segment, actor: Any) -> FlagChangeRequest:
    """Propose a change to a segment that feeds approval-gated flags; it is decided on the first of them."""
    gated = services.segment_gated_flags(segment)
    if not gated:
        raise DomainError(ErrorCode.CONFLICT, f"The segment {segment.key} needs no approval to change.")
    before = services.segment_snapshot(Segment.objects.get(pk=segment.pk))
    after = services.segment_snapshot(segment)
    if after == before:
        raise DomainError(ErrorCode.INVALID, "That changes nothing.")
    arguments = {"segment": segment.pk, "before": before, "after": after}
    used = ", ".join(f.key for f in gated)
    return propose_action(
        flag=gated[0],
        actor=actor,
        action=Action.SEGMENT,
        arguments=arguments,
        summary=f"change segment {segment.key} (used by {used})",
    )


def propose_action(
    *, flag: Flag, actor: Any, action: str, arguments: dict[str, Any], summary: str
) -> FlagChangeRequest:
    """Record a dark-launch step or a schedule for approval, after a dry run (DefinitionError/DomainError)."""
    services.require_manager(actor)
    if action == Action.SCHEDULE:
        arguments = {**arguments, "steps": [[at.isoformat(), percent] for at, percent in arguments["steps"]]}
    with transaction.atomic():
        flag = services.flag_locked(flag)
        before = services.flag_snapshot(flag)
        try:
            with transaction.atomic():
                _run(action, flag, arguments, actor)
                after = services.flag_snapshot(Flag.objects.get(pk=flag.pk))
                raise _DryRun
        except _DryRun:
            pass
        return _record_proposal(flag, actor, summary, before, after, action=action, arguments=arguments)


def _standing(user: Any, environment: Environment) -> tuple[Any, bool]:
    """The environment's approval policy and whether `user` is among its approvers (two or three queries)."""
    policy = policy_of(environment)
    if policy is None:
        return None, False
    eligible = eligible_approvers(groups=policy.approver_groups.all(), users=policy.approver_users.all())
    return policy, eligible.filter(pk=user.pk).exists()


def ineligibility(user: Any, request: FlagChangeRequest, standing: tuple[Any, bool] | None = None) -> str:
    """Why `user` may not decide `request`, in words; "" when they may (`standing`: `_standing()`, if known)."""
    if not has_role(user, Role.APPROVER):
        return missing_role_message(user, Role.APPROVER)
    environment = request.flag.environment
    policy, eligible = standing if standing is not None else _standing(user, environment)
    if policy is None:
        return f"{environment.name} has no approval policy, so nobody can decide this change."
    forbid_self = policy.forbid_self_approval and request.proposed_by_id is not None
    if forbid_self and user.pk == request.proposed_by_id:
        return "You proposed this change; separation of duties means someone else must decide."
    if not eligible:
        return f"You are not an approver for {environment.name} of {environment.application.name} under its policy."
    if any(a["user"] == user.pk for a in request.approvals):
        return "You have approved this change already."
    return ""


def decide(*, request: FlagChangeRequest, actor: Any, approve: bool, comment: str = "") -> FlagChangeRequest:
    """Approve or reject; the approval that completes the policy's count applies the change."""
    with transaction.atomic():
        request = (
            FlagChangeRequest.objects.select_for_update(no_key=True)
            .select_related("flag__environment__application")
            .get(pk=request.pk)
        )
        if request.status != Status.PENDING:
            raise DomainError(
                ErrorCode.TRANSITION_NOT_ALLOWED, f"This change is {request.get_status_display().lower()} already."
            )
        if problem := ineligibility(actor, request):
            raise DomainError(ErrorCode.APPROVAL_NOT_ELIGIBLE, problem)
        now = clock.now()
        application = request.flag.environment.application
        if not approve:
            request.status, request.decided_by, request.decided_at, request.comment = (
                Status.REJECTED,
                actor,
                now,
                comment[:2000],
            )
            request.save()
            audit_record(
                actor=actor, action="flag_change.rejected", obj=request, application=application, reason=comment[:500]
            )
            return request
        request.approvals = [*request.approvals, {"user": actor.pk, "at": now.isoformat(), "comment": comment[:2000]}]
        audit_record(
            actor=actor, action="flag_change.approved", obj=request, application=application, reason=comment[:500]
        )
        policy = policy_of(request.flag.environment)
        needed = max(1, policy.approvals_required if policy else 1)
        if len(request.approvals) < needed:
            request.save(update_fields=["approvals"])
            return request
        request.decided_by, request.decided_at, request.comment = actor, now, comment[:2000]
        _apply(request, actor)
    return request


def _apply(request: FlagChangeRequest, actor: Any) -> None:
    flag = services.flag_locked(request.flag)
    current = services.flag_snapshot(flag)
    compared = request.before if "enabled" in request.changes else {**request.before, "state": current["state"]}
    if current != compared:
        # Someone changed the flag since (the kill switch aside): applying would undo their change unseen.
        request.status = Status.FAILED
        request.comment = (request.comment + "\n" if request.comment else "") + (
            "Not applied: the flag changed after this was proposed; propose the change again."
        )
        request.save()
        audit_record(
            actor=actor,
            action="flag_change.stale",
            obj=request,
            application=flag.environment.application,
            reason="the flag changed after the proposal",
        )
        return
    proposer = request.proposed_by.get_username() if request.proposed_by else "someone"
    if request.action != Action.EDIT:
        try:
            with transaction.atomic():
                _run(request.action, flag, request.arguments, request.proposed_by)
        except DomainError as exc:  # DefinitionError is one
            request.status = Status.FAILED
            request.comment = (request.comment + "\n" if request.comment else "") + f"Not applied: {exc}"
            request.save()
            audit_record(
                actor=actor,
                action="flag_change.failed",
                obj=request,
                application=flag.environment.application,
                reason=str(exc)[:500],
            )
            return
        request.status = Status.APPLIED
        request.save()
        return
    _put(flag, request.changes)
    services.flag_save(
        flag,
        actor=actor,
        action="flag.change_applied",
        before=current,
        reason=f"Change #{request.pk} by {proposer}, approved: {request.summary}"[:500],
    )
    request.status = Status.APPLIED
    request.save()


def pending_for(flag: Flag, user: Any) -> list[dict[str, Any]]:
    """The flag's pending changes, each with whether `user` may decide it and a diff."""

    rows = []
    for request in flag.change_requests.filter(status=Status.PENDING).select_related("proposed_by", "flag"):
        rows.append(
            {
                "request": request,
                "problem": ineligibility(user, request),
                "diff": definition_diff(request.before, request.after),
            }
        )
    return rows


def inbox_for(user: Any, limit: int = 200) -> list[FlagChangeRequest]:
    """Pending flag changes `user` may decide (for the approvals inbox), oldest first."""
    if not has_role(user, Role.APPROVER):
        return []
    pending = (
        FlagChangeRequest.objects.filter(status=Status.PENDING)
        .select_related("flag__environment__application", "proposed_by")
        .order_by("proposed_at", "pk")[:limit]
    )
    # Every page of an approver counts these (the navigation): the policy is looked at once per environment.
    standings: dict[int, tuple[Any, bool]] = {}
    mine = []
    for request in pending:
        environment = request.flag.environment
        if environment.pk not in standings:
            standings[environment.pk] = _standing(user, environment)
        if not ineligibility(user, request, standings[environment.pk]):
            mine.append(request)
    return mine
