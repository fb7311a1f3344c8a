"""Benchmark of the operations engine: N simultaneous canary promotions driven by W real RQ workers.

Run on demand, never part of the test suite:

    .venv/bin/python bench/operations.py --apps 50 --workers 2
    .venv/bin/python bench/operations.py --apps 5 --workers 2 --sqlite

It uses its own database (PostgreSQL `slipway_bench`, dropped and re-created each run, or
var/bench.sqlite3 with --sqlite) and its own Redis database (default 12, flushed each run; never 0
or 15). See bench/README.md for what each figure means and the last results.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH_URL = "postgres://postgres@127.0.0.1:5432/slipway_bench"
SQLITE_PATH = ROOT / "var" / "bench.sqlite3"
VERSIONS = {"dev": "1.2.0-dev.1", "test": "1.1.0", "staging": "1.1.0", "production": "1.0.0"}
LAYOUT = [
    ("dev", "Development", "dev"),
    ("test", "Test", "test"),
    ("preprod", "Pre-production", "staging"),
    ("prod", "Production", "production"),
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--apps", type=int, default=50, help="applications / simultaneous operations")
    p.add_argument("--workers", type=int, default=2, help="rqworker subprocesses (the first one --with-scheduler)")
    p.add_argument("--sqlite", action="store_true", help="use var/bench.sqlite3 instead of PostgreSQL")
    p.add_argument("--redis-db", type=int, default=12, help="Redis database number (never 0 or 15)")
    p.add_argument("--bake", type=float, default=3.0, help="canary bake_seconds per share")
    p.add_argument(
        "--inline-wait",
        type=float,
        default=None,
        help="OPERATION_INLINE_WAIT_SECONDS for the run (default: the portal's own default, 2.0 s)",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="give up waiting for the operations after this")
    p.add_argument("--sample", type=float, default=0.2, help="seconds between worker-state samples")
    p.add_argument("--no-profile", action="store_true", help="skip the in-process per-step query/Redis profile")
    args = p.parse_args()
    if args.redis_db in (0, 15):
        p.error("Redis databases 0 (the portal) and 15 (the tests) are not the bench's")
    return args


ARGS = parse_args()
REDIS_URL = f"redis://127.0.0.1:6379/{ARGS.redis_db}"
DATABASE_URL = f"sqlite:///{SQLITE_PATH}" if ARGS.sqlite else PG_BENCH_URL
BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "portal.settings",
    "SECRET_KEY": "bench-only-not-a-secret",
    "DEBUG": "0",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "LOG_LEVEL": "WARNING",
    # Near-instant simulator: a swap takes 50 ms (20 ms warm-up, 10 ms routing), restarts none.
    "SIMULATOR_SWAP_SECONDS": "0.05",
    "SIMULATOR_SWAP_WARMUP_SECONDS": "0.02",
    "SIMULATOR_SWAP_ROUTING_SECONDS": "0.01",
    "SIMULATOR_RESTART_SECONDS": "0",
    "SIMULATOR_SERVE_SLEEP_MAX_MS": "0",
    # No recovery pass fights the run (no rqcron is started anyway).
    "OPERATION_HEARTBEAT_STALE_SECONDS": "300",
}
if ARGS.inline_wait is not None:
    BENCH_ENV["OPERATION_INLINE_WAIT_SECONDS"] = str(ARGS.inline_wait)
os.environ.update(BENCH_ENV)
sys.path.insert(0, str(ROOT))

CANARY = {
    "bake_seconds": ARGS.bake,
    "analysis_minutes": 5,
    "min_requests": 50,
    "min_latency_samples": 20,
    "verify_seconds": ARGS.bake,
    "verify_interval_seconds": max(ARGS.bake / 2, 0.01),
}


def prepare_database() -> None:
    if ARGS.sqlite:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS slipway_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE slipway_bench")


prepare_database()

import django  # noqa: E402

django.setup()

import django_rq  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from rq import SimpleWorker, Worker  # noqa: E402
from rq.exceptions import NoSuchJobError  # noqa: E402
from rq.job import Job  # noqa: E402

from portal.core import clock  # noqa: E402
from portal.core.status_guard import arranging_state  # noqa: E402
from releases.catalog.models import (  # noqa: E402
    Application,
    Environment,
    Release,
    ReleaseStatus,
    SimulatorSite,
    SimulatorSlot,
    Slot,
)
from strategies.operations import engine  # noqa: E402
from strategies.operations.models import OPERATION_ACTIVE, Operation, OperationStatus, OperationStep, StepStatus  # noqa: E402
from strategies.operations.services import operation_start  # noqa: E402

WAITING_KINDS = ("bake", "analyse")


# --- fixtures, written here (not imported from tests/) ---------------------------------------------------
@arranging_state()  # the starting state, not history: no audit trail for a benchmark's setup
def make_application(index: int) -> Release:
    """An application on the simulator: four slots/environments, 1.0.0 live, 1.1.0 approved in staging."""
    app = Application.objects.create(name=f"Bench {index:04d}", slug=f"bench-{index:04d}", team="Bench")
    slots = {}
    for position, (stage, env_name, slot_name) in enumerate(LAYOUT, start=1):
        prod = slot_name == "production"
        slots[slot_name] = Slot.objects.create(
            application=app,
            name=slot_name,
            hostname=f"{app.slug}{'' if prod else '-' + slot_name}.azurewebsites.net",
            is_production=prod,
            traffic_percent=100 if prod else 0,
        )
        Environment.objects.create(
            application=app, stage=stage, name=env_name, position=position * 10, slot=slots[slot_name]
        )
        SimulatorSlot.objects.create(application=app, slot_name=slot_name, version=VERSIONS[slot_name])
    SimulatorSite.objects.update_or_create(application=app, defaults={"synthetic_rpm": 1200})
    now = clock.now()
    Release.objects.create(
        application=app, version="1.0.0", status=ReleaseStatus.LIVE, created_at=now, status_changed_at=now, live_at=now
    )
    return Release.objects.create(
        application=app,
        version="1.1.0",
        status=ReleaseStatus.APPROVED,
        created_at=now,
        status_changed_at=now,
        approved_at=now,
        deployed_slot=slots["staging"],
    )


def start(release: Release) -> Operation:
    return operation_start(release=release, strategy="canary", parameters=CANARY, actor=None, reason="bench")


# --- small helpers ---------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    if not values:
        return "n/a"
    v = [x * scale for x in values]
    return (
        f"p50 {pct(v, 50):.1f} {unit}, p95 {pct(v, 95):.1f} {unit}, max {max(v):.1f} {unit} "
        f"(n={len(v)}, mean {statistics.fmean(v):.1f})"
    )


def enqueue_due_jobs(queue) -> None:
    """Move due scheduled jobs onto the queue, as RQ's scheduler does (for the in-process profile)."""
    registry = queue.scheduled_job_registry
    for job_id in registry.get_jobs_to_schedule(int(time.time())):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            registry.remove(job_id)
            continue
        registry.remove(job)
        queue.enqueue_job(job)


