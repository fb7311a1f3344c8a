"""The delivery job and the signature (documented in docs/webhooks.md).

`deliver_webhook(delivery_id)` (queue "notifications") POSTs the recorded payload, signed with the
subscription's secret over `f"{timestamp}.{body}"`, and writes the attempt on the row: status code,
the first 500 characters of the answer, the error, the duration and, when RQ will retry, when. A
failure is raised so RQ retries it after `WEBHOOK_RETRY_INTERVALS` (exponential: 10 s, 1 min, 5 min,
30 min, 2 h). The subscription's URL and secret are kept out of logs and errors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.db.models import F
from rq import get_current_job

from portal.core import clock
from releases.webhooks.models import WebhookDelivery

log = logging.getLogger(__name__)

Status = WebhookDelivery.Status
EXCERPT_CHARS = 500
SIGNATURE_VERSION = "v1"
USER_AGENT = "Slipway-Webhooks/1"


class WebhookDeliveryError(Exception):
    """The receiver did not accept the delivery; RQ retries the job."""


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256 of `f"{timestamp}.{body}"` with the subscription's secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def headers_for(delivery: WebhookDelivery, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Slipway-Event": delivery.event_type,
        "Slipway-Delivery": str(delivery.pk),
        "Slipway-Timestamp": str(timestamp),
        "Slipway-Signature": sign(secret, timestamp, body),
    }


def _next_retry_seconds() -> int | None:
    job = get_current_job()
    if job is None or not job.retries_left:
        return None
    return job.get_retry_interval()


def deliver_webhook(delivery_id: int) -> dict[str, object]:
    """RQ job: send one recorded delivery once. Raises WebhookDeliveryError on failure, so RQ retries it."""
    delivery = WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_id).first()
    if delivery is None:
        return {"skipped": "delivery no longer exists"}
    if delivery.status == Status.SUCCEEDED:
        return {"skipped": "already delivered"}
    subscription = delivery.subscription
    if not subscription.active:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.FAILED,
            last_error="The subscription was turned off before this was sent.",
            next_attempt_at=None,
        )
        return {"skipped": "subscription inactive"}
    attempt = delivery.attempts + 1
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1)
    body = body_of(delivery.payload)
    timestamp = int(clock.now().timestamp())
    started = time.monotonic()
    code: int | None = None
    excerpt = ""
    error = ""
    try:
        response = requests.post(
            subscription.url,
            data=body,
            headers=headers_for(delivery, subscription.secret, timestamp, body),
            timeout=settings.WEBHOOK_TIMEOUT,
            allow_redirects=False,
        )
        code = response.status_code
        excerpt = response.text[:EXCERPT_CHARS]
        if not 200 <= code < 300:
            error = f"The receiver answered HTTP {code}."
    except requests.RequestException as exc:
        error = f"No answer: {exc.__class__.__name__}"
    duration_ms = int((time.monotonic() - started) * 1000)
    now = clock.now()
    retry_in = _next_retry_seconds() if error else None
    entry = {"attempt": attempt, "at": now.isoformat(), "timestamp": timestamp, "status_code": code, "error": error}
    changes: dict[str, Any] = {
        "last_status_code": code,
        "response_excerpt": excerpt,
        "last_error": error,
        "last_duration_ms": duration_ms,
        "attempt_log": [*delivery.attempt_log, entry],
    }
    if not error:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.SUCCEEDED, delivered_at=now, next_attempt_at=None, **changes
        )
        return {"delivered": delivery.pk, "status_code": code, "attempt": attempt}
    WebhookDelivery.objects.filter(pk=delivery.pk).exclude(status=Status.SUCCEEDED).update(
        status=Status.PENDING if retry_in is not None else Status.FAILED,
        next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else None,
        **changes,
    )
    log.warning("webhook delivery %s (attempt %s) failed: %s", delivery.pk, attempt, error)
    raise WebhookDeliveryError(f"Webhook delivery {delivery.pk} failed: {error}")
