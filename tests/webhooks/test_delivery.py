"""Webhooks the whole way round: a change -> recorded delivery -> Redis -> RQ worker -> signed POST to a
loopback receiver that checks the signature. Transactional tests: jobs are enqueued when the change commits."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rq import Queue, SimpleWorker

from portal.core import clock
from releases.catalog.models import Application, Release, ReleaseStatus
from releases.intake import services as intake
from releases.webhooks import events
from releases.webhooks.models import WebhookDelivery
from releases.webhooks.services import subscription_create
from strategies.operations import services as operation_services
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site
from tests.strategies.conftest import FAST_BLUE_GREEN, drive, enqueue_due_jobs
from tests.webhooks.conftest import Receiver, verify

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

Status = WebhookDelivery.Status
HOOK = "/hooks/slipway"


def work(queue: Queue, *, until: Any = None, timeout: float = 15.0) -> None:
    """Run a real worker over the queue (moving due retries onto it) until `until()` holds, or once."""
    deadline = time.monotonic() + timeout
    while True:
        enqueue_due_jobs(queue)
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        if until is None or until():
            return
        assert time.monotonic() < deadline, "the deliveries did not settle in time"
        time.sleep(0.1)


@pytest.fixture
def checkout() -> Application:
    return ApplicationFactory(name="Checkout", slug="checkout")


def subscribe(application: Application, receiver: Receiver, actor: User, event_types: list[str], path: str = HOOK):
    subscription, secret = subscription_create(
        application=application, url=receiver.url(path), events=event_types, actor=actor
    )
    receiver.secrets[path] = secret
    return subscription


def register(application: Application, actor: User, version: str = "2.0.0") -> Release:
    return intake.release_register(application=application, version=version, actor=actor, commit_sha="abc123")


def test_a_registered_release_is_posted_signed_with_schema_version_1(
    checkout: Application, receiver: Receiver, release_manager: User, rq_queues: dict[str, Queue]
) -> None:
    subscription = subscribe(checkout, receiver, release_manager, ["release.registered"])

    release = register(checkout, release_manager)
    work(rq_queues["notifications"])

    [got] = receiver.at(HOOK)
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    assert got.verified
    assert got.headers["Slipway-Event"] == "release.registered"
    assert got.headers["Slipway-Delivery"] == str(delivery.pk)
    assert got.headers["Content-Type"] == "application/json"
    body = got.json
    assert body["schema_version"] == 1
    assert body["type"] == "release.registered"
    assert body["id"] == str(delivery.event_id)
    assert body["application"]["slug"] == "checkout"
    assert body["release"]["version"] == "2.0.0"
    assert body["release"]["id"] == release.pk
    assert body["occurred_at"]
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.SUCCEEDED, 1, 200)
    assert delivery.response_excerpt == "thanks"
    assert delivery.delivered_at is not None and delivery.last_duration_ms is not None


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(
    checkout: Application, receiver: Receiver, release_manager: User, rq_queues: dict[str, Queue], settings: Any
) -> None:
    settings.WEBHOOK_RETRY_INTERVALS = [1, 1, 1]  # seconds, instead of 10 s, 1 min, 5 min, ...
    receiver.answers[HOOK] = [500, 500]
    subscribe(checkout, receiver, release_manager, ["release.registered"])
    queue = rq_queues["notifications"]

    register(checkout, release_manager)
    work(queue)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.PENDING, 1, 500)
    assert delivery.next_attempt_at is not None
    assert delivery.last_error == "The receiver answered HTTP 500."
    assert delivery.response_excerpt == "trouble 500"

    work(queue, until=lambda: WebhookDelivery.objects.get().status != Status.PENDING)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.SUCCEEDED, 3, 200)
    assert [a["status_code"] for a in delivery.attempt_log] == [500, 500, 200]
    assert delivery.next_attempt_at is None and delivery.last_error == ""
    got = receiver.at(HOOK)
    assert len(got) == 3 and all(r.verified for r in got)
    assert len({r.json["id"] for r in got}) == 1  # the same event each time


def test_an_unreachable_receiver_is_recorded_as_failed_and_the_release_registers_fine(
    checkout: Application, release_manager: User, rq_queues: dict[str, Queue], settings: Any
) -> None:
    settings.WEBHOOK_RETRY_INTERVALS = [0, 0]
    subscription_create(
        application=checkout, url="http://127.0.0.1:9/nobody-listens", events=["release.registered"], actor=None
    )
    queue = rq_queues["notifications"]

    release = register(checkout, release_manager)
    work(queue)

    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.REGISTERED
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.FAILED, 3, None)
    assert delivery.last_error == "No answer: ConnectionError"
    assert "127.0.0.1" not in delivery.last_error
    [failed] = queue.failed_job_registry.get_job_ids()
    assert queue.fetch_job(failed).args == (delivery.pk,)


def test_emitting_never_breaks_the_change(
    checkout: Application, receiver: Receiver, release_manager: User, rq_queues: dict[str, Queue], monkeypatch: Any
) -> None:
    subscribe(checkout, receiver, release_manager, ["release.registered"])

    def broken(*args: Any) -> Any:
        raise RuntimeError("payload trouble")

    monkeypatch.setattr(events, "objects_of", broken)

    release = register(checkout, release_manager)

    assert Release.objects.filter(pk=release.pk).exists()
    assert not WebhookDelivery.objects.exists()


def test_the_redeliver_button_sends_the_same_event_signed_afresh(
    client: Client, checkout: Application, receiver: Receiver, release_manager: User, rq_queues: dict[str, Queue]
) -> None:
    subscription = subscribe(checkout, receiver, release_manager, ["release.registered"])
    queue = rq_queues["notifications"]
    register(checkout, release_manager)
    work(queue)
    first = WebhookDelivery.objects.get()
    client.force_login(release_manager)

    response = client.post(reverse("webhook_redeliver", args=[checkout.slug, first.pk]))
    assert response.status_code == 302
    with clock.frozen(clock.now() + timedelta(seconds=30)):  # later, inside the receiver's replay window
        work(queue)

    again = WebhookDelivery.objects.exclude(pk=first.pk).get()
    assert (again.subscription_id, again.event_id, again.status, again.attempts) == (
        subscription.pk,
        first.event_id,
        Status.SUCCEEDED,
        1,
    )
    one, two = receiver.at(HOOK)
    assert one.verified and two.verified
    assert one.body == two.body
    assert two.headers["Slipway-Delivery"] == str(again.pk) != one.headers["Slipway-Delivery"]
    assert int(two.headers["Slipway-Timestamp"]) >= int(one.headers["Slipway-Timestamp"]) + 30
    assert two.headers["Slipway-Signature"] != one.headers["Slipway-Signature"]
    page = client.get(reverse("webhook_deliveries", args=[checkout.slug, subscription.pk]))
    assert page.status_code == 200
    assert str(first.event_id) in page.content.decode()


def test_the_receivers_check_refuses_a_tampered_body_a_wrong_secret_and_a_replay(
    checkout: Application, receiver: Receiver, release_manager: User, rq_queues: dict[str, Queue]
) -> None:
    subscribe(checkout, receiver, release_manager, ["release.registered"])
    register(checkout, release_manager)
    work(rq_queues["notifications"])
    [got] = receiver.at(HOOK)
    secret = receiver.secrets[HOOK]
    sent_at = int(got.headers["Slipway-Timestamp"])

    assert verify(secret, got.headers, got.body)
    assert not verify(secret, got.headers, got.body.replace(b"2.0.0", b"6.6.6"))  # tampered body
    assert not verify("not-the-secret", got.headers, got.body)
    assert not verify(secret, {**got.headers, "Slipway-Timestamp": str(sent_at - 1)}, got.body)  # moved timestamp
    assert not verify(secret, got.headers, got.body, now=sent_at + 301)  # replayed after the 5-minute window
    assert verify(secret, got.headers, got.body, now=sent_at + 299)


def test_an_operation_tells_of_its_start_steps_and_success(
    receiver: Receiver, release_manager: User, rq_queues: dict[str, Queue]
) -> None:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application, {"production": "1.0.0", "staging": "1.1.0", "test": "1.1.0", "dev": "1.2.0"})
    ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    candidate = ReleaseFactory(
        application=application,
        version="1.1.0",
        status=ReleaseStatus.APPROVED,
        deployed_slot=application.slots.get(name="staging"),
    )
    subscribe(application, receiver, release_manager, ["operation.started", "operation.step_finished"], "/ops")
    subscribe(application, receiver, release_manager, ["operation.succeeded", "operation.failed"], "/outcomes")

    operation = operation_services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    drive(rq_queues["operations"], operation)
    work(rq_queues["notifications"])

    assert operation.status == "succeeded"
    ops = [r.json for r in receiver.at("/ops")]
    assert ops[0]["type"] == "operation.started"
    finished = [body for body in ops if body["type"] == "operation.step_finished"]
    assert finished and all(body["step"]["status"] in {"succeeded", "waiting"} for body in finished)
    assert {body["operation"]["id"] for body in ops} == {operation.pk}
    [outcome] = receiver.at("/outcomes")
    assert outcome.verified
    assert outcome.json["type"] == "operation.succeeded"
    assert outcome.json["operation"]["status"] == "succeeded"
    assert outcome.json["release"]["version"] == "1.1.0"
