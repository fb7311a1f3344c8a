"""Benchmark of the read pages at scale: 200 applications, 50,000 releases, 1,000,000 audit events.

Run on demand, never part of the test suite (PostgreSQL only):

    .venv/bin/python bench/pages.py                 # seed slipway_bench_pages afresh, then measure
    .venv/bin/python bench/pages.py --reuse         # measure again on the database the last run seeded

The database `slipway_bench_pages` on postgres://postgres@127.0.0.1:5432 is dropped, re-created and
migrated each run (unless --reuse finds it seeded). Seeding is SQL (`INSERT … SELECT` over
`generate_series`, with `setseed` for repeatable data): a year of history, ~1.5 days between an
application's releases, 4 % of promotions rolled back or failed, 2 % taken back by an application
rollback, 20 audit events per release. Pages are requested in-process with Django's test Client as a
signed-in viewer; each page's time is the server's (the Client's own overhead is well under a
millisecond). See bench/README.md for the figures and what they mean.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "slipway_bench_pages"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--apps", type=int, default=200)
    p.add_argument("--releases", type=int, default=50_000, help="in all (a multiple of --apps)")
    p.add_argument("--events-per-release", type=int, default=20, help="audit events per release (20: 1,000,000)")
    p.add_argument("--requests", type=int, default=30, help="timed requests per page (after 3 warm-up ones)")
    p.add_argument("--deep", type=int, default=200, help="how many 'Older' links to follow for the deep page")
    p.add_argument("--reuse", action="store_true", help="keep the database if the last run seeded it")
    p.add_argument("--no-export", action="store_true", help="skip the full audit export")
    p.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the metrics page's queries")
    return p.parse_args()


ARGS = parse_args()
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "SECRET_KEY": "bench-only-not-a-secret",
        "DEBUG": "0",  # production settings: no query log, cached templates
        "DATABASE_URL": PG_BENCH_URL,
        "REDIS_URL": "redis://127.0.0.1:6379/12",
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
)
sys.path.insert(0, str(ROOT))


def prepare_database() -> bool:
    """Create the database unless --reuse finds it; True when it must be seeded."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if ARGS.reuse and exists:
            with psycopg.connect(PG_BENCH_URL.replace("postgres://", "postgresql://")) as bench:
                try:
                    seeded = bench.execute("SELECT count(*) FROM releases_release").fetchone()[0]
                except psycopg.errors.UndefinedTable:
                    seeded = 0
            if seeded:
                return False
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    return True


MUST_SEED = prepare_database()

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from portal.core.roles import Role  # noqa: E402
from releases.catalog.models import Application, Environment, Slot, Stage  # noqa: E402

LAYOUT = [
    (Stage.DEV, "Development", "dev"),
    (Stage.TEST, "Test", "test"),
    (Stage.PREPRODUCTION, "Pre-production", "staging"),
    (Stage.PRODUCTION, "Production", "production"),
]
TEAMS = ["Payments", "Accounts", "Supply Chain", "Search", "Mobile", "Platform", "Data", "Marketing"]
SEARCH_WORD = "timeout"  # in about 1 % of the audit events' reasons


# --- seeding -----------------------------------------------------------------------------------------------


