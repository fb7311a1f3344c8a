"""Load test: the whole portal under gunicorn (2 web workers) with 3 RQ workers, on PostgreSQL and Redis.

Run on demand, never part of the test suite (docs/load.md has the figures and how to read them):

    .venv/bin/python bench/load.py                       # 200 browsing users, 20 operations, 3 minutes
    .venv/bin/python bench/load.py --users 50 --operations 5 --seconds 60

What it does: drops and re-creates the PostgreSQL database `slipway_load`, migrates it, collects the static
files (DEBUG off: the production storage), seeds the demo organisation plus one simulated application per
operation (1.0.0 live, 1.1.0 approved in staging) and the users, flushes Redis db 13, then starts
`gunicorn -c deploy/gunicorn.conf.py` (2 workers x 4 threads, Prometheus multiprocess mode, JSON logs),
3 `rqworker` processes (the first with the scheduler) and the `rqcron` scheduler, and runs **locust** headless
with this same file as the locustfile (users defined only when SLIPWAY_LOAD_ROLE=locust):

- `Browser` x --users: a signed-in viewer on the dashboard, polling it like htmx (HX-Request, If-None-Match
  with the last ETag; every 2 s while something runs, every 10 s otherwise, as the page says), and now and
  then opening a release page, the release history, the audit trail or an application page.
- `Operator` x --operations: starts one promotion through the REST API (canary or blue-green on the simulator,
  short bakes), then follows it at GET /api/v1/operations/<id> every 2 s until it ends.
- `Registrar` x --registrars: registers a new release through the REST API every ~2 s and lists releases.

Memory: the RSS of the gunicorn processes and of the worker processes (with their work horses) is sampled every
2 s. At the end the script prints locust's figures per request type, the operations' outcomes and durations,
the memory, and a scrape of /metrics (requests and jobs as the portal counted them).
"""

from __future__ import annotations

