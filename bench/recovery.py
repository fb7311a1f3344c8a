"""Benchmark of recovery: how soon an operation goes on after its worker dies, and how late wake-ups run
after the worker holding RQ's scheduler lock dies. Run on demand, never part of the test suite:

    .venv/bin/python bench/recovery.py              # PostgreSQL slipway_bench_recovery, Redis database 11
    .venv/bin/python bench/recovery.py --kills 3 --bakes 4

Real processes, as deployed (deploy/Procfile): two `rqworker operations default notifications
--with-scheduler` and one `rqcron portal.cron`, with the portal's own timing settings.

1. **Worker killed mid-step.** A blue-green verification that checks production every second (the
   worker sleeps between checks, so the job is never handed back): the process group of the worker
   running it is SIGKILLed; measured is the time until another job has claimed the operation and runs
   its step again. The target (issue 24): under 30 s.
2. **Scheduler lost.** Canary bakes of 3 s are handed to RQ's scheduler (enqueue_at). Lateness of each
   wake-up = when the bake step finished minus when it was due. First with every worker alive (the
   peer), then after SIGKILLing the worker that holds `rq:scheduler-lock:operations`. The target:
   under 10 s (the engine's own wake-up sweep, `engine._overdue_wake_up`; RQ's lock passes to another
   scheduler only after about two minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "slipway_bench_recovery"
VERSIONS = {"dev": "1.2.0-dev.1", "test": "1.1.0", "staging": "1.1.0", "production": "1.0.0"}
LAYOUT = [
    ("dev", "Development", "dev"),
    ("test", "Test", "test"),
    ("preprod", "Pre-production", "staging"),
    ("prod", "Production", "production"),
]

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--kills", type=int, default=3, help="worker kills to measure")
p.add_argument("--bakes", type=int, default=4, help="bakes per canary (each one wake-up)")
p.add_argument("--redis-db", type=int, default=11, help="Redis database number (never 0 or 15)")
ARGS = p.parse_args()
if ARGS.redis_db in (0, 15):
    p.error("Redis databases 0 (the portal) and 15 (the tests) are not the bench's")

ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "portal.settings",
    "SECRET_KEY": "bench-only-not-a-secret",
    "DEBUG": "0",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": f"redis://127.0.0.1:6379/{ARGS.redis_db}",
    "LOG_LEVEL": "WARNING",
    "SIMULATOR_SWAP_SECONDS": "0.05",
    "SIMULATOR_SWAP_WARMUP_SECONDS": "0.02",
    "SIMULATOR_SWAP_ROUTING_SECONDS": "0.01",
    "SIMULATOR_RESTART_SECONDS": "0",
    "SIMULATOR_SERVE_SLEEP_MAX_MS": "0",
}
os.environ.update({k: v for k, v in ENV.items() if k != "PATH"})

import psycopg  # noqa: E402

with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
    conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    conn.execute(f"CREATE DATABASE {DB_NAME}")

sys.path.insert(0, str(ROOT))
import django  # noqa: E402

django.setup()

import django_rq  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

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
from strategies.operations.models import Operation, OperationStatus  # noqa: E402
from strategies.operations.services import operation_rollback, operation_start  # noqa: E402

PROCESSES: list[subprocess.Popen[bytes]] = []
LOGS = ROOT / "bench" / "logs"


@arranging_state()  # the starting state, not history
def make_application(index: int) -> Release:
    app = Application.objects.create(name=f"Recovery {index}", slug=f"recovery-{index}", team="Bench")
    slots = {}
    for position, (stage, env_name, slot_name) in enumerate(LAYOUT, start=1):
        prod = slot_name == "production"
        slots[slot_name] = Slot.objects.create(
            application=app, name=slot_name, is_production=prod, traffic_percent=100 if prod else 0
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


def start(name: str, *command: str) -> subprocess.Popen[bytes]:
    LOGS.mkdir(exist_ok=True)
    out = open(LOGS / f"recovery-{name}.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *command],
        cwd=ROOT,
        env=ENV,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    PROCESSES.append(process)
    return process


def start_worker(name: str) -> subprocess.Popen[bytes]:
    return start(name, "rqworker", "operations", "default", "notifications", "--with-scheduler", "--name", name)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and its work horse, as a dying machine would (RQ's horse runs in a process group of
    its own, so killing the worker's group alone leaves the horse running the job)."""
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False)
    for pid in [int(p) for p in children.stdout.split()] + [process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def stop_all() -> None:
    for process in PROCESSES:
        if process.poll() is None:
            kill(process)


def wait(predicate, what: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def worker_process(job_id: str, workers: dict[str, subprocess.Popen[bytes]]) -> str | None:
    """The worker that took the job, from its log (RQ's worker registry is not updated while a horse works)."""
    for name in workers:
        if job_id in (LOGS / f"recovery-{name}.log").read_text():
            return name
    return None


def measure_worker_kills(workers: dict[str, subprocess.Popen[bytes]]) -> list[float]:
    release = make_application(1)
    parameters = {"verify_seconds": 3600.0, "verify_interval_seconds": 1.0}
    operation = operation_start(
        release=release, strategy="blue_green", parameters=parameters, actor=None, reason="bench"
    )
    figures = []
    for n in range(ARGS.kills):

        def running() -> str | None:
            operation.refresh_from_db()
            return operation.runner if operation.status == OperationStatus.RUNNING and operation.runner else None

        runner = wait(running, "the operation to be running")
        name = wait(lambda: worker_process(runner, workers), f"the worker running {runner}")  # noqa: B023
        kill(workers.pop(name))
        killed = time.monotonic()

        def taken_over() -> bool:
            operation.refresh_from_db()
            return bool(operation.runner) and operation.runner != runner  # noqa: B023

        wait(taken_over, "another job to take the operation over")
        figures.append(time.monotonic() - killed)
        print(
            f"  kill {n + 1}: worker {name} killed; operation #{operation.pk} claimed again after {figures[-1]:.1f} s"
        )
        replacement = f"worker-{n + 3}"
        workers[replacement] = start_worker(replacement)
    return figures


def lateness_of_bakes(index: int) -> list[float]:
    release = make_application(index)
    shares = [5 * (i + 1) for i in range(ARGS.bakes)]
    parameters = {
        "shares": shares,
        "bake_seconds": 3.0,
        "min_requests": 1,
        "min_latency_samples": 1,
        "error_margin": 1.0,
        "latency_margin": 100.0,
        "verify_seconds": 0.0,
    }
    operation = operation_start(release=release, strategy="canary", parameters=parameters, actor=None, reason="bench")
    wait(lambda: Operation.objects.get(pk=operation.pk).finished_at, "the canary to finish", timeout=600)
    late = []
    for step in Operation.objects.get(pk=operation.pk).steps.filter(kind="bake").order_by("position"):
        if step.finished_at and step.detail.get("until"):
            late.append((step.finished_at - datetime.fromisoformat(step.detail["until"])).total_seconds())
    return late


def scheduler_holder(workers: dict[str, subprocess.Popen[bytes]]) -> str | None:
    """The worker whose scheduler took the operations queue's lock (its log says so; the lock names only the
    scheduler's own id)."""
    held = django_rq.get_queue("operations").connection.exists("rq:scheduler-lock:operations")
    for name in workers:
        if held and "Acquired scheduler lock for operations" in (LOGS / f"recovery-{name}.log").read_text():
            return name
    return None


def describe(figures: list[float]) -> str:
    return f"min {min(figures):.1f} s, median {statistics.median(figures):.1f} s, max {max(figures):.1f} s"


def main() -> None:
    call_command("migrate", verbosity=0)
    django_rq.get_queue("operations").connection.flushdb()
    workers = {name: start_worker(name) for name in ("worker-1", "worker-2")}
    start("cron", "rqcron", "portal.cron", "--logging-level", "WARNING")
    time.sleep(3)
    print(
        f"settings: heartbeat every {settings.OPERATION_HEARTBEAT_SECONDS:g} s, stale after "
        f"{settings.OPERATION_HEARTBEAT_STALE_SECONDS} s, recovery sweep every "
        f"{settings.OPERATION_RECOVERY_SWEEP_SECONDS} s, wake-up grace {settings.OPERATION_WAKE_UP_GRACE_SECONDS:g} s"
    )
    try:
        print("1. worker killed mid-step")
        kills = measure_worker_kills(workers)
        for running in Operation.objects.filter(status=OperationStatus.RUNNING):
            operation_rollback(operation=running, actor=None, reason="bench: measured")
            wait(lambda: Operation.objects.get(pk=running.pk).finished_at, "the rollback")  # noqa: B023
        print(f"   taken over after: {describe(kills)} (target < 30 s: {max(kills) / 30:.2f} of it at worst)")

        # Fresh workers, so that one of them holds the scheduler lock (a killed one's lock lingers a minute).
        for name in list(workers):
            kill(workers.pop(name))
        connection = django_rq.get_queue("operations").connection
        connection.delete(*connection.keys("rq:scheduler-lock:*") or ["-"])
        for name in ("worker-a", "worker-b"):
            workers[name] = start_worker(name)
        print("2. wake-ups: every worker alive (peer)")
        peer = lateness_of_bakes(10)
        print(f"   lateness of {len(peer)} wake-ups: {describe(peer)}")
        holder = wait(lambda: scheduler_holder(workers), "a worker to hold the scheduler lock", timeout=30)
        kill(workers.pop(holder))
        print(f"   killed {holder}, which held rq:scheduler-lock:operations")
        lost = lateness_of_bakes(11)
        print(f"   lateness of {len(lost)} wake-ups after the scheduler's loss: {describe(lost)}")
        print(
            f"   ratio of medians lost/peer: {statistics.median(lost) / max(statistics.median(peer), 0.01):.1f}; "
            f"worst {max(lost):.1f} s (target < 10 s)"
        )
    finally:
        stop_all()


if __name__ == "__main__":
    main()
