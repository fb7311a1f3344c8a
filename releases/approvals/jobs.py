"""Approval jobs: send one notification delivery; the periodic expiry and reminder sweeps."""

from __future__ import annotations

import logging

from django.db.models import F

from portal.core import clock
from releases.approvals.models import NotificationDelivery
from releases.approvals.notifications import DeliveryError, send
from releases.approvals.workflow import approval_expire_due, approval_remind_due
from releases.audit.services import job_origin, origin

log = logging.getLogger(__name__)


def deliver_notification(delivery_id: int) -> dict[str, object]:
    """Send one recorded notification. A failure is written on the row and raised, so RQ retries it."""

    Status = NotificationDelivery.Status
    delivery = (
        NotificationDelivery.objects.select_related("request__release__application", "request__environment")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return {"skipped": "delivery no longer exists"}
    if delivery.status == Status.SENT:
        return {"skipped": "already sent"}
    NotificationDelivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1)
    try:
        send(delivery)
    except DeliveryError as exc:
        NotificationDelivery.objects.filter(pk=delivery.pk).exclude(status=Status.SENT).update(
            status=Status.FAILED, last_error=str(exc)[:2000]
        )
        # The id and channel only: the recipient of a webhook message is a secret URL.
        log.warning("notification %s (%s) failed: %s", delivery.pk, delivery.channel, exc)
        raise
    NotificationDelivery.objects.filter(pk=delivery.pk).update(status=Status.SENT, sent_at=clock.now(), last_error="")
    return {"sent": delivery.pk, "channel": delivery.channel}


def expire_approval_requests() -> dict[str, int]:
    """Periodic: pending requests past their expiry lapse (audited; the release returns to registered)."""

    with origin(**job_origin()):
        return {"expired": approval_expire_due()}


def remind_approvers() -> dict[str, int]:
    """Periodic: remind eligible approvers of requests about to lapse (once per request)."""

    with origin(**job_origin()):
        return {"reminded": approval_remind_due()}