def settled(op: Operation) -> bool:
    return op.status not in OPERATION_ACTIVE or op.status == OperationStatus.PAUSED


# --- the in-process profile: queries and Redis commands per step ----------------------------------------------
class TimedProxy:
    """Wraps a provider (and the swap handles it returns), adding the time spent in it to a counter."""

    def __init__(self, target, clock_box: list[float]) -> None:
        self._target, self._box = target, clock_box

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                result = attr(*a, **kw)
            finally:
                self._box[0] += time.perf_counter() - t0
            if hasattr(result, "result") and hasattr(result, "resume_token"):
                return TimedProxy(result, self._box)
            return result

        return timed


def profile_one(release: Release) -> dict:
    """Run one operation's steps in this process with SimpleWorker, counting queries, Redis commands, time."""
    queue = django_rq.get_queue(engine.QUEUE)
    redis = queue.connection
    monitor = subprocess.Popen(
        [
            "redis-cli",
            "-p",
            "6379",
            "MONITOR",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(monitor.stdout.readline, "")), daemon=True)
    reader.start()
    time.sleep(0.3)

    provider_time = [0.0]
    current = {"step": None}
    per_step: dict[int, dict] = defaultdict(lambda: {"queries": 0, "wall": 0.0, "provider": 0.0, "runs": 0})
    outside = {"queries": 0}
    inline_sleep = [0.0]
    job_wall = [0.0]
    job_runs = [0]

    real_provider_for, real_run_step, real_run_operation = engine.provider_for, engine._run_step, engine.run_operation
    real_sleep = engine.time.sleep

    class SleepTimer:  # engine.time is the time module: wrap only sleep, seen from the engine
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(s):
            t0 = time.perf_counter()
            real_sleep(s)
            inline_sleep[0] += time.perf_counter() - t0

    def provider_for(app):
        return TimedProxy(real_provider_for(app), provider_time)

    def run_step(operation, step, runner):
        current["step"] = step.position
        p0, t0 = provider_time[0], time.perf_counter()
        try:
            return real_run_step(operation, step, runner)
        finally:
            rec = per_step[step.position]
            rec["wall"] += time.perf_counter() - t0
            rec["provider"] += provider_time[0] - p0
            rec["runs"] += 1
            rec["kind"] = step.kind
            current["step"] = None

    def run_operation(operation_id):
        redis.echo("bench-begin")
        t0 = time.perf_counter()
        try:
            return real_run_operation(operation_id)
        finally:
            job_wall[0] += time.perf_counter() - t0
            job_runs[0] += 1
            redis.echo("bench-end")

    def count(execute, sql, params, many, context):
        if current["step"] is None:
            outside["queries"] += 1
        else:
            per_step[current["step"]]["queries"] += 1
        return execute(sql, params, many, context)

    # RQ records the job's function by name: keep it "strategies.operations.engine.run_operation" (the wrapper).
    run_operation.__module__, run_operation.__qualname__ = "strategies.operations.engine", "run_operation"
    engine.provider_for, engine._run_step, engine.run_operation = provider_for, run_step, run_operation
    engine.time = SleepTimer()
    try:
        with connection.execute_wrapper(count):
            operation = start(release)  # operation_start's own queries are counted as "outside" but reported apart
            start_queries = outside["queries"]
            outside["queries"] = 0
            deadline = time.monotonic() + ARGS.timeout
            while True:
                enqueue_due_jobs(queue)
                SimpleWorker([queue], connection=redis).work(burst=True, logging_level="WARNING")
                operation.refresh_from_db()
                if settled(operation) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    finally:
        engine.provider_for, engine._run_step = real_provider_for, real_run_step
        engine.run_operation = real_run_operation
        engine.time = time
        time.sleep(0.3)
        os.killpg(monitor.pid, signal.SIGTERM)
        monitor.wait(timeout=5)
        reader.join(timeout=2)

    db_re = re.compile(r"^\d+\.\d+ \[(\d+) ")
    ours = [line for line in lines if (m := db_re.match(line)) and int(m.group(1)) == ARGS.redis_db]
    total_engine, in_job = 0, False
    for line in ours:
        if '"ECHO" "bench-begin"' in line:
            in_job = True
        elif '"ECHO" "bench-end"' in line:
            in_job = False
        elif in_job:
            total_engine += 1
    redis_all = sum(1 for line in ours if '"ECHO" "bench-' not in line)
    steps = list(operation.steps.order_by("position"))
    return {
        "operation": operation,
        "steps": steps,
        "per_step": dict(per_step),
        "between_queries": outside["queries"],
        "start_queries": start_queries,
        "redis_in_jobs": total_engine,
        "redis_all": redis_all,
        "job_wall": job_wall[0],
        "job_runs": job_runs[0],
        "inline_sleep": inline_sleep[0],
        "provider_time": provider_time[0],
    }


