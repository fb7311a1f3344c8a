"""Provider calls that hang or fail transiently, through the real provider code.

- The simulator's *hang* fault (a swap that never finishes until the platform abandons it) against
  the swap step's timeout.
- The loopback Azure ARM emulator (tests/azure_emulator) behind the real azure-mgmt-web clients: a
  swap held past its timeout that lands later, ARM answering 503 to the health check's site lookup and
  to the routing write a few times, and a slot's health endpoint failing twice then passing.

Each ends completed (the transient errors retried, every attempt on the step's log) or rolled back with
the reason on the operation; the RQ registries hold no second job for it.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings
from rq import Queue

from portal.core.errors import DomainError
from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSlot, SimulatorSwap, SwapPhase
from strategies.operations import services
from strategies.operations.models import Operation, OperationStatus, StepStatus
from tests.azure.conftest import azure_emulator, emulator  # noqa: F401 - the session's ARM emulator
from tests.azure_emulator import AzureEmulator, EmulatedSite, MinuteMetrics
from tests.factories import ApplicationFactory, ReleaseFactory
from tests.faults.conftest import (
    assert_nothing_enqueued_twice,
    assert_operation_consistent,
    assert_release_matches_its_audit,
)
from tests.faults.test_redis_outage import promote
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, drive

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

VERSIONS = {"production": "1.0.0", "staging": "1.1.0", "test": "1.1.0", "dev": "1.2.0-dev"}
# Azure Monitor gives one latency average per minute: 5 samples a side over 5 minutes.
AZURE_CANARY = {**FAST_CANARY, "shares": [10, 100], "min_latency_samples": 5}


def settled(operation: Operation, candidate: Release, live: Release) -> tuple[str, str, str]:
    for row in (operation, candidate, live):
        row.refresh_from_db()
    assert_operation_consistent(operation, forward_runs=1)
    assert_release_matches_its_audit(candidate)
    assert_release_matches_its_audit(live)
    return operation.status, candidate.status, live.status


# --- the simulator ---------------------------------------------------------------------------------
def test_a_swap_hanging_past_its_timeout_is_awaited_then_rolled_back_with_the_reason(
    rq_queues: dict[str, Queue], release_manager: User, settings: Settings
) -> None:
    queue = rq_queues["operations"]
    # The platform abandons a hung swap after 1.5 s; the step gives up waiting after 0.5 s.
    settings.SIMULATOR_TIMINGS = {**settings.SIMULATOR_TIMINGS, "hang_timeout_seconds": 1.5}
    operation, candidate, live = promote(
        "blue_green", {**FAST_BLUE_GREEN, "swap_timeout_seconds": 0.5}, release_manager
    )
    SimulatorSlot.objects.filter(application=operation.application, slot_name="staging").update(hang_swap=True)

    drive(queue, operation)

    assert settled(operation, candidate, live) == (
        OperationStatus.ROLLED_BACK,
        ReleaseStatus.ROLLED_BACK,
        ReleaseStatus.LIVE,
    )
    assert "timed out" in operation.error and "Swap staging into production" in operation.error
    forward, undo = (
        operation.steps.get(kind="swap", parameters__undo__isnull=True),
        operation.steps.get(kind="swap", parameters__undo=True),
    )
    assert forward.status == StepStatus.FAILED
    # The undo first waited for the hung swap to end (it was abandoned), then found nothing to swap back.
    assert "it failed" in undo.detail["awaited"] and undo.detail["swapped"] is False
    swaps = SimulatorSwap.objects.filter(application=operation.application)
    assert [s.phase for s in swaps] == [SwapPhase.FAILED]
    production = SimulatorSlot.objects.get(application=operation.application, slot_name="production")
    assert production.version == "1.0.0"
    assert_nothing_enqueued_twice(queue, operation)


# --- Azure (the ARM emulator) ----------------------------------------------------------------------
@pytest.fixture
def checkout(emulator: AzureEmulator) -> Application:  # noqa: F811
    return ApplicationFactory(azure=True, name="Checkout", slug="checkout", health_check_path="/healthz")


@pytest.fixture
def site(emulator: AzureEmulator, checkout: Application) -> EmulatedSite:  # noqa: F811
    site = emulator.add_site(
        checkout.azure_subscription_id, checkout.azure_resource_group, checkout.azure_site_name, VERSIONS
    )
    site.swap_polls, site.swap_seconds = 2, 0.05
    site.production.metrics = MinuteMetrics(requests=1200, errors=2, response_time_ms=85)
    site.slot("staging").metrics = MinuteMetrics(requests=600, errors=1, response_time_ms=84)
    return site


@pytest.fixture
def releases(checkout: Application, site: EmulatedSite) -> tuple[Release, Release]:
    live = ReleaseFactory(application=checkout, version="1.0.0", status=ReleaseStatus.LIVE)
    staging = checkout.slots.get(name="staging")
    candidate = ReleaseFactory(
        application=checkout, version="1.1.0", status=ReleaseStatus.APPROVED, deployed_slot=staging
    )
    return candidate, live


def test_a_swap_held_past_its_timeout_that_lands_later_is_awaited_and_swapped_back(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,  # noqa: F811
    site: EmulatedSite,
    releases: tuple[Release, Release],
    release_manager: User,
) -> None:
    candidate, live = releases
    site.hold_swap = True
    # App Service finishes the held swap 2 s later, long after the step (0.5 s) gave up on it.
    release = threading.Timer(2.0, lambda: setattr(site, "hold_swap", False))
    release.start()
    try:
        operation = services.operation_start(
            release=candidate,
            strategy="blue_green",
            parameters={**FAST_BLUE_GREEN, "swap_timeout_seconds": 0.5},
            actor=release_manager,
        )
        drive(rq_queues["operations"], operation)
    finally:
        release.cancel()

    assert settled(operation, candidate, live) == (
        OperationStatus.ROLLED_BACK,
        ReleaseStatus.ROLLED_BACK,
        ReleaseStatus.LIVE,
    )
    assert "timed out" in operation.error
    undo = operation.steps.get(kind="swap", parameters__undo=True)
    assert undo.detail["awaited"] == "it completed" and undo.detail["swapped"] is True
    # Two swaps at the provider: the late one, then the swap back; production runs the old build again.
    assert emulator.calls("swap") == 2
    assert {name: slot.version for name, slot in site.slots.items()}["production"] == "1.0.0"
    assert_nothing_enqueued_twice(rq_queues["operations"], operation)


def test_arm_failing_transiently_on_the_health_lookup_and_the_routing_write_is_retried_to_success(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,  # noqa: F811
    site: EmulatedSite,
    releases: tuple[Release, Release],
    release_manager: User,
) -> None:
    candidate, live = releases
    operation = services.operation_start(
        release=candidate, strategy="canary", parameters=AZURE_CANARY, actor=release_manager
    )
    # Once started (starting checks the gates too, and refuses on a provider error: the person retries):
    # the health step's site lookup answers 503 twice; the first routing write 429 (Retry-After 1), then 503.
    emulator.inject("get_site", 503, times=2, site=site.name)
    emulator.inject("config_web_update", 429, times=1, site=site.name)
    emulator.inject("config_web_update", 503, times=1, site=site.name)
    drive(rq_queues["operations"], operation, timeout=40)

    assert settled(operation, candidate, live) == (
        OperationStatus.SUCCEEDED,
        ReleaseStatus.LIVE,
        ReleaseStatus.SUPERSEDED,
    )
    gate = operation.steps.get(position=1)
    assert gate.log.count("attempt") == 3 and gate.log.count("TransientError") == 2, gate.log
    route = operation.steps.get(position=2)
    assert route.log.count("attempt") == 3, route.log
    assert "throttled" in route.log and "temporarily unavailable" in route.log, route.log
    once = operation.steps.filter(kind__in=("check_health", "set_traffic", "swap", "go_live"))
    assert {s.attempts for s in once} == {1}, "retries are calls within one run of the step"
    assert emulator.calls("swap") == 1
    assert site.production.version == "1.1.0"
    assert_nothing_enqueued_twice(rq_queues["operations"], operation)


def failing_twice(site: EmulatedSite, slot_name: str) -> dict[str, int]:
    """The slot's health endpoint answers 503 to the next two requests, then 200 again."""
    failures = {"left": 2}

    def fault(slot: object) -> bool:
        if getattr(slot, "name", "") == slot_name and failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    site.health_faults.append(fault)
    return failures


