"""Notifications about approval requests: the messages, their recording, and sending them.

`queue()` runs inside the transaction of the change it announces: it records one
`NotificationDelivery` per recipient and channel, and enqueues one job per row on the
"notifications" queue (sent to Redis when the transaction commits). The job (`releases.catalog.jobs.
deliver_notification`) calls `send()`; a failure is recorded on the row and raised so RQ retries
it (`NOTIFICATION_RETRY_INTERVALS`). The page that caused it never waits for a mail server or a
webhook.

Channels: email through Django's mailers (the console backend when DEBUG is on), and the
incoming webhooks of Microsoft Teams (an Adaptive Card in a "message" attachment) and Slack
(`text` plus Block Kit `blocks`). Webhook URLs are credentials: they are read from the policy when
sending, and kept out of logs, error messages and the audit trail.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import django_rq
import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from rq import Retry

from portal.core import clock
from releases.approvals.models import ApprovalPolicy, ApprovalRequest, ApprovalRequestStatus, NotificationDelivery

log = logging.getLogger(__name__)

Kind = NotificationDelivery.Kind
Channel = NotificationDelivery.Channel
Status = NotificationDelivery.Status

_muted: contextvars.ContextVar[bool] = contextvars.ContextVar("slipway_notifications_muted", default=False)


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """Record and send nothing in this block: for writing history (the demo seeder), not for live changes."""
    token = _muted.set(True)
    try:
        yield
    finally:
        _muted.reset(token)


class DeliveryError(Exception):
    """Sending failed; `str(error)` says why, without the webhook's URL."""


# --- what is said -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    facts: list[tuple[str, str]]
    url: str
    button: str


def request_url(request: ApprovalRequest) -> str:
    return settings.SITE_URL + reverse("approval_detail", args=[request.pk])


def _when(moment: Any) -> str:
    return f"{timezone.localtime(moment):%a %d %b %Y %H:%M %Z}"