def seed() -> None:
    t0 = time.monotonic()
    call_command("migrate", verbosity=0)
    print(f"migrated in {time.monotonic() - t0:.1f} s")
    per_app = ARGS.releases // ARGS.apps
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        viewer = User.objects.create_user("bench-viewer", password="bench-viewer-pass")  # noqa: S106
        viewer.groups.add(Group.objects.get(name=Role.VIEWER.value))
        ci = User.objects.create_user("ci-pipeline")
        apps = Application.objects.bulk_create(
            Application(name=f"Bench {i:04d}", slug=f"bench-{i:04d}", team=TEAMS[i % len(TEAMS)])
            for i in range(ARGS.apps)
        )
        slots = Slot.objects.bulk_create(
            Slot(
                application=app,
                name=slot,
                hostname=f"{app.slug}-{slot}.azurewebsites.net",
                is_production=stage == Stage.PRODUCTION,
                traffic_percent=100 if stage == Stage.PRODUCTION else 0,
            )
            for app in apps
            for stage, _name, slot in LAYOUT
        )
        Environment.objects.bulk_create(
            Environment(
                application=slot.application, stage=stage, name=name, position=(i % len(LAYOUT) + 1) * 10, slot=slot
            )
            for i, (slot, (stage, name, _slot)) in enumerate(zip(slots, LAYOUT * len(apps), strict=True))
        )
    t1 = time.monotonic()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred foreign-key checks left for CREATE INDEX
        cur.execute("SELECT setseed(0.42)")
        cur.execute(PLAN_SQL, {"per_app": per_app, "now": now, "span_days": 362})
        cur.execute("ALTER TABLE bench_plan ADD COLUMN release_id bigint")
        cur.execute(RELEASES_SQL, {"ci": ci.pk})
        cur.execute(
            "UPDATE bench_plan p SET release_id = r.id FROM releases_release r "
            "WHERE r.application_id = p.app_id AND r.version = p.version"
        )
        cur.execute("CREATE INDEX ON bench_plan (release_id)")
        cur.execute(APPROVALS_SQL)
        cur.execute(OPERATIONS_SQL, {})
        cur.execute(STEPS_SQL)
        cur.execute(ROLLBACKS_SQL)
        cur.execute(CURRENT_SQL)
        print(f"releases, approval requests and operations in {time.monotonic() - t1:.1f} s")
        t2 = time.monotonic()
        # Indexes are dropped for the bulk insert and built again afterwards: much faster than a
        # million index updates each (the GIN index of the text search most of all).
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'releases_auditevent' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        indexes = cur.fetchall()
        for name, _definition in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute(AUDIT_SQL, {"per_release": ARGS.events_per_release, "word": SEARCH_WORD})
        print(f"{cur.rowcount:,} audit events in {time.monotonic() - t2:.1f} s", end="")
        t3 = time.monotonic()
        for _name, definition in indexes:
            cur.execute(definition)
        print(f", their {len(indexes)} indexes in {time.monotonic() - t3:.1f} s")
    t4 = time.monotonic()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    print(f"VACUUM ANALYZE in {time.monotonic() - t4:.1f} s; seeding took {time.monotonic() - t0:.0f} s in all")


# One row per release to be: its application, its moments and its fate. Releases are spread over the
# year before `now` less three days (so every promotion has finished); an application's last release
# is waiting for approval, registered in the last few hours.
PLAN_SQL = """
CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
WITH base AS (
  SELECT a.id AS app_id, a.slug, k, env.id AS env_id, staging.id AS staging_id, ppe.id AS preprod_env_id,
         CASE WHEN k = %(per_app)s - 1
              THEN %(now)s::timestamptz - (1 + 5 * random()) * interval '1 hour'
              ELSE %(now)s::timestamptz - interval '3 days' - %(span_days)s * interval '1 day'
                   + (k + random() * 0.6) * (%(span_days)s * interval '1 day') / %(per_app)s
         END AS created_at,
         random() AS r_out, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5
  FROM releases_application a
  CROSS JOIN generate_series(0, %(per_app)s - 1) AS k
  JOIN releases_environment env ON env.application_id = a.id AND env.stage = 'prod'
  JOIN releases_environment ppe ON ppe.application_id = a.id AND ppe.stage = 'preprod'
  JOIN releases_slot staging ON staging.application_id = a.id AND staging.name = 'staging'
), timed AS (
  SELECT *,
         '1.' || k || '.0' AS version,
         CASE WHEN r1 < 0.1 THEN NULL  -- a tenth of the pipelines give no commit time
              ELSE created_at - (2 + 46 * r1 * r1) * interval '1 hour' END AS committed_at,
         created_at + interval '2 minutes' AS requested_at,
         created_at + interval '2 minutes' + (0.2 + 30 * r2 * r2) * interval '1 hour' AS approved_at,
         CASE WHEN k = %(per_app)s - 1 THEN 'pending'
              WHEN k = %(per_app)s - 2 THEN 'live'
              WHEN r_out < 0.03 THEN 'rolled_back'
              WHEN r_out < 0.04 THEN 'failed'
              WHEN r_out < 0.06 THEN 'taken_back'
              WHEN r_out < 0.09 THEN 'rejected'
              ELSE 'superseded' END AS outcome
  FROM base
)
SELECT *,
       approved_at + (0.1 + 18 * r3 * r3) * interval '1 hour' AS started_at,
       approved_at + (0.1 + 18 * r3 * r3) * interval '1 hour' + (3 + 25 * r4) * interval '1 minute' AS finished_at,
       approved_at + (0.1 + 18 * r3 * r3) * interval '1 hour' + (2 + 15 * r4) * interval '1 minute' AS fail_at,
       approved_at + (0.1 + 18 * r3 * r3) * interval '1 hour' + (3 + 25 * r4) * interval '1 minute'
         + (0.5 + 8 * r5) * interval '1 hour' AS rollback_at
FROM timed
"""

