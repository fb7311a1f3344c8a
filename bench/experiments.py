"""Benchmark of experiments: event ingest over HTTP, and the analysis of an experiment with 10 million events.

Run on demand, never part of the test suite (PostgreSQL only):

    .venv/bin/python bench/experiments.py                  # both parts
    .venv/bin/python bench/experiments.py --skip-ingest    # only the analysis

The database `slipway_bench_exp` on postgres://postgres@127.0.0.1:5432 is dropped, re-created and migrated.

(a) Ingest: gunicorn (`--workers` 2 gthread workers, `--threads` 2 each) on 127.0.0.1:8137 (must be
free) serves the real events API; `--clients` threads post batches of `--batch` (1,000) events —
exposures and metric events of new users, each with its own id — over keep-alive connections for
`--seconds`. Throughput counts accepted events. A last batch is re-sent: a retry is all duplicates.

(b) Analysis: the per-user rows of 10 million events are generated in SQL (`generate_series`, `setseed`):
`--users` (2,000,000) users exposed (2 exposure events each, folded into one exposure row), a latency metric
(3 events per user), a purchase conversion (10 % vs 11 %) and a revenue metric for purchasers, i.e.
one exposure row per user and one row per user and metric with its event count. The events they stand for are
printed. Then `analyse(experiment)` — two aggregating statements and the statistics — is timed (median of 5).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "slipway_bench_exp"
PORT = 8137
KEY = "slwf_bench000_experiment-bench-key"

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--seconds", type=float, default=20.0, help="duration of the ingest run")
parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
parser.add_argument("--batch", type=int, default=1000, help="events per batch")
parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
parser.add_argument("--users", type=int, default=2_000_000, help="users of the analysis experiment")
parser.add_argument("--skip-ingest", action="store_true")
parser.add_argument("--redis-db", type=int, default=10)
ARGS = parser.parse_args()
if ARGS.redis_db in (0, 15):
    sys.exit("Refusing Redis db 0 or 15.")

ENV = {
    "DJANGO_SETTINGS_MODULE": "portal.settings",
    "SECRET_KEY": "bench-only-not-a-secret",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": f"redis://127.0.0.1:6379/{ARGS.redis_db}",
    "LOG_LEVEL": "WARNING",
    "DB_CONN_MAX_AGE": "60",
    "SECURE_SSL_REDIRECT": "0",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
    "FLAGS_RATE_LIMIT_PER_MINUTE": "100000000",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))


def prepare_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def seed() -> tuple[object, object]:
    """An application, its production environment, a flag, the API key, two running experiments."""
    from django.contrib.auth.models import Group, User

    from portal.core.roles import Role
    from releases.catalog.models import Stage
    from strategies.experiments import services
    from strategies.flags import services as flag_services
    from tests.factories import ApplicationFactory

    manager = User.objects.create_user("bench-manager")
    manager.groups.add(Group.objects.get(name=Role.RELEASE_MANAGER.value))
    application = ApplicationFactory(name="Bench shop", slug="bench-shop")
    environment = application.environments.get(stage=Stage.PRODUCTION)
    flag_services.api_key_create(environment=environment, name="bench", actor=manager, secret=KEY)
    metrics = {
        "primary_metric": {"name": "purchase", "kind": "conversion", "direction": "increase"},
        "guardrails": [
            {"name": "revenue", "kind": "continuous", "direction": "increase", "tolerance": 5},
            {"name": "latency_ms", "kind": "continuous", "direction": "decrease", "tolerance": 10},
        ],
    }
    made = []
    for key in ("ingest", "analysis"):
        flag = flag_services.flag_create(
            environment=environment, key=f"{key}-flag", flag_type="boolean", default_variant="off", actor=manager
        )
        experiment = services.experiment_create(
            flag=flag,
            key=key,
            name=key,
            actor=manager,
            allocation=[["off", 50], ["on", 50]],
            mde=0.1,
            baseline_rate=0.1,
            **metrics,
        )
        made.append(services.experiment_start(experiment=experiment, actor=manager))
    return made[0], made[1]


def batch_body(client: int, number: int) -> bytes:
    events = []
    size = ARGS.batch
    users = size // 4  # per user: an exposure, a latency, and half the time a purchase with its revenue
    for i in range(users):
        user = f"c{client}-b{number}-u{i}"
        variant = "on" if i % 2 else "off"
        events.append({"id": f"{user}-x", "type": "exposure", "user": user, "experiment": "ingest", "variant": variant})
        events.append(
            {
                "id": f"{user}-l",
                "type": "metric",
                "user": user,
                "experiment": "ingest",
                "metric": "latency_ms",
                "value": 120 + i % 80,
            }
        )
        events.append({"id": f"{user}-p", "type": "metric", "user": user, "experiment": "ingest", "metric": "purchase"})
        events.append(
            {
                "id": f"{user}-r",
                "type": "metric",
                "user": user,
                "experiment": "ingest",
                "metric": "revenue",
                "value": 20 + i % 50,
            }
        )
    return json.dumps({"events": events[:size]}).encode()


def ingest_run() -> None:
    import http.client

    from django.db import connections

    connections.close_all()
    with socket.socket() as probe_socket:
        if probe_socket.connect_ex(("127.0.0.1", PORT)) == 0:
            sys.exit(f"Port {PORT} is in use: another server would answer this bench's requests.")
    server = subprocess.Popen(  # our own project's gunicorn, with the bench's environment
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "portal.wsgi",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(ARGS.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(ARGS.threads),
            "--keep-alive",
            "10",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ},
        start_new_session=True,
        stdout=subprocess.DEVNULL,  # the per-request log lines; failures show as non-200 answers below
        stderr=subprocess.DEVNULL,
    )
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    try:
        for _ in range(150):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", PORT, timeout=3)
                probe.request("GET", "/healthz")
                probe.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        bodies = {c: [batch_body(c, n) for n in range(400)] for c in range(ARGS.clients)}
        accepted = [0] * ARGS.clients
        latencies: list[float] = []
        errors = [0]
        stop_at = time.monotonic() + ARGS.seconds
        start = time.monotonic()

        def client(c: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            for body in bodies[c]:
                if time.monotonic() >= stop_at:
                    break
                t0 = time.monotonic()
                conn.request("POST", "/experiments/api/v1/events", body, headers)
                response = conn.getresponse()
                answer = json.loads(response.read())
                latencies.append(time.monotonic() - t0)
                if response.status != 200:
                    errors[0] += 1
                accepted[c] += answer.get("accepted", 0)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(ARGS.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        total = sum(accepted)
        retry = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        retry.request("POST", "/experiments/api/v1/events", bodies[0][0], headers)
        replay = json.loads(retry.getresponse().read())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    latencies.sort()
    print(
        f"(a) ingest over HTTP: gunicorn {ARGS.workers} workers x {ARGS.threads} threads, {ARGS.clients} clients, "
        f"batches of {ARGS.batch}, {elapsed:.1f} s"
    )
    print(f"    {total:,} events accepted in {len(latencies)} batches: {total / elapsed:,.0f} events/s")
    print(
        f"    per batch: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
        f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms; non-200 answers: {errors[0]}"
    )
    print(f"    a retried batch: accepted {replay['accepted']}, duplicates {replay['duplicates']}")


GENERATE = """
SELECT setseed(0.42);
INSERT INTO strategies_experimentexposure (experiment_id, user_key, variant, first_at, covariate, conflicted)
SELECT %(e)s, 'u' || g, CASE WHEN g %% 2 = 0 THEN 'off' ELSE 'on' END,
       now() - (random() * interval '14 days'), random() * 100, false
