"""Audit trail: one `AuditEvent` row per state change, written in the change's own transaction.

Request origin (request id, client address, user agent, or the RQ job id) is carried in a context
variable set by `AuditContextMiddleware` and by jobs, so services need not pass it around.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from rq import get_current_job

from portal.core import clock
from portal.core.redaction import redact_data, redact_text
from releases.audit.models import AuditEvent

if TYPE_CHECKING:
    from releases.catalog.models import Application  # annotation only: the audit trail sits below the catalogue

_origin: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("slipway_audit_origin", default=None)
_encoder = DjangoJSONEncoder()


def current_origin() -> dict[str, str]:
    return dict(_origin.get() or {"via": "shell"})


@contextlib.contextmanager
def origin(**values: str) -> Iterator[None]:
    token = _origin.set({k: v for k, v in values.items() if v})
    try:
        yield
    finally:
        _origin.reset(token)


def job_origin() -> dict[str, str]:
    """The origin of events a background job writes: `with origin(**job_origin()):`."""
    job = get_current_job()
    return {"via": "job", "job_id": job.id if job else ""}


def snapshot(obj: models.Model, fields: list[str]) -> dict[str, Any]:
    """JSON-safe copy of `fields` of `obj`, for the before/after of an audit event."""
    data: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        value = getattr(obj, field.attname)
        data[name] = _encoder.default(value) if not isinstance(value, str | int | float | bool | type(None)) else value
    return data


def audit_type(model: type[models.Model] | models.Model) -> str:
    """The audit trail's name for a kind of object, read from its table: `releases_operation` → `releases.operation`.

    Not the model's `app_label.model`: tables keep their names when a model moves to another app
    (docs/architecture.md, "Moving a model"), so every kind keeps one name in the record, before and after.
    """
    app, _, name = model._meta.db_table.partition("_")
    return f"{app}.{name}"


def actor_label(actor: Any) -> str:
    if actor is None:
        return "system"
    return actor.get_username()


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: models.Model,
    application: Application | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> AuditEvent:
    """Write one audit event. Must run inside the transaction of the change it records."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record() must be called inside transaction.atomic() with the change it records")
    return AuditEvent.objects.create(
        created_at=clock.now(),
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=actor_label(actor),
        action=action,
        object_type=audit_type(obj),
        object_id=str(obj.pk),
        object_repr=redact_text(str(obj))[:300],
        application=application,
        # Defence in depth: services keep secrets out of before/after; shaped ones are masked here too.
        before=redact_data(before),
        after=redact_data(after),
        reason=redact_text(reason),
        origin=current_origin(),
    )
