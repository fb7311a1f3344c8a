"""Operations end to end on the simulator: a real RQ worker, real Redis, the database as the truth."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rq import Queue, SimpleWorker

from portal.core.errors import DomainError
from portal.core.status_guard import arranging_state
from releases.audit.models import AuditEvent
from releases.catalog.models import (
    Application,
    Release,
    ReleaseStatus,
    SimulatorSlot,
    SimulatorSwap,
    SimulatorVersionProfile,
)
from strategies.operations import services
from strategies.operations.engine import operations_recover
from strategies.operations.models import Operation, OperationStatus, StepStatus
from tests.factories import ReleaseFactory
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, drive, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def sim(application: Application) -> dict[str, tuple[str, int]]:
    return {s.slot_name: (s.version, s.routing_percent) for s in SimulatorSlot.objects.filter(application=application)}


def statuses(*releases: Release) -> list[str]:
    for release in releases:
        release.refresh_from_db()
    return [r.status for r in releases]


def test_blue_green_swaps_the_build_into_production_and_makes_it_live(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    assert statuses(candidate) == [ReleaseStatus.ROLLING_OUT]

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED
    assert statuses(candidate, live) == [ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED]
    assert sim(checkout)["production"] == ("1.1.0", 0)
    assert sim(checkout)["staging"] == ("1.0.0", 0)
    SimpleWorker([rq_queues["default"]], connection=rq_queues["default"].connection).work(burst=True)
    observed = checkout.slots.get(name="production")  # the portal's own view is refreshed after the swap
    assert (observed.running_version, observed.current_release) == ("1.1.0", candidate)
    assert SimulatorSwap.objects.filter(application=checkout).count() == 1
    assert set(operation.steps.values_list("status", flat=True)) == {StepStatus.SUCCEEDED}
    swap = operation.steps.get(kind="swap")
    assert swap.resume_token and swap.attempts == 1 and "attempt 1: ok" in swap.log
    actions = list(
        AuditEvent.objects.filter(object_id=str(operation.pk), object_type="releases.operation")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["operation.created", "operation.running", "operation.succeeded"]
    assert AuditEvent.objects.filter(action="release.superseded", object_id=str(live.pk)).exists()


def test_blue_green_with_preview_applies_and_completes_the_preview(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters={**FAST_BLUE_GREEN, "preview": True}, actor=release_manager
    )

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED
    assert [s.kind for s in operation.steps.all()] == [
        "check_health",
        "swap_preview",
        "verify_health",
        "swap",
        "verify_health",
        "go_live",
    ]
    assert SimulatorSwap.objects.get(application=checkout).with_preview
    assert not SimulatorSlot.objects.filter(application=checkout).exclude(preview_target="").exists()


def test_a_failed_verification_swaps_back_and_rolls_the_release_back(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="production").update(healthy=False)
    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert "production failed its health check during verification" in operation.error
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]
    assert sim(checkout)["production"] == ("1.0.0", 0)
    assert SimulatorSwap.objects.filter(application=checkout).count() == 2  # there and back
    undo = operation.steps.filter(parameters__undo=True)
    assert [s.kind for s in undo] == ["swap"] and undo[0].status == StepStatus.SUCCEEDED


def test_a_swap_that_times_out_is_waited_for_before_it_is_swapped_back(
    rq_queues: dict[str, Queue],
    checkout: Application,
    live: Release,
    candidate: Release,
    release_manager: User,
    settings: pytest.FixtureRequest,
) -> None:
    # The provider takes 1.5 s to swap; the step gives up after 0.4 s while the swap goes on. Swapping
    # back at once would find production still on 1.0.0, do nothing, and let 1.1.0 land afterwards.
    settings.SIMULATOR_TIMINGS = {**settings.SIMULATOR_TIMINGS, "swap_seconds": 1.5, "warmup_seconds": 0.5}
    operation = services.operation_start(
        release=candidate,
        strategy="blue_green",
        parameters={**FAST_BLUE_GREEN, "swap_timeout_seconds": 0.4},
        actor=release_manager,
    )

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK, operation.error
    assert "timed out" in operation.error
    swaps = list(SimulatorSwap.objects.filter(application=checkout).order_by("pk"))
    assert [s.phase for s in swaps] == ["done", "done"], "the first swap finished, then the swap back"
    assert sim(checkout)["production"] == ("1.0.0", 0) and sim(checkout)["staging"] == ("1.1.0", 0)
    undo = operation.steps.get(parameters__undo=True)
    assert undo.parameters["await_token"] == str(swaps[0].pk)
    assert undo.detail["awaited"] == "it completed" and undo.detail["swapped"] is True
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]


def test_a_canary_passes_every_share_then_swaps_and_resets_routing(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    with_load(checkout)
    operation = services.operation_start(
        release=candidate, strategy="canary", parameters=FAST_CANARY, actor=release_manager
    )

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert statuses(candidate, live) == [ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED]
    assert sim(checkout)["production"] == ("1.1.0", 0)
    assert sim(checkout)["staging"] == ("1.0.0", 0)
    analyses = operation.steps.filter(kind="analyse")
    assert [a.detail["verdict"] for a in analyses] == ["pass"] * 4
    figures = analyses[0].detail["analyses"][0]["figures"]
    assert figures["error_rate"]["canary_requests"] >= 50 and "p_value" in figures["latency"]
    assert SimulatorSwap.objects.filter(application=checkout).count() == 1


def test_a_failing_canary_routes_traffic_back_to_zero_and_never_swaps(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    with_load(checkout)
    SimulatorVersionProfile.objects.create(application=checkout, version="1.1.0", error_rate=0.4)
    operation = services.operation_start(
        release=candidate, strategy="canary", parameters=FAST_CANARY, actor=release_manager
    )

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert "Canary analysis failed. Error rate" in operation.error
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]
    assert sim(checkout)["staging"] == ("1.1.0", 0)
    assert sim(checkout)["production"] == ("1.0.0", 0)
    assert not SimulatorSwap.objects.filter(application=checkout).exists()
    assert operation.steps.filter(status=StepStatus.SKIPPED).count() > 5


def test_an_inconclusive_canary_bakes_once_more_then_pauses_for_a_person(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    operation = services.operation_start(
        release=candidate, strategy="canary", parameters=FAST_CANARY, actor=release_manager
    )

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.PAUSED
    assert "inconclusive twice" in operation.waiting_for
    analysis = operation.steps.filter(kind="analyse").first()
    assert analysis.status == StepStatus.WAITING and len(analysis.detail["analyses"]) == 2
    assert sim(checkout)["staging"] == ("1.1.0", 5)

    services.operation_rollback(operation=operation, actor=release_manager, reason="No traffic to judge by")
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert sim(checkout)["staging"] == ("1.1.0", 0)
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]
    event = AuditEvent.objects.get(action="operation.rolling_back", object_id=str(operation.pk))
    assert (event.actor, event.reason) == (release_manager, "No traffic to judge by")


def test_resuming_accepts_the_inconclusive_analysis(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    operation = services.operation_start(
        release=candidate, strategy="canary", parameters={**FAST_CANARY, "shares": [50]}, actor=release_manager
    )
    drive(rq_queues["operations"], operation)
    assert operation.status == OperationStatus.PAUSED

    services.operation_resume(operation=operation, actor=release_manager, reason="Quiet hour; I watched it")
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED
    assert statuses(candidate) == [ReleaseStatus.LIVE]
    assert AuditEvent.objects.filter(action="operation.resumed", actor=release_manager).exists()


def test_a_long_bake_holds_no_worker_and_promote_now_skips_it(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    queue = rq_queues["operations"]
    operation = services.operation_start(
        release=candidate, strategy="canary", parameters={**FAST_CANARY, "bake_seconds": 600}, actor=release_manager
    )

    drive(queue, operation, until={OperationStatus.RUNNING})  # one burst: the job returns at the first bake

    operation.refresh_from_db()
    assert operation.status == OperationStatus.RUNNING and operation.runner == "" and operation.wake_at is not None
    assert queue.count == 0 and queue.scheduled_job_registry.get_job_ids() == [operation.job_id]
    assert operation.steps.get(kind="bake", position=3).status == StepStatus.WAITING

    services.operation_promote_now(operation=operation, actor=release_manager, reason="Hotfix")
    drive(queue, operation)

    assert operation.status == OperationStatus.SUCCEEDED
    assert statuses(candidate) == [ReleaseStatus.LIVE]
    assert sim(checkout)["production"] == ("1.1.0", 0) and sim(checkout)["staging"] == ("1.0.0", 0)
    assert (
        operation.steps.filter(status=StepStatus.SKIPPED).count() == 12
    )  # bakes, analyses, shares and the verification


def test_redis_losing_its_data_loses_no_operation(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    queue = rq_queues["operations"]
    operation = services.operation_start(
        release=candidate, strategy="canary", parameters={**FAST_CANARY, "bake_seconds": 600}, actor=release_manager
    )
    drive(queue, operation, until={OperationStatus.RUNNING})
    queue.connection.flushdb()  # database 15, the tests' own

    assert operations_recover() == [(operation.pk, f"its job {operation.job_id} is gone from Redis")]
    assert operations_recover() == []  # the new job is queued: nothing more to do
    drive(queue, operation, until={OperationStatus.RUNNING})

    operation.refresh_from_db()
    assert queue.scheduled_job_registry.get_job_ids() == [operation.job_id]
    assert operation.steps.get(position=3).status == StepStatus.WAITING  # the same bake, not a new one
    services.operation_promote_now(operation=operation, actor=release_manager, reason="Enough")
    drive(queue, operation)
    assert operation.status == OperationStatus.SUCCEEDED
    assert AuditEvent.objects.filter(action="operation.recovered", object_id=str(operation.pk)).count() == 1


def test_rolling_back_the_application_swaps_the_previous_build_back(
    rq_queues: dict[str, Queue], checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    promotion = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    drive(rq_queues["operations"], promotion)

    rollback = services.application_rollback(application=checkout, actor=release_manager, reason="Checkout errors")
    drive(rq_queues["operations"], rollback)

    assert rollback.status == OperationStatus.SUCCEEDED
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]
    assert sim(checkout)["production"] == ("1.0.0", 0)
    assert SimulatorSwap.objects.filter(application=checkout).count() == 2
    assert AuditEvent.objects.get(action="release.rolled_back").reason == "Checkout errors"


def test_a_rollback_is_refused_when_the_previous_build_is_gone(
    checkout: Application, live: Release, candidate: Release, release_manager: User
) -> None:
    with arranging_state():
        Release.objects.filter(pk=live.pk).update(status=ReleaseStatus.SUPERSEDED)
        Release.objects.filter(pk=candidate.pk).update(status=ReleaseStatus.LIVE)
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(version="1.2.0")

    with pytest.raises(DomainError, match=r"1\.0\.0 is no longer warm in Checkout.s staging"):
        services.application_rollback(application=checkout, actor=release_manager, reason="Oops")


def test_starting_needs_an_approved_release_valid_options_and_the_role(
    checkout: Application, live: Release, candidate: Release, release_manager: User, viewer: User
) -> None:
    with pytest.raises(DomainError, match="needs the release manager role"):
        services.operation_start(release=candidate, strategy="canary", parameters={}, actor=viewer)
    with pytest.raises(DomainError, match=r"shares must rise strictly"):
        services.operation_start(
            release=candidate, strategy="canary", parameters={"shares": [50, 5]}, actor=release_manager
        )
    with pytest.raises(DomainError, match=r"bake: unknown option"):
        services.operation_start(release=candidate, strategy="canary", parameters={"bake": 1}, actor=release_manager)
    with pytest.raises(DomainError, match="only an approved release"):
        services.operation_start(release=live, strategy="canary", parameters={}, actor=release_manager)
    assert not Operation.objects.exists()


def test_a_second_promotion_is_told_what_runs(
    checkout: Application, live: Release, candidate: Release, release_manager: User, rq_queues: dict[str, Queue]
) -> None:
    other = ReleaseFactory(
        application=checkout,
        version="1.1.1",
        status=ReleaseStatus.APPROVED,
        deployed_slot=candidate.deployed_slot,
        created_at=candidate.created_at,
        status_changed_at=candidate.created_at,
    )
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(version="")
    services.operation_start(release=candidate, strategy="canary", parameters=FAST_CANARY, actor=release_manager)

    with pytest.raises(DomainError, match="Another operation is already running on Checkout"):
        services.operation_start(release=other, strategy="canary", parameters=FAST_CANARY, actor=release_manager)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent starts need PostgreSQL")
def test_two_simultaneous_promotions_start_exactly_one_operation(
    checkout: Application, live: Release, candidate: Release, release_manager: User, rq_queues: dict[str, Queue]
) -> None:
    from django.db import connections

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def promote() -> None:
        try:
            barrier.wait()
            release = Release.objects.get(pk=candidate.pk)
            services.operation_start(release=release, strategy="blue_green", parameters={}, actor=release_manager)
            outcomes.append("started")
        except DomainError as exc:
            outcomes.append(str(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=promote) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert Operation.objects.count() == 1
    assert sorted(outcomes)[1] == "started"
    assert sorted(outcomes)[0].startswith(("Another operation is already running on Checkout", "Checkout 1.1.0 is"))