FROM generate_series(1, %(users)s) AS g;
INSERT INTO strategies_experimentmetricvalue (experiment_id, user_key, metric, count, total)
SELECT %(e)s, 'u' || g, 'latency_ms', 3, 3 * (150 + random() * 60) FROM generate_series(1, %(users)s) AS g;
INSERT INTO strategies_experimentmetricvalue (experiment_id, user_key, metric, count, total)
SELECT %(e)s, 'u' || g, 'purchase', 1, 1 FROM generate_series(1, %(users)s) AS g
WHERE random() < CASE WHEN g %% 2 = 0 THEN 0.10 ELSE 0.11 END;
INSERT INTO strategies_experimentmetricvalue (experiment_id, user_key, metric, count, total)
SELECT %(e)s, user_key, 'revenue', 1, 20 + random() * 80 FROM strategies_experimentmetricvalue
WHERE experiment_id = %(e)s AND metric = 'purchase';
ANALYZE strategies_experimentexposure;
ANALYZE strategies_experimentmetricvalue;
"""


def analysis_run(experiment: object) -> None:
    from django.db import connection

    from strategies.experiments import analysis

    t0 = time.monotonic()
    with connection.cursor() as cursor:
        for statement in GENERATE.split(";"):
            if statement.strip():
                cursor.execute(statement, {"e": experiment.pk, "users": ARGS.users})
        cursor.execute(
            "SELECT COALESCE(SUM(count), 0) FROM strategies_experimentmetricvalue WHERE experiment_id = %s",
            [experiment.pk],
        )
        metric_events = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT COUNT(*) FROM strategies_experimentmetricvalue WHERE experiment_id = %s", [experiment.pk]
        )
        metric_rows = int(cursor.fetchone()[0])
    events = 2 * ARGS.users + metric_events
    print(
        f"\n(b) analysis: {ARGS.users:,} users, {events:,} events "
        f"({2 * ARGS.users:,} exposures, {metric_events:,} metric events) stored as {ARGS.users:,} exposure rows "
        f"and {metric_rows:,} metric rows (generated in {time.monotonic() - t0:.0f} s)"
    )
    times = []
    for _ in range(6):
        t = time.monotonic()
        results = analysis.analyse(experiment)
        times.append(time.monotonic() - t)
    times = times[1:]  # the first warms PostgreSQL's cache
    print(
        f"    analyse(): median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
        "(2 aggregating statements, the statistics, one snapshot row)"
    )
    print(f"    verdict: {results['summary']}")


def main() -> None:
    prepare_database()
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    redis.Redis.from_url(ENV["REDIS_URL"]).flushdb()
    call_command("migrate", verbosity=0)
    _, analysis_experiment = seed()
    print(f"cores: {os.cpu_count()}; python {sys.version.split()[0]}")
    if not ARGS.skip_ingest:
        ingest_run()
    analysis_run(analysis_experiment)


if __name__ == "__main__":
    main()
