"""htmx helpers shared by the views."""

from __future__ import annotations

from django.http import HttpRequest


def partial_requested(request: HttpRequest) -> bool:
    """An htmx request for a part of a page (a poll, a swap), as opposed to a boosted form or link,
    which is answered with the whole page so that htmx can select what it swaps in."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted
