"""Benchmark of the dashboard's live poll: D simulated dashboards polling every 2 s against gunicorn.

Run on demand, never part of the test suite:

    .venv/bin/python bench/polling.py --apps 200 --dashboards 200 --seconds 30

Its own PostgreSQL database `slipway_bench_polling` (dropped and re-created each run) with A
applications (four environments each, a live release, one in four with an operation running so
the grid is "live"); gunicorn with 2 workers (gthread) on 127.0.0.1:8099. Each simulated dashboard
is a thread with its own signed-in session that polls `/` as htmx does (HX-Request) every 2 s,
sending the ETag it last got as If-None-Match, like the browser's cache. A writer thread makes a
change every `--change-every` seconds (an audit event: a new fingerprint), so a share of the polls
render again. Prints throughput, status mix, latency percentiles (client-observed, loopback), and the
server time of one unchanged and one changed poll measured in-process. Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "slipway_bench_polling"
PORT = 8099

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--apps", type=int, default=200)
parser.add_argument("--dashboards", type=int, default=200)
parser.add_argument("--seconds", type=float, default=30.0, help="how long the dashboards poll")
parser.add_argument("--interval", type=float, default=2.0, help="seconds between one dashboard's polls")
parser.add_argument("--change-every", type=float, default=5.0, help="seconds between changes (0: none)")
parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
ARGS = parser.parse_args()

ENV = {
    "DJANGO_SETTINGS_MODULE": "portal.settings",
    "SECRET_KEY": "bench-only-not-a-secret",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": "redis://127.0.0.1:6379/12",
    "LOG_LEVEL": "WARNING",
    "DB_CONN_MAX_AGE": "60",
    "SECURE_SSL_REDIRECT": "0",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))


def prepare_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


prepare_database()

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import Client  # noqa: E402

from portal.core import clock  # noqa: E402
from portal.core.roles import Role  # noqa: E402
from portal.core.status_guard import arranging_state  # noqa: E402
from releases.audit.services import audit_record  # noqa: E402
from releases.catalog.models import Application, Environment, Release, ReleaseStatus, Slot  # noqa: E402
from strategies.operations.models import Operation, OperationStatus, OperationStep, StepStatus  # noqa: E402

LAYOUT = [("dev", "Development", "dev"), ("test", "Test", "test"), ("preprod", "Pre-production", "staging")]
LAYOUT.append(("prod", "Production", "production"))


@arranging_state()  # the starting state, not history: no audit trail for a benchmark's setup
def seed() -> None:
    """A applications with four slots and environments, a live release each; every fourth one mid-canary."""
    now = clock.now()
    apps = Application.objects.bulk_create(
        Application(name=f"App {i:04d}", slug=f"app-{i:04d}", team=f"Team {i % 12}") for i in range(ARGS.apps)
    )
    slots = Slot.objects.bulk_create(
        Slot(
            application=app,
            name=slot_name,
            is_production=stage == "prod",
            running_version="1.0.0" if stage == "prod" else "1.1.0",
            traffic_percent=100 if stage == "prod" else 0,
            health="healthy",
            refreshed_at=now,
        )
        for app in apps
        for stage, _env, slot_name in LAYOUT
    )
    by_app = {}
    for slot in slots:
        by_app.setdefault(slot.application_id, {})[slot.name] = slot
    Environment.objects.bulk_create(
        Environment(application=app, stage=stage, name=env, position=n * 10, slot=by_app[app.pk][slot_name])
        for app in apps
        for n, (stage, env, slot_name) in enumerate(LAYOUT, start=1)
    )
    live = Release.objects.bulk_create(
        Release(application=app, version="1.0.0", status=ReleaseStatus.LIVE, created_at=now, status_changed_at=now)
        for app in apps
    )
    rolling = Release.objects.bulk_create(
        Release(
            application=app, version="1.1.0", status=ReleaseStatus.ROLLING_OUT, created_at=now, status_changed_at=now
        )
        for app in apps[::4]
    )
    del live
    operations = Operation.objects.bulk_create(
        Operation(
            application_id=release.application_id,
            release=release,
            environment=Environment.objects.get(application_id=release.application_id, stage="prod"),
            kind=Operation.Kind.PROMOTE,
            strategy="canary",
            status=OperationStatus.RUNNING,
            created_at=now,
            started_at=now,
        )
        for release in rolling
    )
    OperationStep.objects.bulk_create(
        OperationStep(operation=op, position=n, kind=kind, title=title, status=status, progress=progress)
        for op in operations
        for n, (kind, title, status, progress) in enumerate(
            [
                ("set_traffic", "Route 5 % of traffic to staging", StepStatus.SUCCEEDED, 100),
                ("bake", "Bake 5 % for 300 s", StepStatus.WAITING, 40),
                ("analyse", "Analyse the canary at 5 %", StepStatus.PENDING, 0),
            ],
            start=1,
        )
    )


def session_cookie(user: object) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings().SESSION_COOKIE_NAME].value


def django_settings() -> object:
    from django.conf import settings

    return settings


def server_time(user: object) -> tuple[float, float]:
    """In-process server time (ms, median of 50) of an unchanged poll (304) and a poll that renders."""
    client = Client()
    client.force_login(user)
    first = client.get("/", headers={"HX-Request": "true"})
    etag = first["ETag"]
    unchanged, rendered = [], []
    for _ in range(50):
        t = time.perf_counter()
        response = client.get("/", headers={"HX-Request": "true", "If-None-Match": etag})
        unchanged.append((time.perf_counter() - t) * 1000)
        if response.status_code != 304:
            raise SystemExit(f"an unchanged poll answered {response.status_code}, not 304")
        t = time.perf_counter()
        client.get("/", headers={"HX-Request": "true"})
        rendered.append((time.perf_counter() - t) * 1000)
    return statistics.median(unchanged), statistics.median(rendered)


def main() -> None:
    call_command("migrate", verbosity=0)
    t = time.perf_counter()
    seed()
    busy = Operation.objects.count()
    print(f"seeded {ARGS.apps} applications ({busy} mid-operation) in {time.perf_counter() - t:.1f} s")
    users = []
    viewers = Group.objects.get(name=Role.VIEWER.value)
    for i in range(ARGS.dashboards):
        user = get_user_model().objects.create_user(f"watcher{i:03d}", password=None)
        user.groups.add(viewers)
        users.append(user)
    unchanged_ms, rendered_ms = server_time(users[0])
    print(f"server time in-process: unchanged poll (304) {unchanged_ms:.1f} ms, poll that renders {rendered_ms:.1f} ms")
    cookies = [session_cookie(user) for user in users]

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
            "10",  # longer than a poll's interval, so the dashboards keep their connections
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ},
        start_new_session=True,
    )
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{PORT}/healthz", timeout=3)
                break
            except requests.RequestException:
                time.sleep(0.2)
        run(cookies)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)


def run(cookies: list[str]) -> None:
    stop = time.monotonic() + ARGS.seconds
    latencies: dict[int, list[float]] = {200: [], 304: []}
    statuses: Counter[int | str] = Counter()
    lock = threading.Lock()

    def dashboard(cookie: str) -> None:
        session = requests.Session()
        session.cookies.set(django_settings().SESSION_COOKIE_NAME, cookie)
        etag = ""
        time.sleep(random.uniform(0, ARGS.interval))  # spread the first polls
        while time.monotonic() < stop:
            started = time.perf_counter()
            headers = {"HX-Request": "true", **({"If-None-Match": etag} if etag else {})}
            try:
                response = session.get(f"http://127.0.0.1:{PORT}/", headers=headers, timeout=10)
                elapsed = (time.perf_counter() - started) * 1000
                etag = response.headers.get("ETag", etag)
                with lock:
                    statuses[response.status_code] += 1
                    latencies.setdefault(response.status_code, []).append(elapsed)
            except requests.RequestException as exc:
                with lock:
                    statuses[type(exc).__name__] += 1
            time.sleep(max(0.0, ARGS.interval - (time.perf_counter() - started)))

    def writer() -> None:
        application = Application.objects.first()
        while ARGS.change_every and time.monotonic() < stop:
            time.sleep(ARGS.change_every)
            with transaction.atomic():
                audit_record(actor=None, action="slot.observed", obj=application, application=application)

    threads = [threading.Thread(target=dashboard, args=(cookie,), daemon=True) for cookie in cookies]
    threads.append(threading.Thread(target=writer, daemon=True))
    rss_before = rss_of_gunicorn()
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - began
    total = sum(v for k, v in statuses.items())
    print(
        f"\n{ARGS.dashboards} dashboards polling every {ARGS.interval:g} s for {took:.0f} s, a change every "
        f"{ARGS.change_every:g} s; gunicorn {ARGS.workers} workers x {ARGS.threads} threads"
    )
    print(f"requests: {total} ({total / took:.0f}/s); statuses: {dict(statuses)}")
    for code, values in sorted(latencies.items()):
        if values:
            q = statistics.quantiles(values, n=100)
            figures = f"p50 {q[49]:.1f} ms · p95 {q[94]:.1f} ms · p99 {q[98]:.1f} ms · max {max(values):.1f} ms"
            print(f"  {code}: n={len(values)} {figures}")
    print(f"gunicorn RSS (all processes): {rss_before / 1024:.0f} MiB before, {rss_of_gunicorn() / 1024:.0f} MiB after")


def rss_of_gunicorn() -> int:
    """KiB of resident memory of every gunicorn process on the bench's port (ps)."""
    out = subprocess.run(["ps", "-eo", "rss,args"], capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines()[1:] if "gunicorn" in line and str(PORT) in line)


if __name__ == "__main__":
    main()