import os
import re
import sys
import time
from itertools import count

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- the locust side (imported by `locust -f bench/load.py`) ---------------------------------------------
if os.environ.get("SLIPWAY_LOAD_ROLE") == "locust":
    import json
    import random

    from locust import HttpUser, between, events, task

    PLAN = json.loads(open(os.environ["SLIPWAY_LOAD_PLAN"], encoding="utf-8").read())  # noqa: SIM115
    _browsers, _operators, _registrars = count(), count(), count()
    _POLL = re.compile(r'hx-trigger="every (\d+)s"')
    TERMINAL = {"succeeded", "failed", "rolled_back", "cancelled"}
    OUTCOMES: list[dict] = []

    class Browser(HttpUser):
        fixed_count = PLAN["users"]

        def on_start(self) -> None:
            n = next(_browsers) % len(PLAN["cookies"])
            self.client.cookies.set(PLAN["cookie_name"], PLAN["cookies"][n])
            self.etag = ""
            self.interval = 2.0
            self.ticks = 0
            self.client.get("/", name="dashboard (full page)")

        def wait_time(self) -> float:
            return self.interval

        @task
        def tick(self) -> None:
            self.ticks += 1
            headers = {"HX-Request": "true"}
            if self.etag:
                headers["If-None-Match"] = self.etag
            with self.client.get("/", headers=headers, name="dashboard poll", catch_response=True) as response:
                if response.status_code == 304:
                    response.success()
                elif response.status_code == 200:
                    self.etag = response.headers.get("ETag", "")
                    match = _POLL.search(response.text)
                    self.interval = float(match.group(1)) if match else 10.0
                elif response.status_code == 0:  # no HTTP answer: say what the connection did
                    response.failure(f"no answer: {type(response.error).__name__}: {str(response.error)[:120]}")
                else:
                    response.failure(f"status {response.status_code}")
            if self.ticks % 5 == 0:  # every fifth poll, the person opens another page
                page = random.choice(["release", "release", "history", "audit", "application"])
                if page == "release":
                    self.client.get(f"/releases/{random.choice(PLAN['release_ids'])}/", name="release page")
                elif page == "history":
                    self.client.get("/releases/", name="history")
                elif page == "audit":
                    self.client.get("/audit/", name="audit trail")
                else:
                    self.client.get(f"/apps/{random.choice(PLAN['app_slugs'])}/", name="application page")

    class Operator(HttpUser):
        fixed_count = PLAN["operations"]
        wait_time = between(1.8, 2.2)

        def on_start(self) -> None:
            n = next(_operators)
            self.promotion = PLAN["promotions"][n]
            self.client.headers["Authorization"] = f"Bearer {PLAN['operator_tokens'][n]}"
            self.operation_id = None
            self.done = False
            self.started = time.monotonic()
            body = {"strategy": self.promotion["strategy"], "parameters": self.promotion["parameters"]}
            with self.client.post(
                f"/api/v1/releases/{self.promotion['release_id']}/promote",
                json=body,
                name="API promote",
                catch_response=True,
            ) as response:
                if response.status_code == 201:
                    self.operation_id = response.json()["id"]
                else:
                    response.failure(f"status {response.status_code}: {response.text[:300]}")
                    self.done = True

        @task
        def follow(self) -> None:
            if self.done:
                time.sleep(5)
                return
            response = self.client.get(f"/api/v1/operations/{self.operation_id}", name="API operation")
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                self.done = True
                OUTCOMES.append(
                    {
                        "id": self.operation_id,
                        "strategy": self.promotion["strategy"],
                        "status": response.json()["status"],
                        "seconds": time.monotonic() - self.started,
                    }
                )

    class Registrar(HttpUser):
        fixed_count = PLAN["registrars"]
        wait_time = between(1.5, 2.5)

        def on_start(self) -> None:
            self.n = next(_registrars)
            self.client.headers["Authorization"] = f"Bearer {PLAN['registrar_tokens'][self.n]}"
            self.versions = count(1)

        @task(3)
        def register(self) -> None:
            slug = random.choice(PLAN["app_slugs"])
            version = f"9.{self.n}.{next(self.versions)}"
            body = {"application": slug, "version": version, "build_id": f"load-{version}", "commit_sha": "abc123"}
            with self.client.post("/api/v1/releases", json=body, name="API register", catch_response=True) as r:
                if r.status_code not in (200, 201):
                    r.failure(f"status {r.status_code}: {r.text[:300]}")

        @task(1)
        def listing(self) -> None:
            self.client.get("/api/v1/releases?limit=50", name="API releases list")

    @events.quitting.add_listener
    def _write_outcomes(environment, **_kwargs) -> None:
        with open(os.environ["SLIPWAY_LOAD_OUTCOMES"], "w", encoding="utf-8") as out:
            json.dump(OUTCOMES, out)


