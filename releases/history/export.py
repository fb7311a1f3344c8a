"""The audit trail as CSV or JSON, streamed: rows are read in chunks and written one by one.

Memory stays flat whatever the size of the trail: the view hands `StreamingHttpResponse` a
generator over `QuerySet.iterator(chunk_size=CHUNK_SIZE)` (a server-side cursor on PostgreSQL).

JSON is one array, `[` … `]`, with one event per line, so that it is both a valid JSON document
and easy to cut with line tools. CSV has a header row; before, after and origin are JSON strings.
Text a person typed (reason, names) that a spreadsheet would take for a formula (= + - @ at the
start) is prefixed with an apostrophe in the CSV only, as OWASP advises; the JSON is verbatim.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from releases.audit.models import AuditEvent

CHUNK_SIZE = 2000

COLUMNS = [
    "id",
    "created_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object",
    "application",
    "reason",
    "before",
    "after",
    "origin",
]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def event_record(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "created_at": event.created_at.astimezone(UTC).isoformat(),
        "actor": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object": event.object_repr,
        "application": event.application.slug if event.application else None,
        "reason": event.reason,
        "before": event.before,
        "after": event.after,
        "origin": event.origin,
    }


class _Line:
    """A file-like object whose write() returns what it was given: csv.writer then yields lines."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for event in events:
        record = event_record(event)
        yield writer.writerow([_cell(record[column]) for column in COLUMNS])


def json_array(events: Iterable[AuditEvent]) -> Iterator[str]:
    yield "["
    separator = "\n"
    for event in events:
        yield separator + json.dumps(event_record(event), cls=DjangoJSONEncoder, ensure_ascii=False)
        separator = ",\n"
    yield "\n]\n"
