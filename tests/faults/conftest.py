"""Fault-injection fixtures: a private redis-server, real `rqworker` subprocesses, the pause protocol,
and the consistency checks every fault test ends with.

The private Redis is a `redis-server` of its own on a free loopback port, with its own temporary
directory and no persistence (like the machine's Redis): stopping it loses every job, which is the
case the recovery pass exists for. The shared Redis on 6379 is never stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from pytest_django.fixtures import Settings
from rq import Queue
from rq.job import Job

from releases.audit.models import AuditEvent
from releases.audit.services import audit_type
from releases.catalog.models import Release, ReleaseStatus
from releases.catalog.services import TRANSITIONS
from strategies.operations.models import Operation, OperationStatus, StepStatus
from tests.releases.test_jobs import _subprocess_database_url

REDIS_SERVER = shutil.which("redis-server")
WORKER_APPLICATION_NAME = "slipway-fault-worker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server only this test uses; `stop()` and `start()` again on the same port (empty)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.starts += 1
        log = self.directory / f"redis-{self.starts}.log"
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        command += ["--save", "", "--appendonly", "no", "--logfile", str(log)]  # keeps nothing on disk
        self.process = subprocess.Popen(  # noqa: S603 - our own redis-server, fixed arguments
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        """Shut the server down (SIGTERM; nothing is saved, so a restart is empty)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def keys(self) -> int:
        return redis.Redis(port=self.port).dbsize()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if REDIS_SERVER is None:
        pytest.skip("Debian's redis-server binary is not installed (apt-get install redis-server)")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_queues(private_redis: PrivateRedis, settings: Settings) -> dict[str, Queue]:
    """Point this process's enqueueing (django-rq reads RQ_QUEUES at each get_queue) at the private Redis."""
    settings.REDIS_URL = private_redis.url
    settings.RQ_QUEUES = {name: {**config, "URL": private_redis.url} for name, config in settings.RQ_QUEUES.items()}
    import django_rq

    return {name: django_rq.get_queue(name) for name in settings.RQ_QUEUES}


