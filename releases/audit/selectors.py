"""Reads of the audit trail: one object's events, the filtered trail."""

from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from portal.core.timezones import utc_day_range
from releases.audit.fulltext import search_audit_events
from releases.audit.models import AuditEvent
from releases.audit.services import audit_type


def audit_trail_of(obj: object) -> QuerySet[AuditEvent]:
    """The events about one object, newest first (its page shows them and links to `audit_trail_url`)."""
    return AuditEvent.objects.filter(
        object_type=audit_type(obj),
        object_id=str(obj.pk),  # type: ignore[attr-defined]
    ).select_related("application")


def audit_events(
    *,
    application: str = "",
    action: str = "",
    actor: str = "",
    text: str = "",
    object_type: str = "",
    object_id: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """The audit trail, filtered, newest first (pages walk it by `(created_at, id)` with a cursor).

    `application` is a slug, `action` a prefix ("release." finds every release event), `actor` the
    label shown (a username, a token, "system"; any case), `text` a full-text search over the reason
    and the object's name (see `releases.audit.fulltext`), `since`/`until` UTC days, both included.
    """
    qs = AuditEvent.objects.select_related("application")
    if application:
        qs = qs.filter(application__slug=application)
    if action:
        qs = qs.filter(action__startswith=action)
    if actor:
        qs = qs.filter(actor_label__iexact=actor)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    return search_audit_events(qs.filter(utc_day_range(since, until)), text)
