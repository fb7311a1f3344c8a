"""What a running Slipway tells its operators: request ids, log context, Prometheus metrics.

- `RequestObservabilityMiddleware` (first in MIDDLEWARE) gives every request an id (the caller's
  `X-Request-ID` when it is a sane token, else a new one), echoes it in the response, counts and times the
  request by view name and status, and writes one `slipway.request` log line with method, path, status,
  duration and user.
- `LogContextFilter` adds the request id, user and path (web) or the job id (RQ work horse) to every log
  record, so JSON lines can be joined up; `portal.settings` installs it on the console handler.
- Metrics: request and job counters/histograms live in the process that observes them. Under gunicorn
  with several workers (and beside RQ workers on one host) they are written to `PROMETHEUS_MULTIPROC_DIR`
  and summed at scrape time (`multiprocess.MultiProcessCollector`); gunicorn's `child_exit` hook
  (deploy/gunicorn.conf.py) calls `mark_process_dead`. Queue depths, failed-job registries, workers seen
  and operations by status are read at scrape time (`ScrapeTimeCollector`), never stored.
- `MetricsWorker` / `MetricsSimpleWorker`: RQ workers that count and time each job in the worker's main
  process (after the work horse ends), by function, queue and outcome.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from rq import SimpleWorker, Worker
from rq.job import Job
from rq.queue import Queue

log = logging.getLogger("slipway.request")

# --- request context -----------------------------------------------------------------------------
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("slipway_request_id", default="")
_request_path: contextvars.ContextVar[str] = contextvars.ContextVar("slipway_request_path", default="")
_request_user: contextvars.ContextVar[str] = contextvars.ContextVar("slipway_request_user", default="")

# A caller's id is kept when it looks like an id (a UUID, a trace id, a short token), never echoed otherwise.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def current_request_id() -> str:
    return _request_id.get()


def _user_of(request: HttpRequest) -> str:
    """The signed-in username, without loading the user just for the log (an unevaluated lazy user is skipped)."""
    from django.utils.functional import empty

    principal = getattr(request, "auth", None)  # the REST API's caller (a token's owner), set by Django Ninja
    if principal is not None and getattr(principal, "user", None) is not None:
        return principal.user.get_username()
    user = getattr(request, "user", None)
    if user is None:
        return ""
    wrapped = getattr(user, "_wrapped", user)
    if wrapped is empty or not getattr(wrapped, "is_authenticated", False):
        return ""
    return wrapped.get_username()


class LogContextFilter(logging.Filter):
    """Adds `request_id`, `user`, `path` (inside a request) and `job_id` (inside an RQ job) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", _request_id), ("user", _request_user), ("path", _request_path)):
            value = var.get()
            if value and not hasattr(record, name):
                setattr(record, name, value)
        if not hasattr(record, "job_id"):
            job = _current_job()
            if job is not None:
                record.job_id = job.id
        return True


def _current_job() -> Job | None:
    from rq import get_current_job

    try:
        return get_current_job()
    except Exception:  # noqa: BLE001 - logging must never fail for want of a job
        return None


# --- metrics -------------------------------------------------------------------------------------
# Latency buckets in seconds: pages are tens of milliseconds, polls a few, exports and jobs longer.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

