"""Scheduled flag changes: turn on / off at a time and ramps, applied by the periodic sweep through the
flag services (audited as the system, revision bumped), idempotently; the schedule form and cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.core import clock
from portal.core.errors import DomainError
from releases.audit.models import AuditEvent
from releases.catalog.models import Environment
from strategies.flags import schedules
from strategies.flags.definitions import DefinitionError
from strategies.flags.jobs import apply_due_flag_schedules
from strategies.flags.models import FlagSchedule, FlagSet

pytestmark = pytest.mark.django_db
S = FlagSchedule.Status


def revision(environment: Environment) -> int:
    return FlagSet.objects.get(environment=environment).revision


def test_enable_at_is_applied_by_the_sweep_once_due_as_the_system(
    make_flag: Any, release_manager: User, production: Environment
) -> None:
    flag = make_flag("new-checkout", enabled=False)
    now = clock.now()
    schedule = schedules.schedule_create(
        flag=flag, kind="enable_at", steps=[(now + timedelta(hours=2), None)], actor=release_manager
    )
    assert schedule.status == S.PENDING
    assert schedules.apply_due(now + timedelta(hours=1)) == []
    before = revision(production)

    outcomes = schedules.apply_due(now + timedelta(hours=2, seconds=1))

    flag.refresh_from_db()
    schedule.refresh_from_db()
    assert flag.enabled and schedule.status == S.DONE and schedule.next_at is None
    assert len(outcomes) == 1
    assert revision(production) == before + 1
    event = AuditEvent.objects.filter(action="flag.schedule_applied").get()
    assert event.actor is None and event.actor_label == "system"
    assert f"Schedule #{schedule.pk}" in event.reason
    assert event.before["state"] == "DISABLED" and event.after["state"] == "ENABLED"
    # A second sweep finds nothing: idempotent.
    assert schedules.apply_due(now + timedelta(hours=3)) == []
    assert AuditEvent.objects.filter(action="flag.schedule_applied").count() == 1


def test_a_ramp_rolls_the_variant_out_in_steps(make_flag: Any, release_manager: User, production: Environment) -> None:
    flag = make_flag("new-checkout")
    now = clock.now()
    schedule = schedules.schedule_create(
        flag=flag,
        kind="ramp",
        variant="on",
        steps=[(now, 10), (now + timedelta(days=2), 50), (now + timedelta(days=4), 100)],
        actor=release_manager,
    )
    flag.refresh_from_db()
    # The step due now is applied at once.
    assert flag.rules["fallthrough"] == {"split": [["on", 10], ["off", 90]]}
    assert schedule.next_at == now + timedelta(days=2)

    schedules.apply_due(now + timedelta(days=2, minutes=1))
    flag.refresh_from_db()
    assert flag.rules["fallthrough"] == {"split": [["on", 50], ["off", 50]]}
    assert "ramp step 2 of 3" in AuditEvent.objects.filter(action="flag.schedule_applied").latest("id").reason

    schedules.apply_due(now + timedelta(days=5))
    flag.refresh_from_db()
    schedule.refresh_from_db()
    assert "fallthrough" not in flag.rules and flag.default_variant == "on"
    assert schedule.status == S.DONE
    assert all(step["applied_at"] for step in schedule.steps)
    assert AuditEvent.objects.filter(action="flag.schedule_applied").count() == 3


def test_applying_a_step_that_is_already_in_place_writes_nothing(
    make_flag: Any, release_manager: User, production: Environment
) -> None:
    flag = make_flag("new-checkout", default_variant="on")
    now = clock.now()
    schedule = schedules.schedule_create(
        flag=flag, kind="enable_at", steps=[(now + timedelta(minutes=5), None)], actor=release_manager
    )
    before = revision(production)
    schedules.apply_due(now + timedelta(minutes=6))
    schedule.refresh_from_db()
    assert schedule.status == S.DONE
    assert revision(production) == before
    assert not AuditEvent.objects.filter(action="flag.schedule_applied").exists()


def test_a_sweep_that_lost_the_race_rolls_its_change_back(
    make_flag: Any, release_manager: User, production: Environment
) -> None:
    flag = make_flag("new-checkout", enabled=False)
    now = clock.now()
    schedule = schedules.schedule_create(
        flag=flag, kind="enable_at", steps=[(now + timedelta(minutes=5), None)], actor=release_manager
    )
    stale = FlagSchedule.objects.get(pk=schedule.pk)
    schedules.schedule_cancel(schedule=schedule, actor=release_manager)
    with pytest.raises(schedules._Raced):
        from django.db import transaction

        with transaction.atomic():
            schedules._apply(stale, now + timedelta(minutes=6))
    flag.refresh_from_db()
    assert not flag.enabled


def test_cancelled_schedules_are_not_applied_and_cancel_is_audited(make_flag: Any, release_manager: User) -> None:
    flag = make_flag("new-checkout")
    now = clock.now()
    schedule = schedules.schedule_create(
        flag=flag, kind="disable_at", steps=[(now + timedelta(hours=1), None)], actor=release_manager
    )
    schedules.schedule_cancel(schedule=schedule, actor=release_manager)
    assert schedules.apply_due(now + timedelta(hours=2)) == []
    flag.refresh_from_db()
    assert flag.enabled
    assert AuditEvent.objects.filter(action="flag_schedule.cancelled").count() == 1
    with pytest.raises(DomainError):
        schedules.schedule_cancel(schedule=schedule, actor=release_manager)


def test_bad_ramps_are_refused_naming_the_field(make_flag: Any, release_manager: User) -> None:
    flag = make_flag("new-checkout")
    now = clock.now()
    with pytest.raises(DefinitionError) as exc:
        schedules.schedule_create(
            flag=flag,
            kind="ramp",
            variant="on",
            steps=[(now, 50), (now + timedelta(days=1), 20)],
            actor=release_manager,
        )
    assert "steps" in exc.value.errors
    with pytest.raises(DefinitionError) as exc:
        schedules.schedule_create(flag=flag, kind="ramp", variant="off", steps=[(now, 10)], actor=release_manager)
    assert "variant" in exc.value.errors


def test_a_step_that_can_no_longer_apply_cancels_the_schedule(make_flag: Any, release_manager: User) -> None:
    from strategies.flags import services

    flag = make_flag("checkout-theme", flag_type="string", variants={"a": "a", "b": "b"}, default_variant="a")
    now = clock.now()
    schedule = schedules.schedule_create(
        flag=flag, kind="ramp", variant="b", steps=[(now + timedelta(hours=1), 20)], actor=release_manager
    )
    services.flag_update(flag=flag, actor=release_manager, variants={"a": "a", "c": "c"})
    outcomes = schedules.apply_due(now + timedelta(hours=2))
    schedule.refresh_from_db()
    assert schedule.status == S.CANCELLED and "cancelled" in outcomes[0]
    assert AuditEvent.objects.filter(action="flag_schedule.failed").count() == 1


def test_the_periodic_job_applies_due_schedules(make_flag: Any, release_manager: User) -> None:
    flag = make_flag("new-checkout")
    schedules.schedule_create(
        flag=flag, kind="disable_at", steps=[(clock.now() - timedelta(seconds=1), None)], actor=release_manager
    )
    flag.refresh_from_db()
    assert not flag.enabled  # due at creation: applied at once
    assert apply_due_flag_schedules() == {"outcomes": []}


def test_the_flag_page_schedules_and_cancels(client: Client, make_flag: Any, release_manager: User) -> None:
    flag = make_flag("new-checkout")
    client.force_login(release_manager)

    response = client.post(
        f"/apps/checkout/flags/{flag.pk}/schedule",
        {"kind": "ramp", "variant": "on", "steps": "now 10\n+2d 50\n+4d 100"},
    )
    assert response.status_code == 302
    schedule = FlagSchedule.objects.get()
    assert [s["percent"] for s in schedule.steps] == [10, 50, 100]
    page = client.get(flag.get_absolute_url())
    assert b"Scheduled changes" in page.content and b"Ramp up a variant" in page.content

    bad = client.post(f"/apps/checkout/flags/{flag.pk}/schedule", {"kind": "enable_at", "when": "tomorrow-ish"})
    assert bad.status_code == 400 and "is not a time" in bad.content.decode()

    response = client.post(f"/apps/checkout/flag-schedules/{schedule.pk}/cancel")
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.status == S.CANCELLED


def test_viewers_cannot_schedule(client: Client, make_flag: Any, viewer: User) -> None:
    flag = make_flag("new-checkout")
    client.force_login(viewer)
    response = client.post(f"/apps/checkout/flags/{flag.pk}/schedule", {"kind": "enable_at", "when": "now"})
    assert response.status_code == 403
    assert not FlagSchedule.objects.exists()
