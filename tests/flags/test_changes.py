"""Approval of flag changes: an environment that asks for it turns edits, rules and turning back on into
pending change requests, decided by people eligible under its approval policy; the kill switch never waits."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role
from releases.audit.models import AuditEvent
from releases.catalog.models import Environment
from strategies.flags import changes, schedules, services
from strategies.flags.approval import approval_required
from strategies.flags.models import FlagChangeRequest
from tests.factories import ApprovalPolicyFactory, UserFactory

pytestmark = pytest.mark.django_db
S = FlagChangeRequest.Status


@pytest.fixture
def gated(production: Environment, admin_user: User, approver: User) -> Environment:
    group = Group.objects.create(name="checkout-approvers")
    approver.groups.add(group)
    ApprovalPolicyFactory(environment=production, approvals_required=1, approver_groups=[group])
    changes.set_approval(environment=production, on=True, actor=admin_user)
    return production


def test_approval_needs_the_setting_and_a_policy_asking_for_approvals(
    production: Environment, admin_user: User, release_manager: User
) -> None:
    assert not approval_required(production)
    changes.set_approval(environment=production, on=True, actor=admin_user)
    assert not approval_required(production)  # no policy
    ApprovalPolicyFactory(environment=production, approvals_required=0)
    assert not approval_required(production)
    production.approval_policy.approvals_required = 1
    production.approval_policy.save()
    assert approval_required(production)
    with pytest.raises(DomainError) as refused:
        changes.set_approval(environment=production, on=False, actor=release_manager)
    assert refused.value.code == ErrorCode.FORBIDDEN
    assert AuditEvent.objects.filter(action="flag_approval.enabled").count() == 1


def test_an_approved_change_is_applied_and_audited(
    gated: Environment, make_flag: Any, release_manager: User, approver: User
) -> None:
    flag = make_flag("new-checkout")
    rules = {
        "rules": [
            {
                "name": "Staff",
                "conditions": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}],
                "serve": {"variant": "on"},
            }
        ]
    }
    request = changes.propose(flag=flag, actor=release_manager, changes={"rules": rules}, summary="staff get it")
    flag.refresh_from_db()
    assert flag.rules.get("rules", []) == []  # nothing applied yet
    assert request.status == S.PENDING and request.before != request.after

    changes.decide(request=request, actor=approver, approve=True, comment="fine")

    request.refresh_from_db()
    flag.refresh_from_db()
    assert request.status == S.APPLIED and request.decided_by == approver
    assert flag.rules["rules"][0]["name"] == "Staff"
    applied = AuditEvent.objects.get(action="flag.change_applied")
    assert applied.actor == approver and f"Change #{request.pk}" in applied.reason
    assert applied.after["targeting"] is not None


def test_the_proposer_and_people_outside_the_policy_may_not_decide(
    gated: Environment, make_flag: Any, release_manager: User
) -> None:
    flag = make_flag("new-checkout", enabled=False)
    request = changes.propose(flag=flag, actor=release_manager, changes={"enabled": True}, summary="on")
    outsider = UserFactory(username="otto", roles=[Role.APPROVER])
    both = UserFactory(username="bo", roles=[Role.APPROVER, Role.RELEASE_MANAGER])
    gated.approval_policy.approver_users.add(both)
    proposal = changes.propose(flag=flag, actor=both, changes={"description": "x"}, summary="desc")

    assert "not an approver" in changes.ineligibility(outsider, request)
    assert "approver role" in changes.ineligibility(release_manager, request)
    assert "separation of duties" in changes.ineligibility(both, proposal)
    with pytest.raises(DomainError) as refused:
        changes.decide(request=proposal, actor=both, approve=True)
    assert refused.value.code == ErrorCode.APPROVAL_NOT_ELIGIBLE


def test_a_rejected_change_is_not_applied(
    gated: Environment, make_flag: Any, release_manager: User, approver: User
) -> None:
    flag = make_flag("new-checkout", enabled=False)
    request = changes.propose(flag=flag, actor=release_manager, changes={"enabled": True}, summary="on")
    changes.decide(request=request, actor=approver, approve=False, comment="not during the sale")
    request.refresh_from_db()
    flag.refresh_from_db()
    assert request.status == S.REJECTED and not flag.enabled
    with pytest.raises(DomainError):
        changes.decide(request=request, actor=approver, approve=True)


def test_a_change_proposed_before_another_change_is_not_applied_over_it(
    gated: Environment, make_flag: Any, release_manager: User, approver: User
) -> None:
    flag = make_flag("new-checkout")
    request = changes.propose(flag=flag, actor=release_manager, changes={"description": "one"}, summary="one")
    # A later change approved first (editing it directly is refused here: tests/flags/test_side_doors.py).
    later = changes.propose(flag=flag, actor=release_manager, changes={"description": "two"}, summary="two")
    changes.decide(request=later, actor=approver, approve=True)
    changes.decide(request=request, actor=approver, approve=True)
    request.refresh_from_db()
    flag.refresh_from_db()
    assert request.status == S.FAILED and flag.description == "two"


def test_pages_propose_instead_of_applying_but_the_kill_switch_is_immediate(
    client: Client, gated: Environment, make_flag: Any, release_manager: User, approver: User
) -> None:
    flag = make_flag("new-checkout")
    client.force_login(release_manager)

    response = client.post(f"/apps/checkout/flags/{flag.pk}/kill", {"reason": "errors"})
    assert response.status_code == 302
    flag.refresh_from_db()
    assert not flag.enabled  # immediate
    client.post(f"/apps/checkout/flags/{flag.pk}/kill", {"state": "on"})
    flag.refresh_from_db()
    assert not flag.enabled
    request = FlagChangeRequest.objects.get()
    assert request.changes == {"enabled": True}

    client.post(
        f"/apps/checkout/flags/{flag.pk}/rules/add",
        {"name": "Beta", "match": "all", "attribute_1": "plan", "op_1": "is", "value_1": "beta", "serve": "on"},
    )
    assert FlagChangeRequest.objects.count() == 2

    page = client.get(flag.get_absolute_url())
    assert b"Changes waiting for approval" in page.content
    assert b"separation of duties" not in page.content  # the release manager is simply not an approver

    client.force_login(approver)
    page = client.get(flag.get_absolute_url())
    assert f"/apps/checkout/flag-changes/{request.pk}/decide" in page.content.decode()
    response = client.post(f"/apps/checkout/flag-changes/{request.pk}/decide", {"decision": "approve"})
    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.enabled


def test_schedules_other_than_turning_off_are_refused_where_changes_need_approval(
    gated: Environment, make_flag: Any, release_manager: User
) -> None:
    from datetime import timedelta

    from portal.core import clock

    flag = make_flag("new-checkout")
    with pytest.raises(DomainError):
        schedules.schedule_create(
            flag=flag, kind="ramp", variant="on", steps=[(clock.now(), 10)], actor=release_manager
        )
    schedules.schedule_create(
        flag=flag, kind="disable_at", steps=[(clock.now() + timedelta(hours=1), None)], actor=release_manager
    )


def test_admins_toggle_approval_on_the_flag_list(client: Client, production: Environment, admin_user: User) -> None:
    ApprovalPolicyFactory(environment=production, approvals_required=1)
    client.force_login(admin_user)
    response = client.post(f"/apps/checkout/flags/environments/{production.pk}/approval", {"on": "1"})
    assert response.status_code == 302
    assert approval_required(production)
    page = client.get("/apps/checkout/flags/")
    assert b"Apply flag changes at once" in page.content


# --- Dark launches and schedules where flag changes need approval ---------------------------------------

A = FlagChangeRequest.Action


def test_a_dark_launch_is_proposed_dry_run_then_started_when_approved(
    gated: Environment, make_flag: Any, staff_segment: Any, release_manager: User, approver: User
) -> None:
    flag = make_flag("new-checkout")
    with pytest.raises(DomainError, match="need approval"):
        services.launch_start(flag=flag, variant="on", segments=["staff"], actor=release_manager)

    request = changes.propose_action(
        flag=flag,
        actor=release_manager,
        action=A.LAUNCH_START,
        arguments={"variant": "on", "segments": ["staff"], "reason": "feedback from staff"},
        summary="dark-launch new-checkout = on",
    )

    flag.refresh_from_db()
    assert not flag.launches.exists() and flag.rules.get("rules", []) == []  # the dry run left nothing behind
    assert request.status == S.PENDING
    assert request.after["targeting"] != request.before["targeting"]  # approvers see what it will serve
    assert not AuditEvent.objects.filter(action="dark_launch.started").exists()

    changes.decide(request=request, actor=approver, approve=True, comment="go")

    request.refresh_from_db()
    launch = flag.launches.get()
    assert request.status == S.APPLIED
    assert launch.status == "active" and launch.cohort["segments"] == ["staff"]
    assert launch.started_by == release_manager  # made on the proposer's behalf
    started = AuditEvent.objects.get(action="dark_launch.started")
    assert started.actor == release_manager and started.reason == "feedback from staff"
    assert AuditEvent.objects.filter(action="flag_change.approved", actor=approver).exists()


def test_a_launch_proposal_with_an_unknown_segment_is_refused_naming_the_field(
    gated: Environment, make_flag: Any, release_manager: User
) -> None:
    from strategies.flags.definitions import DefinitionError

    flag = make_flag("new-checkout")
    with pytest.raises(DefinitionError) as refused:
        changes.propose_action(
            flag=flag,
            actor=release_manager,
            action=A.LAUNCH_START,
            arguments={"variant": "on", "segments": ["nobody-knows"]},
            summary="launch",
        )
    assert "segments" in refused.value.errors
    assert not FlagChangeRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="flag_change.proposed").exists()


def test_widening_and_rolling_out_a_launch_wait_for_approval_and_kill_does_not(
    production: Environment,
    make_flag: Any,
    staff_segment: Any,
    release_manager: User,
    approver: User,
    admin_user: User,
) -> None:
    flag = make_flag("new-checkout")
    launch = services.launch_start(flag=flag, variant="on", segments=["staff"], actor=release_manager)
    group = Group.objects.create(name="checkout-approvers")
    approver.groups.add(group)
    ApprovalPolicyFactory(environment=production, approvals_required=1, approver_groups=[group])
    changes.set_approval(environment=production, on=True, actor=admin_user)

    widen = changes.propose_action(
        flag=flag, actor=release_manager, action=A.LAUNCH_WIDEN, arguments={"users": ["bob"]}, summary="widen"
    )
    changes.decide(request=widen, actor=approver, approve=True)
    launch.refresh_from_db()
    assert launch.cohort["users"] == ["bob"]

    rollout = changes.propose_action(
        flag=flag, actor=release_manager, action=A.LAUNCH_ROLLOUT, arguments={"percent": 20}, summary="20 %"
    )
    launch.refresh_from_db()
    assert launch.rollout_percent == 0
    changes.decide(request=rollout, actor=approver, approve=True)
    launch.refresh_from_db()
    assert launch.rollout_percent == 20

    services.launch_kill(launch=launch, actor=release_manager, reason="errors up")  # never waits
    launch.refresh_from_db()
    assert launch.status == "killed"


def test_an_approved_proposal_that_no_longer_applies_fails_with_the_reason(
    gated: Environment, make_flag: Any, staff_segment: Any, release_manager: User, approver: User
) -> None:
    flag = make_flag("new-checkout")
    request = changes.propose_action(
        flag=flag,
        actor=release_manager,
        action=A.LAUNCH_START,
        arguments={"variant": "on", "users": ["a"]},
        summary="x",
    )
    services.flag_kill(flag=flag, actor=release_manager, reason="incident")

    changes.decide(request=request, actor=approver, approve=True)

    request.refresh_from_db()
    assert request.status == S.FAILED
    assert "killed" in request.comment
    assert not flag.launches.exists()
    assert AuditEvent.objects.filter(action="flag_change.failed", object_id=str(request.pk)).exists()


def test_a_ramp_is_proposed_and_scheduled_when_approved(
    gated: Environment, make_flag: Any, release_manager: User, approver: User
) -> None:
    from datetime import timedelta

    from portal.core import clock

    flag = make_flag("new-checkout")
    start = clock.now() + timedelta(days=1)
    steps = [(start, 10), (start + timedelta(days=1), 50), (start + timedelta(days=2), 100)]
    request = changes.propose_action(
        flag=flag,
        actor=release_manager,
        action=A.SCHEDULE,
        arguments={"kind": "ramp", "variant": "on", "steps": steps},
        summary="ramp on over three days",
    )
    assert not flag.schedules.exists()

    changes.decide(request=request, actor=approver, approve=True)

    schedule = flag.schedules.get()
    assert schedule.status == "pending" and [s["percent"] for s in schedule.steps] == [10, 50, 100]
    assert schedule.next_at == start
    assert schedule.created_by == release_manager


def test_proposals_reach_the_approvals_inbox_and_its_count(
    client: Client, gated: Environment, make_flag: Any, release_manager: User, approver: User
) -> None:
    flag = make_flag("new-checkout")
    client.force_login(release_manager)
    response = client.post(
        f"/apps/checkout/flags/{flag.pk}/launch", {"variant": "on", "users": "alice, bob", "reason": "try it"}
    )
    assert response.status_code == 302 and response["Location"] == flag.get_absolute_url()
    request = FlagChangeRequest.objects.get()
    assert request.action == A.LAUNCH_START and request.arguments["users"] == ["alice", "bob"]
    assert not flag.launches.exists()

    client.force_login(approver)
    inbox = client.get("/approvals/")
    assert f"#{request.pk} dark-launch new-checkout = on".encode() in inbox.content
    assert b"Start a dark launch" in inbox.content
    from portal.pages.selectors import inbox_count

    assert inbox_count(approver) == 1
    assert inbox_count(release_manager) == 0  # the proposer is no approver


def test_the_inbox_looks_at_each_environment_policy_once(
    gated: Environment, make_flag: Any, release_manager: User, approver: User
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_inbox(expected: int) -> int:
        with CaptureQueriesContext(connection) as counted:
            assert len(changes.inbox_for(approver)) == expected
        return len(counted)

    for i in range(2):
        changes.propose(flag=make_flag(f"flag-{i}"), actor=release_manager, changes={"description": "x"}, summary="a")
    queries_for_inbox(2)  # the approver's roles are looked up once per user object
    with_two = queries_for_inbox(2)
    for i in range(2, 8):
        changes.propose(flag=make_flag(f"flag-{i}"), actor=release_manager, changes={"description": "x"}, summary="b")

    assert queries_for_inbox(8) == with_two  # every approver's page counts these: not a query per change
    assert changes.inbox_for(release_manager) == []  # no approver role
