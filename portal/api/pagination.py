"""Cursor pagination: newest first, keyset on (created_at, id), so pages hold still while rows arrive.

The cursor is opaque to callers (base64 of the last row's position); `next` is the URL of the
following page with the same filters, or null on the last one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from portal.api.problems import field_error


def encode_cursor(created_at: datetime, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, pk = raw.partition("|")
        created_at = datetime.fromisoformat(moment)
        if created_at.tzinfo is None or not 0 < int(pk) < 2**63:
            raise ValueError(raw)
        return created_at, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise field_error("cursor", "Not a cursor this API gave out; start again without it.") from None


def paginate[M: Model](
    request: HttpRequest,
    queryset: QuerySet[M],
    *,
    cursor: str | None,
    limit: int,
    render: Callable[[M], dict[str, Any]],
) -> dict[str, Any]:
    queryset = queryset.order_by("-created_at", "-id")
    if cursor:
        created_at, pk = decode_cursor(cursor)
        queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk))
    rows = list(queryset[: limit + 1])
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        query = request.GET.copy()
        query["cursor"] = encode_cursor(last.created_at, last.pk)  # type: ignore[attr-defined]
        next_url = f"{request.path}?{query.urlencode()}"
    return {"items": [render(row) for row in rows], "next": next_url}
