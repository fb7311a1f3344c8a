"""The release lifecycle: every transition from every status, registration, and going live."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User

from portal.core import clock
from portal.core.errors import DomainError
from releases.audit.models import AuditEvent
from releases.catalog import services
from releases.catalog.models import Release, ReleaseStatus
from releases.intake import services as intake
from tests.factories import ApplicationFactory, ReleaseFactory

pytestmark = pytest.mark.django_db

S = ReleaseStatus
MOMENT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _supersede(*, release: Release, actor: Any, reason: str) -> Release:
    # No service of its own: only release_go_live supersedes, through the same guarded transition.
    return services._transition(release, "release.superseded", actor=actor, reason=reason)


# The lifecycle as designed, written out independently of services.TRANSITIONS:
# audit action -> (the service that performs it, the statuses it may start from, the status it ends in).
LIFECYCLE: dict[str, tuple[Callable[..., Release], set[str], str]] = {
    "release.approval_requested": (services.release_request_approval, {S.REGISTERED}, S.AWAITING_APPROVAL),
    "release.approval_lapsed": (services.release_lapse_approval, {S.AWAITING_APPROVAL}, S.REGISTERED),
    "release.approved": (services.release_approve, {S.AWAITING_APPROVAL}, S.APPROVED),
    "release.rejected": (services.release_reject, {S.AWAITING_APPROVAL}, S.REJECTED),
    "release.rollout_started": (services.release_start_rollout, {S.APPROVED}, S.ROLLING_OUT),
    "release.went_live": (services.release_go_live, {S.ROLLING_OUT}, S.LIVE),
    "release.rollout_failed": (services.release_mark_failed, {S.ROLLING_OUT}, S.FAILED),
    "release.rolled_back": (services.release_roll_back, {S.ROLLING_OUT, S.LIVE}, S.ROLLED_BACK),
    "release.superseded": (_supersede, {S.LIVE}, S.SUPERSEDED),
    "release.restored": (services.release_restore, {S.SUPERSEDED}, S.LIVE),
}

MATRIX = [(status, action) for action in LIFECYCLE for status in S.values]
LEGAL = [(status, action) for status, action in MATRIX if status in LIFECYCLE[action][1]]
ILLEGAL = [(status, action) for status, action in MATRIX if status not in LIFECYCLE[action][1]]


def test_the_lifecycle_table_is_the_one_designed() -> None:
    assert {action: (set(t.sources), t.target) for action, t in services.TRANSITIONS.items()} == {
        action: (sources, target) for action, (_service, sources, target) in LIFECYCLE.items()
    }


def test_terminal_statuses_have_no_way_out() -> None:
    for status in (S.REJECTED, S.ROLLED_BACK, S.FAILED):
        assert services.allowed_targets(status) == set()
    assert services.allowed_targets(S.LIVE) == {S.ROLLED_BACK, S.SUPERSEDED}


@pytest.mark.parametrize(("status", "action"), LEGAL)
def test_a_legal_transition_changes_the_status_and_writes_one_audit_event(
    status: str, action: str, release_manager: User
) -> None:
    service, _sources, target = LIFECYCLE[action]
    release = ReleaseFactory(status=status)

    with clock.frozen(MOMENT):
        returned = service(release=release, actor=release_manager, reason="Checked by the test suite")

    release.refresh_from_db()
    assert returned.status == release.status == target
    assert release.status_changed_at == MOMENT
    assert (release.approved_at == MOMENT) is (target == S.APPROVED)
    assert (release.live_at == MOMENT) is (target == S.LIVE)
    event = AuditEvent.objects.get()
    assert event.action == action
    assert event.actor == release_manager
    assert event.actor_label == release_manager.username
    assert (event.object_type, event.object_id, event.object_repr) == (
        "releases.release",
        str(release.pk),
        str(release),
    )
    assert event.application == release.application
    assert event.before["status"] == status
    assert event.after["status"] == target
    assert event.reason == "Checked by the test suite"
    assert event.created_at == MOMENT


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_an_illegal_transition_is_refused_and_changes_nothing(status: str, action: str, release_manager: User) -> None:
    service, _sources, _target = LIFECYCLE[action]
    release = ReleaseFactory(status=status)
    changed_at = release.status_changed_at

    with pytest.raises(DomainError) as refused:
        service(release=release, actor=release_manager, reason="Checked by the test suite")

    release.refresh_from_db()
    assert str(release) in str(refused.value)
    assert f" is {release.get_status_display().lower()}, so it cannot be " in str(refused.value)
    assert release.status == status
    assert release.status_changed_at == changed_at
    assert AuditEvent.objects.count() == 0


def test_the_matrix_covers_every_status_and_every_transition() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(S.values) * len(services.TRANSITIONS)
    assert len(LEGAL) == sum(len(t.sources) for t in services.TRANSITIONS.values())


# --- Going live ----------------------------------------------------------------------------------


def test_going_live_supersedes_the_previous_live_release_of_the_same_application(release_manager: User) -> None:
    previous = ReleaseFactory(status=S.LIVE, version="1.0.0")
    elsewhere = ReleaseFactory(status=S.LIVE)
    new = ReleaseFactory(application=previous.application, status=S.ROLLING_OUT, version="1.1.0")

    services.release_go_live(release=new, actor=release_manager)

    previous.refresh_from_db()
    elsewhere.refresh_from_db()
    assert (new.status, previous.status, elsewhere.status) == (S.LIVE, S.SUPERSEDED, S.LIVE)
    events = {event.action: event for event in AuditEvent.objects.all()}
    assert set(events) == {"release.superseded", "release.went_live"}
    assert events["release.superseded"].object_id == str(previous.pk)
    assert events["release.superseded"].reason == "Superseded by 1.1.0"
    assert events["release.superseded"].before["status"] == S.LIVE
    assert events["release.went_live"].object_id == str(new.pk)


def test_a_release_that_cannot_go_live_leaves_the_live_one_in_place(release_manager: User) -> None:
    live = ReleaseFactory(status=S.LIVE)
    approved = ReleaseFactory(application=live.application, status=S.APPROVED)

    with pytest.raises(DomainError, match="cannot be marked live"):
        services.release_go_live(release=approved, actor=release_manager)

    live.refresh_from_db()
    approved.refresh_from_db()
    assert (live.status, approved.status) == (S.LIVE, S.APPROVED)
    assert AuditEvent.objects.count() == 0


def test_it_refuses_to_restore_a_release_while_another_is_live(release_manager: User) -> None:
    live = ReleaseFactory(status=S.LIVE)
    superseded = ReleaseFactory(application=live.application, status=S.SUPERSEDED)

    # A rule refusal must be a DomainError (shown to the person), not an IntegrityError (a 500).
    with pytest.raises(DomainError):
        services.release_restore(release=superseded, actor=release_manager, reason="Roll back to the last good build")

    superseded.refresh_from_db()
    assert superseded.status == S.SUPERSEDED


# --- Reasons -------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   \n"])
def test_it_refuses_a_rejection_without_a_reason(reason: str, approver: User) -> None:
    release = ReleaseFactory(status=S.AWAITING_APPROVAL)

    with pytest.raises(DomainError, match="a rejection needs a comment"):
        services.release_reject(release=release, actor=approver, reason=reason)

    release.refresh_from_db()
    assert release.status == S.AWAITING_APPROVAL
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize("reason", ["", "  "])
def test_it_refuses_a_rollback_without_a_reason(reason: str, release_manager: User) -> None:
    release = ReleaseFactory(status=S.LIVE)

    with pytest.raises(DomainError, match="a rollback needs a reason"):
        services.release_roll_back(release=release, actor=release_manager, reason=reason)

    release.refresh_from_db()
    assert release.status == S.LIVE
    assert AuditEvent.objects.count() == 0


# --- Registration --------------------------------------------------------------------------------


def test_registering_a_release_records_who_and_what(release_manager: User) -> None:
    application = ApplicationFactory()
    staging = application.slots.get(name="staging")

    with clock.frozen(MOMENT):
        release = intake.release_register(
            application=application,
            version="  3.2.1 ",
            actor=release_manager,
            build_id="build-881",
            commit_sha="9fceb02",
            branch="main",
            deployed_slot=staging,
        )

    release.refresh_from_db()
    assert release.version == "3.2.1"
    assert release.status == S.REGISTERED
    assert release.created_by == release_manager
    assert release.created_at == release.status_changed_at == MOMENT
    assert release.deployed_slot == staging
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.application) == ("release.registered", release_manager, application)
    assert event.before is None
    assert event.after == {
        "version": "3.2.1",
        "build_id": "build-881",
        "commit_sha": "9fceb02",
        "committed_at": None,
        "branch": "main",
        "status": "registered",
        "deployed_slot": staging.pk,
    }


def test_a_pipeline_registration_without_a_person_is_recorded_as_the_system() -> None:
    release = intake.release_register(application=ApplicationFactory(), version="1.0.0", actor=None)

    assert release.created_by is None
    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_label) == (None, "system")


def test_it_refuses_a_version_already_registered_for_the_application(release_manager: User) -> None:
    existing = ReleaseFactory(version="2.0.0")

    with pytest.raises(DomainError) as refused:
        intake.release_register(application=existing.application, version="2.0.0 ", actor=release_manager)

    assert str(refused.value) == f"{existing.application.name} already has a release 2.0.0."
    assert Release.objects.count() == 1
    assert AuditEvent.objects.count() == 0


def test_the_same_version_may_be_registered_for_another_application(release_manager: User) -> None:
    existing = ReleaseFactory(version="2.0.0")

    release = intake.release_register(application=ApplicationFactory(), version="2.0.0", actor=release_manager)

    assert release.application != existing.application
    assert Release.objects.filter(version="2.0.0").count() == 2


@pytest.mark.parametrize("version", ["", "   "])
def test_it_refuses_a_release_without_a_version(version: str, release_manager: User) -> None:
    with pytest.raises(DomainError, match="A release needs a version"):
        intake.release_register(application=ApplicationFactory(), version=version, actor=release_manager)

    assert Release.objects.count() == 0


def test_it_refuses_a_slot_of_another_application(release_manager: User) -> None:
    application = ApplicationFactory(name="Checkout")
    other = ApplicationFactory(name="Billing")
    foreign_slot = other.slots.get(name="staging")

    with pytest.raises(DomainError) as refused:
        intake.release_register(
            application=application, version="1.0.0", actor=release_manager, deployed_slot=foreign_slot
        )

    assert str(refused.value) == "Slot 'staging' does not belong to Checkout."
    assert Release.objects.count() == 0
    assert AuditEvent.objects.count() == 0
