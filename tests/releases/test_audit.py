"""The audit trail is written in the transaction of the change it records, and says where it came from."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from portal.core import clock
from portal.core.roles import Role
from releases.approvals.models import ApprovalRequest
from releases.audit.models import AuditEvent
from releases.audit.services import audit_record, origin
from releases.catalog import services
from releases.catalog.models import ReleaseStatus
from releases.intake import services as intake
from tests.factories import ApplicationFactory, ApprovalPolicyFactory, ApprovalRequestFactory, ReleaseFactory


class Abandoned(Exception):
    """Raised by a test to abandon the surrounding transaction."""


@pytest.mark.django_db
def test_a_rolled_back_transaction_takes_the_audit_event_with_it(approver: User) -> None:
    release = ReleaseFactory(status=ReleaseStatus.AWAITING_APPROVAL)

    with pytest.raises(Abandoned), transaction.atomic():
        services.release_approve(release=release, actor=approver)
        assert AuditEvent.objects.filter(action="release.approved").count() == 1  # written, not yet committed
        raise Abandoned

    release.refresh_from_db()
    assert release.status == ReleaseStatus.AWAITING_APPROVAL
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_rolled_back_registration_leaves_neither_release_nor_audit_event(release_manager: User) -> None:
    application = ApplicationFactory()

    with pytest.raises(Abandoned), transaction.atomic():
        intake.release_register(application=application, version="4.0.0", actor=release_manager)
        raise Abandoned

    assert application.releases.count() == 0
    assert AuditEvent.objects.count() == 0


# Transactional: the ordinary django_db test runs inside a transaction, which would hide the mistake.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_it_refuses_to_write_an_audit_event_outside_a_transaction() -> None:
    application = ApplicationFactory(environments=False)

    with pytest.raises(RuntimeError, match=r"must be called inside transaction\.atomic\(\)"):
        audit_record(actor=None, action="application.touched", obj=application, application=application)

    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_frozen_time_pins_when_the_event_happened(approver: User) -> None:
    moment = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    release = ReleaseFactory(status=ReleaseStatus.AWAITING_APPROVAL)

    with clock.frozen(moment):
        services.release_approve(release=release, actor=approver)

    release.refresh_from_db()
    assert AuditEvent.objects.get().created_at == moment
    assert release.approved_at == moment


def test_frozen_time_needs_an_aware_moment() -> None:
    with pytest.raises(ValueError, match="aware datetime"), clock.frozen(datetime(2026, 1, 5, 14, 0)):
        pass  # pragma: no cover


def test_frozen_time_ends_with_its_block() -> None:
    moment = datetime(2001, 1, 1, tzinfo=UTC)

    with clock.frozen(moment):
        assert clock.now() == moment
    assert clock.now() > moment


@pytest.mark.django_db
def test_an_event_written_outside_a_request_or_job_says_it_came_from_a_shell(approver: User) -> None:
    release = ReleaseFactory(status=ReleaseStatus.AWAITING_APPROVAL)

    services.release_approve(release=release, actor=approver)

    assert AuditEvent.objects.get().origin == {"via": "shell"}


@pytest.mark.django_db
def test_an_explicit_origin_is_recorded_without_its_empty_values(approver: User) -> None:
    release = ReleaseFactory(status=ReleaseStatus.AWAITING_APPROVAL)

    with origin(via="job", job_id="job-42", ip=""):
        services.release_approve(release=release, actor=approver)

    assert AuditEvent.objects.get().origin == {"via": "job", "job_id": "job-42"}


def _approvable(approvals_required: int = 1) -> ApprovalRequest:
    """A pending request for production under a policy that the Approver group decides."""
    approval = ApprovalRequestFactory(approvals_required=approvals_required)
    ApprovalPolicyFactory(
        environment=approval.environment,
        approvals_required=approvals_required,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
    )
    return approval


@pytest.mark.django_db
def test_an_event_written_by_a_web_request_carries_its_request_id_address_and_agent(
    client: Client, approver: User
) -> None:
    approval = _approvable()
    client.force_login(approver)

    response = client.post(
        reverse("approval_decide", args=[approval.pk]),
        {"verdict": "approve", "comment": "Looks good"},
        headers={"X-Request-ID": "req-7f3a", "User-Agent": "pytest-browser/1.0"},
        REMOTE_ADDR="203.0.113.9",
    )

    assert response.status_code == 302
    assert response.headers["X-Request-ID"] == "req-7f3a"
    events = list(AuditEvent.objects.order_by("id"))
    assert [event.action for event in events] == ["approval.decided", "approval.approved", "release.approved"]
    assert {event.actor for event in events} == {approver}
    assert events[0].reason == "Looks good"
    for event in events:
        assert event.origin == {
            "via": "web",
            "request_id": "req-7f3a",
            "ip": "203.0.113.9",
            "user_agent": "pytest-browser/1.0",
        }


@pytest.mark.django_db
def test_a_web_request_without_a_request_id_gets_one_that_matches_its_audit_event(
    client: Client, approver: User
) -> None:
    approval = _approvable()
    client.force_login(approver)

    response = client.post(reverse("approval_decide", args=[approval.pk]), {"verdict": "approve"})

    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32
    assert {event.origin["request_id"] for event in AuditEvent.objects.all()} == {request_id}
