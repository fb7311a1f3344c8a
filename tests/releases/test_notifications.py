"""Notifications, the whole way round: change -> recorded delivery -> Redis -> RQ worker -> mail or webhook.

Webhooks are posted to a real HTTP server on the loopback interface, started by the test; mail goes
to Django's in-memory outbox. Transactional tests, because jobs are enqueued when the change commits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django_rq.cron import DjangoCronScheduler
from rq import Queue, SimpleWorker
from rq.job import JobStatus

from portal.core import clock
from portal.core.roles import Role
from releases.approvals import notifications
from releases.approvals.jobs import expire_approval_requests, remind_approvers
from releases.approvals.models import ApprovalPolicy, ApprovalRequest, ApprovalRequestStatus, NotificationDelivery
from releases.approvals.workflow import approval_decide
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release, Stage
from releases.intake import services as intake
from strategies.experiments.jobs import ANALYSIS_SWEEP_SECONDS
from tests.factories import ApplicationFactory, ApprovalPolicyFactory, UserFactory, add_simulated_site

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

Status = NotificationDelivery.Status
WEDNESDAY = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A loopback HTTP server standing in for Teams and Slack; `failures[path]` answers 500 that many times."""

    port: int
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for where, body in self.received if where == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.headers["Content-Type"] == "application/json"
            state.received.append((self.path, body))
            if state.failures.get(self.path, 0) > 0:
                state.failures[self.path] -= 1
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"upstream trouble")
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"1")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


TEAMS_PATH = "/teams/webhookb2/SECRET-TEAMS-TOKEN"
SLACK_PATH = "/slack/services/T000/B000/SECRET-SLACK-TOKEN"


@pytest.fixture
def checkout(receiver: Receiver) -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application)
    ApprovalPolicyFactory(
        environment=application.environments.get(stage=Stage.PRODUCTION),
        approvals_required=2,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
        teams_webhook_url=receiver.url(TEAMS_PATH),
        slack_webhook_url=receiver.url(SLACK_PATH),
    )
    return application


@pytest.fixture
def people() -> dict[str, User]:
    found = {name: UserFactory(username=name, roles=[Role.APPROVER]) for name in ("ann", "bob", "cat")}
    found["rita"] = UserFactory(username="rita", roles=[Role.RELEASE_MANAGER])
    return found


