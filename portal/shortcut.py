"""A short path through the middleware for the APIs that applications call per request.

The flag APIs (OFREP, flagd sync, reported events, experiment events) authenticate with an API key
in a header, never with a session or a cookie, and answer JSON. Sessions, authentication, CSRF,
messages, CSP, htmx, time zones and the audit's request origin do nothing for them but cost about a
millisecond a request, half of what an evaluation costs end to end. This middleware sits right
after SecurityMiddleware (and the request metrics) and hands those paths straight to their views.
The views are written for it: `strategies.flags.ofrep.keyed` checks method, key, permission, rate
limit and body size itself, and marks them `csrf_exempt` and `login_not_required` so the full
stack would let them through too (as it does under the test client when the middleware is left out).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, ResolverMatch, resolve


@lru_cache(maxsize=4096)
def _resolved(path: str) -> ResolverMatch | None:
    """Walking every URL pattern costs about 0.2 ms; these few paths repeat (one per flag key at most)."""
    try:
        return resolve(path)
    except Resolver404:
        return None


class KeyedApiShortcut:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(settings.KEYED_API_PREFIXES)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.prefixes):
            match = _resolved(request.path_info)
            if match is None:
                return self.get_response(request)  # the full stack answers the 404
            request.resolver_match = match
            return match.func(request, *match.args, **match.kwargs)
        return self.get_response(request)
