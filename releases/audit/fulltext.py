"""Full-text search over the audit trail's reasons: PostgreSQL's text search, a plain fallback elsewhere.

On PostgreSQL a search is `to_tsvector('english', reason || ' ' || object_repr) @@
websearch_to_tsquery('english', words)`, served by the GIN index `audit_search_idx` (which has to
be built from the very same expression, `AUDIT_SEARCH_VECTOR`, for the planner to use it). It
stems words ("rolled back" finds "rolling back") and understands "quoted phrases", `or` and
`-excluded` words. SQLite, for development, has no such thing: there every word must appear, as a
case-insensitive substring, in the reason or the object's name.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Q, QuerySet

SEARCH_CONFIG = "english"
SEARCHED_FIELDS = ("reason", "object_repr")


def audit_search_vector() -> SearchVector:
    return SearchVector(*SEARCHED_FIELDS, config=SEARCH_CONFIG)


class PostgresGinIndex(GinIndex):
    """A GIN index that exists on PostgreSQL only.

    Declared on the model so that migrations track it, but SQLite (development) has no GIN index
    and no text-search functions: there the index is a no-op, including when SQLite rebuilds the
    table in a later migration.
    """

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return _SKIPPED
        return super().create_sql(model, schema_editor, using=using, **kwargs)

    def remove_sql(self, model: Any, schema_editor: Any, **kwargs: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return _SKIPPED
        return super().remove_sql(model, schema_editor, **kwargs)


# An SQL comment: SQLite accepts and ignores it (and the schema editor keeps plain strings as they are).
_SKIPPED = "-- PostgreSQL-only index skipped"


def uses_postgres_search() -> bool:
    return connection.vendor == "postgresql"


def search_audit_events(queryset: QuerySet[Any], text: str) -> QuerySet[Any]:
    """`queryset` narrowed to the events whose reason or object name match `text` (see the module)."""
    text = text.strip()
    if not text:
        return queryset
    if uses_postgres_search():
        query = SearchQuery(text, config=SEARCH_CONFIG, search_type="websearch")
        return queryset.alias(search=audit_search_vector()).filter(search=query)
    words = [word.strip('"') for word in text.split()]
    condition = Q()
    for word in filter(None, words):
        condition &= Q(reason__icontains=word) | Q(object_repr__icontains=word)
    return queryset.filter(condition)
