"""URLs of the API (mounted at /api/v1/) and of the API tokens page (mounted at the root).

Ninja's URL patterns are wrapped so that the portal's sign-in redirect leaves them alone (the API
answers 401 itself), request bodies are bounded before anything reads them, and a wrong method is a
problem document too. Each pattern carries the role its endpoint checks, for the URL/role table test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt

from portal.api import endpoints, views  # noqa: F401 - importing endpoints registers them on the API
from portal.api.problems import PROBLEM_CONTENT_TYPE, problem_response, too_large
from portal.api.routing import ENDPOINTS, EndpointSpec, api


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _api_view(ninja_view: Callable[..., HttpResponse], spec: EndpointSpec) -> Callable[..., HttpResponse]:
    # CSRF: a token is not a cookie, and a browser session's unsafe calls are checked by SessionAuth.
    @csrf_exempt
    @login_not_required
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if _content_length(request) > settings.API_MAX_BODY_BYTES:
            return too_large().response()
        response = ninja_view(request, *args, **kwargs)
        if response.status_code == 405 and response.get("Content-Type") != PROBLEM_CONTENT_TYPE:
            allowed = ", ".join(sorted(m.strip() for m in response.get("Allow", "").split(",") if m.strip()))
            response = problem_response(
                "method-not-allowed",
                f"{request.method} is not allowed here; use {allowed}.",
                headers={"Allow": allowed},
            )
        return response

    view.required_role = spec.role  # type: ignore[attr-defined]  # read by the URL/role table test
    view.api_endpoint = spec  # type: ignore[attr-defined]
    return view


def _api_patterns() -> list[URLPattern]:
    patterns = []
    for pattern in api.urls[0]:
        if not isinstance(pattern, URLPattern) or pattern.name not in ENDPOINTS:
            continue  # Ninja's root view, which only serves to reverse its own URLs
        patterns.append(
            path(str(pattern.pattern), _api_view(pattern.callback, ENDPOINTS[pattern.name]), name=pattern.name)
        )
    return patterns


# Mounted at /api/v1/ by portal/urls.py.
urlpatterns = [
    path("openapi.json", views.openapi_json, name="api_openapi"),
    path("docs/", views.api_docs, name="api_docs"),
    *_api_patterns(),
]

# Mounted at the root: the API tokens page.
account_urlpatterns = [
    path("account/tokens/", views.api_tokens, name="api_tokens"),
    path("account/tokens/<int:token_id>/revoke", views.api_token_revoke, name="api_token_revoke"),
]
