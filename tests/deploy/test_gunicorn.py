"""deploy/gunicorn.conf.py for real: 2 gunicorn workers in Prometheus multiprocess mode, JSON logs on stdout,
/metrics behind a bearer token, over real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from rq import Queue

from tests.api.conftest import issue
from tests.releases.test_jobs import _subprocess_database_url

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TOKEN = "metrics-token-for-the-test-0123456789"
WEB_APPLICATION_NAME = "slipway-gunicorn-test"
_APPLICATION_NAME = f"?application_name={WEB_APPLICATION_NAME}" if connection.vendor == "postgresql" else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path, rq_queues: dict[str, Queue]) -> Iterator[tuple[str, Path, Path]]:
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    log = tmp_path / "gunicorn.log"
    runtime = tmp_path / "runtime"  # where gunicorn's default control socket would go (one per user)
    runtime.mkdir()
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _subprocess_database_url() + _APPLICATION_NAME,
        "REDIS_URL": settings.REDIS_URL,
        # Persistent connections, as production runs them: a failover must not turn into 500s.
        "DB_CONN_MAX_AGE": "60",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "GUNICORN_ACCESS_LOG": "-",
        "GUNICORN_LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "ALLOWED_HOSTS": "127.0.0.1",
        "METRICS_TOKEN": TOKEN,
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "portal.wsgi"],
            cwd=Path(settings.BASE_DIR),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                requests.get(f"{base}/healthz", timeout=10)
                break
            except requests.RequestException:
                assert process.poll() is None, log.read_text()
                time.sleep(0.2)
        yield base, metrics_dir, log
        # No control socket at the per-user path every gunicorn on the host would share.
        assert list(runtime.iterdir()) == [], sorted(runtime.iterdir())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_two_workers_sum_their_metrics_and_log_json_lines_with_request_ids(server: tuple[str, Path, Path]) -> None:
    base, metrics_dir, log = server
    session = requests.Session()
    ids = []
    for n in range(40):
        # A new connection now and then, so both workers get some of the requests.
        response = (requests if n % 2 else session).get(
            f"{base}/healthz", headers={"X-Request-ID": f"load-{n}"}, timeout=10
        )
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] == f"load-{n}"
        ids.append(f"load-{n}")
    ready = requests.get(f"{base}/readyz", timeout=10)

    refused = requests.get(f"{base}/metrics", timeout=10)
    scraped = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    assert ready.status_code == 200, ready.text
    assert refused.status_code == 401
    assert scraped.status_code == 200
    # The 40 requests are counted once in all, whichever of the two workers served them.
    match = re.search(
        r'^slipway_http_requests_total\{method="GET",status="200",view="healthz"\} (\S+)$', scraped.text, re.M
    )
    assert match and float(match.group(1)) >= 40.0
    assert 'slipway_rq_queue_jobs{queue="operations",state="queued"} 0.0' in scraped.text
    assert len({p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("*.db")}) >= 2, sorted(metrics_dir.iterdir())

    time.sleep(0.5)  # let the log lines reach the file
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    requests_logged = {line["request_id"]: line for line in lines if line.get("logger") == "slipway.request"}
    for request_id in ids:
        line = requests_logged[request_id]
        assert line["path"] == "/healthz" and line["status"] == 200 and line["level"] == "INFO"
        assert line["duration_ms"] >= 0 and line["time"].endswith("+00:00")
    access = [line for line in lines if line.get("logger") == "gunicorn.access"]
    assert {line["request_id"] for line in access} >= set(ids)
    assert all(line["status"] in {"200", "401"} for line in access)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a database failover needs a database server")
def test_requests_after_the_database_dropped_every_connection_are_answered(
    server: tuple[str, Path, Path], viewer: User
) -> None:
    """DB_CONN_MAX_AGE keeps each web thread's connection; the server drops them all (a failover). With
    CONN_HEALTH_CHECKS each thread finds its connection dead before using it and opens a new one, so no
    request answers 500 (before, the first request on each thread did)."""
    base, _, _ = server
    token = issue(viewer, ["read"], name="failover")
    headers = {"Authorization": f"Bearer {token}"}

    def calls() -> list[int]:  # new connections each time, so both workers and their threads serve some
        return [requests.get(f"{base}/api/v1/applications", headers=headers, timeout=10).status_code for _ in range(24)]

    assert set(calls()) == {200}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            [WEB_APPLICATION_NAME],
        )
        assert cursor.fetchone()[0] >= 1

    assert set(calls()) == {200}
