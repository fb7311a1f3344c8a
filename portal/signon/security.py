"""Small security helpers the settings point at."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def client_ip(request: HttpRequest) -> str:
    """The client's address for login throttling (django-axes' AXES_CLIENT_IP_CALLABLE).

    With AXES_TRUSTED_PROXY_COUNT = n > 0 (behind n TLS-terminating proxies that each append to
    X-Forwarded-For), the n-th address from the right; entries further left are the client's to invent.
    Otherwise, or when the header is shorter than that, the connection's own address.
    """
    count = settings.AXES_TRUSTED_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR", "")
    if count > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= count:
            return forwarded[-count]
    return remote


def locked_out(
    request: HttpRequest, response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the locked-out page, in words (429 Too Many Requests)."""
    username = str((credentials or {}).get("username") or request.POST.get("username") or "")[:150]
    context = {
        "username": username,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": settings.AXES_COOLOFF_MINUTES,
    }
    return render(request, "registration/locked_out.html", context, status=429)
