"""Background jobs (django-rq). Jobs carry ids only; the database is the source of truth.

Run a worker with: `python manage.py rqworker operations notifications default --with-scheduler`
(the scheduler runs delayed retries). Periodic jobs are declared in `releases/cron.py` and run by
RQ's cron scheduler: `python manage.py rqcron portal.cron` (`./dev run` starts both).
"""

from __future__ import annotations

import logging

import django_rq
from django.db import transaction

from portal.core import clock
from portal.core.roles import Role, require_role
from releases.audit.services import job_origin, origin
from releases.catalog.models import Application
from releases.catalog.services import slots_refresh

log = logging.getLogger(__name__)


def refresh_application_slots(application_id: int) -> dict[str, object]:
    """Read an application's slots from its provider into Slipway. Safe to run any number of times."""
    application = Application.objects.filter(pk=application_id).first()
    if application is None:
        log.warning("refresh_application_slots: application %s no longer exists", application_id)
        return {"skipped": "application no longer exists"}
    with origin(**job_origin()):
        result = slots_refresh(application=application)
    if result.error:
        log.warning("slot refresh of %s failed: %s", application.slug, result.error)
    return {"changed": result.changed, "unchanged": result.unchanged, "error": result.error}


def enqueue_slots_refresh(application: Application) -> None:
    """Queue a refresh; it is sent to Redis when the surrounding transaction commits."""
    django_rq.get_queue("default").enqueue(refresh_application_slots, application.pk)


def slots_refresh_ask(*, application: Application, actor: object) -> None:
    """A person asks for the slots to be read from the provider now. It calls the provider, so a release manager
    asks; viewers read what the periodic refresh last saw."""
    require_role(actor, Role.RELEASE_MANAGER)
    with transaction.atomic():
        Application.objects.filter(pk=application.pk).update(slots_refresh_requested_at=clock.now())
        enqueue_slots_refresh(application)  # sent to Redis on commit