def report_profile(p: dict) -> list[str]:
    op, steps, per = p["operation"], p["steps"], p["per_step"]
    executed = [s for s in steps if s.status != StepStatus.SKIPPED]
    n = len(executed)
    runs = sum(r["runs"] for r in per.values())
    step_queries = sum(r["queries"] for r in per.values())
    total_queries = step_queries + p["between_queries"]
    engine_time = p["job_wall"] - p["provider_time"] - p["inline_sleep"]
    out = [
        f"In-process profile (one operation, SimpleWorker, this process): status {op.status}, {n} steps, "
        f"{runs} step executions in {p['job_runs']} job runs",
        f"  DB queries: {total_queries} in the jobs = {total_queries / n:.1f} per step "
        f"({step_queries} inside steps, {p['between_queries']} claim/load/close/re-enqueue); "
        f"operation_start itself: {p['start_queries']}",
        f"  Redis commands (MONITOR, db {ARGS.redis_db}): {p['redis_in_jobs']} inside run_operation = "
        f"{p['redis_in_jobs'] / n:.1f} per step; {p['redis_all']} in all incl. worker bookkeeping, "
        f"scheduler emulation and operation_start = {p['redis_all'] / n:.1f} per step",
        f"  Job time {p['job_wall'] * 1000:.0f} ms = provider {p['provider_time'] * 1000:.0f} ms + inline sleeps "
        f"{p['inline_sleep'] * 1000:.0f} ms + engine {engine_time * 1000:.0f} ms "
        f"→ engine overhead {engine_time / n * 1000:.1f} ms per step",
        "  per step (pos kind: executions, queries, wall ms, provider ms, engine ms):",
    ]
    for pos in sorted(per):
        r = per[pos]
        out.append(
            f"    {pos:>2} {r['kind']:<12} x{r['runs']}  q={r['queries']:<4} wall={r['wall'] * 1000:7.1f}  "
            f"provider={r['provider'] * 1000:7.1f}  engine={(r['wall'] - r['provider']) * 1000:6.1f}"
        )
    return out


