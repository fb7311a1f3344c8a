"""Backup and restore with an operation in flight (docs/deployment.md, "Backup and restore").

A blue-green promotion is started on PostgreSQL and driven until it waits in its production verification
(re-enqueued for later, as most of an operation's life is spent). The database is then dumped with
`pg_dump -Fc`, restored with `pg_restore` into a new database, and Redis is emptied (a restore into a new
environment starts with no queued jobs). Against the restored database, `manage.py recover_operations` and
a real worker must bring the operation to a consistent end: succeeded with the release live, the old one
superseded and production running it after exactly one swap (or rolled back, with the old release live).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from rq import Queue

from strategies.operations.models import OperationStatus, StepStatus
from tests.conftest import _empty
from tests.strategies.conftest import drive
from tests.strategies.test_crash import promote

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Verification of 6 s checked every 3 s: each wait is longer than OPERATION_INLINE_WAIT_SECONDS, so the
# operation is handed back to the queue (scheduled) between checks instead of holding a worker.
SLOW_VERIFY = {"verify_seconds": 6, "verify_interval_seconds": 3}

# Runs in a subprocess against the restored database: a worker drives the recovered job to the end.
WORKER_SCRIPT = """
import json, time
import django_rq
from rq import SimpleWorker
from releases.audit.models import AuditEvent
from strategies.operations.models import Operation
from releases.catalog.models import Release, SimulatorSlot, SimulatorSwap
from tests.strategies.conftest import enqueue_due_jobs

queue = django_rq.get_queue("operations")
operation = Operation.objects.get(pk={pk})
deadline = time.monotonic() + 90
while operation.status in ("pending", "running", "rolling_back") and time.monotonic() < deadline:
    enqueue_due_jobs(queue)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    operation.refresh_from_db()
    time.sleep(0.2)
slots = {{s.slot_name: s.version for s in SimulatorSlot.objects.filter(application=operation.application)}}
print(json.dumps({{
    "status": operation.status,
    "error": operation.error,
    "releases": {{r.version: r.status for r in Release.objects.filter(application=operation.application)}},
    "slots": slots,
    "swaps": SimulatorSwap.objects.filter(application=operation.application).count(),
    "steps": [[s.position, s.kind, s.status, s.attempts] for s in operation.steps.order_by("position")],
    "recovered": AuditEvent.objects.filter(action="operation.recovered", object_id=str(operation.pk)).count(),
}}))
"""


def _pg(*args: str) -> list[str]:
    db = connection.settings_dict
    return [*args, "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"] or "postgres"]


def _manage(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "WARNING",
        "LOG_STREAM": "stderr",  # keep the commands' own output alone on stdout
    }
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", *args],
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_an_operation_in_flight_survives_pg_dump_and_pg_restore(
    rq_queues: dict[str, Queue], release_manager: User, tmp_path: Path
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pg_dump/pg_restore: PostgreSQL only")
    operation, _candidate, _live = promote(200, "blue_green", SLOW_VERIFY, release_manager)
    drive(rq_queues["operations"], operation, until={OperationStatus.RUNNING})
    operation.refresh_from_db()
    verifying = operation.steps.get(kind="verify_health", status=StepStatus.WAITING)
    assert operation.status == OperationStatus.RUNNING and operation.runner == "" and operation.wake_at
    assert operation.steps.filter(kind="swap", status=StepStatus.SUCCEEDED).exists(), "the dump is taken after the swap"

    db = connection.settings_dict
    dump = tmp_path / "slipway.dump"
    restored = f"slipway_restore_{uuid.uuid4().hex[:8]}"
    subprocess.run(_pg("pg_dump", "-Fc", "-d", db["NAME"], "-f", str(dump)), check=True, timeout=120)  # noqa: S603
    subprocess.run(_pg("createdb", restored), check=True, timeout=60)  # noqa: S603
    try:
        restore = subprocess.run(  # noqa: S603
            _pg("pg_restore", "--no-owner", "--exit-on-error", "-d", restored, str(dump)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert restore.returncode == 0, restore.stderr
        _empty(list(rq_queues.values()))  # the new environment's Redis holds no job
        url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{restored}"

        ready = _manage(url, "migrate", "--check")
        recover = _manage(url, "recover_operations")
        worker = _manage(url, "shell", "-c", WORKER_SCRIPT.format(pk=operation.pk))
    finally:
        subprocess.run(_pg("dropdb", "--if-exists", "--force", restored), check=False, timeout=60)  # noqa: S603

    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert recover.returncode == 0, recover.stderr
    assert f"operation {operation.pk}: re-enqueued (its job {operation.job_id} is gone from Redis)" in recover.stdout
    assert worker.returncode == 0, worker.stderr[-3000:]
    result = json.loads(worker.stdout.strip().splitlines()[-1])
    assert result["recovered"] == 1
    if result["status"] == OperationStatus.SUCCEEDED:
        assert result["releases"] == {"1.0.0": "superseded", "1.1.0": "live"}, result
        assert result["slots"]["production"] == "1.1.0" and result["slots"]["staging"] == "1.0.0", result
        assert result["swaps"] == 1, result  # the swap done before the dump was not done again
        swap = next(s for s in result["steps"] if s[1] == "swap")
        assert swap[2] == "succeeded" and swap[3] == 1, result
    else:
        assert result["status"] == OperationStatus.ROLLED_BACK, result
        assert result["releases"] == {"1.0.0": "live", "1.1.0": "rolled_back"}, result
        assert result["slots"]["production"] == "1.0.0", result
    assert verifying.position in [s[0] for s in result["steps"]]
