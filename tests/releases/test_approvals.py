"""Approval rules: requests, N-of-M decisions, separation of duties, expiry, freezes, gates, policies."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group, User

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role
from releases.approvals.gates import freeze_override, gates_evaluate, promotion_blockers
from releases.approvals.models import (
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalRequestStatus,
    FreezeOverride,
    FreezeWindow,
    GateResult,
)
from releases.approvals.policies import PolicyProblems, approvers_for, policy_problems, policy_update
from releases.approvals.workflow import approval_decide, approval_expire_due, approval_request_open
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSlot, Stage
from releases.intake import services as intake
from strategies.operations.models import OperationStatus
from tests.factories import (
    ApplicationFactory,
    ApprovalPolicyFactory,
    OperationFactory,
    ReleaseFactory,
    UserFactory,
    add_simulated_site,
)

pytestmark = pytest.mark.django_db

R = ApprovalRequestStatus
# A Wednesday morning in January (GMT = UTC): no weekend freeze.
MONDAY = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
WEDNESDAY = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
FRIDAY_EVENING = datetime(2026, 1, 16, 17, 0, tzinfo=UTC)


def approver_group() -> Group:
    return Group.objects.get(name=Role.APPROVER.value)


def policy_for(application: Application, stage: str = Stage.PRODUCTION, **fields: object) -> ApprovalPolicy:
    fields.setdefault("approvals_required", 2)
    fields.setdefault("approver_groups", [approver_group()])
    return ApprovalPolicyFactory(environment=application.environments.get(stage=stage), **fields)


def weekend_freeze(policy: ApprovalPolicy) -> FreezeWindow:
    return FreezeWindow.objects.create(
        policy=policy,
        name="Weekend freeze",
        kind=FreezeWindow.Kind.WEEKLY,
        timezone="Europe/London",
        start_weekday=4,
        start_time=time(16),
        end_weekday=0,
        end_time=time(8),
    )


@pytest.fixture
def checkout() -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application)
    return application


@pytest.fixture
def people() -> dict[str, User]:
    return {name: UserFactory(username=name, roles=[Role.APPROVER]) for name in ("ann", "bob", "cat")}


def register(application: Application, actor: User, version: str = "2.0.0", slot: str = "staging") -> Release:
    return intake.release_register(
        application=application,
        version=version,
        actor=actor,
        notes=f"Notes of {version}",
        deployed_slot=application.slots.get(name=slot),
    )


def the_request(release: Release) -> ApprovalRequest:
    return ApprovalRequest.objects.get(release=release, status=R.PENDING)


# --- Opening requests ----------------------------------------------------------------------------------


def test_registering_on_pre_production_opens_a_request_for_production(
    checkout: Application, release_manager: User
) -> None:
    policy_for(checkout, approvals_required=2, expiry_hours=48)

    with clock.frozen(WEDNESDAY):
        release = register(checkout, release_manager)

    request = the_request(release)
    assert request.environment.stage == Stage.PRODUCTION
    assert (request.approvals_required, request.requested_by) == (2, release_manager)
    assert (request.created_at, request.expires_at) == (WEDNESDAY, WEDNESDAY + timedelta(hours=48))
    assert release.status == ReleaseStatus.AWAITING_APPROVAL
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "release.registered",
        "simulator.deployed",  # the simulated site runs the build the approvers are asked about
        "release.approval_requested",
        "approval.requested",
    ]
    assert AuditEvent.objects.get(action="approval.requested").reason == "2.0.0 arrived on the staging slot"


def test_registering_where_the_next_environment_needs_no_approval_opens_nothing(
    checkout: Application, release_manager: User
) -> None:
    policy_for(checkout)  # production; pre-production has no policy

    release = register(checkout, release_manager, slot="test")

    assert not ApprovalRequest.objects.exists()
    assert release.status == ReleaseStatus.REGISTERED


def test_a_request_into_pre_production_is_recorded_without_touching_the_lifecycle(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout, stage=Stage.PREPRODUCTION, approvals_required=1)

    release = register(checkout, release_manager, slot="test")
    request = the_request(release)
    approval_decide(request=request, actor=people["ann"], verdict="approve")

    request.refresh_from_db()
    release.refresh_from_db()
    assert (request.environment.stage, request.status) == (Stage.PREPRODUCTION, R.APPROVED)
    assert release.status == ReleaseStatus.REGISTERED  # the lifecycle's one approval is production's


def test_asking_twice_is_refused_in_words(checkout: Application, release_manager: User) -> None:
    policy_for(checkout)
    release = register(checkout, release_manager)

    with pytest.raises(DomainError, match=r"already waits for approval into Production"):
        approval_request_open(release=release, actor=release_manager)


def test_only_a_registered_release_can_be_sent_for_approval(checkout: Application, release_manager: User) -> None:
    policy_for(checkout)
    release = ReleaseFactory(application=checkout, status=ReleaseStatus.LIVE)

    with pytest.raises(DomainError, match=r"is live, so approval cannot be requested"):
        approval_request_open(release=release, actor=release_manager)
    assert not ApprovalRequest.objects.exists()


def test_a_newer_release_supersedes_the_pending_request_of_an_older_one(
    checkout: Application, release_manager: User
) -> None:
    policy_for(checkout)
    older = register(checkout, release_manager, version="2.0.0")

    newer = register(checkout, release_manager, version="2.0.1")

    superseded = ApprovalRequest.objects.get(release=older)
    older.refresh_from_db()
    assert superseded.status == R.SUPERSEDED
    assert older.status == ReleaseStatus.REGISTERED
    assert the_request(newer).status == R.PENDING
    event = AuditEvent.objects.get(action="approval.superseded")
    assert event.reason == "Superseded by the request for 2.0.1"


# --- Deciding -------------------------------------------------------------------------------------------


def test_n_distinct_approvals_approve_the_request_and_the_release(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout, approvals_required=2)
    with clock.frozen(WEDNESDAY):
        release = register(checkout, release_manager)
    request = the_request(release)

    with clock.frozen(WEDNESDAY + timedelta(hours=1)):
        approval_decide(request=request, actor=people["ann"], verdict="approve", comment="Looks right")
    request.refresh_from_db()
    release.refresh_from_db()
    assert (request.status, release.status) == (R.PENDING, ReleaseStatus.AWAITING_APPROVAL)

    with clock.frozen(WEDNESDAY + timedelta(hours=3, minutes=20)):
        approval_decide(request=request, actor=people["bob"], verdict="approve")
    request.refresh_from_db()
    release.refresh_from_db()
    assert (request.status, release.status) == (R.APPROVED, ReleaseStatus.APPROVED)
    assert request.settled_at == release.approved_at == WEDNESDAY + timedelta(hours=3, minutes=20)
    assert request.waited == timedelta(hours=3, minutes=20)  # the lead-time figure
    assert AuditEvent.objects.get(action="release.approved").reason == "2 of 2 approvals"
    assert AuditEvent.objects.filter(action="approval.decided").count() == 2


def test_one_rejection_rejects_even_after_approvals(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout, approvals_required=2)
    release = register(checkout, release_manager)
    request = the_request(release)
    approval_decide(request=request, actor=people["ann"], verdict="approve")

    approval_decide(request=request, actor=people["bob"], verdict="reject", comment="Checkout button is off")

    request.refresh_from_db()
    release.refresh_from_db()
    assert (request.status, release.status) == (R.REJECTED, ReleaseStatus.REJECTED)
    assert AuditEvent.objects.get(action="release.rejected").reason == "Checkout button is off"
    with pytest.raises(DomainError, match=r"already rejected .*; a decision cannot change it"):
        approval_decide(request=request, actor=people["cat"], verdict="approve")


def test_a_rejection_needs_a_comment(checkout: Application, release_manager: User, people: dict[str, User]) -> None:
    policy_for(checkout)
    request = the_request(register(checkout, release_manager))

    with pytest.raises(DomainError, match="a rejection needs a comment"):
        approval_decide(request=request, actor=people["ann"], verdict="reject", comment="   ")
    assert not request.decisions.exists()


def test_a_decision_cannot_be_changed(checkout: Application, release_manager: User, people: dict[str, User]) -> None:
    policy_for(checkout, approvals_required=2)
    request = the_request(register(checkout, release_manager))
    approval_decide(request=request, actor=people["ann"], verdict="approve")

    with pytest.raises(DomainError, match=r"You already approved this request on .*; a decision cannot be changed"):
        approval_decide(request=request, actor=people["ann"], verdict="reject", comment="Changed my mind")
    with pytest.raises(DomainError, match="You already approved"):
        approval_decide(request=request, actor=people["ann"], verdict="approve")

    assert request.decisions.count() == 1
    request.refresh_from_db()
    assert request.status == R.PENDING  # the same person twice is not two approvals


def test_whoever_registered_the_release_may_not_approve_it(checkout: Application, people: dict[str, User]) -> None:
    both = UserFactory(username="dee", roles=[Role.APPROVER, Role.RELEASE_MANAGER])
    policy_for(checkout, approvals_required=1)
    request = the_request(register(checkout, both))

    with pytest.raises(DomainError, match=r"You registered Checkout 2.0.0; separation of duties") as refused:
        approval_decide(request=request, actor=both, verdict="approve")
    assert refused.value.code == ErrorCode.APPROVAL_NOT_ELIGIBLE
    assert both not in approvers_for(request)
    assert set(approvers_for(request)) == set(people.values())


def test_whoever_asked_for_approval_may_not_approve_it(checkout: Application, release_manager: User) -> None:
    asker = UserFactory(username="eve", roles=[Role.APPROVER, Role.RELEASE_MANAGER])
    policy_for(checkout, approvals_required=1)
    release = ReleaseFactory(application=checkout, version="1.1.0", created_by=release_manager)  # staging runs it
    request = approval_request_open(release=release, actor=asker)

    with pytest.raises(DomainError, match=r"You asked for the approval of") as refused:
        approval_decide(request=request, actor=asker, verdict="approve")
    assert refused.value.code == ErrorCode.APPROVAL_NOT_ELIGIBLE


def test_self_approval_is_allowed_when_the_policy_allows_it(checkout: Application) -> None:
    both = UserFactory(username="dee", roles=[Role.APPROVER, Role.RELEASE_MANAGER])
    policy_for(checkout, approvals_required=1, forbid_self_approval=False)
    release = register(checkout, both)

    approval_decide(request=the_request(release), actor=both, verdict="approve")

    release.refresh_from_db()
    assert release.status == ReleaseStatus.APPROVED


def test_named_people_and_groups_are_eligible_and_nobody_else(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    outsiders = Group.objects.create(name="Auditors")
    dan = UserFactory(username="dan", roles=[Role.APPROVER])
    gus = UserFactory(username="gus", roles=[Role.APPROVER])
    gus.groups.add(outsiders)
    vic = UserFactory(username="vic", roles=[Role.VIEWER])  # named, but without the approver role
    policy_for(checkout, approvals_required=1, approver_groups=[outsiders], approver_users=[dan, vic])
    request = the_request(register(checkout, release_manager))

    assert list(approvers_for(request)) == [dan, gus]
    with pytest.raises(DomainError, match=r"You are not an approver for Production of Checkout") as refused:
        approval_decide(request=request, actor=people["ann"], verdict="approve")
    assert refused.value.code == ErrorCode.APPROVAL_NOT_ELIGIBLE
    with pytest.raises(DomainError, match="needs the approver role") as refused:
        approval_decide(request=request, actor=vic, verdict="approve")
    assert refused.value.code == ErrorCode.APPROVAL_NOT_ELIGIBLE

    approval_decide(request=request, actor=gus, verdict="approve")  # by group
    request.refresh_from_db()
    assert request.status == R.APPROVED


def test_a_deactivated_approver_is_no_longer_eligible(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout, approvals_required=1)
    request = the_request(register(checkout, release_manager))
    User.objects.filter(pk=people["cat"].pk).update(is_active=False)

    assert people["cat"] not in approvers_for(request)


# --- Expiry ---------------------------------------------------------------------------------------------


def test_a_pending_request_lapses_after_its_expiry_and_the_release_returns_to_registered(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout, approvals_required=2, expiry_hours=24)
    with clock.frozen(MONDAY):
        release = register(checkout, release_manager)
    request = the_request(release)
    with clock.frozen(MONDAY + timedelta(hours=2)):
        approval_decide(request=request, actor=people["ann"], verdict="approve")

    with clock.frozen(MONDAY + timedelta(hours=23, minutes=59)):
        assert approval_expire_due() == 0
    with clock.frozen(MONDAY + timedelta(hours=25)):
        assert approval_expire_due() == 1
        assert approval_expire_due() == 0  # nothing twice

    request.refresh_from_db()
    release.refresh_from_db()
    assert request.status == R.EXPIRED
    assert request.settled_at == MONDAY + timedelta(hours=24)  # when it lapsed, not when the sweep ran
    assert request.waited == timedelta(hours=24)
    assert release.status == ReleaseStatus.REGISTERED
    expired = AuditEvent.objects.get(action="approval.expired")
    assert (expired.actor_label, expired.reason) == ("system", "Not settled within 24 hours; ask for approval again.")
    assert AuditEvent.objects.get(action="release.approval_lapsed").actor is None
    with clock.frozen(MONDAY + timedelta(hours=26)), pytest.raises(DomainError, match="This request lapsed on"):
        approval_decide(request=request, actor=people["bob"], verdict="approve")
    # ... and approval can be asked for again.
    with clock.frozen(MONDAY + timedelta(hours=26)):
        again = approval_request_open(release=release, actor=release_manager)
    assert again.status == R.PENDING


def test_a_decision_after_the_expiry_but_before_the_sweep_lapses_the_request_and_says_so(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout, approvals_required=1, expiry_hours=1)
    with clock.frozen(MONDAY):
        release = register(checkout, release_manager)
    request = the_request(release)

    with clock.frozen(MONDAY + timedelta(hours=1)), pytest.raises(DomainError, match=r"lapsed at .* before your"):
        approval_decide(request=request, actor=people["ann"], verdict="approve")

    request.refresh_from_db()
    release.refresh_from_db()
    assert (request.status, release.status) == (R.EXPIRED, ReleaseStatus.REGISTERED)
    assert not request.decisions.exists()


# --- Policies ---------------------------------------------------------------------------------------------


def problems(**overrides: object) -> PolicyProblems:
    fields: dict[str, object] = {
        "approvals_required": 2,
        "approver_groups": [approver_group()],
        "approver_users": [],
        "expiry_hours": 72,
        "reminder_hours": 12,
        "freeze_windows": [],
    }
    return policy_problems(**(fields | overrides))  # type: ignore[arg-type]


def test_a_policy_asking_for_more_approvals_than_there_are_approvers_is_refused(people: dict[str, User]) -> None:
    assert not problems(approvals_required=3)
    assert problems(approvals_required=4).fields == {
        "approvals_required": "4 approvals can never be given: only 3 people are eligible (members of the chosen "
        "groups and the named people who hold the approver role)."
    }
    assert problems(approver_groups=[]).fields == {
        "approver_groups": "Choose who may approve: at least one group or one person."
    }
    assert not problems(approvals_required=0, approver_groups=[])


def test_a_policy_with_contradicting_times_is_refused(people: dict[str, User]) -> None:
    overlapping = [
        FreezeWindow(name="Weekend", kind="weekly", timezone="UTC", start_weekday=4, start_time=time(16),
                     end_weekday=0, end_time=time(8)),
        FreezeWindow(name="Friday", kind="weekly", timezone="UTC", start_weekday=4, start_time=time(12),
                     end_weekday=4, end_time=time(18)),
        FreezeWindow(name="Never", kind="weekly", timezone="UTC", start_weekday=1, start_time=time(9),
                     end_weekday=1, end_time=time(9)),
    ]  # fmt: skip

    found = problems(reminder_hours=72, freeze_windows=overlapping, slack_webhook_url="http://hooks.example.com/x")

    assert set(found.fields) == {"reminder_hours", "slack_webhook_url"}
    assert found.windows[1] == {"__all__": "“Friday” overlaps “Weekend” (every Friday 16:00 to Monday 08:00 (UTC)); "
                                "merge them or move one."}  # fmt: skip
    assert "end_time" in found.windows[2]


def test_saving_a_policy_is_for_admins_and_audited_without_its_webhook_urls(
    checkout: Application, admin_user: User, release_manager: User, people: dict[str, User]
) -> None:
    production = checkout.environments.get(stage=Stage.PRODUCTION)
    fields = {
        "environment": production,
        "approvals_required": 2,
        "approver_groups": [approver_group()],
        "approver_users": [],
        "forbid_self_approval": True,
        "expiry_hours": 72,
        "reminder_hours": 12,
        "auto_promote": False,
        "require_healthy_slot": True,
        "freeze_windows": [],
        "teams_webhook_url": "https://example.webhook.office.com/webhookb2/SECRET-TOKEN",
    }

    with pytest.raises(DomainError, match="needs the admin role") as refused:
        policy_update(actor=release_manager, **fields)
    assert refused.value.code == ErrorCode.FORBIDDEN
    policy_update(actor=admin_user, **fields)
    policy_update(actor=admin_user, **(fields | {"approvals_required": 3, "teams_webhook_url": None}))

    policy = ApprovalPolicy.objects.get(environment=production)
    assert policy.approvals_required == 3
    assert policy.teams_webhook_url.endswith("SECRET-TOKEN")  # None kept it
    created, updated = AuditEvent.objects.filter(action__startswith="policy.").order_by("id")
    assert (created.action, updated.action) == ("policy.created", "policy.updated")
    assert (updated.before["approvals_required"], updated.after["approvals_required"]) == (2, 3)
    assert updated.after["teams_webhook"] == "set"
    assert "SECRET" not in str(list(AuditEvent.objects.values_list("before", "after")))


# --- Auto-promote, freezes, gates and promotion blockers -----------------------------------------------


def approved_release(application: Application, manager: User, people: dict[str, User], at: datetime) -> Release:
    with clock.frozen(at):
        release = register(application, manager)
        request = the_request(release)
        approval_decide(request=request, actor=people["ann"], verdict="approve")
        approval_decide(request=request, actor=people["bob"], verdict="approve")
    release.refresh_from_db()
    return release


def test_auto_promote_records_when_the_promotion_is_due(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    weekend_freeze(policy_for(checkout, auto_promote=True))

    release = approved_release(checkout, release_manager, people, FRIDAY_EVENING)

    request = release.approval_requests.get()
    assert request.auto_promote_after == datetime(2026, 1, 19, 8, 0, tzinfo=UTC)  # Monday 08:00 London (GMT)
    event = AuditEvent.objects.get(action="approval.auto_promote_due")
    assert event.after["promote_after"] == "2026-01-19T08:00:00+00:00"
    assert "when the freeze ends" in event.reason


def test_an_approved_release_outside_a_freeze_has_no_blockers_and_the_gates_are_recorded(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    weekend_freeze(policy_for(checkout))
    release = approved_release(checkout, release_manager, people, WEDNESDAY)
    production = checkout.environments.get(stage=Stage.PRODUCTION)

    with clock.frozen(WEDNESDAY + timedelta(hours=1)):
        assert promotion_blockers(release, production) == []

    results = {r.gate: r for r in GateResult.objects.filter(release=release)}
    assert set(results) == {"slot_health", "no_freeze", "no_operation", "no_drift"}
    assert all(r.passed for r in results.values())
    assert results["slot_health"].detail.startswith("The staging slot answers its health check: HTTP 200")


def test_a_freeze_blocks_promotion_until_an_admin_breaks_the_glass(
    checkout: Application, release_manager: User, admin_user: User, people: dict[str, User]
) -> None:
    weekend_freeze(policy_for(checkout))
    release = approved_release(checkout, release_manager, people, FRIDAY_EVENING)
    production = checkout.environments.get(stage=Stage.PRODUCTION)
    saturday = FRIDAY_EVENING + timedelta(hours=20)

    with clock.frozen(saturday):
        assert promotion_blockers(release, production) == [
            "“Weekend freeze” freezes Production until Mon 19 Jan 2026 08:00 GMT."
        ]
        with pytest.raises(DomainError, match="needs the admin role") as refused:
            freeze_override(release=release, environment=production, actor=people["ann"], reason="Hotfix")
        assert refused.value.code == ErrorCode.FORBIDDEN
        with pytest.raises(DomainError, match="an override needs a reason"):
            freeze_override(release=release, environment=production, actor=admin_user, reason=" ")
        override = freeze_override(
            release=release, environment=production, actor=admin_user, reason="Card payments fail without it"
        )
        assert promotion_blockers(release, production) == []

    assert override.expires_at == datetime(2026, 1, 19, 8, 0, tzinfo=UTC)
    event = AuditEvent.objects.get(action="freeze.overridden")
    assert (event.actor, event.reason) == (admin_user, "Card payments fail without it")
    assert event.after["windows"] == ["Weekend freeze"]
    with clock.frozen(saturday + timedelta(days=7)):  # the next weekend: the override has ended
        assert promotion_blockers(release, production)[0].startswith("“Weekend freeze” freezes")


def test_an_override_outside_a_freeze_is_refused(
    checkout: Application, release_manager: User, admin_user: User, people: dict[str, User]
) -> None:
    weekend_freeze(policy_for(checkout))
    release = approved_release(checkout, release_manager, people, WEDNESDAY)

    with clock.frozen(WEDNESDAY), pytest.raises(DomainError, match="Production is not frozen now"):
        freeze_override(
            release=release, environment=release.application.production_environment, actor=admin_user, reason="x"
        )
    assert not FreezeOverride.objects.exists()


def test_a_release_not_yet_approved_is_blocked_by_the_missing_approval(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout, approvals_required=2)
    production = checkout.environments.get(stage=Stage.PRODUCTION)
    unasked = ReleaseFactory(application=checkout, version="1.9.9")
    with clock.frozen(WEDNESDAY):
        release = register(checkout, release_manager)
        approval_decide(request=the_request(release), actor=people["ann"], verdict="approve")

        assert promotion_blockers(release, production) == [
            "Waiting for approval: 1 of 2 so far (the request lapses 17 Jan 2026 09:00)."
        ]
        assert promotion_blockers(unasked, production) == ["Production needs 2 approvals and none has been asked for."]


def test_failing_gates_block_promotion(checkout: Application, release_manager: User, people: dict[str, User]) -> None:
    policy_for(checkout)
    release = approved_release(checkout, release_manager, people, WEDNESDAY)
    production = checkout.environments.get(stage=Stage.PRODUCTION)
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(healthy=False)
    other = ReleaseFactory(application=checkout, version="1.9.0", status=ReleaseStatus.APPROVED)
    OperationFactory(release=other, status=OperationStatus.RUNNING)

    with clock.frozen(WEDNESDAY):
        blockers = promotion_blockers(release, production)

    assert blockers == [
        "The staging slot answers its health check: HTTP 503 (Simulated health check failing)",
        "Promotion of Checkout 1.9.0 (running) is in progress; wait for it to finish.",
    ]


def test_a_provider_error_is_a_failing_gate(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout)
    release = approved_release(checkout, release_manager, people, WEDNESDAY)
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").delete()

    [health] = [
        r
        for r in gates_evaluate(release=release, environment=release.application.production_environment)
        if r.gate == GateResult.Gate.SLOT_HEALTH
    ]

    assert not health.passed
    assert health.detail.startswith("The provider could not check the staging slot:")


def test_the_health_gate_is_skipped_when_the_policy_does_not_require_it(
    checkout: Application, release_manager: User, people: dict[str, User]
) -> None:
    policy_for(checkout, require_healthy_slot=False)
    release = approved_release(checkout, release_manager, people, WEDNESDAY)
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(healthy=False)

    with clock.frozen(WEDNESDAY):
        assert promotion_blockers(release, checkout.production_environment) == []
