"""Slot refresh, the whole way round: web request -> Redis -> RQ worker -> database.

These tests use the real Redis (database 15, see tests/settings.py) and a real RQ worker in burst
mode. They are transactional because the job is enqueued only when the request's transaction
commits, and the worker must see committed rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

from releases.audit.models import AuditEvent
from releases.catalog.jobs import enqueue_slots_refresh, refresh_application_slots
from releases.catalog.models import Application, Health, Release, ReleaseStatus, Slot
from tests.factories import ApplicationFactory, ReleaseFactory, SimulatorSlotFactory

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# What the simulated cloud runs: slot -> (version, healthy, share of traffic).
SIMULATED = {
    "dev": ("2.1.0-rc1", True, 0),
    "test": ("2.0.0", True, 0),
    "staging": ("2.0.0", False, 0),
    "production": ("1.9.0", True, 100),
}


@pytest.fixture
def checkout() -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    for slot_name, (version, healthy, percent) in SIMULATED.items():
        SimulatorSlotFactory(
            application=application, slot_name=slot_name, version=version, healthy=healthy, routing_percent=percent
        )
    return application


@pytest.fixture
def live_release(checkout: Application) -> Release:
    return ReleaseFactory(application=checkout, version="1.9.0", status=ReleaseStatus.LIVE)


def work(queue: Queue) -> bool:
    """Run a real worker over the queue until it is empty. In-process (no fork), so it shares the test database."""
    worker = SimpleWorker([queue], connection=queue.connection)
    return worker.work(burst=True)


def request_refresh(client: Client, application: Application) -> None:
    response = client.post(reverse("application_refresh_slots", args=[application.slug]))
    assert response.status_code == 302
    assert response.headers["Location"] == application.get_absolute_url()


def poll(client: Client, application: Application) -> int:
    return client.get(application.get_absolute_url(), headers={"HX-Request": "true"}).status_code


def test_a_refresh_asked_for_on_the_web_is_done_by_a_worker_and_audited(
    client: Client, release_manager: User, rq_queues: dict[str, Queue], checkout: Application, live_release: Release
) -> None:
    queue = rq_queues["default"]
    client.force_login(release_manager)

    request_refresh(client, checkout)

    [job] = queue.get_jobs()
    assert job.func_name == "releases.catalog.jobs.refresh_application_slots"
    assert job.args == (checkout.pk,)
    checkout.refresh_from_db()
    assert checkout.slots_refresh_pending
    assert poll(client, checkout) == 200  # the page keeps polling while the refresh is pending

    assert work(queue) is True

    assert Job.fetch(job.id, connection=queue.connection).get_status() == JobStatus.FINISHED
    assert queue.count == 0
    slots = {slot.name: slot for slot in Slot.objects.filter(application=checkout)}
    for name, (version, healthy, percent) in SIMULATED.items():
        assert slots[name].running_version == version
        assert slots[name].health == (Health.HEALTHY if healthy else Health.UNHEALTHY)
        assert slots[name].traffic_percent == percent
        assert slots[name].refreshed_at is not None
    assert slots["staging"].health_detail == "Simulated health check failing"
    assert slots["production"].current_release == live_release
    assert slots["test"].current_release is None  # 2.0.0 was never registered
    checkout.refresh_from_db()
    assert checkout.slots_refreshed_at is not None
    assert not checkout.slots_refresh_pending
    assert checkout.slots_refresh_error == ""
    events = AuditEvent.objects.filter(action="slot.observed")
    assert sorted(event.object_repr for event in events) == sorted(f"Checkout / {name}" for name in SIMULATED)
    for event in events:
        assert event.origin == {"via": "job", "job_id": job.id}
        assert (event.actor, event.actor_label, event.application) == (None, "system", checkout)
    production = events.get(object_id=str(slots["production"].pk))
    assert production.before["running_version"] == ""
    assert production.after == {
        "running_version": "1.9.0",
        "current_release": live_release.pk,
        "traffic_percent": 100,
        "health": "healthy",
        "health_detail": "",
    }
    assert poll(client, checkout) == 286  # htmx: stop polling, the refresh has landed


def test_a_refresh_that_finds_nothing_new_writes_no_audit_event(
    client: Client, release_manager: User, rq_queues: dict[str, Queue], checkout: Application
) -> None:
    queue = rq_queues["default"]
    client.force_login(release_manager)
    request_refresh(client, checkout)
    work(queue)
    first_seen = Slot.objects.get(application=checkout, name="production").refreshed_at
    events = AuditEvent.objects.filter(action="slot.observed").count()

    request_refresh(client, checkout)
    [job] = queue.get_jobs()
    work(queue)

    assert AuditEvent.objects.filter(action="slot.observed").count() == events == 4
    assert Slot.objects.get(application=checkout, name="production").refreshed_at > first_seen
    result = Job.fetch(job.id, connection=queue.connection).return_value()
    assert (result["changed"], sorted(result["unchanged"]), result["error"]) == ([], sorted(SIMULATED), "")


def test_a_refresh_audits_only_the_slot_that_changed(
    client: Client, release_manager: User, rq_queues: dict[str, Queue], checkout: Application
) -> None:
    queue = rq_queues["default"]
    client.force_login(release_manager)
    request_refresh(client, checkout)
    work(queue)
    checkout.simulator_slots.filter(slot_name="staging").update(version="2.0.1", healthy=True)

    request_refresh(client, checkout)
    work(queue)

    latest = AuditEvent.objects.filter(action="slot.observed").order_by("-id").first()
    assert AuditEvent.objects.filter(action="slot.observed").count() == 5
    assert latest.object_repr == "Checkout / staging"
    assert (latest.before["running_version"], latest.after["running_version"]) == ("2.0.0", "2.0.1")
    assert (latest.before["health"], latest.after["health"]) == ("unhealthy", "healthy")


def test_a_provider_that_cannot_answer_is_recorded_on_the_application(
    client: Client, release_manager: User, rq_queues: dict[str, Queue]
) -> None:
    queue = rq_queues["default"]
    application = ApplicationFactory(azure=True, name="Ledger", slug="ledger")
    client.force_login(release_manager)

    request_refresh(client, application)
    [job] = queue.get_jobs()
    work(queue)

    assert Job.fetch(job.id, connection=queue.connection).get_status() == JobStatus.FINISHED
    application.refresh_from_db()
    # Tests never configure Azure credentials: the refresh records why it could not sign in.
    assert application.slots_refresh_error.startswith("The service principal credential needs AZURE_TENANT_ID")
    assert not application.slots_refresh_pending
    assert not AuditEvent.objects.filter(action="slot.observed").exists()
    assert set(Slot.objects.filter(application=application).values_list("running_version", "health")) == {
        ("", Health.UNKNOWN)
    }
    page = client.get(application.get_absolute_url())
    assert "Last refresh failed: The service principal credential needs AZURE_TENANT_ID" in page.text


def test_a_refresh_is_sent_to_redis_only_when_its_transaction_commits(
    rq_queues: dict[str, Queue], checkout: Application
) -> None:
    queue = rq_queues["default"]

    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_slots_refresh(checkout)
        raise RuntimeError("abandon the request")
    assert queue.count == 0

    with transaction.atomic():
        enqueue_slots_refresh(checkout)
        assert queue.count == 0
    assert queue.count == 1


def test_a_job_for_a_deleted_application_does_nothing(rq_queues: dict[str, Queue]) -> None:
    queue = rq_queues["default"]
    job = queue.enqueue(refresh_application_slots, 987_654)

    work(queue)

    assert Job.fetch(job.id, connection=queue.connection).return_value() == {"skipped": "application no longer exists"}


def _subprocess_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    name = str(db["NAME"])
    if connection.vendor != "sqlite" or "memory" in name:
        pytest.skip(f"A worker subprocess cannot reach this test database ({connection.vendor} {name!r})")
    return f"sqlite:///{name}"


def test_the_rqworker_command_runs_a_queued_refresh(
    client: Client, release_manager: User, rq_queues: dict[str, Queue], checkout: Application
) -> None:
    queue = rq_queues["default"]
    client.force_login(release_manager)
    request_refresh(client, checkout)
    [job] = queue.get_jobs()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }

    finished = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "default", "--burst"],
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert Job.fetch(job.id, connection=queue.connection).get_status() == JobStatus.FINISHED, finished.stderr
    assert Slot.objects.get(application=checkout, name="production").running_version == "1.9.0"
    assert AuditEvent.objects.filter(action="slot.observed", origin__job_id=job.id).count() == 4