RELEASES_SQL = """
INSERT INTO releases_release (application_id, version, build_id, commit_sha, committed_at, branch, notes, artifact_url,
  deployed_slot_id, status, created_by_id, created_at, status_changed_at, approved_at, live_at)
SELECT app_id, version, to_char(created_at, 'YYYYMMDD') || '.' || (k %% 7 + 1),
  md5(slug || version) || substr(md5(version), 1, 8), committed_at,
  CASE WHEN r5 < 0.2 THEN 'hotfix/bench-' || k ELSE 'main' END,
  'Bench release ' || version || E' of ' || slug || E'\n\nFixed\n- Something that was broken (BENCH-' || k || ')',
  'https://artifacts.example.com/' || slug || '/' || version || '.zip', staging_id,
  CASE outcome WHEN 'pending' THEN 'awaiting_approval' WHEN 'taken_back' THEN 'rolled_back' ELSE outcome END,
  %(ci)s, created_at,
  CASE outcome WHEN 'pending' THEN requested_at WHEN 'rejected' THEN approved_at WHEN 'taken_back' THEN rollback_at
    ELSE finished_at END,
  CASE WHEN outcome IN ('pending', 'rejected') THEN NULL ELSE approved_at END,
  CASE WHEN outcome IN ('live', 'superseded', 'taken_back') THEN finished_at END
FROM bench_plan
"""

APPROVALS_SQL = """
INSERT INTO releases_approvalrequest (release_id, environment_id, status, approvals_required, created_at, expires_at,
  settled_at, waited)
SELECT release_id, env_id,
  CASE outcome WHEN 'pending' THEN 'pending' WHEN 'rejected' THEN 'rejected' ELSE 'approved' END, 2,
  requested_at, requested_at + interval '72 hours',
  CASE WHEN outcome = 'pending' THEN NULL ELSE approved_at END,
  CASE WHEN outcome = 'pending' THEN NULL ELSE approved_at - requested_at END
FROM bench_plan
"""

OPERATIONS_SQL = """
INSERT INTO releases_operation (application_id, release_id, environment_id, kind, strategy, status, parameters, reason,
  error, created_at, started_at, finished_at, heartbeat_at, runner, job_id, waiting_for)
SELECT app_id, release_id, env_id, 'promote', CASE WHEN r4 < 0.4 THEN 'canary' ELSE 'blue_green' END,
  CASE outcome WHEN 'rolled_back' THEN 'rolled_back' WHEN 'failed' THEN 'failed' ELSE 'succeeded' END, '{}'::jsonb,
  'Promote ' || version || ' to production',
  CASE outcome WHEN 'rolled_back' THEN 'Canary analysis failed: HTTP 5xx rate 3.1 %% against 0.4 %%'
    WHEN 'failed' THEN 'Swap failed, then the rollback failed: production needs a person' ELSE '' END,
  started_at, started_at, finished_at, finished_at, '', '', ''
FROM bench_plan WHERE outcome NOT IN ('pending', 'rejected')
"""

STEPS_SQL = """
INSERT INTO releases_operationstep (operation_id, position, kind, title, parameters, status, attempts, progress, detail,
  log, resume_token, started_at, finished_at)
SELECT o.id, 1, 'analyse', 'Bake and analyse', '{}'::jsonb, 'failed', 1, 40, '{}'::jsonb, o.error, '', p.started_at,
  p.fail_at
FROM releases_operation o JOIN bench_plan p ON p.release_id = o.release_id
WHERE o.status IN ('rolled_back', 'failed')
"""

ROLLBACKS_SQL = """
INSERT INTO releases_operation (application_id, release_id, environment_id, kind, strategy, status, parameters, reason,
  error, created_at, started_at, finished_at, heartbeat_at, runner, job_id, waiting_for)
SELECT app_id, release_id, env_id, 'rollback', '', 'succeeded', '{}'::jsonb,
  'Error rate up since ' || version || '; rolling back', '', rollback_at, rollback_at,
  rollback_at + (3 + 7 * r5) * interval '1 minute', rollback_at + (3 + 7 * r5) * interval '1 minute', '', '', ''
FROM bench_plan WHERE outcome = 'taken_back'
"""

