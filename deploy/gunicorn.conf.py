"""gunicorn configuration for Slipway (docs/deployment.md): `gunicorn -c deploy/gunicorn.conf.py portal.wsgi`.

Every value comes from the environment, with production defaults. Prometheus runs in multiprocess mode
whenever PROMETHEUS_MULTIPROC_DIR is set (the container image sets it): each worker writes its metrics to
files there and /metrics sums them; `child_exit` tells prometheus-client that a worker is gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, not {raw!r}") from None


# --- sockets and processes ---------------------------------------------------------------------
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{_int('PORT', 8000)}")
# gthread: a handful of threads per process serve the htmx polls (I/O-bound) without a process each.
worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", 2)
threads = _int("GUNICORN_THREADS", 4)
# A request that takes longer than this is killed with its worker (the audit export streams; keep it generous).
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Longer than the dashboard's idle poll (10 s): with keep-alive equal to the poll interval, a poll races the server
# closing the idle connection and fails without an answer (seen in bench/load.py). Behind a load balancer that
# reuses backend connections, make it longer than the balancer's idle timeout instead.
keepalive = _int("GUNICORN_KEEPALIVE", 20)
# Recycle workers now and then (with jitter, so not all at once) to bound any slow growth in memory.
max_requests = _int("GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 500)
# Load the application once in the master, then fork: less memory, faster worker restarts.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") not in {"0", "false", "no"}
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or ("/dev/shm" if Path("/dev/shm").is_dir() else None)  # noqa: S108
# gunicorn 25+'s control socket (`gunicornc`) defaults to one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl), shared
# by every gunicorn on the host: a second instance would take the first one's socket over. Slipway's operators
# use signals, so it is off unless GUNICORN_CONTROL_SOCKET names a path of this instance's own.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket
if not control_socket:
    del control_socket
# Behind a TLS-terminating proxy (App Service, Front Door, a load balancer): trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# --- logs ---------------------------------------------------------------------------------------
# The application writes one structured line per request itself (logger slipway.request, with the user and
# request id). gunicorn's own access log is off unless GUNICORN_ACCESS_LOG names a file or "-" (stdout); it is
# then one JSON object per line too, carrying the X-Request-ID the application answered with.
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
access_log_format = json.dumps(
    {
        "time": "%(t)s",
        "logger": "gunicorn.access",
        "remote": "%(h)s",
        "method": "%(m)s",
        "path": "%(U)s",
        "query": "%(q)s",
        "status": "%(s)s",
        "bytes": "%(B)s",
        "duration_ms": "%(M)s",
        "request_id": "%({x-request-id}o)s",
        "user_agent": "%(a)s",
    }
)

# --- Prometheus multiprocess mode -----------------------------------------------------------------
# The directory must exist before the application is loaded (preload_app imports it in the master). It is
# emptied when the host or container starts (a tmpfs), never here: RQ workers on the same host may share it.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _metrics_dir:
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone (recycled, killed, crashed): its live gauges stop counting; its counters stay summed."""
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
