"""htmx helpers shared by the views."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django_htmx.http import HttpResponseStopPolling


def partial_requested(request: HttpRequest) -> bool:
    """An htmx request for a part of a page (a poll, a swap), as opposed to a boosted form or link,
    which is answered with the whole page so that htmx can select what it swaps in."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


def stop_polling(response: HttpResponse) -> HttpResponse:
    """The same answer with htmx's "stop polling" status (286): the live part has nothing more to follow."""
    stop = HttpResponseStopPolling(response.content)
    stop["Content-Type"] = response["Content-Type"]
    return stop
