"""Policies: who is eligible to decide, what a policy may say, and saving it (admins only, audited)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q, QuerySet

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, has_role, missing_role_message
from releases.approvals import freeze
from releases.approvals.common import R, policy_of
from releases.approvals.models import ApprovalPolicy, ApprovalRequest, FreezeWindow
from releases.audit.services import audit_record, snapshot
from releases.catalog.models import Environment

APPROVE_PERMISSION = Q(
    permissions__codename="approve_release", permissions__content_type__app_label="releases"
)  # on Group


def _approver_role_holders() -> QuerySet[Any]:
    """Active users holding the approver role: by a group's permission, their own, or as superuser."""
    User = get_user_model()
    return User.objects.filter(is_active=True).filter(
        Q(groups__in=Group.objects.filter(APPROVE_PERMISSION))
        | Q(user_permissions__codename="approve_release", user_permissions__content_type__app_label="releases")
        | Q(is_superuser=True)
    )


def eligible_approvers(*, groups: Any, users: Any, exclude: set[int] | frozenset[int] = frozenset()) -> QuerySet[Any]:
    """People who may decide under a policy naming `groups` and `users` (querysets or lists of rows)."""
    User = get_user_model()
    named = User.objects.filter(Q(pk__in=[u.pk for u in users]) | Q(groups__in=[g.pk for g in groups]))
    qs = User.objects.filter(pk__in=_approver_role_holders().values("pk")).filter(pk__in=named.values("pk"))
    if exclude:
        qs = qs.exclude(pk__in=exclude)
    return qs.order_by("username")


def excluded_from(request: ApprovalRequest, policy: ApprovalPolicy) -> set[int]:
    """Separation of duties: whoever registered the release or asked for its approval."""
    if not policy.forbid_self_approval:
        return set()
    return {pk for pk in (request.release.created_by_id, request.requested_by_id) if pk is not None}


def approvers_for(request: ApprovalRequest) -> QuerySet[Any]:
    policy = policy_of(request.environment)
    if policy is None:
        return get_user_model().objects.none()
    return eligible_approvers(
        groups=policy.approver_groups.all(), users=policy.approver_users.all(), exclude=excluded_from(request, policy)
    )


def ineligibility(user: Any, request: ApprovalRequest) -> str:
    """Why `user` may not decide `request`, in words; "" when they may."""
    if not has_role(user, Role.APPROVER):
        return missing_role_message(user, Role.APPROVER)
    policy = policy_of(request.environment)
    if policy is None:
        return f"{request.environment.name} has no approval policy any more, so nobody can decide this request."
    named = policy.approver_users.filter(pk=user.pk).exists() or policy.approver_groups.filter(user=user).exists()
    if not named:
        groups = ", ".join(f"“{g.name}”" for g in policy.approver_groups.all()) or "no group"
        return (
            f"You are not an approver for {request.environment.name} of {request.release.application.name}: its "
            f"policy names {groups} and {policy.approver_users.count()} people, and you are not among them."
        )
    if user.pk in excluded_from(request, policy):
        did = "registered" if user.pk == request.release.created_by_id else "asked for the approval of"
        return f"You {did} {request.release}; separation of duties means someone else must decide."
    return ""


def inbox_filter(user: Any) -> Q:
    """Pending requests `user` may still decide: `ineligibility()` as one query (the inbox and its count).

    The approver role itself is checked by the caller, from the permissions Django has cached.
    """
    named = ApprovalPolicy.objects.filter(Q(approver_users=user) | Q(approver_groups__user=user))
    own = Q(release__created_by=user) | Q(requested_by=user)
    return (
        Q(status=R.PENDING, expires_at__gt=clock.now(), environment__approval_policy__in=named)
        & ~Q(decisions__approver=user)
        & ~(Q(environment__approval_policy__forbid_self_approval=True) & own)
    )


def webhook_url_problem(url: str) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return ""
    if parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1", "::1"}:
        return ""  # a local receiver while developing
    return "Use the https:// address the service gave you when you created the incoming webhook."


@dataclass
class PolicyProblems:
    fields: dict[str, str] = field(default_factory=dict)
    windows: dict[int, dict[str, str]] = field(default_factory=dict)  # by position in the list

    def __bool__(self) -> bool:
        return bool(self.fields or self.windows)

    def sentences(self) -> list[str]:
        found = [f"{name.replace('_', ' ')}: {message}" for name, message in self.fields.items()]
        for position, problems in sorted(self.windows.items()):
            found += [f"freeze window {position + 1}: {message}" for message in problems.values()]
        return found


