"""Tags every audit event written during a request with where the request came from."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from releases.audit.services import origin


class AuditContextMiddleware:
    """Tags every audit event written during a request with where the request came from."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The request id portal.observability gave the request (its log line and response header), if it ran.
        request_id = getattr(request, "request_id", "") or request.headers.get("X-Request-ID") or uuid.uuid4().hex
        with origin(
            via="web",
            request_id=request_id[:64],
            ip=request.META.get("REMOTE_ADDR", ""),
            user_agent=request.headers.get("User-Agent", "")[:200],
        ):
            response = self.get_response(request)
        response.headers.setdefault("X-Request-ID", request_id[:64])
        return response
