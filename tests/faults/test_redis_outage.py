"""Redis stopped and restarted mid-operation.

A private redis-server (its own port and directory, nothing kept on disk) carries the operations queue;
a real `rqworker --with-scheduler` subprocess runs the operation. Redis is stopped while the operation
waits out a bake (its wake-up job sits in Redis' scheduled registry) or while a step runs, then started
again empty: the job is lost, as it would be in production. The database is the source of truth: the
recovery pass re-enqueues the operation, which completes with every step run once, the release live, and
the audit trail complete.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from rq import Queue

from releases.catalog.models import Release, ReleaseStatus, SimulatorSlot, SimulatorSwap
from strategies.operations import services
from strategies.operations.engine import operations_recover
from strategies.operations.models import Operation, OperationStatus, StepStatus
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site
from tests.faults.conftest import (
    PrivateRedis,
    Worker,
    assert_nothing_enqueued_twice,
    assert_operation_consistent,
    assert_release_matches_its_audit,
    audit_actions,
    operation_jobs,
    wait_finished,
    wait_for,
)
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, VERSIONS, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def promote(strategy: str, parameters: dict, actor: User) -> tuple[Operation, Release, Release]:
    application = ApplicationFactory(slug=f"redis-{strategy}", name=f"Redis {strategy}")
    add_simulated_site(application, VERSIONS)
    with_load(application)
    live = ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    candidate = ReleaseFactory(
        application=application,
        version="1.1.0",
        status=ReleaseStatus.APPROVED,
        deployed_slot=application.slots.get(name="staging"),
    )
    operation = services.operation_start(release=candidate, strategy=strategy, parameters=parameters, actor=actor)
    return operation, candidate, live


def assert_promoted_once(operation: Operation, candidate: Release, live: Release) -> None:
    candidate.refresh_from_db()
    live.refresh_from_db()
    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert (candidate.status, live.status) == (ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED)
    assert_release_matches_its_audit(candidate)
    assert_release_matches_its_audit(live)
    slots = {s.slot_name: s for s in SimulatorSlot.objects.filter(application=operation.application)}
    assert (slots["production"].version, slots["staging"].version) == ("1.1.0", "1.0.0")
    assert slots["staging"].routing_percent == 0
    assert SimulatorSwap.objects.filter(application=operation.application).count() == 1


class _Overdue(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and "was still scheduled" in other and "past its time" in other

    __hash__ = str.__hash__


ANY_OVERDUE = _Overdue("its wake-up job … was still scheduled … past its time")


def periodic_recovery_until_finished(
    operation: Operation, worker: Worker, *, stale_after: float, timeout: float = 30.0
) -> list[tuple[int, str]]:
    """Run the recovery pass every half second, as portal.cron does (every 5 s), until the operation ends."""
    recovered: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    while True:
        operation.refresh_from_db()
        if operation.finished_at is not None:
            return recovered
        if time.monotonic() > deadline:
            wait_finished(operation, timeout=0, worker=worker)  # raises with the steps and the worker's log
        recovered += operations_recover(stale_after=stale_after)
        time.sleep(0.5)


def test_redis_lost_during_a_bake_loses_the_wake_up_job_and_the_recovery_pass_finishes_the_operation(
    private_redis: PrivateRedis,
    private_queues: dict[str, Queue],
    workers: list[Worker],
    release_manager: User,
    tmp_path,
) -> None:
    queue = private_queues["operations"]
    # Canary: 1 gate, 2 route 10 %, 3 bake 2.5 s (longer than the inline wait: re-enqueued for later), 4 analyse, ...
    parameters = {**FAST_CANARY, "shares": [10, 100], "bake_seconds": 2.5}
    operation, candidate, live = promote("canary", parameters, release_manager)
    worker = Worker(tmp_path, private_redis.url)
    workers.append(worker)
    worker.start()

    def waiting_in_redis() -> bool:
        operation.refresh_from_db()
        idle = all(not q.count and not q.started_job_registry.count for q in private_queues.values())
        return operation.wake_at is not None and bool(operation_jobs(queue, operation)["scheduled"]) and idle

    # The worker idle (the slot refresh the routing change asked for done too): see the other test for a
    # worker that is running a job when Redis goes away.
    wait_for(waiting_in_redis, "the bake to be handed to Redis' scheduler")
    bake = operation.steps.get(position=3)
    assert bake.status == StepStatus.WAITING

    private_redis.stop()
    time.sleep(2.0)  # longer than RQ's scheduler polls (1 s): it meets the outage
    private_redis.start()  # empty: the scheduled wake-up job is gone
    assert operation_jobs(queue, operation)["scheduled"] == []

    # Nothing wakes the operation: past its wake time it still waits.
    time.sleep(max(0.0, (operation.wake_at.timestamp() - time.time())) + 1.5)
    bake.refresh_from_db()
    operation.refresh_from_db()
    assert bake.status == StepStatus.WAITING
    assert operation.status == OperationStatus.RUNNING

    # The periodic recovery pass (portal.cron) sees a runnable operation whose job Redis no longer has.
    recovered = operations_recover()
    assert [pk for pk, _ in recovered] == [operation.pk]
    assert "is gone from Redis" in recovered[0][1]
    if not worker.alive():
        # RQ's worker retries a refused connection, but quits on a Redis *timeout* ("Redis connection timeout,
        # quitting"), which a loaded machine can meet while the server restarts. Production runs workers under a
        # supervisor (deploy/compose.yaml: restart unless-stopped); the test plays that part, and only for that cause.
        log = worker.log()
        redis_cause = any(c in log for c in ("Redis connection timeout", "redis.exceptions.ConnectionError"))
        assert "quitting" in log and redis_cause, log[-3000:]
        worker.start()
    # RQ's scheduler process may or may not have lived through the outage (redis-py retries a refused connection
    # with a jittered backoff that can span it; if it died, the worker restarts it only at its 10-minute
    # maintenance). Either way the operation finishes: a later wake-up job left scheduled past its time is
    # re-enqueued by the periodic pass (test_a_wake_up_job_no_scheduler_moves_is_re_enqueued_by_the_recovery_pass).
    later = periodic_recovery_until_finished(operation, worker, stale_after=2.0)
    assert [why for _, why in later] in ([], [ANY_OVERDUE]), later

    assert_promoted_once(operation, candidate, live)
    assert_operation_consistent(operation)
    assert audit_actions(operation).count("operation.recovered") == 1 + len(later)
    assert_nothing_enqueued_twice(queue, operation)


def test_a_wake_up_job_no_scheduler_moves_is_re_enqueued_by_the_recovery_pass(
    private_redis: PrivateRedis,
    private_queues: dict[str, Queue],
    workers: list[Worker],
    release_manager: User,
    tmp_path,
) -> None:
    """A worker whose scheduler is gone (here: never started): the bake's wake-up job stays in Redis' scheduled
    registry past its time, and the recovery pass, not the scheduler, moves the operation on."""
    queue = private_queues["operations"]
    parameters = {**FAST_CANARY, "shares": [10, 100], "bake_seconds": 2.5}
    operation, candidate, live = promote("canary", parameters, release_manager)
    worker = Worker(tmp_path, private_redis.url)
    workers.append(worker)
    worker.start(scheduler=False)

    def waiting_in_redis() -> bool:
        operation.refresh_from_db()
        return operation.wake_at is not None and bool(operation_jobs(queue, operation)["scheduled"])

    wait_for(waiting_in_redis, "the bake to be handed to Redis' scheduler")
    # Within the grace the pass leaves it to the scheduler; past it, nothing has moved it.
    assert operations_recover(stale_after=2.0) == []
    time.sleep(max(0.0, (operation.wake_at.timestamp() - time.time())) + 0.5)
    assert operation.steps.get(position=3).status == StepStatus.WAITING

    later = periodic_recovery_until_finished(operation, worker, stale_after=2.0)
    assert later, "the recovery pass never re-enqueued the overdue wake-up"
    assert all(why == ANY_OVERDUE for _, why in later), later
    assert_promoted_once(operation, candidate, live)
    assert_operation_consistent(operation)
    assert audit_actions(operation).count("operation.recovered") == len(later)
    assert_nothing_enqueued_twice(queue, operation)


def test_redis_lost_while_a_step_runs_the_step_is_not_run_twice(
    private_redis: PrivateRedis,
    private_queues: dict[str, Queue],
    workers: list[Worker],
    release_manager: User,
    tmp_path,
) -> None:
    queue = private_queues["operations"]
    # Blue-green: 1 gate, 2 swap, 3 verify for 2 s (checks slept in the worker, no re-enqueue), 4 go live.
    parameters = {**FAST_BLUE_GREEN, "verify_seconds": 2.0, "verify_interval_seconds": 0.25}
    operation, candidate, live = promote("blue_green", parameters, release_manager)
    worker = Worker(tmp_path, private_redis.url, pause={"SLIPWAY_PAUSE_AT": "step_started:3"})
    workers.append(worker)
    worker.start()
    worker.wait_until_paused()

    private_redis.stop()
    worker.go_on()  # the verification runs on with Redis down (the refresh it asks for cannot be queued)
    time.sleep(1.0)
    private_redis.start()

    try:
        wait_finished(operation, timeout=10, worker=worker)
    except AssertionError:
        recovered = operations_recover()
        print("recovered:", recovered, "worker alive:", worker.alive())
        if not worker.alive():
            worker.start()
        wait_finished(operation, worker=worker)
    print(worker.log()[-5000:])
    assert_promoted_once(operation, candidate, live)
    assert_operation_consistent(operation)
    assert_nothing_enqueued_twice(queue, operation)
