"""Horizontal scaling: three real `rqworker` processes on one queue never run the same step twice.

Each of 10 operations (5 blue-green, 5 canary) is enqueued twice, so two jobs for the same operation race
in different worker processes; the engine's claim (a conditional UPDATE on the operation's runner) must let
exactly one of them drive it. The proof is in the rows: every step started once (`attempts == 1`), one
`operation.running` audit event and one provider swap per operation, and every operation succeeded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rq import Queue

from releases.audit.models import AuditEvent
from releases.catalog.models import ReleaseStatus, SimulatorSwap
from strategies.operations.engine import enqueue_operation
from strategies.operations.models import Operation, OperationStatus, OperationStep
from tests.releases.test_jobs import _subprocess_database_url
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, enqueue_due_jobs
from tests.strategies.test_crash import promote

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WORKERS = 3
OPERATIONS = 10


def run_workers(tmp_path: Path, round_: int) -> list[int]:
    """Start WORKERS burst workers at once (RQ's forking worker, the production class) and wait for all."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "WARNING",
    }
    processes = []
    for n in range(WORKERS):
        log = (tmp_path / f"worker-{round_}-{n}.log").open("w")
        processes.append(
            subprocess.Popen(  # noqa: S603 - our own manage.py
                [sys.executable, "manage.py", "rqworker", "operations", "--burst", "--name", f"scale-{round_}-{n}"],
                cwd=Path(settings.BASE_DIR),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return [p.wait(timeout=180) for p in processes]


def test_three_workers_on_one_queue_run_every_step_exactly_once(
    rq_queues: dict[str, Queue], release_manager: User, tmp_path: Path
) -> None:
    queue = rq_queues["operations"]
    operations = []
    for n in range(OPERATIONS):
        strategy = "blue_green" if n % 2 else "canary"
        parameters = FAST_BLUE_GREEN if strategy == "blue_green" else {**FAST_CANARY, "shares": [10, 100]}
        operation, _candidate, _live = promote(100 + n, strategy, parameters, release_manager)
        enqueue_operation(operation)  # a second job for the same operation: two workers may race for it
        operations.append(operation)
    assert queue.count == 2 * OPERATIONS

    for round_ in range(5):
        exits = run_workers(tmp_path, round_)
        assert exits == [0] * WORKERS, [(p.name, p.read_text()[-2000:]) for p in sorted(tmp_path.glob("*.log"))]
        if not Operation.objects.filter(pk__in=[o.pk for o in operations], status__in=["pending", "running"]).exists():
            break
        time.sleep(1.1)  # a bake re-enqueued for later: let it fall due, then hand it to the workers
        enqueue_due_jobs(queue)

    for operation in operations:
        operation.refresh_from_db()
        steps = list(OperationStep.objects.filter(operation=operation).order_by("position"))
        assert operation.status == OperationStatus.SUCCEEDED, (operation.pk, operation.error)
        assert operation.release.status == ReleaseStatus.LIVE
        assert steps and all(s.status == "succeeded" for s in steps)
        ran = {s.position: s.attempts for s in steps}
        # A step that waits (bake, verification) is entered once per wake-up; the others exactly once.
        assert all(s.attempts == 1 for s in steps if s.kind not in {"bake", "verify_health", "analyse"}), (
            operation.pk,
            ran,
        )
        assert all("Resumed after an interruption" not in s.log for s in steps), (
            operation.pk
        )  # no runner ever found another's step half done
        running = AuditEvent.objects.filter(action="operation.running", object_id=str(operation.pk))
        assert running.count() == 1, operation.pk
        assert SimulatorSwap.objects.filter(application=operation.application).count() == 1, operation.pk
    # Both jobs of every operation ran; one of each pair found the operation claimed or finished.
    assert queue.count == 0 and queue.failed_job_registry.count == 0
