"""Benchmark of feature-flag evaluation: in process (vs GrowthBook's Python SDK), and OFREP under gunicorn.

Run on demand, never part of the test suite:

    .venv/bin/python bench/flags.py --seconds 15        # needs wrk (Debian package `wrk`)

Its own PostgreSQL database `slipway_bench_flags` (dropped and re-created each run), Redis db 12
(`--redis-db`, flushed; 0 and 15 refused). Seeds one application's production environment with 50
flags — `bench-flag` has two rules (email ends with @example.com → on; plan is one of beta/pro → on)
and a 25 % rollout of `on` for everyone else; the other 49 are a mix of plain toggles, rollouts and
string flags — and an evaluation API key.

(a) In process: µs per evaluation of `bench-flag` through `strategies.flags.evaluation.evaluate`
    (the compiled, cached flagd document, as OFREP uses it) for a mix of contexts, against the
    equivalent GrowthBook feature (two rules with conditions, then `force: true` with coverage 0.25)
    evaluated locally with `growthbook` (one instance, `set_attributes` + `eval_feature`).
(b) OFREP over HTTP: gunicorn with `--workers` (2) gthread workers x `--threads` (2) on 127.0.0.1:8098,
    the load from wrk (`--connections` keep-alive connections, a Lua script posting the contexts in
    turn): single evaluation, bulk (50 flags) and bulk with If-None-Match (304), `--seconds` each.
    Requests/s and p50/p95/p99 as wrk measured them. FLAGS_RATE_LIMIT_PER_MINUTE is raised so the
    limiter (one Redis round trip per request, still made) never answers 429.
(c) The server's CPU and wall time per OFREP request through Django's WSGI handler in process.
Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "slipway_bench_flags"
PORT = 8098
KEY = "slwf_bench000_production-bench-key"
FLAG = "bench-flag"

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--seconds", type=float, default=15.0, help="duration of each HTTP scenario")
parser.add_argument("--connections", type=int, default=8, help="wrk's concurrent keep-alive connections")
parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (each drives its share of connections)")
parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker (gthread: keep-alive)")
parser.add_argument("--evaluations", type=int, default=50_000, help="in-process evaluations per engine")
parser.add_argument("--redis-db", type=int, default=12)
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

CONTEXTS = [
    {"targetingKey": f"user-{i}", "email": f"u{i}@{'example.com' if i % 10 == 0 else 'mail.test'}", "plan": plan}
    for i, plan in zip(range(1000), ["free", "free", "beta", "free", "pro", "free", "free", "team"] * 125, strict=True)
]

RULES = {
    "rules": [
        {
            "name": "Staff",
            "match": "all",
            "conditions": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}],
            "serve": {"variant": "on"},
        },
        {
            "name": "Beta plans",
            "match": "all",
            "conditions": [{"attribute": "plan", "op": "one_of", "value": ["beta", "pro"]}],
            "serve": {"variant": "on"},
        },
    ],
    "fallthrough": {"split": [["on", 25], ["off", 75]]},
}
GROWTHBOOK_FEATURE = {
    "defaultValue": False,
    "rules": [
        {"condition": {"email": {"$regex": "@example\\.com$"}}, "force": True},
        {"condition": {"plan": {"$in": ["beta", "pro"]}}, "force": True},
        {"force": True, "coverage": 0.25, "hashAttribute": "id"},
    ],
}


def prepare_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def seed() -> int:
    from django.contrib.auth import get_user_model

    from releases.catalog.models import Application, Environment, Slot
    from strategies.flags import services

    app = Application.objects.create(name="Bench", slug="bench", team="Bench")
    slot = Slot.objects.create(application=app, name="production", is_production=True, traffic_percent=100)
    environment = Environment.objects.create(application=app, stage="prod", name="Production", position=10, slot=slot)
    actor = get_user_model().objects.create_superuser("bench", password=None)
    services.flag_create(
        environment=environment, key=FLAG, flag_type="boolean", default_variant="off", rules=RULES, actor=actor
    )
    for i in range(49):
        kind = i % 3
        if kind == 0:
            services.flag_create(
                environment=environment, key=f"toggle-{i:02d}", flag_type="boolean", default_variant="on", actor=actor
            )
        elif kind == 1:
            services.flag_create(
                environment=environment,
                key=f"rollout-{i:02d}",
                flag_type="boolean",
                default_variant="off",
                rules={"fallthrough": {"split": [["on", 10 + i], ["off", 90 - i]]}},
                actor=actor,
            )
        else:
            services.flag_create(
                environment=environment,
                key=f"theme-{i:02d}",
                flag_type="string",
                variants={"blue": "blue", "green": "green"},
                default_variant="blue",
                rules={"rules": [RULES["rules"][1] | {"serve": {"variant": "green"}}]},
                actor=actor,
            )
    services.api_key_create(environment=environment, name="bench", actor=actor, secret=KEY)
    return environment.pk


# --- (a) in process ---------------------------------------------------------------------------------


def in_process(environment_id: int) -> dict[str, float]:
    from growthbook import GrowthBook
    from openfeature.evaluation_context import EvaluationContext

    from strategies.flags import evaluation
    from strategies.flags.models import FlagSet

    revision = FlagSet.objects.get(environment_id=environment_id).revision
    flag_set = evaluation.compiled(environment_id, revision)
    contexts = [
        EvaluationContext(targeting_key=c["targetingKey"], attributes={"email": c["email"], "plan": c["plan"]})
        for c in CONTEXTS
    ]
    gb_attributes = [{"id": c["targetingKey"], "email": c["email"], "plan": c["plan"]} for c in CONTEXTS]
    gb = GrowthBook(features={FLAG: GROWTHBOOK_FEATURE})

    # Same answers in shape: share of "on" over the 1000 contexts (rules + 25 % of the rest).
    ours_on = sum(evaluation.evaluate(flag_set, FLAG, c).value is True for c in contexts)
    gb_on = 0
    for attributes in gb_attributes:
        gb.set_attributes(attributes)
        gb_on += gb.eval_feature(FLAG).value is True

    n = ARGS.evaluations
    results = {}
    for name, run in (
        ("slipway", lambda i: evaluation.evaluate(flag_set, FLAG, contexts[i % 1000])),
        ("growthbook", lambda i: (gb.set_attributes(gb_attributes[i % 1000]), gb.eval_feature(FLAG))),
    ):
        for i in range(2000):  # warm up
            run(i)
        rounds = []
        for _ in range(5):
            t = time.perf_counter()
            for i in range(n // 5):
                run(i)
            rounds.append((time.perf_counter() - t) / (n // 5) * 1e6)
        results[name] = statistics.median(rounds)
    results["ours_on"], results["gb_on"] = ours_on, gb_on
    return results


# --- (c) server cost per request, in process ---------------------------------------------------------


def per_request_cost(requests_per_scenario: int = 3000) -> dict[str, tuple[float, float]]:
    """(CPU µs, wall µs) per OFREP request through Django's WSGI handler, no network, no load generator.

    CPU time is this process's own (time.process_time): what a request costs a gunicorn worker, which
    other load on the machine does not inflate much; wall time includes waiting for Redis.
    """
    import io
    import json

    from django.core.handlers.wsgi import WSGIHandler

    app = WSGIHandler()

    def call(i: int, path: str, etag: str | None) -> tuple[str, dict[str, str]]:
        body = json.dumps({"context": CONTEXTS[0 if etag else i % 1000]}).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(PORT),
            "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "HTTP_AUTHORIZATION": f"Bearer {KEY}",
            **({"HTTP_IF_NONE_MATCH": etag} if etag else {}),
        }
        seen: dict[str, str] = {}

        def start_response(status_line: str, headers: list[tuple[str, str]], *_: object) -> None:
            seen.update(headers, status=status_line)

        b"".join(app(environ, start_response))
        return seen["status"], seen

    results = {}
    for scenario in ("single", "bulk", "bulk-304"):
        path = "/ofrep/v1/evaluate/flags" + (f"/{FLAG}" if scenario == "single" else "")
        etag = None
        if scenario == "bulk-304":
            etag = call(0, path, None)[1]["ETag"]
        for i in range(300):  # warm up: the key is remembered, the flag set compiled
            status, _ = call(i, path, etag)
            if not status.startswith("304" if etag else "200"):
                sys.exit(f"OFREP answered {status} in process")
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(requests_per_scenario):
            call(i, path, etag)
        results[scenario] = (
            (time.process_time() - cpu) / requests_per_scenario * 1e6,
            (time.perf_counter() - wall) / requests_per_scenario * 1e6,
        )
    return results


# --- (b) OFREP over HTTP ----------------------------------------------------------------------------

# wrk (C, from Debian's `wrk` package) generates the load: a Python client costs more CPU per request
# than the server does, and on two cores it would measure itself. The Lua script posts the 1000
# contexts in turn and prints the latency percentiles as one JSON line.
WRK_SCRIPT = """
local contexts = {}
for line in io.lines("%(contexts)s") do contexts[#contexts + 1] = line end
local i = 0
local etag = %(etag)s
local headers = {["Authorization"] = "Bearer %(key)s", ["Content-Type"] = "application/json"}
if etag then headers["If-None-Match"] = etag end
request = function()
  i = i + 1
  local body = contexts[(i %% #contexts) + 1]
  if etag then body = contexts[1] end
  return wrk.format("POST", nil, headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "seconds": %%f, "p50": %%f, "p95": %%f, "p99": %%f, ' ..
    '"not_2xx_3xx": %%d, "socket_errors": %%d}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


def http_scenario(scenario: str, seconds: float) -> dict[str, object]:
    import json
    import tempfile

    import requests

    url = f"http://127.0.0.1:{PORT}/ofrep/v1/evaluate/flags" + (f"/{FLAG}" if scenario == "single" else "")
    with tempfile.TemporaryDirectory() as tmp:
        contexts = Path(tmp) / "contexts.jsonl"
        contexts.write_text("".join(json.dumps({"context": c}) + "\n" for c in CONTEXTS))
        etag = "nil"
        if scenario == "bulk-304":
            first = requests.post(
                url, data=json.dumps({"context": CONTEXTS[0]}), headers={"Authorization": f"Bearer {KEY}"}, timeout=10
            )
            etag = json.dumps(first.headers["ETag"])
        script = Path(tmp) / "ofrep.lua"
        script.write_text(WRK_SCRIPT % {"contexts": contexts, "etag": etag, "key": KEY})
        out = subprocess.run(
            [
                "wrk",
                f"--threads={ARGS.wrk_threads}",
                f"--connections={ARGS.connections}",
                f"--duration={seconds:g}s",
                "--timeout=5s",
                f"--script={script}",
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        sys.exit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    row = json.loads(lines[0].removeprefix("RESULT "))
    row["scenario"] = scenario
    row["rps"] = row["requests"] / row["seconds"]
    return row


def main() -> None:
    prepare_database()
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    redis.Redis.from_url(ENV["REDIS_URL"]).flushdb()
    call_command("migrate", verbosity=0)
    environment_id = seed()

    print(f"cores: {os.cpu_count()}; python {sys.version.split()[0]}")
    a = in_process(environment_id)
    ratio = a["slipway"] / a["growthbook"]
    print("\n(a) in-process evaluation of bench-flag (2 rules + 25 % rollout), median of 5 rounds")
    print(f"    {'engine':<34}{'µs/eval':>10}{'evals/s':>12}{'on / 1000':>12}")
    print(f"    {'Slipway (flagd-core 2.0.0)':<34}{a['slipway']:>10.1f}{1e6 / a['slipway']:>12,.0f}{a['ours_on']:>12}")
    import growthbook

    gb_name = f"GrowthBook SDK {getattr(growthbook, '__version__', '')}".strip()
    print(f"    {gb_name:<34}{a['growthbook']:>10.1f}{1e6 / a['growthbook']:>12,.0f}{a['gb_on']:>12}")
    print(f"    ratio Slipway / GrowthBook: {ratio:.2f}x")

    c = per_request_cost()
    print("\n(c) server cost per OFREP request, in process through Django's WSGI handler (3000 requests each)")
    print(f"    {'scenario':<22}{'CPU µs':>10}{'wall µs':>10}{'req/s per core (CPU)':>24}")
    for scenario, (cpu, wall) in c.items():
        label = {"single": "single flag", "bulk": "bulk (50 flags)", "bulk-304": "bulk, If-None-Match"}[scenario]
        print(f"    {label:<22}{cpu:>10.0f}{wall:>10.0f}{1e6 / cpu:>24,.0f}")

    from django.db import connections

    connections.close_all()
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
    )
    try:
        import requests

        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{PORT}/healthz", timeout=3)
                break
            except requests.RequestException:
                time.sleep(0.2)
        rows = []
        for scenario in ("single", "bulk", "bulk-304"):
            http_scenario(scenario, 2.0)  # warm-up: both workers compile the flag set and learn the key
            rows.append(http_scenario(scenario, ARGS.seconds))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    print(
        f"\n(b) OFREP over HTTP: gunicorn {ARGS.workers} workers x {ARGS.threads} threads (gthread, keep-alive), "
        f"wrk with {ARGS.connections} connections, {ARGS.seconds:g} s each, same machine"
    )
    print(
        f"    {'scenario':<22}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'not 2/3xx':>11}{'socket':>7}"
    )
    for row in rows:
        label = {"single": "single flag", "bulk": "bulk (50 flags)", "bulk-304": "bulk, If-None-Match"}[row["scenario"]]
        print(
            f"    {label:<22}{row['requests']:>10}{row['rps']:>10.0f}{row['p50']:>9.2f}{row['p95']:>9.2f}"
            f"{row['p99']:>9.2f}  {row['not_2xx_3xx']:>9}{row['socket_errors']:>7}"
        )


if __name__ == "__main__":
    main()
