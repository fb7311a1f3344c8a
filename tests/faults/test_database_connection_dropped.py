"""PostgreSQL connection dropped under a running operation.

A real `rqworker` subprocess (RQ's forking worker) connects with `application_name` slipway-fault-worker;
it is held at a chosen point (tests/faults/pauser.py) while the test terminates its connections with
`pg_terminate_backend()`, then let go. The job fails on its next query; a transition that was half
written (the release UPDATE done, its audit INSERT not yet) is rolled back by PostgreSQL as one
transaction. The runner gives its claim up on a fresh connection, so the recovery pass re-enqueues the
operation at once (not after the heartbeat goes stale), and it ends succeeded: each step once, one swap,
the release's status matching its audit trail.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from rq import Queue

from releases.audit.models import AuditEvent
from releases.catalog.models import ReleaseStatus
from strategies.operations.engine import operations_recover
from strategies.operations.models import OperationStatus, StepStatus
from tests.faults.conftest import (
    WORKER_APPLICATION_NAME,
    Worker,
    assert_nothing_enqueued_twice,
    assert_operation_consistent,
    assert_release_matches_its_audit,
    audit_actions,
)
from tests.faults.test_redis_outage import assert_promoted_once, promote
from tests.strategies.conftest import FAST_BLUE_GREEN, drive

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

AUDIT_INSERT = 'INSERT INTO "releases_auditevent"'
# Blue-green: 1 gate, 2 swap, 3 verify, 4 go live.
DROP_POINTS = [
    {"SLIPWAY_PAUSE_SQL": AUDIT_INSERT, "SLIPWAY_PAUSE_SQL_PARAM": "operation.running"},  # inside the claim
    {"SLIPWAY_PAUSE_AT": "step_started:2"},  # the swap step begun, nothing asked of the provider yet
    {"SLIPWAY_PAUSE_AT": "swap_begun"},  # the swap under way, its resume token not yet saved
    # Inside release_go_live's transaction: the old release superseded, the new one's UPDATE done, its
    # audit event not yet written.
    {"SLIPWAY_PAUSE_SQL": AUDIT_INSERT, "SLIPWAY_PAUSE_SQL_PARAM": "release.went_live"},
]


def terminate_worker_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            [WORKER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("point", DROP_POINTS, ids=lambda p: p.get("SLIPWAY_PAUSE_AT") or p["SLIPWAY_PAUSE_SQL_PARAM"])
def test_a_dropped_database_connection_fails_the_job_cleanly_and_the_operation_recovers(
    point: dict[str, str], rq_queues: dict[str, Queue], release_manager: User, tmp_path
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend() and pg_stat_activity are PostgreSQL's; SQLite has no server connection")
    queue = rq_queues["operations"]
    operation, candidate, live = promote("blue_green", FAST_BLUE_GREEN, release_manager)
    worker = Worker(tmp_path, settings.REDIS_URL, pause=point)
    worker.start(burst=True, queues=("operations",))
    try:
        worker.wait_until_paused()
        assert terminate_worker_connections() >= 1
    finally:
        worker.go_on()
    worker.wait(timeout=60)
    log = worker.log()
    assert "terminating connection due to administrator command" in log or "connection" in log, log[-3000:]

    operation.refresh_from_db()
    candidate.refresh_from_db()
    assert operation.status in (OperationStatus.PENDING, OperationStatus.RUNNING), operation.status
    assert operation.runner == "", "the runner gives its claim up even though its connection died"
    live.refresh_from_db()
    assert candidate.status == ReleaseStatus.ROLLING_OUT, "a half-written go-live is rolled back whole"
    assert live.status == ReleaseStatus.LIVE, "with the supersession of the release before it"
    assert_release_matches_its_audit(candidate)
    assert_release_matches_its_audit(live)
    assert [j for j in queue.failed_job_registry.get_job_ids() if j == operation.job_id] == [operation.job_id]

    # The recovery pass, with the default staleness: the claim was given up, and the job is failed in Redis.
    assert [pk for pk, _ in operations_recover()] == [operation.pk]
    drive(queue, operation)

    assert_promoted_once(operation, candidate, live)
    assert_operation_consistent(operation, forward_runs=2)
    repeating = ("verify_health", "bake", "analyse_canary")  # run again by design after each wait
    interrupted = [s for s in operation.steps.all() if s.attempts > 1 and s.kind not in repeating]
    assert len(interrupted) <= 1, [(s.position, s.attempts) for s in interrupted]
    assert audit_actions(candidate).count("release.went_live") == 1
    assert AuditEvent.objects.filter(action="release.superseded", object_id=str(live.pk)).count() == 1
    assert not operation.steps.filter(status=StepStatus.FAILED).exists()
    assert_nothing_enqueued_twice(queue, operation)
