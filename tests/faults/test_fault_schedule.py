"""A seeded schedule of promotions, rollbacks and faults; afterwards production is where Slipway says it is.

Three applications on the simulator, two real `rqworker --with-scheduler` subprocesses on a private Redis,
and this test playing rqcron (the recovery pass every half second) and the supervisor (a dead worker is
started again). A seeded schedule starts promotions (blue-green, with preview,
canary), rolls applications back, SIGKILLs workers (with their work horses and the scheduler they may
hold), restarts Redis empty, and (PostgreSQL) terminates the workers' database connections — each fault
twice, in a seeded order. Then the faults stop and everything settles. For every application: the
provider's production runs the live release, nothing is routed to a deployment slot, no preview is
applied, and reconciliation finds no drift; every operation is finished, its audit trail opened and
closed once.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from itertools import count

import pytest
from django.contrib.auth.models import User
from django.db import connection
from pytest_django.fixtures import Settings
from rq import Queue

from portal.core.errors import DomainError
from releases.catalog.models import Release, ReleaseStatus, SimulatorSlot
from strategies.operations import services
from strategies.operations.engine import operations_recover
from strategies.operations.models import OPERATION_ACTIVE, Drift, Operation, OperationStatus
from strategies.operations.reconcile import application_findings, reconcile
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site
from tests.faults.conftest import (
    WORKER_APPLICATION_NAME,
    PrivateRedis,
    Worker,
    assert_operation_consistent,
    assert_release_matches_its_audit,
)
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, VERSIONS, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SEEDS = [2412, 7]
# The workers run the portal's engine with its timings scaled down: a runner silent for 3 s is dead, and a
# bake of more than 0.2 s goes through RQ's scheduler (so losing the scheduler matters).
FAST_RECOVERY = {
    "OPERATION_HEARTBEAT_SECONDS": "1",
    "OPERATION_HEARTBEAT_STALE_SECONDS": "3",
    "OPERATION_WAKE_UP_GRACE_SECONDS": "1",
    "OPERATION_INLINE_WAIT_SECONDS": "0.2",
    "OPERATION_SWAP_POLL_SECONDS": "0.5",
    "OPERATION_SWAP_RECHECK_SECONDS": "0.5",
}
STRATEGIES = [
    ("blue_green", {**FAST_BLUE_GREEN, "verify_seconds": 1.0, "verify_interval_seconds": 0.3}),
    ("blue_green", {**FAST_BLUE_GREEN, "preview": True, "verify_seconds": 0.5, "verify_interval_seconds": 0.3}),
    ("canary", {**FAST_CANARY, "shares": [20, 60], "bake_seconds": 1.0, "verify_seconds": 0.5}),
]


def kill_group(worker: Worker) -> None:
    """SIGKILL the worker, its work horse and its scheduler (children), as a dying machine would."""
    if worker.process is None or worker.process.poll() is not None:
        return
    children = subprocess.run(  # noqa: S603 - pgrep of our own child
        ["pgrep", "-P", str(worker.process.pid)],  # noqa: S607 - procps' pgrep, wherever it is
        capture_output=True,
        text=True,
        check=False,
    )
    for pid in [int(p) for p in children.stdout.split()] + [worker.process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.process.wait(timeout=10)


def terminate_worker_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            [WORKER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


class World:
    def __init__(self, redis: PrivateRedis, workers: list[Worker], tmp_path, manager: User, seed: int) -> None:
        self.rng = random.Random(seed)
        self.redis = redis
        self.workers = workers
        self.tmp_path = tmp_path
        self.manager = manager
        self.versions = count(2)
        self.log: list[str] = []
        self.applications = []
        for n in range(3):
            application = ApplicationFactory(slug=f"sched-{n}", name=f"Scheduled {n}")
            add_simulated_site(application, VERSIONS)
            with_load(application)
            ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
            self.applications.append(application)
        for _ in range(2):
            self.start_worker()

    def start_worker(self) -> None:
        directory = self.tmp_path / f"w{len(self.workers)}"
        directory.mkdir()
        worker = Worker(directory, self.redis.url, pause=FAST_RECOVERY)
        worker.start(queues=("operations", "default"))
        self.workers.append(worker)

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.alive()]

    def supervise(self) -> None:
        """Start workers again until two run (deploy/compose.yaml restarts them)."""
        while len(self.alive()) < 2:
            self.start_worker()

    # --- actions --------------------------------------------------------------------------------
    def promote(self) -> None:
        idle = [
            a for a in self.applications if not Operation.objects.filter(application=a, status__in=OPERATION_ACTIVE)
        ]
        if not idle:
            return
        application = self.rng.choice(idle)
        version = f"1.{next(self.versions)}.0"
        SimulatorSlot.objects.filter(application=application, slot_name="staging").update(version=version)
        candidate = ReleaseFactory(
            application=application,
            version=version,
            status=ReleaseStatus.APPROVED,
            deployed_slot=application.slots.get(name="staging"),
        )
        strategy, parameters = self.rng.choice(STRATEGIES)
        try:
            operation = services.operation_start(
                release=candidate, strategy=strategy, parameters=parameters, actor=self.manager
            )
            self.log.append(f"promote {application.slug} {version} by {strategy}: operation {operation.pk}")
        except DomainError as exc:
            self.log.append(f"promote {application.slug} refused: {exc}")

    def roll_back(self) -> None:
        application = self.rng.choice(self.applications)
        try:
            operation = services.application_rollback(application=application, actor=self.manager, reason="sched")
            self.log.append(f"roll back {application.slug}: operation {operation.pk}")
        except DomainError as exc:
            self.log.append(f"roll back {application.slug} refused: {exc}")

    def kill_worker(self) -> None:
        alive = self.alive()
        if alive:
            kill_group(self.rng.choice(alive))
            self.log.append("killed a worker")
        self.supervise()

    def restart_redis(self) -> None:
        self.redis.stop()
        time.sleep(0.3)
        self.redis.start()
        self.log.append("restarted Redis empty")
        time.sleep(0.5)
        self.supervise()

    def drop_database_connections(self) -> None:
        if connection.vendor == "postgresql":
            self.log.append(f"terminated {terminate_worker_connections()} worker connections")

    def play(self) -> None:
        """Every kind of fault at least twice, in a seeded order among promotions and rollbacks."""
        faults = [self.kill_worker, self.restart_redis, self.drop_database_connections] * 2
        rest = [self.promote] * 6 + [self.roll_back] * 3
        schedule = faults + rest
        self.rng.shuffle(schedule)
        for action in [self.promote, self.promote, *schedule]:
            action()
            pause_until = time.monotonic() + self.rng.uniform(0.3, 1.5)
            while time.monotonic() < pause_until:
                operations_recover(stale_after=3)
                time.sleep(0.25)

    def settle(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.supervise()
            operations_recover(stale_after=3)
            for paused in Operation.objects.filter(status=OperationStatus.PAUSED):  # a person decides: roll back
                services.operation_rollback(operation=paused, actor=self.manager, reason="settling")
            active = list(Operation.objects.filter(status__in=OPERATION_ACTIVE))
            if not active:
                return
            if time.monotonic() > deadline:
                details = [
                    (o.pk, o.status, o.runner, o.wake_at, [(s.position, s.kind, s.status) for s in o.steps.all()])
                    for o in active
                ]
                logs = "\n".join(w.log()[-1500:] for w in self.workers[-2:])
                raise AssertionError(f"still active after {timeout} s: {details}\n{self.log}\n{logs}")
            time.sleep(0.5)


@pytest.mark.parametrize("seed", SEEDS)
def test_after_a_schedule_of_faults_production_is_where_slipway_says_it_is(
    private_redis: PrivateRedis,
    private_queues: dict[str, Queue],
    workers: list[Worker],
    release_manager: User,
    settings: Settings,
    tmp_path,
    seed: int,
) -> None:
    settings.OPERATION_WAKE_UP_GRACE_SECONDS = 1.0  # this process plays rqcron: its recovery pass, too
    world = World(private_redis, workers, tmp_path, release_manager, seed)

    world.play()
    world.settle()

    assert Operation.objects.exists(), world.log
    for application in world.applications:
        live = Release.objects.filter(application=application, status=ReleaseStatus.LIVE)
        assert live.count() == 1, (application.slug, world.log)
        slots = {s.slot_name: s for s in SimulatorSlot.objects.filter(application=application)}
        assert slots["production"].version == live.get().version, (application.slug, world.log)
        assert all(s.routing_percent == 0 for s in slots.values()), (application.slug, world.log)
        assert all(not s.preview_target for s in slots.values()), (application.slug, world.log)
        assert application_findings(application) == [], (application.slug, world.log)
        assert reconcile(application) is None
        for release in Release.objects.filter(application=application):
            assert_release_matches_its_audit(release)
    assert not Drift.objects.filter(resolved_at__isnull=True).exists()
    for operation in Operation.objects.all():
        assert operation.status in (OperationStatus.SUCCEEDED, OperationStatus.ROLLED_BACK), (
            operation.pk,
            operation.status,
            operation.error,
            world.log,
        )
        assert_operation_consistent(operation, forward_runs=None)
