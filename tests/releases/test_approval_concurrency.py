"""Approvers deciding at the same moment, each in their own thread with their own database connection.

PostgreSQL only: this is about row locks (SELECT ... FOR UPDATE) between concurrent transactions,
which SQLite does not have (it serialises whole-database writes instead).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, connections

from portal.core.errors import DomainError
from portal.core.roles import Role
from releases.approvals.models import ApprovalRequest, ApprovalRequestStatus
from releases.approvals.workflow import approval_decide
from releases.audit.models import AuditEvent
from releases.catalog.models import ReleaseStatus, Stage
from releases.intake import services as intake
from tests.factories import ApplicationFactory, ApprovalPolicyFactory, UserFactory, add_simulated_site

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="Concurrent decisions need PostgreSQL's row locks; run with DATABASE_URL=postgres://...",
    ),
]

ROUNDS = 8  # races are probabilistic: several rounds make a lost update very likely to show


def at_once(calls: list[Callable[[], object]]) -> list[object]:
    """Run each call in its own thread, all released together; return each result or the DomainError raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except DomainError as exc:
            results[index] = exc
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a decision hung"
    return results


@pytest.fixture
def approvers() -> list[User]:
    return [UserFactory(username=f"approver-{n}", roles=[Role.APPROVER]) for n in range(3)]


def open_request(version: str, approvals_required: int) -> ApprovalRequest:
    application = ApplicationFactory(slug=f"app-{version.replace('.', '-')}")
    add_simulated_site(application)  # registering plays the deploy, so approvers find the build on staging
    ApprovalPolicyFactory(
        environment=application.environments.get(stage=Stage.PRODUCTION),
        approvals_required=approvals_required,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
    )
    manager = UserFactory(roles=[Role.RELEASE_MANAGER])
    release = intake.release_register(
        application=application, version=version, actor=manager, deployed_slot=application.slots.get(name="staging")
    )
    return ApprovalRequest.objects.get(release=release)


def test_two_approvers_clicking_at_once_both_count_exactly_once(approvers: list[User]) -> None:
    for round_ in range(ROUNDS):
        request = open_request(f"2.0.{round_}", approvals_required=2)

        results = at_once(
            [
                partial(approval_decide, request=request, actor=approvers[0], verdict="approve"),
                partial(approval_decide, request=request, actor=approvers[1], verdict="approve"),
            ]
        )

        assert not [r for r in results if isinstance(r, DomainError)]
        request.refresh_from_db()
        assert request.status == ApprovalRequestStatus.APPROVED
        assert request.decisions.count() == 2
        assert request.release.status == ReleaseStatus.APPROVED
        events = AuditEvent.objects.filter(object_id__in=[str(request.pk), str(request.release.pk)])
        assert events.filter(action="approval.decided").count() == 2
        assert events.filter(action="approval.approved").count() == 1
        assert events.filter(action="release.approved").count() == 1


def test_three_approvers_at_once_on_two_needed_settle_it_once_and_the_third_is_told(approvers: list[User]) -> None:
    for round_ in range(ROUNDS):
        request = open_request(f"3.0.{round_}", approvals_required=2)

        results = at_once(
            [partial(approval_decide, request=request, actor=user, verdict="approve") for user in approvers]
        )

        refused = [r for r in results if isinstance(r, DomainError)]
        assert len(refused) == 1
        assert "already approved" in str(refused[0])
        request.refresh_from_db()
        assert request.decisions.count() == 2
        assert request.status == ApprovalRequestStatus.APPROVED
        assert AuditEvent.objects.filter(action="release.approved", object_id=str(request.release.pk)).count() == 1


def test_the_same_approver_twice_at_once_decides_once(approvers: list[User]) -> None:
    for round_ in range(ROUNDS):
        request = open_request(f"4.0.{round_}", approvals_required=2)
        decide = partial(approval_decide, request=request, actor=approvers[0], verdict="approve")

        results = at_once([decide, decide])

        refused = [r for r in results if isinstance(r, DomainError)]
        assert len(refused) == 1
        assert "You already approved this request" in str(refused[0])
        request.refresh_from_db()
        assert request.decisions.count() == 1
        assert request.status == ApprovalRequestStatus.PENDING


def test_an_approval_and_a_rejection_at_once_end_in_exactly_one_outcome(approvers: list[User]) -> None:
    for round_ in range(ROUNDS):
        request = open_request(f"5.0.{round_}", approvals_required=1)

        results = at_once(
            [
                partial(approval_decide, request=request, actor=approvers[0], verdict="approve"),
                partial(
                    approval_decide,
                    request=request,
                    actor=approvers[1],
                    verdict="reject",
                    comment="Broken on mobile",
                ),
            ]
        )

        # Whoever locked the request first settled it; the other was told it is settled.
        refused = [r for r in results if isinstance(r, DomainError)]
        assert len(refused) == 1
        request.refresh_from_db()
        assert request.decisions.count() == 1
        expected = {ApprovalRequestStatus.APPROVED: ReleaseStatus.APPROVED, "rejected": ReleaseStatus.REJECTED}
        assert request.release.status == expected[request.status]
