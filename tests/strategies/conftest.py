"""A simulated application with 1.0.0 live in production and an approved 1.1.0 warm in staging,
and `drive()`: a real RQ worker (in-process, burst, with the scheduler) run until the operation settles."""

from __future__ import annotations

import time

import pytest
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job

from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSite
from strategies.operations.models import OPERATION_ACTIVE, Operation, OperationStatus
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site

VERSIONS = {"production": "1.0.0", "staging": "1.1.0", "test": "1.1.0", "dev": "1.2.0-dev.1"}
# Tiny timings: verification and bake in hundredths of a second, analysis on the last minute.
FAST_BLUE_GREEN = {"verify_seconds": 0.05, "verify_interval_seconds": 0.02}
FAST_RINGS = {"verify_seconds": 0.05, "verify_interval_seconds": 0.02}
FAST_CANARY = {
    "bake_seconds": 0.02,
    "analysis_minutes": 5,
    "min_requests": 50,
    "min_latency_samples": 20,
    "verify_seconds": 0.05,
    "verify_interval_seconds": 0.02,
}


@pytest.fixture
def checkout() -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application, VERSIONS)
    return application


@pytest.fixture
def live(checkout: Application) -> Release:
    return ReleaseFactory(application=checkout, version="1.0.0", status=ReleaseStatus.LIVE)


@pytest.fixture
def candidate(checkout: Application, live: Release) -> Release:
    staging = checkout.slots.get(name="staging")
    return ReleaseFactory(application=checkout, version="1.1.0", status=ReleaseStatus.APPROVED, deployed_slot=staging)


def with_load(application: Application, rpm: int = 1200) -> None:
    SimulatorSite.objects.update_or_create(application=application, defaults={"synthetic_rpm": rpm})


def enqueue_due_jobs(queue: Queue) -> None:
    """Move scheduled jobs that are due onto the queue, as RQ's scheduler does.

    Done here rather than with `work(with_scheduler=True)`, whose scheduler first needs a per-queue lock
    in Redis that another process (a killed worker, a concurrent run) may still hold.
    """
    registry = queue.scheduled_job_registry
    for job_id in registry.get_jobs_to_schedule(int(time.time())):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            registry.remove(job_id)
            continue
        registry.remove(job)
        queue.enqueue_job(job)


def drive(queue: Queue, operation: Operation, *, timeout: float = 20.0, until: set[str] | None = None) -> Operation:
    """Run real workers over the queue until the operation is finished (or paused, or in `until`)."""
    settle = until or {s for s in OperationStatus.values if s not in OPERATION_ACTIVE} | {OperationStatus.PAUSED}
    deadline = time.monotonic() + timeout
    while True:
        enqueue_due_jobs(queue)
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        operation.refresh_from_db()
        if operation.status in settle:
            return operation
        if time.monotonic() > deadline:
            steps = [(s.position, s.kind, s.status, s.log[-300:]) for s in operation.steps.all()]
            raise AssertionError(
                f"operation {operation.pk} still {operation.status} after {timeout} s "
                f"(runner {operation.runner!r}, job {operation.job_id}): {steps}"
            )
        time.sleep(0.05)