HTTP_REQUESTS = Counter(
    "slipway_http_requests_total",
    "HTTP requests answered, by view name, method and status.",
    ["view", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "slipway_http_request_duration_seconds",
    "Time to answer an HTTP request (through the whole middleware stack), by view name and status.",
    ["view", "status"],
    buckets=_HTTP_BUCKETS,
)
JOBS = Counter(
    "slipway_rq_jobs_total", "RQ jobs run, by job function, queue and outcome.", ["function", "queue", "outcome"]
)
JOB_LATENCY = Histogram(
    "slipway_rq_job_duration_seconds",
    "Wall time of one RQ job (the work horse's life), by job function, queue and outcome.",
    ["function", "queue", "outcome"],
    buckets=_JOB_BUCKETS,
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ScrapeTimeCollector:
    """Figures read when Prometheus scrapes: RQ queue depths, failed-job registries, workers, operations."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "slipway_metrics_source_up", "1 when the source could be read at this scrape.", labels=["source"]
        )
        try:
            yield from self._queues()
            up.add_metric(["redis"], 1)
        except Exception:
            logging.getLogger("slipway.metrics").warning("metrics: Redis could not be read", exc_info=True)
            up.add_metric(["redis"], 0)
        try:
            yield from self._operations()
            up.add_metric(["database"], 1)
        except Exception:
            logging.getLogger("slipway.metrics").warning("metrics: the database could not be read", exc_info=True)
            up.add_metric(["database"], 0)
        yield up

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        yield from queue_figures_families(queue_figures())

    def _operations(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count

        # Imported here: the logging configuration loads this module before Django's apps are ready.
        from strategies.operations.models import Drift, Operation, OperationStatus

        counts = dict(Operation.objects.order_by().values_list("status").annotate(n=Count("id")))
        family = GaugeMetricFamily("slipway_operations", "Operations in the database, by status.", labels=["status"])
        for status in OperationStatus.values:
            family.add_metric([status], counts.get(status, 0))
        yield family
        drifts = GaugeMetricFamily(
            "slipway_drifts_open", "Applications whose production differs from what Slipway says (alert on > 0)."
        )
        drifts.add_metric([], Drift.objects.filter(resolved_at__isnull=True).count())
        yield drifts


def queue_figures() -> dict[str, Any]:
    """Per queue: jobs waiting, running, scheduled, deferred and failed; and the workers registered in Redis."""
    import django_rq
    from django.conf import settings

    figures: dict[str, Any] = {"queues": {}, "workers": 0}
    connection = None
    for name in settings.RQ_QUEUES:
        queue = django_rq.get_queue(name)
        connection = queue.connection
        figures["queues"][name] = {
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "deferred": queue.deferred_job_registry.count,
            "failed": queue.failed_job_registry.count,
            "workers": Worker.count(queue=queue),
        }
    if connection is not None:
        figures["workers"] = Worker.count(connection=connection)
    return figures


def queue_figures_families(figures: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    depth = GaugeMetricFamily(
        "slipway_rq_queue_jobs",
        "RQ jobs per queue and state (queued = waiting for a worker).",
        labels=["queue", "state"],
    )
    failed = GaugeMetricFamily("slipway_rq_failed_jobs", "Jobs in the queue's failed-job registry.", labels=["queue"])
    workers = GaugeMetricFamily(
        "slipway_rq_workers", "RQ workers registered in Redis listening on the queue.", labels=["queue"]
    )
    for name, counts in figures["queues"].items():
        for state in ("queued", "started", "scheduled", "deferred"):
            depth.add_metric([name, state], counts[state])
        failed.add_metric([name], counts["failed"])
        workers.add_metric([name], counts["workers"])
    yield depth
    yield failed
    yield workers


def render_metrics() -> bytes:
    """The exposition text: this process's (or, in multiprocess mode, every process's) metrics + scrape-time ones."""
    from prometheus_client import REGISTRY, multiprocess

    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(ScrapeTimeCollector())
    if multiprocess_mode():
        merged = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged) + generate_latest(scrape)
    return generate_latest(REGISTRY) + generate_latest(scrape)


def _unresolved(path: str) -> str:
    """The label of a request no URL pattern answered: a static file (whitenoise) or a miss."""
    from django.conf import settings

    return "static" if path.startswith("/" + settings.STATIC_URL.lstrip("/")) else "unresolved"


# --- the middleware ------------------------------------------------------------------------------
class RequestObservabilityMiddleware:
    """Request id in and out, one log line and the request metrics per request. First in MIDDLEWARE."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from django.conf import settings

        self.get_response = get_response
        # Applications call the flag APIs per request of their own (OFREP at thousands a second): a line
        # for each answered call would drown the log and cost a fifth of the call; failures are logged.
        self.quiet_prefixes = () if settings.LOG_KEYED_API_REQUESTS else tuple(settings.KEYED_API_PREFIXES)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if _SANE_REQUEST_ID.match(offered) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        tokens = (_request_id.set(request_id), _request_path.set(request.path), _request_user.set(""))
        try:
            response = self.get_response(request)
            duration = time.perf_counter() - started
            match = getattr(request, "resolver_match", None)
            view = (match.view_name if match is not None else "") or _unresolved(request.path)
            status = str(response.status_code)
            response["X-Request-ID"] = request_id
            user = _user_of(request)
            if user:
                _request_user.set(user)
            HTTP_REQUESTS.labels(view, request.method or "", status).inc()
            HTTP_LATENCY.labels(view, status).observe(duration)
            if response.status_code < 400 and request.path_info.startswith(self.quiet_prefixes):
                return response
            log.info(
                "%s %s %s %.1fms",
                request.method,
                request.path,
                status,
                duration * 1000,
                extra={
                    "method": request.method,
                    "status": response.status_code,
                    "duration_ms": round(duration * 1000, 2),
                    "view": view,
                },
            )
            return response
        finally:
            for var, token in zip((_request_id, _request_path, _request_user), tokens, strict=True):
                var.reset(token)


# --- RQ workers ----------------------------------------------------------------------------------
class _JobMetricsMixin:
    """Counts and times each job in the worker's own process, once the job has ended (however it ended)."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        started = time.monotonic()
        try:
            super().execute_job(job, queue)  # type: ignore[misc]
        finally:
            _record_job(job, queue, time.monotonic() - started)


def _record_job(job: Job, queue: Queue, seconds: float) -> None:
    try:
        try:
            status = job.get_status(refresh=True)
            outcome = {"finished": "succeeded", "failed": "failed", "stopped": "stopped", "canceled": "canceled"}.get(
                str(getattr(status, "value", status)), "retried"
            )
        except Exception:  # noqa: BLE001 - the job's hash may be gone (result_ttl 0)
            outcome = "succeeded"
        function = job.func_name if job.func_name else "unknown"
        JOBS.labels(function, queue.name, outcome).inc()
        JOB_LATENCY.labels(function, queue.name, outcome).observe(seconds)
    except Exception:
        logging.getLogger("slipway.metrics").warning("metrics: could not record job %s", job.id, exc_info=True)


# By name: this module is imported while logging is configured, before the apps (and models) are loaded.
RECOVERY_JOB = "strategies.operations.engine.recover_operations_job"
OPERATIONS_QUEUE = "operations"


class _RecoverAtStart:
    """A worker of the operations queue queues the operations' recovery pass when it starts (a restarted
    worker is often the sign that one died holding an operation). Queued rather than run here: the
    forking worker's own process must not open the database connection its work horses would inherit."""

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)  # type: ignore[misc]
        if OPERATIONS_QUEUE in self.queue_names():  # type: ignore[attr-defined]
            try:
                queue = Queue(OPERATIONS_QUEUE, connection=self.connection)  # type: ignore[attr-defined]
                queue.enqueue(RECOVERY_JOB, at_front=True)  # first: before the jobs it may find orphaned
            except Exception:  # the periodic pass will do it; a worker must start regardless
                logging.getLogger("slipway.worker").warning("could not queue the recovery pass", exc_info=True)


class MetricsWorker(_RecoverAtStart, _JobMetricsMixin, Worker):
    """RQ's forking worker, with job metrics (settings.RQ["WORKER_CLASS"]) and recovery at start."""


class MetricsSimpleWorker(_RecoverAtStart, _JobMetricsMixin, SimpleWorker):
    """RQ's in-process worker, with job metrics (`--worker-class portal.observability.MetricsSimpleWorker`)."""