def duration_text(waited: Any) -> str:
    """A lead time as people say it: "2 d 3 h", "3 h 20 min", "12 min"."""
    if waited is None:
        return ""
    minutes = int(waited.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def message_for(request: ApprovalRequest, kind: str) -> Message:
    release, environment = request.release, request.environment
    application = release.application
    approvals = request.decisions.filter(verdict="approve").count()
    facts = [
        ("Application", application.name),
        ("Version", release.version),
        ("Commit", release.commit_sha[:12] or "—"),
        ("Approvals", f"{approvals} of {request.approvals_required}"),
    ]
    url = request_url(request)
    if kind == Kind.OPENED:
        who = str(request.requested_by) if request.requested_by else "A pipeline"
        subject = f"Approval needed: {release} into {environment.name}"
        text = (
            f"{who} asks for {request.approvals_required} approval(s) of {application.name} {release.version} "
            f"before it goes to {environment.name}. Open the request to see it running, then approve or reject it."
        )
        facts.append(("Lapses", _when(request.expires_at)))
        return Message(subject, text, facts, url, "Review and decide")
    if kind == Kind.REMINDER:
        subject = f"Reminder: approval of {release} lapses {_when(request.expires_at)}"
        text = (
            f"{application.name} {release.version} still waits for approval into {environment.name} "
            f"({approvals} of {request.approvals_required} so far). Without a decision it lapses "
            f"{_when(request.expires_at)} and must be requested again."
        )
        facts.append(("Lapses", _when(request.expires_at)))
        return Message(subject, text, facts, url, "Review and decide")
    outcome = {
        ApprovalRequestStatus.APPROVED: "was approved",
        ApprovalRequestStatus.REJECTED: "was rejected",
        ApprovalRequestStatus.EXPIRED: "lapsed without a decision",
        ApprovalRequestStatus.SUPERSEDED: "was superseded by a request for a newer release",
    }.get(ApprovalRequestStatus(request.status), request.get_status_display().lower())
    subject = f"{release} {outcome} for {environment.name}"
    text = f"The request for {application.name} {release.version} into {environment.name} {outcome}."
    rejection = request.decisions.filter(verdict="reject").select_related("approver").first()
    if rejection is not None:
        text += f" {rejection.approver} said: “{rejection.comment}”"
    facts.append(("Waited", duration_text(request.waited)))
    return Message(subject, text, facts, url, "Open the request")


def email_body(message: Message, recipient: str) -> str:
    return render_to_string("approvals/notification_email.txt", {"message": message, "recipient": recipient})


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: Message) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` is the notification fallback, `blocks` the layout."""
    return {
        "text": f"{message.subject}: {message.url}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _slack_escape(message.text)},
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_slack_escape(name)}*\n{_slack_escape(value)}"}
                    for name, value in message.facts[:10]
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": message.button},
                        "url": message.url,
                        "style": "primary",
                    }
                ],
            },
        ],
    }


def teams_payload(message: Message) -> dict[str, Any]:
    """A Teams incoming-webhook (or Workflows) message carrying one Adaptive Card."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": message.subject,
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": True,
                        },
                        {"type": "TextBlock", "text": message.text, "wrap": True},
                        {
                            "type": "FactSet",
                            "facts": [{"title": name, "value": value} for name, value in message.facts],
                        },
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": message.button, "url": message.url}],
                },
            }
        ],
    }


# --- recording and queueing -----------------------------------------------------------------------


def _webhook_recipients(request: ApprovalRequest) -> list[tuple[str, str]]:
    try:
        policy = request.environment.approval_policy
    except ApprovalPolicy.DoesNotExist:
        return []
    where = f"{request.release.application.name} {request.environment.name} channel"
    found = []
    if policy.teams_webhook_url:
        found.append((Channel.TEAMS, where))
    if policy.slack_webhook_url:
        found.append((Channel.SLACK, where))
    return found


def queue(request: ApprovalRequest, kind: str, *, people: list[Any]) -> list[NotificationDelivery]:
    """Record and enqueue `kind` for `people` by email, and for the policy's webhooks.

    Call it inside the transaction of the change it announces: a rolled-back change sends nothing.
    """
    if _muted.get():
        return []
    recipients = [(Channel.EMAIL, person.email) for person in people if person.email]
    recipients += _webhook_recipients(request)
    made = []
    now = clock.now()
    for channel, recipient in dict.fromkeys(recipients):
        delivery, created = NotificationDelivery.objects.get_or_create(
            request=request, kind=kind, channel=channel, recipient=recipient[:254], defaults={"created_at": now}
        )
        if created:  # the same message to the same recipient is sent once
            enqueue(delivery)
            made.append(delivery)
    return made


# The job by name: RQ records it so anyway, and the job module imports this one (it sends what is queued here).
DELIVER_JOB = "releases.approvals.jobs.deliver_notification"


def enqueue(delivery: NotificationDelivery) -> None:
    intervals = list(settings.NOTIFICATION_RETRY_INTERVALS)
    retry = Retry(max=len(intervals), interval=intervals) if intervals else None
    django_rq.get_queue("notifications").enqueue(DELIVER_JOB, delivery.pk, retry=retry)


# --- sending ----------------------------------------------------------------------------------------


def _redact(text: str, url: str) -> str:
    """Remove a webhook URL, and its secret path, from an error message."""
    if not url:
        return text
    parts = urlsplit(url)
    for part in (url, parts.path + (f"?{parts.query}" if parts.query else ""), parts.path):
        if part and part != "/":
            text = text.replace(part, "…")
    return text


def _post(url: str, payload: dict[str, Any], service: str) -> None:
    if not url:
        raise DeliveryError(f"The {service} webhook was removed from the policy before this message was sent.")
    try:
        response = requests.post(url, json=payload, timeout=settings.NOTIFICATION_WEBHOOK_TIMEOUT)
    except requests.RequestException as exc:
        raise DeliveryError(_redact(f"{service} did not answer: {exc.__class__.__name__}: {exc}", url)) from None
    if not 200 <= response.status_code < 300:
        body = _redact(response.text[:200], url)
        raise DeliveryError(f"{service} refused the message: HTTP {response.status_code} {body}".strip())


def send(delivery: NotificationDelivery) -> None:
    """Send one recorded message now; raises DeliveryError when it could not be sent."""
    request = delivery.request
    message = message_for(request, delivery.kind)
    if delivery.channel == Channel.EMAIL:
        email = EmailMultiAlternatives(
            f"[Slipway] {message.subject}", email_body(message, delivery.recipient), None, [delivery.recipient]
        )
        try:
            email.send()
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"The mail server refused it: {exc.__class__.__name__}: {exc}") from None
        return
    policy = ApprovalPolicy.objects.filter(environment_id=request.environment_id).first()
    if delivery.channel == Channel.TEAMS:
        _post(policy.teams_webhook_url if policy else "", teams_payload(message), "Microsoft Teams")
    elif delivery.channel == Channel.SLACK:
        _post(policy.slack_webhook_url if policy else "", slack_payload(message), "Slack")
    else:
        raise DeliveryError(f"Unknown channel {delivery.channel!r}.")
