"""Keyset ("cursor") pagination over `(created_at, id)`, newest first.

A page is found by where it starts, never by its number: the query is an index range scan from
the cursor (`created_at <= c AND (created_at < c OR id < i)`) with `LIMIT size + 1`, so page 2000
costs what page 1 costs, no `COUNT(*)` is ever run, and rows inserted meanwhile neither shift nor
repeat the rows of the next page. Ties on `created_at` are broken by `id`, so no row is skipped
or shown twice.

The cursor is opaque to the browser: URL-safe base64 of the direction, the timestamp and the id.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Model, Q, QuerySet

PAGE_SIZE = 50


class InvalidCursor(ValueError):
    """The cursor is not one this page made (edited by hand, or cut short)."""


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    pk: int
    older: bool  # True: the rows older than this point; False: the rows newer than it

    def encode(self) -> str:
        raw = f"{'o' if self.older else 'n'}|{self.created_at.isoformat()}|{self.pk}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            direction, moment, pk = raw.split("|")
            created_at = datetime.fromisoformat(moment)
            if direction not in ("o", "n") or created_at.tzinfo is None:
                raise ValueError(raw)
            return cls(created_at=created_at, pk=int(pk), older=direction == "o")
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCursor(token) from exc


@dataclass
class KeysetPage[M: Model]:
    items: list[M]
    newer: Cursor | None  # where the page of newer rows starts, if there are any
    older: Cursor | None  # where the page of older rows starts, if there are any
    is_first: bool  # nothing newer than this page (as far as the query saw)

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_other_pages(self) -> bool:
        return self.newer is not None or self.older is not None


def keyset_page[M: Model](queryset: QuerySet[M], cursor: Cursor | None, *, size: int = PAGE_SIZE) -> KeysetPage[M]:
    """One page of `queryset` ordered by (-created_at, -id), starting at `cursor` (None: the newest). One query."""
    if cursor is None or cursor.older:
        if cursor is not None:
            at, pk = cursor.created_at, cursor.pk
            queryset = queryset.filter(Q(created_at__lte=at), Q(created_at__lt=at) | Q(pk__lt=pk))
        rows = list(queryset.order_by("-created_at", "-pk")[: size + 1])
        has_older, has_newer = len(rows) > size, cursor is not None
        rows = rows[:size]
    else:
        at, pk = cursor.created_at, cursor.pk
        queryset = queryset.filter(Q(created_at__gte=at), Q(created_at__gt=at) | Q(pk__gt=pk))
        rows = list(queryset.order_by("created_at", "pk")[: size + 1])
        # Coming back from an older page: the row the cursor names is older than this page.
        has_newer, has_older = len(rows) > size, True
        rows = rows[:size][::-1]
    if not rows:
        # Nothing here (a cursor past the end, or rows deleted since): offer the way back to the newest.
        return KeysetPage(items=[], newer=None, older=None, is_first=cursor is None)
    first, last = rows[0], rows[-1]
    return KeysetPage(
        items=rows,
        newer=Cursor(first.created_at, first.pk, older=False) if has_newer else None,
        older=Cursor(last.created_at, last.pk, older=True) if has_older else None,
        is_first=not has_newer,
    )
