"""Template filters of the audit trail: what an event changed, and where its object lives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse

from releases.audit.models import AuditEvent

register = template.Library()

_MISSING = object()
VALUE_WIDTH = 60

# Pages of the objects events are about, by `object_type`; built from the id alone, so no query.
_OBJECT_PAGES = {
    "releases.release": "release_detail",
    "releases.operation": "operation_detail",
    "releases.approvalrequest": "approval_detail",
}


@dataclass(frozen=True)
class Change:
    key: str
    before: str
    after: str


def _compact(value: Any) -> str:
    if value is _MISSING or value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


@register.filter
def changes(event: AuditEvent) -> list[Change]:
    """The keys whose value differs between `before` and `after`, in the order they were recorded."""
    before, after = event.before, event.after
    if not isinstance(before, dict) or not isinstance(after, dict):
        if before is None and after is None:
            return []
        if isinstance(after, dict) and before is None:
            before = {}
        elif isinstance(before, dict) and after is None:
            after = {}
        else:
            return [Change("value", _compact(before), _compact(after))] if before != after else []
    keys = list(dict.fromkeys([*before, *after]))
    return [
        Change(key, _compact(before.get(key, _MISSING)), _compact(after.get(key, _MISSING)))
        for key in keys
        if before.get(key, _MISSING) != after.get(key, _MISSING)
    ]


@register.filter
def object_url(event: AuditEvent) -> str:
    """The page of the object the event is about, when it has one ("" otherwise)."""
    name = _OBJECT_PAGES.get(event.object_type)
    if name is not None:
        return reverse(name, args=[event.object_id]) if event.object_id.isdigit() else ""
    if event.object_type == "releases.application" and str(event.application_id) == event.object_id:
        return event.application.get_absolute_url()  # type: ignore[union-attr]  # loaded with the event
    return ""
