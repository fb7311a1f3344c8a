"""The project's URLs plus one page that refuses with the code it is given, for the error middleware's tests.

A DomainError no view catches is what the middleware is for; this view is the smallest such view.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, role_required
from portal.urls import urlpatterns as project_urlpatterns


@role_required(Role.VIEWER)
def refuse(request: HttpRequest, code: str) -> HttpResponse:
    raise DomainError(ErrorCode(code), f"Refused with {code}.", fields={"version": "Give a version."})


urlpatterns = [path("test-errors/<str:code>/", refuse, name="test_errors_refuse"), *project_urlpatterns]
