from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal import observability


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process is up and answers. No dependency is asked (that is /readyz), so a database
    or Redis outage never makes an orchestrator restart every web process at once."""
    return JsonResponse({"status": "ok"})


_migrations_applied = False  # once true in a process it stays true: new migrations arrive with new code


def _unapplied_migrations() -> list[str]:
    global _migrations_applied
    if _migrations_applied:
        return []
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    unapplied = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
    _migrations_applied = not unapplied
    return unapplied


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers, every migration is applied, Redis answers. 200 when ready, 503 naming
    what is not; also the RQ queue depths and the workers Redis has seen (reported, not required)."""
    checks: dict[str, str] = {}
    body: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"error: {exc.__class__.__name__}"
    if checks["database"] == "ok":
        try:
            unapplied = _unapplied_migrations()
            checks["migrations"] = "ok" if not unapplied else f"{len(unapplied)} unapplied: {', '.join(unapplied[:10])}"
        except Exception as exc:  # noqa: BLE001
            checks["migrations"] = f"error: {exc.__class__.__name__}"
    else:
        checks["migrations"] = "unknown: the database does not answer"
    try:
        figures = observability.queue_figures()
        checks["redis"] = "ok"
        body["queues"] = figures["queues"]
        body["workers"] = figures["workers"]
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {exc.__class__.__name__}"
    failing = [name for name, value in checks.items() if value != "ok"]
    return JsonResponse(
        {"status": "ready" if not failing else "not ready", "failing": failing, "checks": checks, **body},
        status=503 if failing else 200,
    )


def _loopback(request: HttpRequest) -> bool:
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False  # came through a proxy: the peer address is the proxy's, not the caller's
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition. With METRICS_TOKEN set, `Authorization: Bearer <token>` is required; without it,
    only a scraper on the loopback interface (not through a proxy) is answered."""
    token = settings.METRICS_TOKEN
    if token:
        offered = request.headers.get("Authorization", "")
        scheme, _, credential = offered.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), token.encode()):
            response = JsonResponse({"detail": "A bearer token (METRICS_TOKEN) is required."}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not _loopback(request):
        return JsonResponse(
            {"detail": "METRICS_TOKEN is not set, so only a scraper on the loopback interface is answered."}, status=403
        )
    return HttpResponse(observability.render_metrics(), content_type="text/plain; version=0.0.4; charset=utf-8")