# What each slot runs now: production the live release, staging the one waiting for approval.
CURRENT_SQL = """
UPDATE releases_slot s SET current_release_id = p.release_id, running_version = p.version, health = 'healthy'
FROM bench_plan p
WHERE s.application_id = p.app_id AND (
  (s.name = 'production' AND p.outcome = 'live') OR (s.name = 'staging' AND p.outcome = 'pending'))
"""

# Twenty events along each release's way, from registration to its end.
AUDIT_SQL = """
INSERT INTO releases_auditevent (created_at, actor_label, action, object_type, object_id, object_repr, application_id,
  before, after, reason, origin)
SELECT
  p.created_at + (e - 1) * (GREATEST(COALESCE(p.finished_at, p.approved_at), p.created_at + interval '1 hour')
                            - p.created_at) / %(per_release)s,
  CASE WHEN e = 1 THEN 'ci-pipeline' WHEN e IN (4, 5) THEN 'approver' || (p.k %% 9) ELSE 'system' END,
  (ARRAY['release.registered', 'approval.requested', 'approval.notified', 'approval.decided', 'approval.decided',
         'release.approved', 'gate.evaluated', 'gate.evaluated', 'release.rollout_started', 'operation.created',
         'operation.running', 'operation.step_succeeded', 'operation.step_succeeded', 'operation.step_succeeded',
         'operation.step_succeeded', 'operation.succeeded', 'release.went_live', 'release.superseded',
         'slot.observed', 'slot.observed'])[(e - 1) %% 20 + 1],
  CASE WHEN e IN (2, 3, 4, 5) THEN 'releases.approvalrequest' WHEN e BETWEEN 10 AND 16 THEN 'releases.operation'
       WHEN e >= 19 THEN 'releases.slot' ELSE 'releases.release' END,
  p.release_id::text,
  p.slug || ' ' || p.version,
  p.app_id,
  CASE WHEN e IN (6, 9, 17, 18) THEN jsonb_build_object('status', 'awaiting_approval') END,
  CASE WHEN e IN (6, 9, 17, 18) THEN jsonb_build_object('status', 'approved', 'approved_at', p.approved_at) END,
  CASE WHEN (p.k * 20 + e) %% 97 = 0 THEN 'Stock reservation calls ' || %(word)s || ' for warehouse DE-2; rolling back'
       WHEN e IN (4, 5) THEN (ARRAY['Checked on staging, looks good.', 'Walked through the main journeys; fine.',
            'Release notes match what I see on staging.', 'OK from my side.', ''])[(p.k + e) %% 5 + 1]
       WHEN e = 16 AND p.outcome IN ('rolled_back', 'failed') THEN 'Canary analysis failed: HTTP 5xx rate up'
       ELSE '' END,
  CASE WHEN e = 1 THEN '{"via": "api", "ip": "10.40.3.18"}'::jsonb
       WHEN e IN (4, 5) THEN '{"via": "web", "ip": "10.8.14.23"}'::jsonb ELSE '{"via": "job"}'::jsonb END
FROM bench_plan p CROSS JOIN generate_series(1, %(per_release)s) AS e
"""


# --- measuring ----------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def timed_get(client: Client, url: str) -> tuple[float, int, bytes]:
    t = time.perf_counter()
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return time.perf_counter() - t, response.status_code, body


def measure(client: Client, label: str, url: str, rows: list[tuple]) -> None:
    for _ in range(3):
        _t, status, _b = timed_get(client, url)
        if status != 200:
            print(f"  {label}: HTTP {status} for {url}, skipped")
            return
    queries = count_queries(lambda: timed_get(client, url))
    times = [timed_get(client, url)[0] * 1000 for _ in range(ARGS.requests)]
    rows.append((label, url, queries, pct(times, 50), pct(times, 95), max(times)))
    print(f"  {label}: p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms ({queries} queries)")


def count_queries(run: Callable[[], object]) -> int:
    """Queries sent while `run` runs (a wrapper: the Client's request_started signal empties the query log)."""
    count = 0

    def counter(execute: Callable, sql: str, params: object, many: bool, context: dict) -> object:
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counter):
        run()
    return count


NEXT_LINK = re.compile(r'<a href="([^"]+)"[^>]*rel="next"')