def policy_problems(
    *,
    approvals_required: int,
    approver_groups: Any,
    approver_users: Any,
    expiry_hours: int,
    reminder_hours: int,
    freeze_windows: list[FreezeWindow],
    teams_webhook_url: str = "",
    slack_webhook_url: str = "",
) -> PolicyProblems:
    """Every contradiction in a policy as it would be saved. The form shows them by field; the service refuses."""
    found = PolicyProblems()
    if approvals_required > 10:
        found.fields["approvals_required"] = "Ask for at most 10 approvals."
    if approvals_required > 0:
        if not list(approver_groups) and not list(approver_users):
            found.fields["approver_groups"] = "Choose who may approve: at least one group or one person."
        else:
            eligible = eligible_approvers(groups=approver_groups, users=approver_users).count()
            if approvals_required > eligible:
                people = "person is" if eligible == 1 else "people are"
                found.fields["approvals_required"] = (
                    f"{approvals_required} approvals can never be given: only {eligible} {people} eligible "
                    "(members of the chosen groups and the named people who hold the approver role)."
                )
    if expiry_hours < 1:
        found.fields["expiry_hours"] = "A request must stay open for at least an hour."
    if reminder_hours and reminder_hours >= expiry_hours:
        found.fields["reminder_hours"] = (
            f"Remind before the request lapses: fewer hours than its expiry ({expiry_hours}), or 0 for no reminder."
        )
    for name, url in (("teams_webhook_url", teams_webhook_url), ("slack_webhook_url", slack_webhook_url)):
        if problem := webhook_url_problem(url):
            found.fields[name] = problem
    for position, window in enumerate(freeze_windows):
        if problems := freeze.window_problems(window):
            found.windows[position] = problems
    valid = [i for i in range(len(freeze_windows)) if i not in found.windows]
    for i, j in freeze.overlapping_pairs([freeze_windows[i] for i in valid], clock.now()):
        first, second = freeze_windows[valid[i]], freeze_windows[valid[j]]
        found.windows.setdefault(valid[j], {})["__all__"] = (
            f"“{second.name}” overlaps “{first.name}” ({freeze.describe(first)}); merge them or move one."
        )
    return found


def _policy_snapshot(policy: ApprovalPolicy) -> dict[str, Any]:
    data = snapshot(
        policy,
        [
            "approvals_required",
            "forbid_self_approval",
            "expiry_hours",
            "reminder_hours",
            "auto_promote",
            "require_healthy_slot",
        ],
    )
    data["approver_groups"] = sorted(policy.approver_groups.values_list("name", flat=True))
    data["approver_users"] = sorted(policy.approver_users.values_list("username", flat=True))
    # Webhook URLs embed their credential: the trail records only whether one is set.
    data["teams_webhook"] = "set" if policy.teams_webhook_url else ""
    data["slack_webhook"] = "set" if policy.slack_webhook_url else ""
    data["freeze_windows"] = [f"{w.name}: {freeze.describe(w)}" for w in policy.freeze_windows.order_by("id")]
    return data


def policy_update(
    *,
    environment: Environment,
    actor: Any,
    approvals_required: int,
    approver_groups: Any,
    approver_users: Any,
    forbid_self_approval: bool,
    expiry_hours: int,
    reminder_hours: int,
    auto_promote: bool,
    require_healthy_slot: bool,
    freeze_windows: list[FreezeWindow],
    teams_webhook_url: str | None = None,
    slack_webhook_url: str | None = None,
) -> ApprovalPolicy:
    """Create or replace an environment's policy and its freeze windows (admins only; audited).

    A webhook URL of None keeps the current one, "" removes it.
    """
    if actor is not None and not has_role(actor, Role.ADMIN):
        raise DomainError(ErrorCode.FORBIDDEN, missing_role_message(actor, Role.ADMIN))
    current = policy_of(environment)
    teams = teams_webhook_url if teams_webhook_url is not None else (current.teams_webhook_url if current else "")
    slack = slack_webhook_url if slack_webhook_url is not None else (current.slack_webhook_url if current else "")
    groups, users = list(approver_groups), list(approver_users)
    problems = policy_problems(
        approvals_required=approvals_required,
        approver_groups=groups,
        approver_users=users,
        expiry_hours=expiry_hours,
        reminder_hours=reminder_hours,
        freeze_windows=freeze_windows,
        teams_webhook_url=teams,
        slack_webhook_url=slack,
    )
    if problems:
        raise DomainError(
            ErrorCode.INVALID,
            "The policy contradicts itself: " + "; ".join(problems.sentences()),
            fields=problems.fields,
        )
    with transaction.atomic():
        policy, created = ApprovalPolicy.objects.select_for_update(no_key=True).get_or_create(environment=environment)
        before = None if created else _policy_snapshot(policy)
        policy.approvals_required = approvals_required
        policy.forbid_self_approval = forbid_self_approval
        policy.expiry_hours = expiry_hours
        policy.reminder_hours = reminder_hours
        policy.auto_promote = auto_promote
        policy.require_healthy_slot = require_healthy_slot
        policy.teams_webhook_url = teams
        policy.slack_webhook_url = slack
        policy.save()
        policy.approver_groups.set(groups)
        policy.approver_users.set(users)
        policy.freeze_windows.all().delete()
        for window in freeze_windows:
            window.pk = None
            window.policy = policy
        FreezeWindow.objects.bulk_create(freeze_windows)
        after = _policy_snapshot(policy)
        if after != before:
            audit_record(
                actor=actor,
                action="policy.created" if created else "policy.updated",
                obj=policy,
                application=environment.application,
                before=before,
                after=after,
            )
    return policy
