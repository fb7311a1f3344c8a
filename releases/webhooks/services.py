"""Subscriptions (audited, in the change's transaction) and `webhook_emit`, called by the domain services.

`webhook_emit` runs inside the transaction of the change it announces: it records one `WebhookDelivery`
per active subscription of the application to that event type and enqueues its job, which django-rq
sends to Redis only when the transaction commits. It never fails its caller: a problem is logged and
rolled back to a savepoint, and the change goes on without its webhooks.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

import django_rq
from django.conf import settings
from django.db import transaction
from rq import Retry

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from releases.audit.services import audit_record
from releases.catalog.models import Application
from releases.webhooks.delivery import deliver_webhook
from releases.webhooks.events import EVENT_TYPES, build_payload
from releases.webhooks.models import WebhookDelivery, WebhookSubscription

log = logging.getLogger(__name__)

AUDIT_FIELDS = ["url", "events", "active"]  # never the secret
LOOPBACK_HOSTS = {"localhost"}


def snapshot(subscription: WebhookSubscription, fields: list[str] = AUDIT_FIELDS) -> dict[str, Any]:
    """What the audit trail keeps of a subscription: never its secret."""
    return {name: list(value) if isinstance(value := getattr(subscription, name), list) else value for name in fields}


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str:
    """Why `url` cannot receive webhooks, or "" if it can: HTTPS only, plain HTTP to the loopback only."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "This is not a URL."
    if not parts.hostname:
        return "The URL needs a host."
    if parts.scheme == "https":
        return ""
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return ""
    return "Webhooks are sent over HTTPS only (plain HTTP only to this machine, for development)."


def events_problem(events: list[str]) -> str:
    if not events:
        return "Choose at least one event."
    unknown = sorted(set(events) - set(EVENT_TYPES))
    return f"Unknown event type(s): {', '.join(unknown)}." if unknown else ""


def _check(url: str, events: list[str]) -> list[str]:
    problems = {"url": url_problem(url), "events": events_problem(events)}
    if problem := problems["url"] or problems["events"]:
        raise DomainError(ErrorCode.INVALID, problem, fields=problems)
    return [e for e in EVENT_TYPES if e in events]  # known order, no duplicates


def subscription_create(
    *, application: Application, url: str, events: list[str], actor: Any
) -> tuple[WebhookSubscription, str]:
    """Subscribe `url` to `events` of `application`; returns the subscription and its secret (shown once)."""
    events = _check(url, events)
    secret = new_secret()
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(
            application=application,
            url=url,
            secret=secret,
            events=events,
            created_by=actor if getattr(actor, "pk", None) else None,
            created_at=clock.now(),
        )
        audit_record(
            actor=actor,
            action="webhook.created",
            obj=subscription,
            application=application,
            after=snapshot(subscription),
        )
    return subscription, secret


def subscription_update(
    *,
    subscription: WebhookSubscription,
    actor: Any,
    url: str | None = None,
    events: list[str] | None = None,
    active: bool | None = None,
) -> WebhookSubscription:
    url = subscription.url if url is None else url
    events = _check(url, subscription.events if events is None else events)
    with transaction.atomic():
        current = WebhookSubscription.objects.select_for_update(no_key=True).get(pk=subscription.pk)
        before = snapshot(current)
        current.url, current.events = url, events
        if active is not None:
            current.active = active
        current.save(update_fields=["url", "events", "active"])
        action = "webhook.updated"
        if active is not None and before["active"] != active and (url, events) == (before["url"], before["events"]):
            action = "webhook.activated" if active else "webhook.deactivated"
        audit_record(
            actor=actor,
            action=action,
            obj=current,
            application=current.application,
            before=before,
            after=snapshot(current),
        )
    return current


def subscription_rotate_secret(*, subscription: WebhookSubscription, actor: Any) -> str:
    """A new secret at once (the old one stops being used); returns it, to be shown once."""
    secret = new_secret()
    with transaction.atomic():
        WebhookSubscription.objects.filter(pk=subscription.pk).update(secret=secret)
        subscription.secret = secret
        audit_record(
            actor=actor,
            action="webhook.secret_rotated",
            obj=subscription,
            application=subscription.application,
            reason="A new signing secret was made; the previous one no longer signs deliveries.",
        )
    return secret


def subscription_delete(*, subscription: WebhookSubscription, actor: Any) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="webhook.deleted",
            obj=subscription,
            application=subscription.application,
            before=snapshot(subscription),
        )
        subscription.delete()


def delivery_redeliver(*, delivery: WebhookDelivery, actor: Any) -> WebhookDelivery:
    """Send a delivery's event again: a new delivery row, the same event id and payload, signed afresh."""
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            subscription=delivery.subscription,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            payload=delivery.payload,
            created_at=clock.now(),
        )
        audit_record(
            actor=actor,
            action="webhook.redelivered",
            obj=delivery.subscription,
            application=delivery.subscription.application,
            after={"event_id": str(delivery.event_id), "event_type": delivery.event_type, "delivery": again.pk},
            reason=f"Redelivery of delivery {delivery.pk}",
        )
        enqueue(again)
    return again


def enqueue(delivery: WebhookDelivery) -> None:
    """Queue the delivery's job; django-rq sends it to Redis when the transaction commits."""

    intervals = list(settings.WEBHOOK_RETRY_INTERVALS)
    retry = Retry(max=len(intervals), interval=intervals) if intervals else None
    django_rq.get_queue("notifications").enqueue(deliver_webhook, delivery.pk, retry=retry)


def webhook_emit(event_type: str, obj: Any, application: Application) -> list[WebhookDelivery]:
    """Record and enqueue `event_type` about `obj` for each matching subscription. Never raises."""
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the caller's transaction usable
            subscriptions = [
                s
                for s in WebhookSubscription.objects.filter(application_id=application.pk, active=True)
                if event_type in s.events
            ]
            if not subscriptions:
                return []
            payload = build_payload(event_type, obj, application)
            now = clock.now()
            made = WebhookDelivery.objects.bulk_create(
                WebhookDelivery(
                    subscription=s, event_id=payload["id"], event_type=event_type, payload=payload, created_at=now
                )
                for s in subscriptions
            )
            for delivery in made:
                enqueue(delivery)
            return made
    except Exception:
        log.exception("webhook_emit(%s) for application %s failed; no webhook sent", event_type, application.pk)
        return []
