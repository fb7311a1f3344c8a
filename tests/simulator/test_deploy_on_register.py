"""On the simulator, registering a build deployed to a slot plays the pipeline's deploy."""

from __future__ import annotations

import pytest

from portal.core import clock
from portal.core.errors import DomainError
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, SimulatorSlot, Slot
from releases.catalog.providers.simulator import SimulatorProvider
from releases.intake import services as intake

pytestmark = pytest.mark.django_db


def test_registering_a_build_on_staging_puts_it_on_the_simulated_staging_slot(checkout: Application) -> None:
    staging = Slot.objects.get(application=checkout, name="staging")

    release = intake.release_register(application=checkout, version="1.3.0", actor=None, deployed_slot=staging)

    assert SimulatorSlot.objects.get(application=checkout, slot_name="staging").version == "1.3.0"
    states = {s.name: s.version for s in SimulatorProvider().slot_states(checkout)}
    assert states["staging"] == "1.3.0"
    assert states["production"] == "1.0.0"
    staging.refresh_from_db()
    assert (staging.running_version, staging.current_release) == ("1.3.0", release)
    event = AuditEvent.objects.get(action="simulator.deployed")
    assert (event.before, event.after) == ({"version": "1.1.0"}, {"version": "1.3.0"})


def test_a_duplicate_version_deploys_nothing(checkout: Application) -> None:
    staging = Slot.objects.get(application=checkout, name="staging")
    intake.release_register(application=checkout, version="1.3.0", actor=None, deployed_slot=staging)
    test_slot = Slot.objects.get(application=checkout, name="test")

    with pytest.raises(DomainError, match=r"already has a release 1\.3\.0"):
        intake.release_register(application=checkout, version="1.3.0", actor=None, deployed_slot=test_slot)

    assert SimulatorSlot.objects.get(application=checkout, slot_name="test").version == "1.1.0"
    assert AuditEvent.objects.filter(action="simulator.deployed").count() == 1


def test_registering_without_a_slot_deploys_nothing(checkout: Application) -> None:
    intake.release_register(application=checkout, version="1.3.0", actor=None)

    assert not AuditEvent.objects.filter(action="simulator.deployed").exists()
    assert SimulatorSlot.objects.get(application=checkout, slot_name="staging").version == "1.1.0"


def test_a_build_staged_for_production_is_staged_in_each_ring_target_too(checkout: Application) -> None:
    from strategies.operations.models import Ring
    from tests.factories import ApplicationFactory, add_simulated_site

    staff = ApplicationFactory(name="Checkout staff", slug="checkout-staff")
    add_simulated_site(staff)
    ring = Ring.objects.create(application=checkout, position=0, name="Staff", kind=Ring.Kind.TARGETS)
    ring.targets.set([staff])

    intake.release_register(
        application=checkout,
        version="1.3.0",
        actor=None,
        deployed_slot=Slot.objects.get(application=checkout, name="test"),
    )
    assert SimulatorSlot.objects.get(application=staff, slot_name="staging").version != "1.3.0", "only pre-production"

    intake.release_register(
        application=checkout,
        version="1.4.0",
        actor=None,
        deployed_slot=Slot.objects.get(application=checkout, name="staging"),
    )
    assert SimulatorSlot.objects.get(application=staff, slot_name="staging").version == "1.4.0"
    assert SimulatorSlot.objects.get(application=staff, slot_name="production").version == "1.0.0"
    assert Slot.objects.get(application=staff, name="staging").running_version == "1.4.0"
    assert AuditEvent.objects.filter(action="simulator.deployed", application=staff).count() == 1


def test_deploying_another_build_starts_the_slot_with_no_request_history(checkout: Application) -> None:
    from releases.catalog.models import SimulatorMetricBucket
    from releases.catalog.simulator.services import simulator_deploy

    staging = SimulatorSlot.objects.get(application=checkout, slot_name="staging")
    production = SimulatorSlot.objects.get(application=checkout, slot_name="production")
    for slot in (staging, production):
        SimulatorMetricBucket.objects.create(
            slot=slot, minute=clock.now().replace(second=0, microsecond=0), source="served", requests=5
        )

    simulator_deploy(application=checkout, slot_name="staging", version=staging.version, actor=None)
    assert SimulatorMetricBucket.objects.filter(slot=staging).count() == 1, "the same build keeps its history"
    simulator_deploy(application=checkout, slot_name="staging", version="9.0.0", actor=None)

    assert not SimulatorMetricBucket.objects.filter(slot=staging).exists()
    assert SimulatorMetricBucket.objects.filter(slot=production).count() == 1
