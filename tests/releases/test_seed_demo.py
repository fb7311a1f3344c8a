"""`manage.py seed_demo`: a believable organisation, and running it again changes nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from portal.demo.organisation import DEMO_USERS
from releases.approvals.models import ApprovalRequest
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Environment, Release, ReleaseStatus, SimulatorSlot, Slot
from strategies.operations.models import Operation

pytestmark = pytest.mark.django_db

MODELS = [Application, Slot, Environment, Release, ApprovalRequest, Operation, AuditEvent, SimulatorSlot]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_the_demo_has_three_applications_with_four_stages_weeks_of_history_and_one_live_release_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    call_command("seed_demo")

    assert Application.objects.count() == 4
    staff = Application.objects.get(slug="checkout-web-staff")  # a ring target: no releases of its own
    assert not staff.releases.exists()
    rings = list(Application.objects.get(slug="checkout-web").rings.order_by("position"))
    assert [(r.name, r.kind, r.traffic_percent, r.requires_approval) for r in rings] == [
        ("Staff", "targets", None, False),
        ("Early adopters", "traffic", 10, True),
    ]
    assert list(rings[0].targets.all()) == [staff]
    checkout_versions = dict(
        SimulatorSlot.objects.filter(application__slug="checkout-web").values_list("slot_name", "version")
    )
    staff_versions = dict(SimulatorSlot.objects.filter(application=staff).values_list("slot_name", "version"))
    assert staff_versions["production"] == checkout_versions["production"]
    assert staff_versions["staging"] == checkout_versions["staging"]
    for application in Application.objects.exclude(pk=staff.pk):
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
        user = authenticate(RequestFactory().post("/login/"), username=username, password=password)  # axes wants one
        assert user is not None, username
        assert user.groups.filter(name=role).exists()
    out = capsys.readouterr().out
    assert "Checkout Web:" in out and "rings Staff (Checkout Web (staff))" in out


def test_running_it_again_changes_nothing() -> None:
    call_command("seed_demo")
    before = counts()

    call_command("seed_demo")

    assert counts() == before
