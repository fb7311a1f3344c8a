"""The portal's own health, readiness, metrics and request ids (docs/deployment.md), in process."""

from __future__ import annotations

import json
import logging

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client, override_settings
from prometheus_client import REGISTRY
from pythonjsonlogger.json import JsonFormatter
from rq import Queue

from portal import views
from portal.observability import LogContextFilter, MetricsSimpleWorker, render_metrics
from strategies.operations.engine import recover_operations_job
from strategies.operations.models import OperationStatus
from tests.strategies.conftest import FAST_BLUE_GREEN, drive
from tests.strategies.test_crash import promote

pytestmark = pytest.mark.django_db


def test_healthz_is_liveness_only_and_asks_no_dependency(client: Client, django_assert_num_queries) -> None:
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.rq
def test_readyz_reports_database_migrations_redis_queues_and_workers(
    client: Client, rq_queues: dict[str, Queue]
) -> None:
    # Plain RQ queues: django-rq's would enqueue on commit, and this test's transaction never commits.
    for name in ("operations", "notifications"):
        Queue(name, connection=rq_queues[name].connection).enqueue(recover_operations_job)

    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert body["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
    assert body["queues"]["operations"] == {
        "queued": 1,
        "started": 0,
        "scheduled": 0,
        "deferred": 0,
        "failed": 0,
        "workers": 0,
    }
    assert body["queues"]["notifications"]["queued"] == 1 and body["queues"]["default"]["queued"] == 0
    assert body["workers"] == 0


def test_readyz_is_503_naming_redis_when_redis_does_not_answer(client: Client, settings) -> None:
    # A real refused connection: nothing listens on port 1.
    dead = {name: {"URL": "redis://127.0.0.1:1/12", "DEFAULT_TIMEOUT": 60} for name in settings.RQ_QUEUES}
    with override_settings(RQ_QUEUES=dead):
        response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["failing"] == ["redis"]
    assert body["checks"]["redis"].startswith("error: ") and body["checks"]["database"] == "ok"
    assert "queues" not in body


@pytest.mark.rq
def test_readyz_is_503_naming_the_unapplied_migration(client: Client, rq_queues: dict[str, Queue]) -> None:
    last = MigrationRecorder.Migration.objects.filter(app="releases").order_by("-applied").first()
    assert last is not None
    last.delete()  # as if the new code's migration had not run yet (the test's transaction restores it)
    views._migrations_applied = False
    try:
        response = client.get("/readyz")
    finally:
        views._migrations_applied = False

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["migrations"]
    assert body["checks"]["migrations"] == f"1 unapplied: releases.{last.name}"


@pytest.mark.rq
def test_metrics_without_a_token_answer_loopback_only(client: Client, rq_queues: dict[str, Queue], settings) -> None:
    settings.METRICS_TOKEN = ""
    client.get("/healthz")

    local = client.get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1
    remote = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    proxied = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    ipv6_local = client.get("/metrics", REMOTE_ADDR="::1")

    assert local.status_code == 200 and ipv6_local.status_code == 200
    assert local["Content-Type"].startswith("text/plain; version=0.0.4")
    text = local.content.decode()
    assert 'slipway_http_requests_total{method="GET",status="200",view="healthz"}' in text
    assert 'slipway_http_request_duration_seconds_bucket{le="0.005",status="200",view="healthz"}' in text
    assert 'slipway_rq_queue_jobs{queue="operations",state="queued"} 0.0' in text
    assert 'slipway_rq_failed_jobs{queue="default"} 0.0' in text
    assert 'slipway_metrics_source_up{source="redis"} 1.0' in text
    assert f'slipway_operations{{status="{OperationStatus.RUNNING}"}} 0.0' in text
    assert remote.status_code == 403 and proxied.status_code == 403
    assert "METRICS_TOKEN" in remote.json()["detail"]


def test_metrics_with_a_token_need_it_from_everywhere(client: Client, settings) -> None:
    settings.METRICS_TOKEN = "scrape-me-0123456789"

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-wrong")
    basic = client.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-me-0123456789")
    right_remote = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789")

    for refused in (missing, wrong, basic):
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert right_remote.status_code == 200
    assert b"slipway_http_requests_total" in right_remote.content


def test_every_response_carries_a_request_id_and_a_sane_one_is_kept(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    fresh = client.get("/")
    kept = client.get("/healthz", HTTP_X_REQUEST_ID="trace-4bf92f3577b34da6")
    refused = client.get("/healthz", HTTP_X_REQUEST_ID="no spaces <script>")
    missing_page = client.get("/no-such-page/")

    assert len(fresh["X-Request-ID"]) == 32 and fresh.status_code == 200
    assert kept["X-Request-ID"] == "trace-4bf92f3577b34da6"
    assert refused["X-Request-ID"] != "no spaces <script>" and len(refused["X-Request-ID"]) == 32
    assert missing_page.status_code == 404 and missing_page["X-Request-ID"]


def test_request_metrics_count_by_view_name_and_status(client: Client, viewer: User) -> None:
    def count(view: str, status: str) -> float:
        value = REGISTRY.get_sample_value(
            "slipway_http_requests_total", {"view": view, "method": "GET", "status": status}
        )
        return value or 0.0

    before_ok, before_login = count("dashboard", "200"), count("dashboard", "302")
    client.get("/")  # not signed in: to the login page
    client.force_login(viewer)
    client.get("/")
    client.get("/")

    assert count("dashboard", "302") == before_login + 1
    assert count("dashboard", "200") == before_ok + 2


@pytest.mark.rq
def test_the_worker_class_counts_and_times_jobs_by_function_and_outcome(rq_queues: dict[str, Queue]) -> None:
    queue = Queue("default", connection=rq_queues["default"].connection)  # enqueues now, not on commit

    def sample(name: str, function: str, outcome: str) -> float:
        labels = {"function": function, "queue": "default", "outcome": outcome}
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ok = "strategies.operations.engine.recover_operations_job"
    before = sample("slipway_rq_jobs_total", ok, "succeeded"), sample("slipway_rq_jobs_total", "builtins.int", "failed")
    queue.enqueue(recover_operations_job)
    queue.enqueue("builtins.int", "not a number")
    MetricsSimpleWorker([queue], connection=queue.connection).work(burst=True)

    assert sample("slipway_rq_jobs_total", ok, "succeeded") == before[0] + 1
    assert sample("slipway_rq_jobs_total", "builtins.int", "failed") == before[1] + 1
    assert sample("slipway_rq_job_duration_seconds_count", ok, "succeeded") >= 1
    text = render_metrics().decode()
    assert 'slipway_rq_failed_jobs{queue="default"} 1.0' in text


class _Lines(logging.Handler):
    """Collects formatted lines, through the same filter and JSON formatter as the console handler."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []
        self.addFilter(LogContextFilter())
        spec = {k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}
        self.setFormatter(JsonFormatter(**spec))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.rq
def test_log_lines_written_inside_a_job_carry_its_job_id(rq_queues: dict[str, Queue], release_manager: User) -> None:
    operation, _candidate, _live = promote(300, "blue_green", FAST_BLUE_GREEN, release_manager)
    lines = _Lines()
    engine_log = logging.getLogger("strategies.operations.engine")
    engine_log.addHandler(lines)
    try:
        drive(rq_queues["operations"], operation)
    finally:
        engine_log.removeHandler(lines)

    claimed = [line for line in lines.lines if line["message"].startswith(f"operation {operation.pk} claimed by")]
    assert claimed, lines.lines
    job_id = claimed[0]["message"].rsplit(" ", 1)[-1]
    assert claimed[0]["job_id"] == job_id and claimed[0]["logger"] == "strategies.operations.engine"
    assert claimed[0]["level"] == "INFO" and claimed[0]["time"]
    assert all("job_id" in line for line in lines.lines)


def test_log_lines_written_inside_a_request_carry_its_id_user_and_path(client: Client, viewer: User) -> None:
    lines = _Lines()
    request_log = logging.getLogger("slipway.request")
    request_log.addHandler(lines)
    client.force_login(viewer)
    try:
        client.get("/", HTTP_X_REQUEST_ID="req-1234")
    finally:
        request_log.removeHandler(lines)

    (line,) = lines.lines
    assert line["request_id"] == "req-1234" and line["user"] == viewer.username and line["path"] == "/"
    assert line["status"] == 200 and line["duration_ms"] > 0 and line["view"] == "dashboard"
    assert line["message"].startswith("GET / 200 ")


@pytest.mark.rq
def test_probes_are_answered_over_plain_http_when_https_is_enforced(
    client: Client, settings, rq_queues: dict[str, Queue]
) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.METRICS_TOKEN = ""

    pages = client.get("/login/")
    probes = [client.get(path) for path in ("/healthz", "/readyz", "/metrics")]

    assert pages.status_code == 301 and pages["Location"].startswith("https://")
    assert [p.status_code for p in probes] == [200, 200, 200]


@pytest.mark.rq
def test_an_api_request_is_logged_with_the_tokens_owner(client: Client, release_manager: User) -> None:
    from portal.api.tokens import token_create

    secret = token_create(actor=release_manager, owner=release_manager, name="ci", scopes=["read"]).secret
    lines = _Lines()
    request_log = logging.getLogger("slipway.request")
    request_log.addHandler(lines)
    try:
        response = client.get("/api/v1/releases", HTTP_AUTHORIZATION=f"Bearer {secret}")
    finally:
        request_log.removeHandler(lines)

    assert response.status_code == 200
    (line,) = lines.lines
    assert line["user"] == release_manager.username and line["path"] == "/api/v1/releases"