def deep_url(client: Client, start: str, depth: int) -> tuple[str, int]:
    url, followed = start, 0
    for _ in range(depth):
        match = NEXT_LINK.search(client.get(url).content.decode())
        if match is None:
            break
        url, followed = html.unescape(match.group(1)), followed + 1
        if url.startswith("?"):
            url = start.split("?")[0] + url
    return url, followed


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure_export(client: Client, url: str) -> str:
    rss0 = rss_kib()
    t = time.perf_counter()
    response = client.get(url)
    if response.status_code != 200 or not response.streaming:
        return f"export {url}: HTTP {response.status_code}, streaming={response.streaming}; skipped"
    first = None
    lines = size = 0
    samples: list[tuple[int, int]] = []
    for chunk in response.streaming_content:
        if first is None:
            first = time.perf_counter() - t
        lines += chunk.count(b"\n")
        size += len(chunk)
        if lines // 100_000 > len(samples):
            samples.append((lines, rss_kib() - rss0))
    total = time.perf_counter() - t
    growth = ", ".join(f"{n // 1000}k: +{kib / 1024:.1f} MiB" for n, kib in samples[:: max(1, len(samples) // 5)])
    return (
        f"export {url}: {lines:,} lines, {size / 2**20:.0f} MiB in {total:.1f} s "
        f"({lines / total:,.0f} lines/s), first bytes after {(first or 0) * 1000:.0f} ms; "
        f"RSS growth while streaming: {growth}; at the end +{(rss_kib() - rss0) / 1024:.1f} MiB"
    )


def explain_metrics(days: int) -> None:
    """EXPLAIN ANALYZE of every query the metrics take over `days` (as captured, parameters bound)."""
    from releases.history.delivery import delivery_metrics

    with CaptureQueriesContext(connection) as queries:
        delivery_metrics(days=days, now=timezone.now())
    for query in queries.captured_queries:
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            print(f"--- {query['sql'][:100]}…\n" + "\n".join(r[0] for r in cur.fetchall()))


def main() -> None:
    if MUST_SEED:
        seed()
    else:
        call_command("migrate", verbosity=0)
        print("reusing the seeded database")
    with connection.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM releases_application), (SELECT count(*) FROM releases_release), "
            "(SELECT count(*) FROM releases_operation), (SELECT count(*) FROM releases_auditevent)"
        )
        apps, releases, operations, events = cur.fetchone()
    print(f"data: {apps} applications, {releases:,} releases, {operations:,} operations, {events:,} audit events")
    static = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    with override_settings(STORAGES={"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}, **static}):
        client = Client()
        client.force_login(User.objects.get(username="bench-viewer"))
        rows: list[tuple] = []
        some_app = Application.objects.order_by("slug").values_list("slug", flat=True)[7]
        deep, followed = deep_url(client, "/releases/", ARGS.deep)
        print(f"history: followed {followed} 'Older' links for the deep page")
        audit_deep, audit_followed = deep_url(client, "/audit/", ARGS.deep)
        pages = [
            ("dashboard", "/"),
            ("history, first page", "/releases/"),
            (f"history, page {followed + 1}", deep),
            ("history, one application", f"/releases/?application={some_app}"),
            ("audit trail, first page", "/audit/"),
            (f"audit trail, page {audit_followed + 1}", audit_deep),
            (f"audit search '{SEARCH_WORD}'", f"/audit/?q={SEARCH_WORD}"),
            ("audit search 'rolling back'", "/audit/?q=rolling+back"),
            ("DORA, 30 days", "/metrics/"),
            ("DORA, 7 days", "/metrics/?days=7"),
            ("DORA, 90 days", "/metrics/?days=90"),
            ("DORA, 365 days", "/metrics/?days=365"),
            ("DORA, one app, 90 days", f"/metrics/?application={some_app}&days=90"),
        ]
        for label, url in pages:
            measure(client, label, url, rows)
        print(f"\n{'page':34} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  (n={ARGS.requests})")
        for label, _url, queries, p50, p95, worst in rows:
            flag = "" if p95 < 100 else "  <- over 100 ms"
            print(f"{label:34} {queries:>7} {p50:>8.1f} {p95:>8.1f} {worst:>8.1f}{flag}")
        if not ARGS.no_export:
            from django.urls import NoReverseMatch, reverse

            try:
                url = reverse("audit_export_csv")
            except NoReverseMatch:
                print("\naudit export: no URL named audit_export_csv yet; skipped")
            else:
                print()
                print(measure_export(client, f"{url}?q={SEARCH_WORD}"))
                print(measure_export(client, url))
        if ARGS.explain:
            explain_metrics(30)
            explain_metrics(365)


if __name__ == "__main__":
    main()