def work(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def register(application: Application, actor: User, version: str = "2.0.0") -> Release:
    return intake.release_register(
        application=application,
        version=version,
        actor=actor,
        commit_sha="4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        deployed_slot=application.slots.get(name="staging"),
    )


def test_a_new_request_mails_the_approvers_and_posts_to_teams_and_slack(
    checkout: Application, people: dict[str, User], receiver: Receiver, rq_queues: dict[str, Queue]
) -> None:
    queue = rq_queues["notifications"]

    release = register(checkout, people["rita"])

    request = ApprovalRequest.objects.get(release=release)
    deliveries = NotificationDelivery.objects.filter(request=request)
    assert sorted(deliveries.values_list("channel", "recipient")) == [
        ("email", "ann@example.com"),
        ("email", "bob@example.com"),
        ("email", "cat@example.com"),
        ("slack", "Checkout Production channel"),
        ("teams", "Checkout Production channel"),
    ]
    assert set(deliveries.values_list("status", flat=True)) == {Status.PENDING}
    assert queue.count == 5  # one job per delivery, sent to Redis when the registration committed
    assert mail.outbox == []  # nothing is sent by the request itself

    work(queue)

    assert set(deliveries.values_list("status", "attempts")) == {(Status.SENT, 1)}
    assert all(d.sent_at is not None for d in deliveries)
    link = f"{settings.SITE_URL}{reverse('approval_detail', args=[request.pk])}"
    assert sorted(message.to[0] for message in mail.outbox) == ["ann@example.com", "bob@example.com", "cat@example.com"]
    email = mail.outbox[0]
    assert email.subject == "[Slipway] Approval needed: Checkout 2.0.0 into Production"
    assert "rita asks for 2 approval(s) of Checkout 2.0.0 before it goes to Production." in email.body
    assert f"Review and decide: {link}" in email.body
    assert "Commit: 4b825dc642cb" in email.body

    [teams] = receiver.bodies(TEAMS_PATH)
    assert teams["type"] == "message"
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"][0]["text"] == "Approval needed: Checkout 2.0.0 into Production"
    assert {"title": "Approvals", "value": "0 of 2"} in card["body"][2]["facts"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Review and decide", "url": link}]

    [slack] = receiver.bodies(SLACK_PATH)
    assert slack["text"] == f"Approval needed: Checkout 2.0.0 into Production: {link}"
    assert [block["type"] for block in slack["blocks"]] == ["header", "section", "actions"]
    assert slack["blocks"][2]["elements"][0]["url"] == link
    assert {"type": "mrkdwn", "text": "*Version*\n2.0.0"} in slack["blocks"][1]["fields"]


def test_a_failing_webhook_is_retried_and_each_attempt_recorded(
    checkout: Application,
    people: dict[str, User],
    receiver: Receiver,
    rq_queues: dict[str, Queue],
    settings: Any,
) -> None:
    settings.NOTIFICATION_RETRY_INTERVALS = [0, 0, 0]  # retry at once rather than in 30 s, 2 min, 10 min
    receiver.failures[SLACK_PATH] = 2
    receiver.failures[TEAMS_PATH] = 99
    queue = rq_queues["notifications"]

    release = register(checkout, people["rita"])
    work(queue)

    request = ApprovalRequest.objects.get(release=release)
    slack = NotificationDelivery.objects.get(request=request, channel="slack")
    teams = NotificationDelivery.objects.get(request=request, channel="teams")
    assert (slack.status, slack.attempts, slack.last_error) == (Status.SENT, 3, "")
    assert len(receiver.bodies(SLACK_PATH)) == 3
    assert (teams.status, teams.attempts) == (Status.FAILED, 4)  # the first try and three retries
    assert teams.last_error == "Microsoft Teams refused the message: HTTP 500 upstream trouble"
    [failed_job_id] = queue.failed_job_registry.get_job_ids()
    assert queue.fetch_job(failed_job_id).args == (teams.pk,)
    assert set(NotificationDelivery.objects.filter(channel="email").values_list("status", flat=True)) == {Status.SENT}


def test_an_unreachable_webhook_is_recorded_without_its_secret_url(
    checkout: Application, people: dict[str, User], rq_queues: dict[str, Queue], settings: Any
) -> None:
    settings.NOTIFICATION_RETRY_INTERVALS = []  # no retries
    ApprovalPolicy.objects.update(teams_webhook_url="http://127.0.0.1:9/teams/SECRET-TEAMS-TOKEN", slack_webhook_url="")

    register(checkout, people["rita"])
    work(rq_queues["notifications"])

    teams = NotificationDelivery.objects.get(channel="teams")
    assert teams.status == Status.FAILED
    assert teams.last_error.startswith("Microsoft Teams did not answer: ConnectionError")
    assert "SECRET" not in teams.last_error


def test_the_requester_is_told_when_the_request_is_settled(
    checkout: Application, people: dict[str, User], receiver: Receiver, rq_queues: dict[str, Queue]
) -> None:
    queue = rq_queues["notifications"]
    with clock.frozen(WEDNESDAY):
        release = register(checkout, people["rita"])
    request = ApprovalRequest.objects.get(release=release)
    work(queue)
    mail.outbox.clear()

    with clock.frozen(WEDNESDAY + timedelta(hours=1)):
        approval_decide(request=request, actor=people["ann"], verdict="approve")
    with clock.frozen(WEDNESDAY + timedelta(hours=2, minutes=5)):
        approval_decide(request=request, actor=people["bob"], verdict="approve")
    work(queue)

    [email] = mail.outbox
    assert email.to == ["rita@example.com"]
    assert email.subject == "[Slipway] Checkout 2.0.0 was approved for Production"
    assert "Waited: 2 h 5 min" in email.body
    settled = NotificationDelivery.objects.filter(request=request, kind="settled")
    assert sorted(settled.values_list("channel", "status")) == [
        ("email", Status.SENT),
        ("slack", Status.SENT),
        ("teams", Status.SENT),
    ]
    assert receiver.bodies(SLACK_PATH)[-1]["blocks"][0]["text"]["text"] == (
        "Checkout 2.0.0 was approved for Production"
    )


def test_approvers_who_have_not_decided_are_reminded_once_before_the_request_lapses(
    checkout: Application, people: dict[str, User], rq_queues: dict[str, Queue]
) -> None:
    ApprovalPolicy.objects.update(expiry_hours=72, reminder_hours=12, teams_webhook_url="", slack_webhook_url="")
    with clock.frozen(WEDNESDAY):
        release = register(checkout, people["rita"])
        request = ApprovalRequest.objects.get(release=release)
        approval_decide(request=request, actor=people["ann"], verdict="approve")
    work(rq_queues["notifications"])
    mail.outbox.clear()
    sweep = rq_queues["notifications"]

    with clock.frozen(WEDNESDAY + timedelta(hours=59)):  # 13 hours before it lapses: too early
        sweep.enqueue(remind_approvers)
        work(sweep)
    assert mail.outbox == []
    with clock.frozen(WEDNESDAY + timedelta(hours=61)):
        sweep.enqueue(remind_approvers)
        sweep.enqueue(remind_approvers)  # a second sweep finds nothing more to do
        work(sweep)

    assert sorted(message.to[0] for message in mail.outbox) == ["bob@example.com", "cat@example.com"]
    assert mail.outbox[0].subject == ("[Slipway] Reminder: approval of Checkout 2.0.0 lapses Sat 17 Jan 2026 09:00 UTC")
    request.refresh_from_db()
    assert request.reminded_at == WEDNESDAY + timedelta(hours=61)


def test_the_expiry_sweep_runs_as_a_job_and_lapses_the_request(
    checkout: Application, people: dict[str, User], rq_queues: dict[str, Queue]
) -> None:
    ApprovalPolicy.objects.update(teams_webhook_url="", slack_webhook_url="")
    with clock.frozen(WEDNESDAY):
        release = register(checkout, people["rita"])
    queue = rq_queues["default"]

    with clock.frozen(WEDNESDAY + timedelta(hours=73)):
        job = queue.enqueue(expire_approval_requests)
        work(queue)

    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert job.return_value() == {"expired": 1}
    request = ApprovalRequest.objects.get(release=release)
    assert request.status == ApprovalRequestStatus.EXPIRED
    event = AuditEvent.objects.get(action="approval.expired")
    assert event.origin == {"via": "job", "job_id": job.id}
    assert NotificationDelivery.objects.filter(request=request, kind="settled", recipient="rita@example.com").exists()


def test_a_rolled_back_change_records_and_sends_nothing(
    checkout: Application, people: dict[str, User], rq_queues: dict[str, Queue]
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        register(checkout, people["rita"])
        raise RuntimeError("abandon the registration")

    assert not NotificationDelivery.objects.exists()
    assert rq_queues["notifications"].count == 0


def test_muted_history_records_no_deliveries(checkout: Application, people: dict[str, User]) -> None:
    with notifications.muted():
        register(checkout, people["rita"])

    assert ApprovalRequest.objects.count() == 1
    assert not NotificationDelivery.objects.exists()


def test_the_periodic_jobs_are_registered_with_the_cron_scheduler() -> None:
    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("portal.cron")

    jobs = {job.func_name: (job.queue_name, job.interval) for job in scheduler.get_jobs()}
    assert jobs == {
        "releases.approvals.jobs.expire_approval_requests": ("default", settings.APPROVAL_EXPIRY_SWEEP_SECONDS),
        "releases.approvals.jobs.remind_approvers": ("notifications", settings.APPROVAL_REMINDER_SWEEP_SECONDS),
        "strategies.operations.reconcile.reconcile_all_job": ("default", settings.DRIFT_CHECK_SECONDS),
        "strategies.operations.engine.recover_operations_job": (
            "operations",
            settings.OPERATION_RECOVERY_SWEEP_SECONDS,
        ),
        "strategies.operations.jobs.auto_promote_job": ("operations", settings.AUTO_PROMOTE_SWEEP_SECONDS),
        "releases.audit.chain.seal_audit_chain_job": ("default", settings.AUDIT_SEAL_SWEEP_SECONDS),
        "releases.audit.chain.verify_audit_chain_job": ("default", settings.AUDIT_VERIFY_SWEEP_SECONDS),
        "strategies.flags.jobs.apply_due_flag_schedules": ("default", settings.FLAG_SCHEDULE_SWEEP_SECONDS),
        "strategies.experiments.jobs.analyse_experiments": ("default", ANALYSIS_SWEEP_SECONDS),
    }