class Worker:
    """A real `manage.py rqworker` subprocess (RQ's forking worker, as in production) on the test database."""

    def __init__(self, directory: Path, redis_url: str, *, pause: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.redis_url = redis_url
        self.pause_file = directory / "paused"
        self.pause = pause or {}
        self.process: subprocess.Popen[str] | None = None
        self.started = 0

    def env(self) -> dict[str, str]:
        database_url = _subprocess_database_url()
        if database_url.startswith("postgres"):
            database_url += f"?application_name={WORKER_APPLICATION_NAME}"
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.faults.fault_settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis_url,
            "SLIPWAY_PAUSE_FILE": str(self.pause_file),
            **self.pause,
        }

    def start(
        self, *, burst: bool = False, queues: tuple[str, ...] = ("operations", "default"), scheduler: bool = True
    ) -> None:
        self.started += 1
        command = [sys.executable, "manage.py", "rqworker", *queues]
        if scheduler:
            command.append("--with-scheduler")
        if burst:
            command.append("--burst")
        out = open(self.directory / f"worker-{self.started}.log", "w")  # noqa: SIM115 - closed by the process end
        self.process = subprocess.Popen(  # noqa: S603 - manage.py of this checkout
            command, cwd=Path(settings.BASE_DIR), env=self.env(), stdout=out, stderr=subprocess.STDOUT, text=True
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)  # warm shutdown: the job in hand finishes first
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.directory.glob("worker-*.log")))

    # -- the pause protocol (tests/faults/pauser.py) --
    def wait_until_paused(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.pause_file.exists():
            if not self.alive() and self.started:
                raise AssertionError(f"the worker ended before pausing:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker did not reach {self.pause} in {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.02)

    def go_on(self) -> None:
        Path(f"{self.pause_file}.go").touch()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    """Workers a test starts are appended here and stopped (by their own process id) at the end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 30.0, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_finished(operation: Operation, timeout: float = 30.0, worker: Worker | None = None) -> Operation:
    def finished() -> bool:
        operation.refresh_from_db()
        return operation.finished_at is not None

    try:
        wait_for(finished, f"operation {operation.pk} to finish", timeout)
    except AssertionError:
        steps = [(s.position, s.kind, s.status, s.attempts, s.log[-200:]) for s in operation.steps.all()]
        raise AssertionError(
            f"operation {operation.pk} still {operation.status} (runner {operation.runner!r}, job {operation.job_id}, "
            f"wake {operation.wake_at}): {steps}\n{worker.log()[-4000:] if worker else ''}"
        ) from None
    return operation


# --- consistency checks ---------------------------------------------------------------------------
STATUS_OF_ACTION = {"release.registered": ReleaseStatus.REGISTERED} | {a: t.target for a, t in TRANSITIONS.items()}


def audit_actions(obj: Operation | Release) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type=audit_type(obj), object_id=str(obj.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


def release_actions(release: Release) -> list[str]:
    return [a for a in audit_actions(release) if a in STATUS_OF_ACTION]


def assert_release_matches_its_audit(release: Release) -> None:
    """The release's status is where its audited transitions lead, each edge legal.

    A release made by a factory (no `release.registered` event) starts wherever its first event leads."""
    release.refresh_from_db()
    actions = release_actions(release)
    status = None
    for action in actions:
        if action == "release.registered":
            assert status is None, (release, actions)
        elif status is not None:
            assert status in TRANSITIONS[action].sources, (release, actions)
        status = STATUS_OF_ACTION[action]
    if actions:  # a factory-made release nothing happened to has no trail to match
        assert status == release.status, (release, release.status, actions)


def assert_operation_consistent(operation: Operation, *, forward_runs: int | None = 1) -> None:
    """Finished iff finished_at; its audit trail opens and closes once; forward steps ran `forward_runs` times."""
    operation.refresh_from_db()
    assert operation.status not in (OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.ROLLING_BACK)
    assert operation.finished_at is not None
    assert operation.runner == ""
    actions = audit_actions(operation)
    assert actions.count(f"operation.{operation.status}") == 1, actions
    # It ran once — unless a rollback reached it before any worker did (pending → rolling back): then never,
    # and none of its forward steps began.
    never_ran = actions[:2] == ["operation.created", "operation.rolling_back"]
    assert actions.count("operation.running") == (0 if never_ran else 1), actions
    if never_ran:
        forward = operation.steps.filter(parameters__undo__isnull=True)
        assert not forward.exclude(status=StepStatus.SKIPPED).exists(), list(forward.values_list("kind", "status"))
    assert not operation.steps.filter(status__in=(StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)).exists()
    if forward_runs is not None:
        for step in operation.steps.filter(parameters__undo__isnull=True).exclude(status=StepStatus.SKIPPED):
            assert step.attempts <= forward_runs or step.kind in ("bake", "verify_health", "analyse_canary"), (
                step.position,
                step.kind,
                step.attempts,
                step.log,
            )


def operation_jobs(queue: Queue, operation: Operation) -> dict[str, list[str]]:
    """The operation's jobs in each of the queue's places (queued, scheduled, started, finished, failed)."""
    prefix = f"operation-{operation.pk}-"
    places = {
        "queued": queue.get_job_ids(),
        "scheduled": queue.scheduled_job_registry.get_job_ids(),
        "started": queue.started_job_registry.get_job_ids(),
        "finished": queue.finished_job_registry.get_job_ids(),
        "failed": queue.failed_job_registry.get_job_ids(),
    }
    return {place: [j for j in ids if j.startswith(prefix)] for place, ids in places.items()}


def assert_nothing_enqueued_twice(queue: Queue, operation: Operation) -> None:
    """Once it is over, no job of the operation waits anywhere, and no job that ran found another runner in charge."""
    jobs = operation_jobs(queue, operation)
    assert jobs["queued"] == jobs["scheduled"] == jobs["started"] == [], jobs
    for job_id in jobs["finished"]:
        result = Job.fetch(job_id, connection=queue.connection).return_value()
        assert not (isinstance(result, dict) and "skipped" in result), (job_id, result)
