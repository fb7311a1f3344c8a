"""Progressive exposure (rings) end to end on the simulator: a real RQ worker, real Redis.

Checkout has two rings: ring 0 swaps the build into "Checkout internal" (the staff's own instance),
ring 1 routes 10 % of Checkout's traffic to it and needs its own approval; then everyone.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rq import Queue

from portal.core.errors import DomainError, ErrorCode
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSlot, SimulatorVersionProfile
from strategies.operations import services
from strategies.operations.models import Operation, OperationStatus, Ring, StepStatus
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site
from tests.strategies.conftest import VERSIONS, drive, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FAST = {
    "analysis_minutes": 5,
    "min_requests": 50,
    "min_latency_samples": 20,
    "verify_seconds": 0.05,
    "verify_interval_seconds": 0.02,
}


def sim(application: Application) -> dict[str, tuple[str, int]]:
    return {s.slot_name: (s.version, s.routing_percent) for s in SimulatorSlot.objects.filter(application=application)}


def status_of(release: Release) -> str:
    release.refresh_from_db()
    return release.status


@pytest.fixture
def internal(checkout: Application) -> Application:
    application = ApplicationFactory(name="Checkout internal", slug="checkout-internal")
    add_simulated_site(application, VERSIONS)  # 1.1.0 staged, 1.0.0 in production, as the pipeline left it
    return application


@pytest.fixture
def rings(checkout: Application, internal: Application) -> list[Ring]:
    # Staff are few: their ring is judged by its health only. (The simulator's synthetic load is made up
    # when metrics are first read, over the last minutes, at the routing of that moment: a ring analysed
    # later in the same instant would find almost no requests of its own.)
    staff = Ring.objects.create(
        application=checkout, position=0, name="Staff", kind=Ring.Kind.TARGETS, bake_seconds=0.02, analyse=False
    )
    staff.targets.set([internal])
    early = Ring.objects.create(
        application=checkout,
        position=1,
        name="Early adopters",
        kind=Ring.Kind.TRAFFIC,
        traffic_percent=10,
        bake_seconds=0.02,
        requires_approval=True,
    )
    with_load(checkout)
    with_load(internal)
    return [staff, early]


def start(candidate: Release, actor: User) -> Operation:
    return services.operation_start(release=candidate, strategy="rings", parameters=FAST, actor=actor)


def test_the_plan_lists_each_ring_then_everyone(candidate: Release, rings: list[Ring]) -> None:
    Ring.objects.filter(name="Staff").update(analyse=True)
    plan = services.operation_preview(release=candidate, strategy="rings", parameters=FAST)

    assert [s.kind for s in plan] == [
        "check_health",
        "check_health",  # ring 0: the target's staging
        "swap",  # ring 0: into the target's production
        "bake",
        "check_health",  # ring 0: the target's production after the swap
        "analyse",
        "approve_ring",  # ring 1 has its own approval
        "set_traffic",
        "bake",
        "analyse",
        "swap",  # everyone
        "set_traffic",
        "verify_health",  # production after the swap: health, error rate and latency against before it
        "go_live",
    ]
    assert plan[2].title == "Ring 0 (Staff): swap Checkout internal staging into production: 1.0.0 → 1.1.0"
    assert plan[7].parameters == {"slot": "staging", "percent": 10}


def test_rings_reach_their_targets_then_wait_for_approval_then_everyone(
    rq_queues: dict[str, Queue],
    checkout: Application,
    internal: Application,
    live: Release,
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
    approver: User,
) -> None:
    operation = start(candidate, release_manager)

    drive(rq_queues["operations"], operation)

    # Ring 0 is done: the staff instance runs the build; ring 1 waits for its approval before any traffic moves.
    assert operation.status == OperationStatus.PAUSED, operation.error
    assert "Ring 1 (Early adopters)" in operation.waiting_for
    assert sim(internal)["production"] == ("1.1.0", 0)
    assert sim(checkout)["staging"] == ("1.1.0", 0)
    assert services.ring_waiting_for_approval(operation).kind == "approve_ring"
    with pytest.raises(DomainError, match="waits for an approver"):
        services.operation_resume(operation=operation, actor=release_manager)

    services.ring_approve(operation=operation, actor=approver, comment="Staff have used it all morning")
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED, (operation.error, operation.waiting_for)
    assert status_of(candidate) == ReleaseStatus.LIVE and status_of(live) == ReleaseStatus.SUPERSEDED
    assert sim(checkout)["production"] == ("1.1.0", 0) and sim(checkout)["staging"] == ("1.0.0", 0)
    assert [s.detail["verdict"] for s in operation.steps.filter(kind="analyse")] == ["pass"]
    approval = operation.steps.get(kind="approve_ring").detail["approval"]
    assert (approval["by"], approval["comment"]) == (approver.username, "Staff have used it all morning")
    event = AuditEvent.objects.get(action="operation.ring_approved", object_id=str(operation.pk))
    assert event.actor == approver and event.after["ring"] == "Ring 1 (Early adopters)"


def test_a_failing_ring_rolls_back_the_rings_already_done_in_reverse(
    rq_queues: dict[str, Queue],
    checkout: Application,
    internal: Application,
    live: Release,
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
    approver: User,
) -> None:
    operation = start(candidate, release_manager)
    drive(rq_queues["operations"], operation)
    # The build turns bad as it meets real customers: ring 1's analysis fails.
    SimulatorVersionProfile.objects.create(application=checkout, version="1.1.0", error_rate=0.4)
    services.ring_approve(operation=operation, actor=approver)

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert "Ring 1 (Early adopters): analyse" in operation.error and "Error rate" in operation.error
    assert status_of(candidate) == ReleaseStatus.ROLLED_BACK and status_of(live) == ReleaseStatus.LIVE
    assert sim(checkout)["staging"] == ("1.1.0", 0) and sim(checkout)["production"] == ("1.0.0", 0)
    assert sim(internal)["production"] == ("1.0.0", 0), "ring 0's target is swapped back"
    undo = [s.title for s in operation.steps.filter(parameters__undo=True).order_by("position")]
    assert undo == [
        "Route 0 % of traffic to staging",
        "Swap back: Checkout internal production returns to 1.0.0",
    ]
    assert set(operation.steps.filter(parameters__undo=True).values_list("status", flat=True)) == {StepStatus.SUCCEEDED}


@pytest.mark.parametrize(
    ("error_rate", "outcome"), [(0.0, OperationStatus.SUCCEEDED), (0.4, OperationStatus.ROLLED_BACK)]
)
def test_a_target_ring_is_analysed_against_production(
    rq_queues: dict[str, Queue],
    checkout: Application,
    internal: Application,
    live: Release,
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
    error_rate: float,
    outcome: str,
) -> None:
    Ring.objects.filter(name="Staff").update(analyse=True)
    Ring.objects.filter(name="Early adopters").delete()
    SimulatorVersionProfile.objects.create(application=internal, version="1.1.0", error_rate=error_rate)
    operation = start(candidate, release_manager)

    drive(rq_queues["operations"], operation)

    assert operation.status == outcome, operation.error
    analysis = operation.steps.get(kind="analyse")
    assert analysis.parameters["application"] == internal.pk
    assert analysis.parameters["stable_application"] == checkout.pk
    figures = analysis.detail["analyses"][-1]["figures"]["error_rate"]
    assert figures["canary_requests"] >= 50 and figures["stable_requests"] >= 50
    expected = ("1.1.0", "1.1.0") if outcome == OperationStatus.SUCCEEDED else ("1.0.0", "1.0.0")
    assert (sim(internal)["production"][0], sim(checkout)["production"][0]) == expected


def test_rejecting_a_ring_rolls_back_with_the_comment(
    rq_queues: dict[str, Queue],
    internal: Application,
    live: Release,
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
    approver: User,
) -> None:
    operation = start(candidate, release_manager)
    drive(rq_queues["operations"], operation)
    with pytest.raises(DomainError, match="Say why"):
        services.ring_reject(operation=operation, actor=approver, comment="  ")

    services.ring_reject(operation=operation, actor=approver, comment="Staff found a broken receipt")
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert operation.error == "Ring 1 (Early adopters) was rejected by arun-approver: Staff found a broken receipt"
    assert sim(internal)["production"] == ("1.0.0", 0)
    assert status_of(candidate) == ReleaseStatus.ROLLED_BACK and status_of(live) == ReleaseStatus.LIVE
    event = AuditEvent.objects.get(action="operation.rolling_back", object_id=str(operation.pk))
    assert (event.actor, event.reason) == (approver, "Staff found a broken receipt")


def test_only_an_eligible_approver_decides_a_ring(
    rq_queues: dict[str, Queue],
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
    viewer: User,
    approver: User,
) -> None:
    operation = start(candidate, release_manager)
    with pytest.raises(DomainError, match="not waiting for a ring"):
        services.ring_approve(operation=operation, actor=approver)
    drive(rq_queues["operations"], operation)

    with pytest.raises(DomainError, match="needs the approver role") as refused:
        services.ring_approve(operation=operation, actor=viewer)
    assert refused.value.code == ErrorCode.APPROVAL_NOT_ELIGIBLE
    with pytest.raises(DomainError, match="needs the approver role") as refused:
        services.ring_approve(operation=operation, actor=release_manager)
    assert refused.value.code == ErrorCode.APPROVAL_NOT_ELIGIBLE
    operation.refresh_from_db()
    assert operation.status == OperationStatus.PAUSED


def test_halting_between_rings_and_resuming(
    rq_queues: dict[str, Queue],
    internal: Application,
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
    approver: User,
) -> None:
    rings[1].requires_approval = False
    rings[1].save()
    operation = start(candidate, release_manager)
    services.operation_pause(operation=operation, actor=release_manager, reason="Hold on: incident in EU")

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.PAUSED
    assert sim(internal)["production"] == ("1.0.0", 0), "halted before ring 0 started"

    services.operation_resume(operation=operation, actor=release_manager)
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED, (operation.error, operation.waiting_for)
    assert sim(internal)["production"] == ("1.1.0", 0)


def test_application_rollback_after_rings_swaps_every_ring_back(
    rq_queues: dict[str, Queue],
    checkout: Application,
    internal: Application,
    live: Release,
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
    approver: User,
) -> None:
    operation = start(candidate, release_manager)
    drive(rq_queues["operations"], operation)
    services.ring_approve(operation=operation, actor=approver)
    drive(rq_queues["operations"], operation)
    assert operation.status == OperationStatus.SUCCEEDED

    rollback = services.application_rollback(application=checkout, actor=release_manager, reason="Refunds fail")
    assert [s.title for s in rollback.steps.order_by("position")] == [
        "Gate: staging (1.0.0) answers its health check",
        "Swap back: production returns to 1.0.0",
        "Swap back: Checkout internal production returns to 1.0.0",
        "Routing: 0 % to staging",
        "Roll back 1.1.0, restore 1.0.0",
    ]
    drive(rq_queues["operations"], rollback)

    assert rollback.status == OperationStatus.SUCCEEDED, rollback.error
    assert sim(checkout)["production"] == ("1.0.0", 0) and sim(internal)["production"] == ("1.0.0", 0)
    assert status_of(candidate) == ReleaseStatus.ROLLED_BACK and status_of(live) == ReleaseStatus.LIVE


def test_a_promotion_is_refused_when_a_ring_cannot_take_the_build(
    checkout: Application, internal: Application, candidate: Release, rings: list[Ring], release_manager: User
) -> None:
    SimulatorSlot.objects.filter(application=internal, slot_name="staging").update(version="1.0.5")
    with pytest.raises(DomainError, match=r"Checkout internal's staging slot runs 1\.0\.5, not 1\.1\.0; deploy"):
        start(candidate, release_manager)
    assert status_of(candidate) == ReleaseStatus.APPROVED and not Operation.objects.exists()

    Ring.objects.filter(application=checkout).delete()
    with pytest.raises(DomainError, match="Checkout has no rings"):
        start(candidate, release_manager)


def test_a_ring_target_is_never_acted_on_twice_at_once(
    rq_queues: dict[str, Queue],
    internal: Application,
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
) -> None:
    ReleaseFactory(application=internal, version="1.0.0", status=ReleaseStatus.LIVE)
    own = ReleaseFactory(
        application=internal,
        version="1.1.0",
        status=ReleaseStatus.APPROVED,
        deployed_slot=internal.slots.get(name="staging"),
    )
    operation = start(candidate, release_manager)

    with pytest.raises(DomainError, match=r"Checkout internal is a ring of Checkout's running promotion"):
        services.operation_start(release=own, strategy="blue_green", parameters={}, actor=release_manager)

    services.operation_rollback(operation=operation, actor=release_manager, reason="Not today")
    drive(rq_queues["operations"], operation)
    blue_green = services.operation_start(release=own, strategy="blue_green", parameters={}, actor=release_manager)
    candidate.refresh_from_db()
    assert blue_green.status == OperationStatus.PENDING


def test_rings_page_adds_edits_and_deletes_rings_with_field_errors(
    client: Client, checkout: Application, internal: Application, release_manager: User, viewer: User
) -> None:
    url = reverse("application_rings", args=[checkout.slug])
    client.force_login(release_manager)

    bad = client.post(url, {"position": 0, "name": "Staff", "kind": "traffic", "bake_seconds": 60})
    assert bad.status_code == 400
    assert "A traffic ring needs the share of traffic it routes" in bad.content.decode()
    assert not Ring.objects.exists()

    ok = client.post(
        url, {"position": 0, "name": "Staff", "kind": "targets", "targets": [internal.pk], "bake_seconds": 60}
    )
    assert ok.status_code == 302
    ring = Ring.objects.get()
    assert (ring.kind, list(ring.targets.all()), ring.traffic_percent) == ("targets", [internal], None)
    created = AuditEvent.objects.get(action="ring.created")
    assert created.after["targets"] == ["checkout-internal"] and created.actor == release_manager

    clash = client.post(
        url, {"position": 0, "name": "staff", "kind": "traffic", "traffic_percent": 5, "bake_seconds": 1}
    )
    body = clash.content.decode()
    assert clash.status_code == 400 and "already has a ring named" in body and "Position 0 is taken" in body

    edit = reverse("ring_edit", args=[checkout.slug, ring.pk])
    changed = client.post(
        edit, {"position": 0, "name": "Staff", "kind": "traffic", "traffic_percent": 5, "bake_seconds": 30}
    )
    assert changed.status_code == 302
    ring.refresh_from_db()
    assert (ring.kind, ring.traffic_percent, ring.targets.count()) == ("traffic", 5, 0)
    change = AuditEvent.objects.get(action="ring.changed")
    assert change.before["kind"] == "targets" and change.after["traffic_percent"] == 5

    client.force_login(viewer)
    assert client.get(url).status_code == 200
    assert client.post(url, {"position": 1, "name": "x", "kind": "traffic", "traffic_percent": 5}).status_code == 403

    client.force_login(release_manager)
    assert client.post(reverse("ring_delete", args=[checkout.slug, ring.pk])).status_code == 302
    assert not Ring.objects.exists() and AuditEvent.objects.filter(action="ring.deleted").count() == 1


def test_the_operation_page_offers_the_ring_decision_to_approvers_only(
    rq_queues: dict[str, Queue],
    client: Client,
    candidate: Release,
    rings: list[Ring],
    release_manager: User,
    approver: User,
) -> None:
    operation = start(candidate, release_manager)
    drive(rq_queues["operations"], operation)
    url = reverse("operation_detail", args=[operation.pk])

    client.force_login(release_manager)
    page = client.get(url).content.decode()
    assert "Ring 1 (Early adopters) waits for approval" in page and "Approve the ring" not in page

    client.force_login(approver)
    assert "Approve the ring" in client.get(url).content.decode()
    # The approver's inbox lists the ring with the release approvals, and the navigation counts it.
    inbox = client.get(reverse("approval_inbox")).content.decode()
    assert f'href="{url}#ring-approval">Ring 1 (Early adopters)</a>' in inbox
    assert '<span class="badge nav-count" title="Requests waiting for your decision">1</span>' in inbox
    polled = client.get(url, {"seen": "running"}, headers={"HX-Request": "true"})
    assert polled.headers.get("HX-Refresh") == "true", "a page that saw it running reloads to show the form"
    assert "HX-Refresh" not in client.get(url, {"seen": "paused"}, headers={"HX-Request": "true"}).headers

    decided = client.post(
        reverse("operation_ring_decide", args=[operation.pk]), {"decision": "approve", "comment": "Go"}
    )
    assert decided.status_code == 302
    operation.refresh_from_db()
    assert operation.status == OperationStatus.RUNNING