# --- the orchestrator ------------------------------------------------------------------------------------
def main() -> None:
    import argparse
    import csv
    import json
    import signal
    import subprocess
    import tempfile
    import threading

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200, help="browsing, polling users")
    parser.add_argument("--operations", type=int, default=20, help="concurrent promotions started through the API")
    parser.add_argument("--registrars", type=int, default=2, help="API clients registering releases")
    parser.add_argument("--seconds", type=int, default=180, help="how long the load runs")
    parser.add_argument("--spawn-rate", type=float, default=20.0, help="users started per second")
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per web worker")
    parser.add_argument("--rq-workers", type=int, default=3)
    parser.add_argument("--redis-db", type=int, default=13, help="flushed at the start (never 0 or 15)")
    parser.add_argument("--database", default="slipway_load", help="PostgreSQL database: DROPPED and re-created")
    args = parser.parse_args()
    if args.redis_db in (0, 15):
        raise SystemExit("Redis databases 0 and 15 belong to the portal and the tests: choose another")

    work = tempfile.mkdtemp(prefix="slipway-load-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DEBUG": "0",
            "SECRET_KEY": "load-test-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.database}",
            "DB_CONN_MAX_AGE": "60",
            "REDIS_URL": f"redis://127.0.0.1:6379/{args.redis_db}",
            "STATIC_ROOT": os.path.join(work, "static"),
            "PROMETHEUS_MULTIPROC_DIR": os.path.join(work, "prometheus"),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "SIMULATOR_SWAP_SECONDS": "2",
            "SIMULATOR_SWAP_WARMUP_SECONDS": "1",
            "SIMULATOR_SWAP_ROUTING_SECONDS": "0.5",
            "SIMULATOR_RESTART_SECONDS": "0",
            "GUNICORN_BIND": f"127.0.0.1:{args.port}",
            "WEB_CONCURRENCY": str(args.web_workers),
            "GUNICORN_THREADS": str(args.threads),
            "GUNICORN_LOG_LEVEL": "warning",
        }
    )
    sys.path.insert(0, ROOT)

    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')

    import django

    django.setup()
    import django_rq
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    from portal.api.tokens import token_create
    from portal.core import clock
    from portal.core.roles import Role
    from portal.core.status_guard import arranging_state
    from portal.demo.organisation import seed
    from releases.catalog.models import (
        Application,
        Environment,
        Release,
        ReleaseStatus,
        SimulatorSite,
        SimulatorSlot,
        Slot,
    )
    from strategies.operations.models import Operation, OperationStep

    t0 = time.monotonic()
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    seed(log=lambda _line: None)
    django_rq.get_connection("default").flushdb()

    layout = [("dev", "Development", "dev"), ("test", "Test", "test"), ("preprod", "Pre-production", "staging")]
    layout.append(("prod", "Production", "production"))
    versions = {"dev": "1.2.0-dev.1", "test": "1.1.0", "staging": "1.1.0", "production": "1.0.0"}
    promotions, app_slugs = [], list(Application.objects.values_list("slug", flat=True))
    now = clock.now()
    for i in range(args.operations):
        app = Application.objects.create(name=f"Load {i:02d}", slug=f"load-{i:02d}", team="Load")
        slots = {}
        for position, (stage, env_name, slot_name) in enumerate(layout, start=1):
            production = slot_name == "production"
            slots[slot_name] = Slot.objects.create(
                application=app,
                name=slot_name,
                hostname=f"{app.slug}-{slot_name}.example.net",
                is_production=production,
                traffic_percent=100 if production else 0,
                running_version=versions[slot_name],
                health="healthy",
                refreshed_at=now,
            )
            Environment.objects.create(
                application=app, stage=stage, name=env_name, position=position * 10, slot=slots[slot_name]
            )
            SimulatorSlot.objects.create(application=app, slot_name=slot_name, version=versions[slot_name])
        SimulatorSite.objects.update_or_create(application=app, defaults={"synthetic_rpm": 1200})
        with arranging_state():  # the starting state, not history: no audit trail for a benchmark's setup
            Release.objects.create(
                application=app,
                version="1.0.0",
                status=ReleaseStatus.LIVE,
                created_at=now,
                status_changed_at=now,
                live_at=now,
            )
            candidate = Release.objects.create(
                application=app,
                version="1.1.0",
                status=ReleaseStatus.APPROVED,
                created_at=now,
                status_changed_at=now,
                approved_at=now,
                deployed_slot=slots["staging"],
            )
        canary = i % 2 == 0
        promotions.append(
            {
                "release_id": candidate.pk,
                "strategy": "canary" if canary else "blue_green",
                "parameters": {"bake_seconds": 5, "shares": [10, 50, 100], "analysis_minutes": 5, "min_requests": 50}
                if canary
                else {"verify_seconds": 10, "verify_interval_seconds": 5},
            }
        )
        app_slugs.append(app.slug)

    viewers = Group.objects.get(name=Role.VIEWER.value)
    managers = Group.objects.get(name=Role.RELEASE_MANAGER.value)
    pilot = User.objects.create_user("load-pipeline", password=None)
    pilot.groups.add(managers, viewers)

    def token(name: str) -> str:
        scopes = ["read", "releases:write", "operations:write"]
        return token_create(actor=pilot, owner=pilot, name=name, scopes=scopes).secret

    cookies = []
    for n in range(args.users):
        user = User.objects.create_user(f"load-viewer-{n:03d}", password=None)
        user.groups.add(viewers)
        client = Client()
        client.force_login(user)
        cookies.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    plan = {
        "users": args.users,
        "operations": args.operations,
        "registrars": args.registrars,
        "cookie_name": settings.SESSION_COOKIE_NAME,
        "cookies": cookies,
        "operator_tokens": [token(f"operator {n}") for n in range(args.operations)],
        "registrar_tokens": [token(f"registrar {n}") for n in range(args.registrars)],
        "promotions": promotions,
        "app_slugs": app_slugs,
        "release_ids": list(Release.objects.order_by("-pk").values_list("pk", flat=True)[:300]),
    }
    plan_path = os.path.join(work, "plan.json")
    with open(plan_path, "w", encoding="utf-8") as out:
        json.dump(plan, out)
    print(
        f"prepared in {time.monotonic() - t0:.1f} s: {Application.objects.count()} applications, "
        f"{Release.objects.count()} releases, {args.users} viewers; work dir {work}"
    )
    from django.db import connections

    connections.close_all()

    # --- processes ---------------------------------------------------------------------------------------
    python = sys.executable
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    started: list[subprocess.Popen] = []

    def spawn(name: str, command: list[str]) -> subprocess.Popen:
        out = open(os.path.join(logs, f"{name}.log"), "w", encoding="utf-8")  # noqa: SIM115
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        return process

    def stop_all() -> None:
        for process in reversed(started):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    web = spawn("gunicorn", [python, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "portal.wsgi"])
    workers = [
        spawn(
            f"worker-{n}",
            [python, "manage.py", "rqworker", "operations", "notifications", "default", "--name", f"load-{n}"]
            + (["--with-scheduler"] if n == 0 else []),
        )
        for n in range(args.rq_workers)
    ]
    spawn("rqcron", [python, "manage.py", "rqcron", "portal.cron"])
    base = f"http://127.0.0.1:{args.port}"
    import requests

    try:
        for _ in range(200):
            try:
                if requests.get(f"{base}/readyz", timeout=3).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.25)
        else:
            raise SystemExit("gunicorn did not become ready; see " + logs)

        # --- memory sampling -----------------------------------------------------------------------------
        import psutil

        rss: dict[str, list[float]] = {"web": [], "workers": []}
        sampling = threading.Event()

        def tree_rss(roots: list[subprocess.Popen]) -> float:
            total = 0
            for root in roots:
                try:
                    parent = psutil.Process(root.pid)
                    for process in [parent, *parent.children(recursive=True)]:
                        total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            return total / 2**20

        def sample() -> None:
            while not sampling.wait(2.0):
                rss["web"].append(tree_rss([web]))
                rss["workers"].append(tree_rss(workers))

        rss_before = {"web": tree_rss([web]), "workers": tree_rss(workers)}
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        # --- the load ------------------------------------------------------------------------------------
        total_users = args.users + args.operations + args.registrars
        outcomes_path = os.path.join(work, "outcomes.json")
        csv_prefix = os.path.join(work, "locust")
        env = {
            **os.environ,
            "SLIPWAY_LOAD_ROLE": "locust",
            "SLIPWAY_LOAD_PLAN": plan_path,
            "SLIPWAY_LOAD_OUTCOMES": outcomes_path,
        }
        started_at = time.monotonic()
        locust = subprocess.run(
            [
                os.path.join(os.path.dirname(python), "locust"),
                "-f",
                os.path.abspath(__file__),
                "--headless",
                "--host",
                base,
                "-u",
                str(total_users),
                "-r",
                str(args.spawn_rate),
                "-t",
                f"{args.seconds}s",
                "--stop-timeout",
                "5",
                "--csv",
                csv_prefix,
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started_at
        sampling.set()
        rss_after = {"web": tree_rss([web]), "workers": tree_rss(workers)}
        metrics = requests.get(f"{base}/metrics", timeout=30).text  # loopback, no token: allowed
    finally:
        stop_all()

    # --- the report ----------------------------------------------------------------------------------------
    print(f"\nlocust exit {locust.returncode}, wall {wall:.0f} s ({args.seconds} s of load)")
    if locust.returncode not in (0, 1):
        print(locust.stderr[-4000:])
    print(
        f"{'request type':<26}{'count':>8}{'fail':>6}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}"
    )
    with open(f"{csv_prefix}_stats.csv", encoding="utf-8") as stats:
        for row in csv.DictReader(stats):
            label = row["Name"] if row["Name"] != "Aggregated" else "ALL"
            print(
                f"{label:<26}{row['Request Count']:>8}{row['Failure Count']:>6}{float(row['Requests/s']):>8.1f}"
                f"{row['50%']:>8}{row['95%']:>8}{row['99%']:>8}{float(row['Max Response Time']):>8.0f}"
            )
    with open(f"{csv_prefix}_failures.csv", encoding="utf-8") as failures:
        rows = list(csv.DictReader(failures))
    print("errors: none" if not rows else "errors:")
    for row in rows:
        print(f"  {row['Occurrences']} x {row['Method']} {row['Name']}: {row['Error'][:300]}")

    django.db.connections.close_all()
    ops = list(Operation.objects.filter(application__slug__startswith="load-").order_by("pk"))
    by_status: dict[str, int] = {}
    durations = []
    for op in ops:
        by_status[op.status] = by_status.get(op.status, 0) + 1
        if op.finished_at and op.started_at:
            durations.append((op.finished_at - op.started_at).total_seconds())
    repeated = OperationStep.objects.filter(operation__in=ops, attempts__gt=1).exclude(
        kind__in=["bake", "verify_health", "analyse"]
    )
    print(f"operations: {len(ops)} started, by status {by_status}")
    if durations:
        durations.sort()
        print(
            f"  duration start→finish: min {durations[0]:.0f} s, median {durations[len(durations) // 2]:.0f} s, "
            f"max {durations[-1]:.0f} s; non-waiting steps run more than once: {repeated.count()}"
        )
    for op in ops:
        if op.status not in ("succeeded",):
            print(f"  operation {op.pk} {op.application.slug}: {op.status} {op.error[:300]}")
    registered = Release.objects.filter(build_id__startswith="load-").count()
    print(f"releases registered through the API: {registered}")
    print(
        f"RSS MiB  web (gunicorn master + {args.web_workers} workers): before {rss_before['web']:.0f}, "
        f"max {max(rss['web'] or [0]):.0f}, after {rss_after['web']:.0f}"
    )
    print(
        f"RSS MiB  {args.rq_workers} rqworkers (+ work horses): before {rss_before['workers']:.0f}, "
        f"max {max(rss['workers'] or [0]):.0f}, after {rss_after['workers']:.0f}"
    )
    jobs: dict[str, float] = {}
    for line in metrics.splitlines():
        match = re.match(r'slipway_rq_jobs_total\{function="([^"]+)",outcome="([^"]+)",queue="[^"]+"\} (\S+)', line)
        if match:
            key = f"{match.group(1).rsplit('.', 1)[-1]} {match.group(2)}"
            jobs[key] = jobs.get(key, 0) + float(match.group(3))
    print("jobs per /metrics:", ", ".join(f"{k} {v:.0f}" for k, v in sorted(jobs.items())) or "none")
    served = sum(
        float(m.group(1))
        for m in re.finditer(r'^slipway_http_requests_total\{[^}]*status="5\d\d"[^}]*\} (\S+)', metrics, re.M)
    )
    print(f"5xx answers per /metrics: {served:.0f}")
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
