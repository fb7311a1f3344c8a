"""`manage.py seed_demo`: a believable organisation, and running it again changes nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from releases.demo import DEMO_USERS
from releases.models import (
    Application,
    ApprovalRequest,
    AuditEvent,
    Environment,
    Operation,
    Release,
    ReleaseStatus,
    SimulatorSlot,
    Slot,
)

pytestmark = pytest.mark.django_db

MODELS = [Application, Slot, Environment, Release, ApprovalRequest, Operation, AuditEvent, SimulatorSlot]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_the_demo_has_three_applications_with_four_stages_weeks_of_history_and_one_live_release_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    call_command("seed_demo")

    assert Application.objects.count() == 3
    for application in Application.objects.all():
        assert sorted(application.environments.values_list("stage", flat=True)) == ["dev", "preprod", "prod", "test"]
        assert application.releases.filter(status=ReleaseStatus.LIVE).count() == 1
        assert application.releases.count() >= 8
        production = application.slots.get(is_production=True)
        assert production.current_release == application.releases.get(status=ReleaseStatus.LIVE)
    oldest = AuditEvent.objects.order_by("created_at").first()
    newest = AuditEvent.objects.order_by("created_at").last()
    assert (newest.created_at - oldest.created_at).days >= 28
    assert Operation.objects.filter(status="succeeded").exists()
    assert Release.objects.filter(status=ReleaseStatus.REJECTED).exists()
    assert Release.objects.filter(status=ReleaseStatus.ROLLED_BACK).exists()
    for username, password, role in DEMO_USERS:
        user = authenticate(username=username, password=password)
        assert user is not None, username
        assert user.groups.filter(name=role).exists()
    assert "Checkout Web:" in capsys.readouterr().out


def test_running_it_again_changes_nothing() -> None:
    call_command("seed_demo")
    before = counts()

    call_command("seed_demo")

    assert counts() == before
