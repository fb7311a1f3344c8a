"""Fault injection: a real `manage.py rqworker` is SIGKILLed at step boundaries and mid-step; the
recovery pass and a new worker must bring the operation to a consistent end every time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rq import Queue

from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSlot, SimulatorSwap
from strategies.operations import services
from strategies.operations.engine import operations_recover
from strategies.operations.models import Operation, OperationStatus, Ring
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site
from tests.releases.test_jobs import _subprocess_database_url
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, FAST_RINGS, VERSIONS, drive, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def killed_worker(kill_at: str) -> int:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.strategies.crash_settings",
        "DATABASE_URL": _subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SLIPWAY_KILL_AT": kill_at,
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "operations", "--burst", "--worker-class", "rq.worker.SimpleWorker"],
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode


def promote(n: int, strategy: str, parameters: dict, actor: User) -> tuple[Operation, Release, Release]:
    application = ApplicationFactory(slug=f"crash-{n}", name=f"Crash {n}")
    add_simulated_site(application, VERSIONS)
    if strategy == "canary":
        with_load(application)
    live = ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    candidate = ReleaseFactory(
        application=application,
        version="1.1.0",
        status=ReleaseStatus.APPROVED,
        deployed_slot=application.slots.get(name="staging"),
    )
    if strategy == "rings":
        target = ApplicationFactory(slug=f"crash-{n}-staff", name=f"Crash {n} staff")
        add_simulated_site(target, VERSIONS)
        staff = Ring.objects.create(
            application=application, position=0, name="Staff", kind=Ring.Kind.TARGETS, bake_seconds=0.02, analyse=False
        )
        staff.targets.set([target])
        Ring.objects.create(
            application=application,
            position=1,
            name="Some",
            kind=Ring.Kind.TRAFFIC,
            traffic_percent=10,
            bake_seconds=0.02,
            analyse=False,
        )
    operation = services.operation_start(release=candidate, strategy=strategy, parameters=parameters, actor=actor)
    return operation, candidate, live


# Blue-green steps: 1 gate, 2 swap, 3 verify, 4 go live. Canary: 1 gate, 2 route 5 %, 3 bake, 4 analyse, ...
KILL_POINTS = [
    ("blue_green", "claimed"),
    ("blue_green", "step_started:2"),
    ("blue_green", "swap_begun"),  # the swap has begun, its token not yet saved
    ("blue_green", "step_finished:2"),
    ("blue_green", "step_started:4"),
    ("blue_green", "step_finished:3"),
    ("canary", "step_finished:2"),
    ("canary", "step_started:4"),
    ("canary", "swap_begun"),
    # Rings: 1 gate, 2 target's staging healthy, 3 swap into the target, 4 bake, 5 target healthy,
    # 6 route 10 %, 7 bake, 8 swap into production, 9 routing reset, 10 verify, 11 go live.
    ("rings", "step_started:3"),
    ("rings", "swap_begun"),  # the ring target's swap
    ("rings", "step_finished:6"),
    ("rings", "step_started:8"),
]


def test_a_worker_killed_anywhere_leaves_an_operation_that_recovers_consistently(
    rq_queues: dict[str, Queue], release_manager: User
) -> None:
    queue = rq_queues["operations"]
    for n, (strategy, kill_at) in enumerate(KILL_POINTS):
        parameters = {
            "blue_green": FAST_BLUE_GREEN,
            "canary": {**FAST_CANARY, "shares": [10, 100]},
            "rings": FAST_RINGS,
        }[strategy]
        operation, candidate, live = promote(n, strategy, parameters, release_manager)

        assert killed_worker(kill_at) == -signal.SIGKILL, kill_at
        operation.refresh_from_db()
        assert operation.status in (OperationStatus.PENDING, OperationStatus.RUNNING), kill_at

        assert [pk for pk, _ in operations_recover(stale_after=0)] == [operation.pk], kill_at
        drive(queue, operation)

        candidate.refresh_from_db()
        live.refresh_from_db()
        slots = {s.slot_name: s for s in SimulatorSlot.objects.filter(application=operation.application)}
        logs = [(s.position, s.status, s.log) for s in operation.steps.all()]
        assert operation.status == OperationStatus.SUCCEEDED, (kill_at, operation.error, logs)
        assert (candidate.status, live.status) == (ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED), kill_at
        assert (slots["production"].version, slots["staging"].version) == ("1.1.0", "1.0.0"), kill_at
        assert slots["staging"].routing_percent == 0, kill_at
        assert SimulatorSwap.objects.filter(application=operation.application).count() == 1, kill_at
        if strategy == "rings":
            target = Application.objects.get(slug=f"crash-{n}-staff")
            assert SimulatorSlot.objects.get(application=target, slot_name="production").version == "1.1.0", kill_at
            assert SimulatorSwap.objects.filter(application=target).count() == 1, kill_at


def test_a_step_that_keeps_killing_its_worker_is_rolled_back(
    rq_queues: dict[str, Queue], release_manager: User
) -> None:
    operation, candidate, live = promote(99, "blue_green", FAST_BLUE_GREEN, release_manager)

    for _ in range(settings.OPERATION_MAX_STEP_RUNS):
        assert killed_worker("step_started:2") == -signal.SIGKILL
        operations_recover(stale_after=0)
    drive(rq_queues["operations"], operation)

    candidate.refresh_from_db()
    live.refresh_from_db()
    assert operation.status == OperationStatus.ROLLED_BACK
    assert "was interrupted 3 times, so its outcome cannot be known" in operation.error
    assert (candidate.status, live.status) == (ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE)
    production = SimulatorSlot.objects.get(application=operation.application, slot_name="production")
    assert production.version == "1.0.0"
    assert not SimulatorSwap.objects.filter(application=operation.application).exists()