def test_a_health_endpoint_failing_twice_during_the_run_stops_the_promotion_at_its_gate_with_the_reason(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,  # noqa: F811
    site: EmulatedSite,
    releases: tuple[Release, Release],
    release_manager: User,
) -> None:
    """An unhealthy answer is an answer, not a transient error: the gate step refuses at once (no retry), the
    operation rolls back before anything was swapped, and says why."""
    candidate, live = releases
    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    failing_twice(site, "staging")
    drive(rq_queues["operations"], operation)

    assert settled(operation, candidate, live) == (
        OperationStatus.ROLLED_BACK,
        ReleaseStatus.ROLLED_BACK,
        ReleaseStatus.LIVE,
    )
    assert "staging slot is unhealthy: HTTP 503" in operation.error
    assert emulator.calls("swap") == 0
    assert site.production.version == "1.0.0"
    assert_nothing_enqueued_twice(rq_queues["operations"], operation)


def test_a_health_endpoint_failing_twice_refuses_the_start_twice_with_the_reason_then_promotes(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,  # noqa: F811
    site: EmulatedSite,
    releases: tuple[Release, Release],
    release_manager: User,
) -> None:
    candidate, live = releases
    failing_twice(site, "staging")
    for _ in range(2):
        with pytest.raises(DomainError, match="staging slot answers its health check: HTTP 503"):
            services.operation_start(
                release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
            )
        assert not Operation.objects.exists()
        candidate.refresh_from_db()
        assert candidate.status == ReleaseStatus.APPROVED
    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    drive(rq_queues["operations"], operation)

    assert settled(operation, candidate, live) == (
        OperationStatus.SUCCEEDED,
        ReleaseStatus.LIVE,
        ReleaseStatus.SUPERSEDED,
    )
    assert emulator.calls("swap") == 1
    assert_nothing_enqueued_twice(rq_queues["operations"], operation)
