"""An uncaught `DomainError` in a view becomes a 4xx page chosen by its code, never a 500.

Views that show a refusal in place (a form re-rendered with the message) still catch it themselves;
this is for the rest: a service refusing what the page did not foresee, a role check in a service,
a view letting a forbidden refusal through. The page is the status's template (templates/403.html,
404.html, 400.html, 409.html, 502.html) with the message; an htmx request for a part of a page gets
only the template's `problem` partial, which htmx swaps in place for 400 and 409 (base.html's
`htmx-config`) and leaves alone otherwise, as it does Django's own 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from portal.core.errors import DomainError
from portal.core.htmx import partial_requested

log = logging.getLogger(__name__)

TEMPLATES = {
    HTTPStatus.BAD_REQUEST: "400.html",
    HTTPStatus.FORBIDDEN: "403.html",
    HTTPStatus.NOT_FOUND: "404.html",
    HTTPStatus.CONFLICT: "409.html",
    HTTPStatus.BAD_GATEWAY: "502.html",
}


class DomainErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DomainError):
            return None
        return error_page(request, exception)


def error_page(request: HttpRequest, error: DomainError) -> HttpResponse:
    status = error.code.status
    log.info("refused %s %s: %s (%s)", request.method, request.path, error.code, error.message)
    template = TEMPLATES.get(status, "409.html")
    if partial_requested(request):
        template += "#problem"
    context = {"exception": error.message, "code": error.code, "fields": error.fields}
    return HttpResponse(render_to_string(template, context, request=request), status=status)