# --- workers ------------------------------------------------------------------------------------------------
WORKERS: list[subprocess.Popen] = []


def start_workers(count: int) -> None:
    env = {**os.environ, **BENCH_ENV}
    for i in range(count):
        cmd = [sys.executable, str(ROOT / "manage.py"), "rqworker", engine.QUEUE, "--name", f"bench-{i}"]
        if i == 0:
            cmd.append("--with-scheduler")
        (ROOT / "bench" / "logs").mkdir(exist_ok=True)
        logfile = open(ROOT / "bench" / "logs" / f"worker-{i}.log", "w")  # noqa: SIM115
        WORKERS.append(
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
        )


def stop_workers() -> None:
    for proc in WORKERS:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # the group we started: the worker and its work horse
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in WORKERS:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    WORKERS.clear()


atexit.register(stop_workers)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def wait_for_workers(count: int, redis, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([w for w in Worker.all(connection=redis) if w.name.startswith("bench-")]) >= count:
            return
        if any(p.poll() is not None for p in WORKERS):
            raise SystemExit("a worker exited at start; see bench/logs/worker-*.log")
        time.sleep(0.1)
    raise SystemExit(f"the {count} workers did not register within {timeout} s")


# --- main ---------------------------------------------------------------------------------------------------
def main() -> None:
    t_setup = time.monotonic()
    call_command("migrate", verbosity=0)
    redis = django_rq.get_connection(engine.QUEUE)
    redis.flushdb()
    candidates = [make_application(i) for i in range(ARGS.apps + (0 if ARGS.no_profile else 1))]
    print(
        f"setup: {ARGS.apps} applications on {'SQLite' if ARGS.sqlite else 'PostgreSQL'}, Redis db "
        f"{ARGS.redis_db}, bake {ARGS.bake} s, OPERATION_INLINE_WAIT_SECONDS "
        f"{settings.OPERATION_INLINE_WAIT_SECONDS}, simulator swap {settings.SIMULATOR_TIMINGS['swap_seconds']} s "
        f"({time.monotonic() - t_setup:.1f} s)",
        flush=True,
    )

    lines: list[str] = []
    if not ARGS.no_profile:
        profile = profile_one(candidates.pop())
        lines += report_profile(profile)
        print("\n".join(lines), flush=True)
        redis.flushdb()

    start_workers(ARGS.workers)
    wait_for_workers(ARGS.workers, redis)
    connection.close()

    t0 = time.monotonic()
    operations = [start(release) for release in candidates]
    t_started = time.monotonic()
    ids = [op.pk for op in operations]
    print(f"started {len(ids)} canary operations in {t_started - t0:.2f} s; {ARGS.workers} workers running", flush=True)

    samples = []  # (busy workers, ops baking, workers held on a waiting op)
    held_streaks: Counter = Counter()
    deadline = t0 + ARGS.timeout
    while True:
        workers = [w for w in Worker.all(connection=redis) if w.name.startswith("bench-")]
        busy = {}
        for w in workers:
            if w.get_state() == "busy":
                job_id = w.get_current_job_id() or ""
                m = re.match(r"operation-(\d+)-", job_id)
                busy[w.name] = (int(m.group(1)) if m else None, job_id)
        running = set(
            OperationStep.objects.filter(operation_id__in=ids, status=StepStatus.RUNNING).values_list(
                "operation_id", flat=True
            )
        )
        baking = set(
            OperationStep.objects.filter(
                operation_id__in=ids, status=StepStatus.WAITING, kind__in=WAITING_KINDS
            ).values_list("operation_id", flat=True)
        )
        baking -= running
        held = [(name, job) for name, (op_id, job) in busy.items() if op_id in baking]
        for key in held:
            held_streaks[key] += 1
        samples.append((len(busy), len(baking), len(held)))
        active = Operation.objects.filter(
            pk__in=ids, status__in=sorted(OPERATION_ACTIVE - {OperationStatus.PAUSED})
        ).count()
        if active == 0 or time.monotonic() > deadline:
            break
        time.sleep(ARGS.sample)
    wall = time.monotonic() - t0
    timed_out = active > 0
    stop_workers()

    ops = list(Operation.objects.filter(pk__in=ids).prefetch_related("steps"))
    statuses = Counter(op.status for op in ops)
    latency, overhead, overhead_ex_bake, lateness, gaps = [], [], [], [], []
    inline_bakes = 0
    n_bakes = sum(1 for op in ops for s in op.steps.all() if s.kind == "bake" and s.finished_at)
    by_kind: dict[str, list[float]] = defaultdict(list)
    swap_s = settings.SIMULATOR_TIMINGS["swap_seconds"]
    for op in ops:
        steps = sorted(op.steps.all(), key=lambda s: s.position)
        done = [s for s in steps if s.started_at and s.finished_at]
        if done:
            latency.append((min(s.started_at for s in done) - op.created_at).total_seconds())
        for s in done:
            w = (s.finished_at - s.started_at).total_seconds()
            if s.kind == "bake":
                late = w - s.parameters["seconds"]
                lateness.append(late)
                overhead.append(late)
            elif s.kind == "analyse" and s.detail.get("extended_until"):
                lateness.append(w - s.parameters["extend_seconds"])
                overhead.append(w - s.parameters["extend_seconds"])
            else:
                o = w - (swap_s if s.kind == "swap" else 0.0)
                overhead.append(o)
                if s.kind != "analyse":  # analyse is dominated by the simulator's metrics (see the profile)
                    overhead_ex_bake.append(o)
                by_kind[s.kind].append(w)
            if s.kind in WAITING_KINDS and s.attempts >= 3:
                # run, woke before `until` (RQ schedules to the whole second), slept the rest in the worker, ran
                inline_bakes += 1
        for a, b in itertools.pairwise(done):
            if a.kind != "bake" and b.started_at and a.finished_at:
                gaps.append((b.started_at - a.finished_at).total_seconds())
    baking_samples = [s for s in samples if s[1] > 0]
    busy_while_baking = Counter(s[0] for s in baking_samples)
    held_samples = sum(1 for s in samples if s[2] > 0)
    long_holds = {k: v for k, v in held_streaks.items() if v >= 2}
    analyses = Counter(
        v.get("verdict")
        for op in ops
        for s in op.steps.all()
        if s.kind == "analyse"
        for v in [s.detail]
        if v.get("verdict")
    )

    out = [
        "",
        f"Concurrent run: {len(ops)} canary operations, {ARGS.workers} rqworker processes "
        f"(bake {ARGS.bake} s x 4 shares){' — TIMED OUT' if timed_out else ''}",
        f"  outcome: {dict(statuses)}; succeeded {statuses.get(OperationStatus.SUCCEEDED, 0)}, "
        f"failed/rolled back {sum(v for k, v in statuses.items() if k != OperationStatus.SUCCEEDED)}; "
        f"analysis verdicts {dict(analyses)}",
        f"  wall time: {wall:.1f} s (operation_start x{len(ops)}: {t_started - t0:.2f} s)",
        f"  queue-to-start latency (created_at → first step started_at): {summary(latency)}",
        f"  engine overhead per step, non-waiting steps except analyse (wall - simulated swap time): "
        f"{summary(overhead_ex_bake)}",
        f"  engine overhead per step, all steps (wall - bake/extension wait - swap time): {summary(overhead)}",
        f"  bake wake-up lateness (bake step wall - bake_seconds): {summary(lateness)}",
        f"  gap between consecutive steps in one job: {summary(gaps)}",
        "  step wall time by kind: "
        + "; ".join(
            f"{k} p50 {pct(v, 50) * 1000:.0f}/p95 {pct(v, 95) * 1000:.0f} ms" for k, v in sorted(by_kind.items())
        ),
        f"  worker samples: {len(samples)} (every {ARGS.sample} s); with ≥1 operation baking: {len(baking_samples)}; "
        f"busy workers then: {dict(sorted(busy_while_baking.items()))}",
        f"  workers held on a baking operation: {held_samples} samples "
        f"({held_samples / max(1, len(samples)) * 100:.1f} %), {len(held_streaks)} distinct jobs, "
        f"{len(long_holds)} seen in ≥2 consecutive samples (≥{ARGS.sample * 2:.1f} s: an inline sleep)",
        f"  bakes woken early whose remainder (< 1 s) was slept inside a worker (step attempts ≥ 3): "
        f"{inline_bakes} of {n_bakes}",
        f"  targets: engine overhead < 50 ms/step: "
        f"{'MET' if pct(overhead_ex_bake, 95) < 0.05 else 'NOT MET'} (p95 non-waiting, non-analyse); "
        f"no worker held for a bake: {'MET' if not long_holds else 'NOT MET'} (sampled); "
        f"held for an early-wake remainder: {inline_bakes} bakes",
    ]
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_workers()
