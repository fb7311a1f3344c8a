"""Health all the way: a canary re-checks its health at each analysis, and production is verified after
the swap on health and on error rate against what it served before (a baseline the swap recorded)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rq import Queue

from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSlot, SimulatorVersionProfile
from strategies.operations import services
from strategies.operations.models import OperationStatus, StepStatus
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, drive, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def where_it_runs(application: Application) -> dict[str, tuple[str, int]]:
    return {s.slot_name: (s.version, s.routing_percent) for s in SimulatorSlot.objects.filter(application=application)}


def test_a_canary_that_turns_unhealthy_during_its_bake_fails_its_next_analysis(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    with_load(checkout)
    queue = rq_queues["operations"]
    operation = services.operation_start(
        release=candidate,
        strategy="canary",
        parameters={**FAST_CANARY, "shares": [10, 50], "bake_seconds": 3.0},
        actor=release_manager,
    )
    drive(queue, operation, until={OperationStatus.RUNNING})  # the job hands back at the first bake
    assert operation.steps.get(position=3).status == StepStatus.WAITING
    assert where_it_runs(checkout)["staging"] == ("1.1.0", 10)
    # During the bake the build starts failing its health check; its error rate is no worse.
    SimulatorVersionProfile.objects.create(application=checkout, version="1.1.0", healthy=False)

    drive(queue, operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert "The canary (staging) failed its health check at the analysis: HTTP 503" in operation.error
    analysis = operation.steps.get(position=4)
    assert analysis.status == StepStatus.FAILED and analysis.detail["health"]["healthy"] is False
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.ROLLED_BACK
    assert where_it_runs(checkout)["production"] == ("1.0.0", 0) and where_it_runs(checkout)["staging"][1] == 0
    assert not operation.steps.filter(kind="swap").exclude(status=StepStatus.SKIPPED).exists()


def test_production_erring_more_after_the_swap_than_before_is_swapped_back(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    with_load(checkout, rpm=1200)
    # The build is healthy, but errs on 90 % of the requests it serves. (Metrics come in whole minutes, so the
    # verification's window also holds what 1.0.0 served in production earlier in those minutes.)
    SimulatorVersionProfile.objects.create(application=checkout, version="1.1.0", error_rate=0.9)
    operation = services.operation_start(
        release=candidate,
        strategy="blue_green",
        parameters={**FAST_BLUE_GREEN, "verify_seconds": 8.0, "verify_interval_seconds": 1.0},
        actor=release_manager,
    )

    drive(rq_queues["operations"], operation, timeout=30)

    assert operation.status == OperationStatus.ROLLED_BACK, operation.error
    assert "production is worse than before the swap: Error rate" in operation.error, operation.error
    swap = operation.steps.filter(kind="swap").order_by("position").first()
    baseline = swap.detail["baseline"]
    assert baseline["slot"] == "production" and baseline["requests"] > 1000
    assert baseline["errors"] < baseline["requests"] * 0.05, "the baseline is what 1.0.0 served"
    verification = operation.steps.get(position=3)
    assert verification.kind == "verify_health" and verification.status == StepStatus.FAILED
    assert verification.detail["analysis"]["verdict"] == "fail"
    assert verification.detail["checks"][-1]["healthy"] is True, "healthy all along: the error rate failed it"
    assert where_it_runs(checkout)["production"] == ("1.0.0", 0)


def test_a_canary_verifies_production_after_its_swap(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    with_load(checkout)
    # Production's slot answers 503 (a slot fault: whatever runs there); staging, the canary, is healthy.
    SimulatorSlot.objects.filter(application=checkout, slot_name="production").update(healthy=False)
    operation = services.operation_start(
        release=candidate, strategy="canary", parameters={**FAST_CANARY, "shares": [50]}, actor=release_manager
    )

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK, operation.error
    assert "production failed its health check during verification" in operation.error
    kinds = [(s.kind, s.status) for s in operation.steps.order_by("position")]
    assert kinds[4:7] == [
        ("swap", StepStatus.SUCCEEDED),
        ("set_traffic", StepStatus.SUCCEEDED),
        ("verify_health", StepStatus.FAILED),
    ], kinds
    assert where_it_runs(checkout)["production"] == ("1.0.0", 0) and where_it_runs(checkout)["staging"] == ("1.1.0", 0)
