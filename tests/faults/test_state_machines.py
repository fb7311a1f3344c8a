"""Property-based state machines (hypothesis.stateful) over the real services on the test database.

The machines pick actions regardless of state — legal and illegal alike — and after every action check:

- a service that raises `DomainError` changed nothing (a snapshot of releases, requests, decisions,
  operations, steps and the audit trail is compared before and after); the one documented exception is a
  decision on a request past its expiry, which records the lapse and then says so;
- a service that succeeded moved each release along at most one legal edge of `TRANSITIONS`, with exactly
  one new audit event for it, naming that edge;
- at most one live release per application; each release's status is where its audit trail leads;
- at most one pending approval request per release; a settled request has its one `approval.<status>`
  event; an approved one has N distinct approvals, a rejected one exactly one rejection;
- an operation is finished iff it has `finished_at`; at most one active operation per application; an
  active operation's release is rolling out; a finished operation has its one closing audit event.

Each example runs in an atomic block rolled back at its end (inside pytest-django's test transaction),
so examples never see each other's rows.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rq import Queue

from portal.core import clock
from portal.core.errors import DomainError
from portal.core.roles import Role
from releases.approvals.models import ApprovalDecision, ApprovalRequest, ApprovalRequestStatus
from releases.approvals.workflow import approval_decide, approval_expire_due, approval_request_open
from releases.audit.models import AuditEvent
from releases.catalog import services as release_services
from releases.catalog.models import Release, ReleaseStatus, SimulatorSlot
from releases.catalog.services import TRANSITIONS
from releases.intake import services as intake
from strategies.operations import services as operation_services
from strategies.operations.engine import run_operation
from strategies.operations.models import OPERATION_ACTIVE, Operation, OperationStatus, OperationStep
from tests.factories import (
    ApplicationFactory,
    ApprovalPolicyFactory,
    UserFactory,
    add_simulated_site,
    production_environment,
)
from tests.faults.conftest import STATUS_OF_ACTION
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, with_load

S = ReleaseStatus
R = ApprovalRequestStatus
FINISHED = {s for s in OperationStatus.values if s not in OPERATION_ACTIVE}
MACHINE_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=30,
    derandomize=True,  # the same draws every run (the programs still follow what the services answer)
    deadline=None,
    database=None,  # no example database written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# What the machines did, over all examples of a run: each test asserts that the actions it cares about were
# both carried out and refused at least once (a machine that only ever refuses would prove nothing).
TALLY: dict[str, Counter[str]] = {"ok": Counter(), "refused": Counter()}


def run_and_tally(machine: type[RuleBasedStateMachine], **more: Any) -> dict[str, Counter[str]]:
    for counter in TALLY.values():
        counter.clear()
    run_state_machine_as_test(machine, settings=settings(MACHINE_SETTINGS, **more))
    print({k: dict(v) for k, v in TALLY.items()})
    return TALLY


def assert_explored(tally: dict[str, Counter[str]], *, must_succeed: set[str]) -> None:
    """The run did things and was refused things, broadly: a machine that only ever refuses proves nothing.

    The draws are derandomized, but the programs they make follow the services' answers, and those were seen to
    differ with what the process ran before (real sleeps and wake times are the likely carrier; not pinned down).
    Actions that only a particular program reaches get a rule of their own (resume, roll back the active one)."""
    assert sum(tally["ok"].values()) >= 20 and sum(tally["refused"].values()) >= 20, tally
    assert len(tally["ok"]) >= 5 and len(tally["refused"]) >= 4, tally
    assert must_succeed <= {a for a, n in tally["ok"].items() if n}, (must_succeed, tally)


def db_state() -> tuple:
    """Everything a refused action must leave as it was."""
    return (
        tuple(Release.objects.order_by("pk").values_list("pk", "status")),
        tuple(ApprovalRequest.objects.order_by("pk").values_list("pk", "status")),
        ApprovalDecision.objects.count(),
        tuple(Operation.objects.order_by("pk").values_list("pk", "status", "finished_at")),
        tuple(OperationStep.objects.order_by("pk").values_list("pk", "status")),
        AuditEvent.objects.count(),
    )


def release_events_after(audit_id: int) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(pk__gt=audit_id, object_type="releases.release", action__in=STATUS_OF_ACTION)
        .order_by("pk")
        .values_list("object_id", "action")
    )


class Checked(RuleBasedStateMachine):
    """The oracle shared by both machines: `act()` runs a service and checks what it did."""

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.refusals: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)
        TALLY["ok"].update(self.successes)
        TALLY["refused"].update(self.refusals)

    def act(self, name: str, call: Any, *, expect_ok: bool | None = None, lapses: bool = False) -> bool:
        before = db_state()
        statuses = dict(Release.objects.values_list("pk", "status"))
        last_audit = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        try:
            call()  # no atomic block of ours: what a service commits before refusing must show
        except DomainError as exc:
            if not lapses:
                assert db_state() == before, f"{name} was refused ({exc}) but changed something"
            assert expect_ok is not True, f"{name} should have been allowed: {exc}"
            self.refusals[name] += 1
            return False
        assert expect_ok is not False, f"{name} should have been refused"
        self.successes[name] += 1
        # Each release moved along at most one legal edge, with exactly one audit event naming it.
        events = release_events_after(last_audit)
        after = dict(Release.objects.values_list("pk", "status"))
        per_release = Counter(pk for pk, _ in events)
        for pk, status in after.items():
            if pk not in statuses:  # registered by this call (and perhaps moved on by it): a legal walk
                trail = [a for p, a in events if p == str(pk)]
                assert trail[0] == "release.registered", trail
                for previous, action in pairwise(trail):
                    assert STATUS_OF_ACTION[previous] in TRANSITIONS[action].sources, trail
                assert STATUS_OF_ACTION[trail[-1]] == status, (trail, status)
                continue
            changed = status != statuses[pk]
            assert per_release[str(pk)] == (1 if changed else 0), (name, pk, statuses[pk], status, events)
            if changed:
                (action,) = [a for p, a in events if p == str(pk)]
                assert statuses[pk] in TRANSITIONS[action].sources and TRANSITIONS[action].target == status, (
                    name,
                    action,
                    statuses[pk],
                    status,
                )
        return True

    @invariant()
    def one_live_release_per_application(self) -> None:
        live = Counter(Release.objects.filter(status=S.LIVE).values_list("application_id", flat=True))
        assert all(n == 1 for n in live.values()), live

    @invariant()
    def each_release_is_where_its_audit_trail_leads(self) -> None:
        trails: dict[str, list[str]] = {}
        for object_id, action in (
            AuditEvent.objects.filter(object_type="releases.release", action__in=STATUS_OF_ACTION)
            .order_by("pk")
            .values_list("object_id", "action")
        ):
            trails.setdefault(object_id, []).append(action)
        for pk, status in Release.objects.values_list("pk", "status"):
            trail = trails.get(str(pk), [])
            if not trail:  # made by a factory (the operations machine's live release)
                continue
            walked = None
            for action in trail:
                if walked is not None:
                    assert walked in TRANSITIONS[action].sources, (pk, trail)
                walked = STATUS_OF_ACTION[action]
            assert walked == status, (pk, status, trail)

    @invariant()
    def requests_are_settled_once_and_by_their_decisions(self) -> None:
        pending = Counter(ApprovalRequest.objects.filter(status=R.PENDING).values_list("release_id", "environment_id"))
        assert all(n == 1 for n in pending.values()), pending
        closing = Counter(
            AuditEvent.objects.filter(object_type="releases.approvalrequest")
            .exclude(action__in=("approval.requested", "approval.decided"))
            .values_list("object_id", flat=True)
        )
        for request in ApprovalRequest.objects.prefetch_related("decisions"):
            assert closing[str(request.pk)] == (0 if request.status == R.PENDING else 1), request
            assert (request.settled_at is None) == (request.status == R.PENDING), request
            verdicts = Counter(d.verdict for d in request.decisions.all())
            if request.status == R.APPROVED:
                assert verdicts["approve"] >= request.approvals_required and not verdicts["reject"], verdicts
            if request.status == R.REJECTED:
                assert verdicts["reject"] == 1, verdicts

    @invariant()
    def operations_are_finished_iff_finished_at_and_one_active_per_application(self) -> None:
        active = Counter()
        closing = Counter(
            AuditEvent.objects.filter(
                object_type="releases.operation", action__in=[f"operation.{s}" for s in FINISHED]
            ).values_list("object_id", flat=True)
        )
        for operation in Operation.objects.select_related("release"):
            assert (operation.finished_at is not None) == (operation.status in FINISHED), operation
            assert closing[str(operation.pk)] == (1 if operation.status in FINISHED else 0), operation
            if operation.status not in FINISHED:
                active[operation.application_id] += 1
                if operation.kind == Operation.Kind.PROMOTE:
                    assert operation.release.status == S.ROLLING_OUT, (operation, operation.release.status)
        assert all(n == 1 for n in active.values()), active


# --- the release lifecycle and the approval workflow ----------------------------------------------------
LIFECYCLE = {
    "lapse": (release_services.release_lapse_approval, "release.approval_lapsed"),
    "start_rollout": (release_services.release_start_rollout, "release.rollout_started"),
    "go_live": (release_services.release_go_live, "release.went_live"),
    "mark_failed": (release_services.release_mark_failed, "release.rollout_failed"),
    "roll_back": (release_services.release_roll_back, "release.rolled_back"),
    "restore": (release_services.release_restore, "release.restored"),
}
PEOPLE = ["manager", "manager_approver", "approver_a", "approver_b", "approver_c", "outsider", "viewer"]
NAMED = ["manager_approver", "approver_a", "approver_b", "approver_c"]  # the policy's approvers


class ReleaseLifecycle(Checked):
    """Releases of one application, production guarded by an N-of-M policy; time moves in hours."""

    releases = Bundle("releases")
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.now = clock.now().replace(microsecond=0)
        self._clock = clock.frozen(self.now)
        self._clock.__enter__()
        self.application = ApplicationFactory()
        add_simulated_site(self.application)
        self.production = production_environment(self.application)
        self.people = {
            "manager": UserFactory(roles=[Role.RELEASE_MANAGER]),
            "manager_approver": UserFactory(roles=[Role.RELEASE_MANAGER, Role.APPROVER]),
            "approver_a": UserFactory(roles=[Role.APPROVER]),
            "approver_b": UserFactory(roles=[Role.APPROVER]),
            "approver_c": UserFactory(roles=[Role.APPROVER]),
            "outsider": UserFactory(roles=[Role.APPROVER]),  # an approver the policy does not name
            "viewer": UserFactory(roles=[Role.VIEWER]),
        }
        self.policy: Any = None
        self.versions = 0

    def teardown(self) -> None:
        self._clock.__exit__(None, None, None)
        super().teardown()

    @initialize(target=requests, required=st.integers(1, 2), forbid_self=st.booleans())
    def set_policy(self, required: int, forbid_self: bool) -> ApprovalRequest:
        """N of the 4 named approvers (one of them also a release manager), self-approval allowed or not;
        a first release registered and sent for approval."""
        self.policy = ApprovalPolicyFactory(
            environment=self.production,
            approvals_required=required,
            forbid_self_approval=forbid_self,
            expiry_hours=48,
            approver_users=[self.people[n] for n in NAMED],
        )
        first = intake.release_register(
            application=self.application, version="0.9.0", actor=self.people["manager_approver"]
        )
        self.stage(first)
        return approval_request_open(release=first, actor=self.people["manager_approver"], environment=self.production)

    def stage(self, release: Release) -> None:
        """The pipeline deployed the build to staging (the newest registered build runs there)."""
        SimulatorSlot.objects.filter(application=self.application, slot_name="staging").update(version=release.version)

    @rule(target=releases, request=requests)
    def release_of(self, request: ApprovalRequest) -> Release:
        return Release.objects.get(pk=request.release_id)

    @rule(target=releases, who=st.sampled_from(["manager", "manager_approver"]), duplicate=st.booleans())
    def register(self, who: str, duplicate: bool) -> Any:
        duplicate = duplicate and self.versions > 0
        version = f"1.0.{self.versions - 1 if duplicate else self.versions}"
        box: list[Release] = []

        def call() -> None:
            box.append(intake.release_register(application=self.application, version=version, actor=self.people[who]))
            self.stage(box[-1])

        if not self.act("register", call, expect_ok=not duplicate):
            return multiple()
        self.versions += 1
        return box[0]

    @rule(target=requests, release=releases, who=st.sampled_from(PEOPLE))
    def request_approval(self, release: Release, who: str) -> Any:
        release.refresh_from_db()
        pending = ApprovalRequest.objects.filter(release=release, status=R.PENDING).exists()
        staged = SimulatorSlot.objects.filter(
            application=self.application, slot_name="staging", version=release.version
        ).exists()  # approvers must find the build where they will look (a newer one may have replaced it)
        may = release.status == S.REGISTERED and not pending and staged
        box: list[ApprovalRequest] = []
        opened = self.act(
            "request_approval",
            lambda: box.append(
                approval_request_open(release=release, actor=self.people[who], environment=self.production)
            ),
            expect_ok=may,
        )
        return box[0] if opened else multiple()

    @rule(request=requests, who=st.sampled_from(PEOPLE), verdict=st.sampled_from(["approve", "reject"]))
    def decide(self, request: ApprovalRequest, who: str, verdict: str) -> None:
        self._decide(request, who, verdict)

    @rule(request=requests, who=st.sampled_from(NAMED))
    def approve_as_named_approver(self, request: ApprovalRequest, who: str) -> None:
        self._decide(request, who, "approve")

    @rule(request=requests, rejecter=st.integers(0, len(NAMED)))
    def settle_by_named_approvers(self, request: ApprovalRequest, rejecter: int) -> None:
        """The N-of-M path to its end: the named approvers decide in turn (each call checked as any other),
        all approving, or the one at `rejecter` rejecting."""
        for i, who in enumerate(NAMED):
            request.refresh_from_db()
            if request.status != R.PENDING or request.decisions.filter(approver=self.people[who]).exists():
                continue
            self._decide(request, who, "reject" if i == rejecter else "approve")

    def _decide(self, request: ApprovalRequest, who: str, verdict: str) -> None:
        request.refresh_from_db()
        release = Release.objects.get(pk=request.release_id)
        user = self.people[who]
        expired = request.status == R.PENDING and clock.now() >= request.expires_at
        approvals = request.decisions.filter(verdict="approve").count()
        refused = (
            request.status != R.PENDING
            or expired
            or who in ("viewer", "manager", "outsider")  # no approver role, or not named by the policy
            or (self.policy.forbid_self_approval and user.pk in (release.created_by_id, request.requested_by_id))
            or request.decisions.filter(approver=user).exists()  # a decision is never changed
            # settling would move a release no longer awaiting approval (a lifecycle call moved it)
            or (
                release.status != S.AWAITING_APPROVAL
                and (verdict == "reject" or approvals + 1 >= request.approvals_required)
            )
        )
        self.act(
            "decide:lapsed" if expired else f"decide:{verdict}",
            lambda: approval_decide(
                request=request, actor=user, verdict=verdict, comment="Seen it." if verdict else ""
            ),
            expect_ok=not refused,
            lapses=expired,
        )
        if expired:
            request.refresh_from_db()
            assert request.status == R.EXPIRED

    @rule(release=releases, action=st.sampled_from(sorted(LIFECYCLE)), who=st.sampled_from(["manager", "approver_a"]))
    def lifecycle(self, release: Release, action: str, who: str) -> None:
        release.refresh_from_db()
        service, edge = LIFECYCLE[action]
        transition = TRANSITIONS[edge]
        allowed = release.status in transition.sources
        if action == "restore":
            allowed = allowed and not Release.objects.filter(application=self.application, status=S.LIVE).exists()
        self.act(
            action,
            lambda: service(release=release, actor=self.people[who], reason="Property test"),
            expect_ok=allowed,
        )

    @rule(release=releases, choice=st.integers(0, 2))
    def advance(self, release: Release, choice: int) -> None:
        """A legal lifecycle call for where the release is now (the random `lifecycle` rule mostly refuses)."""
        release.refresh_from_db()
        forward = {
            S.APPROVED: ["start_rollout"],
            S.ROLLING_OUT: ["go_live", "mark_failed", "roll_back"],
            S.LIVE: ["roll_back"],
            S.SUPERSEDED: ["restore"],
            S.AWAITING_APPROVAL: ["lapse"],
        }.get(release.status)
        if forward:
            self.lifecycle(release=release, action=forward[choice % len(forward)], who="manager")

    @rule(release=releases)
    def advance_furthest(self, release: Release) -> None:
        """Take a release as far as the happy path goes: start its rollout, then go live."""
        self.advance(release=release, choice=0)
        self.advance(release=release, choice=0)

    @rule(hours=st.sampled_from([1, 30, 60]))
    def time_passes(self, hours: int) -> None:
        self._clock.__exit__(None, None, None)
        self.now += timedelta(hours=hours)
        self._clock = clock.frozen(self.now)
        self._clock.__enter__()

    @precondition(lambda self: ApprovalRequest.objects.filter(status=R.PENDING, expires_at__lte=clock.now()).exists())
    @rule()
    def expiry_sweep(self) -> None:
        due = ApprovalRequest.objects.filter(status=R.PENDING, expires_at__lte=clock.now()).count()
        swept: list[int] = []
        self.act("expiry_sweep", lambda: swept.append(approval_expire_due()))
        assert swept == [due]


def test_no_sequence_of_lifecycle_and_approval_actions_reaches_an_illegal_state(db: None) -> None:
    tally = run_and_tally(ReleaseLifecycle, max_examples=40)
    assert_explored(tally, must_succeed={"register", "decide:approve", "decide:reject", "start_rollout", "go_live"})
    assert tally["ok"]["expiry_sweep"] or tally["refused"]["decide:lapsed"], "no request ever expired"
    assert sum(tally["refused"][a] for a in LIFECYCLE) > 0, tally


# --- operations -------------------------------------------------------------------------------------
class Operations(Checked):
    """Promotions of one simulated application: start, run (the job, inline), pause, resume, promote now,
    roll back, application rollback, and faults that fail a step (unhealthy staging, failing swaps)."""

    def __init__(self) -> None:
        super().__init__()
        self.application = ApplicationFactory()
        add_simulated_site(self.application, {"production": "1.0.0", "staging": "1.0.0", "test": "", "dev": ""})
        with_load(self.application)
        self.manager = UserFactory(roles=[Role.RELEASE_MANAGER])
        self.viewer = UserFactory(roles=[Role.VIEWER])
        self.minor = 0
        # The release live in production, as registered and approved long ago.
        first = self._register_approved()
        with transaction.atomic():
            release_services.release_start_rollout(release=first, actor=None)
            release_services.release_go_live(release=first, actor=None)

    def _register_approved(self) -> Release:
        """A build registered into staging (the simulator deploys it there) and approved."""
        version = f"1.{self.minor}.0"
        self.minor += 1
        staging = self.application.slots.get(name="staging")
        release = intake.release_register(
            application=self.application, version=version, actor=self.manager, deployed_slot=staging
        )
        release_services.release_request_approval(release=release, actor=self.manager)
        release_services.release_approve(release=release, actor=self.manager)
        return release

    def _active(self) -> Operation | None:
        return Operation.objects.filter(application=self.application, status__in=OPERATION_ACTIVE).first()

    candidates = Bundle("candidates")
    operations = Bundle("operations")

    @initialize(target=candidates)
    def first_candidate(self) -> Release:
        return self._register_approved()

    @precondition(lambda self: Release.objects.filter(status=S.APPROVED).count() < 2)
    @rule(target=candidates)
    def new_candidate(self) -> Any:
        if self._active() is not None:  # registering into staging while an operation uses it is not modelled
            return multiple()
        box: list[Release] = []
        self.act("new_candidate", lambda: box.append(self._register_approved()))
        return box[0]

    @rule(
        target=operations,
        release=candidates,
        strategy=st.sampled_from(["blue_green", "canary"]),
        viewer=st.sampled_from([False, False, False, True]),
    )
    def start(self, release: Release, strategy: str, viewer: bool) -> Any:
        release.refresh_from_db()
        parameters = (
            FAST_BLUE_GREEN
            if strategy == "blue_green"
            else {**FAST_CANARY, "shares": [10, 100], "bake_seconds": 3600.0}  # waits until promoted now
        )
        actor = self.viewer if viewer else self.manager
        staging = SimulatorSlot.objects.get(application=self.application, slot_name="staging")
        ok = (
            not viewer
            and release.status == S.APPROVED
            and self._active() is None
            and staging.healthy
            and staging.version == release.version
        )
        box: list[Operation] = []
        started = self.act(
            "start",
            lambda: box.append(
                operation_services.operation_start(
                    release=release, strategy=strategy, parameters=parameters, actor=actor
                )
            ),
            expect_ok=ok or None,  # the gates may refuse for reasons of their own; never a wrong success
        )
        return box[0] if started else multiple()

    @rule(target=operations, release=candidates)
    def start_canary(self, release: Release) -> Any:
        return self.start(release=release, strategy="canary", viewer=False)

    @precondition(lambda self: Operation.objects.filter(status=OperationStatus.PAUSED).exists())
    @rule()
    def resume_the_paused_one(self) -> None:
        self.resume(operation=Operation.objects.get(status=OperationStatus.PAUSED))

    @precondition(lambda self: self._active() is not None)
    @rule()
    def run(self) -> None:
        operation = self._active()
        if operation is not None and operation.status != OperationStatus.PAUSED:
            self.act("run", lambda: run_operation(operation.pk))

    @rule(operation=operations)
    def pause(self, operation: Operation) -> None:
        operation.refresh_from_db()
        ok = operation.status in (OperationStatus.PENDING, OperationStatus.RUNNING)
        self.act(
            "pause",
            lambda: operation_services.operation_pause(operation=operation, actor=self.manager),
            expect_ok=ok,
        )

    @rule(operation=operations)
    def resume(self, operation: Operation) -> None:
        operation.refresh_from_db()
        ok = operation.status == OperationStatus.PAUSED
        self.act(
            "resume",
            lambda: operation_services.operation_resume(operation=operation, actor=self.manager),
            expect_ok=ok,
        )

    @rule(operation=operations)
    def promote_now(self, operation: Operation) -> None:
        operation.refresh_from_db()
        ok = (
            None if operation.status in OPERATION_ACTIVE and operation.status != OperationStatus.ROLLING_BACK else False
        )
        self.act(
            "promote_now",
            lambda: operation_services.operation_promote_now(operation=operation, actor=self.manager),
            expect_ok=ok,
        )

    @rule(operation=operations, reason=st.sampled_from(["", "Errors went up", "Errors went up"]))
    def roll_back(self, operation: Operation, reason: str) -> None:
        operation.refresh_from_db()
        # Only a promotion is rolled back: undoing a rollback would bring back what it took away.
        ok = (
            bool(reason)
            and operation.kind == Operation.Kind.PROMOTE
            and operation.status in (OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.PAUSED)
        )
        self.act(
            "roll_back",
            lambda: operation_services.operation_rollback(operation=operation, actor=self.manager, reason=reason),
            expect_ok=ok,
        )

    @precondition(lambda self: self._active() is not None)
    @rule(reason=st.sampled_from(["", "Errors went up"]))
    def roll_back_the_active_one(self, reason: str) -> None:
        # Reached on purpose, not by the luck of the draw: whether the bundle offers `roll_back` an active operation
        # depends on how earlier steps went, which varied with what the process ran before this test.
        operation = self._active()
        if operation is not None:
            self.roll_back(operation=operation, reason=reason)

    @precondition(lambda self: Operation.objects.exists())
    @rule()
    def roll_back_application(self) -> None:
        self.act(
            "roll_back_application",
            lambda: operation_services.application_rollback(
                application=self.application, actor=self.manager, reason="Customers report errors"
            ),
        )

    @rule(slot=st.sampled_from(["staging", "production"]), fault=st.sampled_from(["healthy", "fail_swap"]))
    def toggle_fault(self, slot: str, fault: str) -> None:
        row = SimulatorSlot.objects.get(application=self.application, slot_name=slot)
        setattr(row, fault, not getattr(row, fault))
        row.save(update_fields=[fault])


@pytest.mark.rq
def test_no_sequence_of_operation_actions_reaches_an_illegal_state(db: None, rq_queues: dict[str, Queue]) -> None:
    """rq: a canary's long bake is handed to RQ's scheduler (enqueue_at) on the test Redis database."""
    tally = run_and_tally(Operations)
    assert_explored(tally, must_succeed={"start", "run", "pause", "resume", "promote_now", "roll_back"})
