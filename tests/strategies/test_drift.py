"""Drift detection on the simulator: production changed behind Slipway's back is found, shown, mailed,
blocks promotions, and is repaired with one click through the engine (real RQ workers, real pages)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse
from rq import Queue, SimpleWorker

from portal.core.errors import DomainError, ErrorCode
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSlot
from releases.catalog.providers.simulator import SimulatorProvider
from strategies.operations import services
from strategies.operations.models import Drift, Operation, OperationStatus, Ring
from strategies.operations.reconcile import drift_repair, reconcile, reconcile_all_job
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_RINGS, VERSIONS, drive

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def run(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def where_it_runs(application: Application) -> dict[str, tuple[str, int, str]]:
    return {
        s.slot_name: (s.version, s.routing_percent, s.preview_target)
        for s in SimulatorSlot.objects.filter(application=application)
    }


def swap_in_the_azure_portal(application: Application) -> None:
    """A person swaps staging into production with the provider's own tools, not through Slipway."""
    SimulatorProvider().begin_swap(application, "staging", "production").result(timeout=10)


def test_a_swap_behind_slipways_back_is_found_shown_mailed_blocks_promotion_and_is_repaired(
    client: Client,
    rq_queues: dict[str, Queue],
    checkout: Application,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    release_manager.email = "rita@example.com"
    release_manager.save()
    assert reconcile(checkout) is None, "production runs the live release: no drift"
    swap_in_the_azure_portal(checkout)

    assert reconcile_all_job() == {"drifted": ["checkout"]}

    drift = Drift.objects.get(application=checkout, resolved_at__isnull=True)
    assert [f["kind"] for f in drift.findings] == ["version"]
    assert drift.summary == "production runs 1.1.0, but the live release is 1.0.0."
    found = AuditEvent.objects.get(action="drift.found")
    assert found.object_id == str(drift.pk) and found.after["findings"] == drift.findings
    run(rq_queues["notifications"])
    assert [m.to for m in mail.outbox] == [["rita@example.com"]]
    assert "production runs 1.1.0, but the live release is 1.0.0" in mail.outbox[0].body
    assert reconcile(checkout).pk == drift.pk, "checking again finds the same drift, not a new one"
    assert AuditEvent.objects.filter(action="drift.found").count() == 1

    metrics = client.get("/metrics")  # from loopback, as the test client is, without METRICS_TOKEN
    assert "slipway_drifts_open 1.0" in metrics.text, metrics.text[-2000:]
    client.force_login(release_manager)
    dashboard = client.get(reverse("dashboard"))
    assert "Production has drifted from what Slipway says" in dashboard.text
    assert "production runs 1.1.0, but the live release is 1.0.0." in dashboard.text
    page = client.get(checkout.get_absolute_url())
    assert 'id="drift"' in page.text and "Repair: put production back as Slipway says" in page.text

    with pytest.raises(DomainError) as refused:
        services.operation_start(release=candidate, strategy="blue_green", parameters={}, actor=release_manager)
    assert refused.value.code == ErrorCode.PROMOTION_BLOCKED
    assert "production has drifted" in str(refused.value)

    answer = client.post(reverse("application_drift_repair", args=[checkout.slug]))

    repair = Operation.objects.get(kind=Operation.Kind.REPAIR)
    assert answer.status_code == 302 and answer["Location"] == reverse("operation_detail", args=[repair.pk])
    drive(rq_queues["operations"], repair)
    assert repair.status == OperationStatus.SUCCEEDED, repair.error
    assert where_it_runs(checkout)["production"] == ("1.0.0", 0, "")
    run(rq_queues["default"])  # the engine queued a reconciliation when the repair ended

    drift.refresh_from_db()
    assert drift.resolved_at is not None and drift.repair_id == repair.pk
    assert drift.resolution == f"Production matches again after repair #{repair.pk}."
    assert AuditEvent.objects.filter(action="drift.resolved", object_id=str(drift.pk)).count() == 1
    live.refresh_from_db()
    assert live.status == ReleaseStatus.LIVE
    assert "Production has drifted" not in client.get(reverse("dashboard")).text
    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    drive(rq_queues["operations"], operation)
    assert operation.status == OperationStatus.SUCCEEDED


def test_routing_and_a_preview_left_behind_are_drift_and_the_repair_clears_both(
    client: Client, rq_queues: dict[str, Queue], checkout: Application, live: Release, release_manager: User
) -> None:
    provider = SimulatorProvider()
    provider.set_traffic(checkout, "staging", 30)
    provider.apply_swap_preview(checkout, "staging", "production")

    drift = reconcile(checkout)

    assert sorted(f["kind"] for f in drift.findings) == ["preview", "routing"]
    client.force_login(release_manager)
    client.post(reverse("application_drift_repair", args=[checkout.slug]))
    repair = Operation.objects.get(kind=Operation.Kind.REPAIR)
    assert [s.kind for s in repair.steps.order_by("position")] == ["set_traffic", "cancel_preview"]
    drive(rq_queues["operations"], repair)
    run(rq_queues["default"])

    assert where_it_runs(checkout)["staging"] == ("1.1.0", 0, "")
    drift.refresh_from_db()
    assert drift.resolved_at is not None


def test_a_viewer_may_check_but_not_repair_and_an_unrepairable_drift_says_what_to_do(
    client: Client, checkout: Application, live: Release, viewer: User, release_manager: User
) -> None:
    # Production runs a build no slot of Slipway's knows: nothing to swap back from.
    SimulatorSlot.objects.filter(application=checkout, slot_name="production").update(version="0.9.9")
    client.force_login(viewer)

    checked = client.post(reverse("application_drift_check", args=[checkout.slug]), follow=True)
    refused = client.post(reverse("application_drift_repair", args=[checkout.slug]))

    assert "Checkout has drifted: production runs 0.9.9, but the live release is 1.0.0." in checked.text
    assert refused.status_code == 403
    assert not Operation.objects.exists()
    client.force_login(release_manager)
    page = client.post(reverse("application_drift_repair", args=[checkout.slug]), follow=True)
    assert "No slot of Checkout runs 1.0.0, which production should run" in page.text
    assert not Operation.objects.exists()
    # A person puts it back by hand: the next check resolves the drift.
    SimulatorSlot.objects.filter(application=checkout, slot_name="production").update(version="1.0.0")
    assert reconcile(checkout) is None
    assert Drift.objects.get().resolution == "Production matches what Slipway says again."


def test_a_ring_target_running_what_a_rings_promotion_put_there_is_not_drift(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    staff = ApplicationFactory(slug="checkout-staff", name="Checkout staff")
    add_simulated_site(staff, VERSIONS)
    ReleaseFactory(application=staff, version="1.0.0", status=ReleaseStatus.LIVE)  # it has releases of its own
    ring = Ring.objects.create(
        application=checkout, position=0, name="Staff", kind=Ring.Kind.TARGETS, bake_seconds=0.02, analyse=False
    )
    ring.targets.set([staff])
    operation = services.operation_start(
        release=candidate, strategy="rings", parameters=FAST_RINGS, actor=release_manager
    )

    drive(rq_queues["operations"], operation)
    run(rq_queues["default"])  # the reconciliations the engine queued: Checkout's and its ring target's

    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert where_it_runs(staff)["production"] == ("1.1.0", 0, "")
    assert reconcile(staff) is None and reconcile(checkout) is None
    assert not Drift.objects.exists()
    # Behind Slipway's back the target is swapped back: that is drift, named after the rings that put 1.1.0 there,
    # and the repair puts back what the rings put there (not the target's own live release).
    swap_in_the_azure_portal(staff)
    drift = reconcile(staff)
    assert drift.summary == "production runs 1.0.0, but Checkout's rings put 1.1.0 there."
    repair = drift_repair(drift=drift, actor=release_manager)
    with pytest.raises(DomainError) as refused:  # a repair is not undone: that would bring the drift back
        services.operation_rollback(operation=repair, actor=release_manager, reason="undo it")
    assert refused.value.code == ErrorCode.TRANSITION_NOT_ALLOWED and "is a drift repair" in str(refused.value)
    drive(rq_queues["operations"], repair)
    run(rq_queues["default"])
    assert repair.status == OperationStatus.SUCCEEDED, repair.error
    assert where_it_runs(staff)["production"] == ("1.1.0", 0, "")
    drift.refresh_from_db()
    assert drift.resolved_at is not None


def test_a_ring_target_is_not_judged_while_a_rings_promotion_is_changing_it(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    staff = ApplicationFactory(slug="checkout-staff", name="Checkout staff")
    add_simulated_site(staff, VERSIONS)
    ReleaseFactory(application=staff, version="1.0.0", status=ReleaseStatus.LIVE)
    ring = Ring.objects.create(
        application=checkout, position=0, name="Staff", kind=Ring.Kind.TARGETS, bake_seconds=600, analyse=False
    )
    ring.targets.set([staff])
    operation = services.operation_start(
        release=candidate, strategy="rings", parameters=FAST_RINGS, actor=release_manager
    )
    drive(rq_queues["operations"], operation, until={OperationStatus.RUNNING})  # the target swapped, then a bake

    assert where_it_runs(staff)["production"] == ("1.1.0", 0, "")
    assert reconcile(staff) is None, "Checkout's rings are changing it: not drift"
    with pytest.raises(DomainError, match="An operation is changing Checkout staff's production now"):
        drift_repair(drift=Drift(application=staff), actor=release_manager)
    services.operation_rollback(operation=operation, actor=release_manager, reason="stop")
    drive(rq_queues["operations"], operation)
    run(rq_queues["default"])
    assert where_it_runs(staff)["production"] == ("1.0.0", 0, "")
    assert not Drift.objects.exists()
