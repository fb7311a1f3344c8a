"""Background jobs (django-rq). Jobs carry ids only; the database is the source of truth.

Run a worker with: `python manage.py rqworker operations notifications default --with-scheduler`
(the scheduler runs delayed retries). Periodic jobs are declared in `releases/cron.py` and run by
RQ's cron scheduler: `python manage.py rqcron portal.cron` (`./dev run` starts both).
"""

from __future__ import annotations

import logging

import django_rq
from django.db.models import F
from rq import get_current_job

from portal.core import clock
from releases.approvals.models import NotificationDelivery
from releases.audit.services import origin
from releases.catalog.models import Application
from releases.catalog.services import slots_refresh

log = logging.getLogger(__name__)


def _job_origin() -> dict[str, str]:
    job = get_current_job()
    return {"via": "job", "job_id": job.id if job else ""}


def refresh_application_slots(application_id: int) -> dict[str, object]:
    """Read an application's slots from its provider into Slipway. Safe to run any number of times."""
    application = Application.objects.filter(pk=application_id).first()
    if application is None:
        log.warning("refresh_application_slots: application %s no longer exists", application_id)
        return {"skipped": "application no longer exists"}
    with origin(**_job_origin()):
        result = slots_refresh(application=application)
    if result.error:
        log.warning("slot refresh of %s failed: %s", application.slug, result.error)
    return {"changed": result.changed, "unchanged": result.unchanged, "error": result.error}


def enqueue_slots_refresh(application: Application) -> None:
    """Queue a refresh; it is sent to Redis when the surrounding transaction commits."""
    django_rq.get_queue("default").enqueue(refresh_application_slots, application.pk)


def deliver_notification(delivery_id: int) -> dict[str, object]:
    """Send one recorded notification. A failure is written on the row and raised, so RQ retries it."""
    from releases.approvals.notifications import DeliveryError, send

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
    from releases.approvals.workflow import approval_expire_due

    with origin(**_job_origin()):
        return {"expired": approval_expire_due()}


def remind_approvers() -> dict[str, int]:
    """Periodic: remind eligible approvers of requests about to lapse (once per request)."""
    from releases.approvals.workflow import approval_remind_due

    with origin(**_job_origin()):
        return {"reminded": approval_remind_due()}
