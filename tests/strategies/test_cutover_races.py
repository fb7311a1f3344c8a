"""A rollback that lands at a step boundary: production ends where the portal says it is.

The race, made deterministic as a slow disk or a starved CPU would make it: a second connection holds
`SELECT … FOR UPDATE` on the row of the step about to start, so the runner is stuck starting it; a
person rolls the operation back meanwhile; the lock is let go. Whatever order the database then grants
the two, the step either never starts (it was skipped) or is on the undo list — never started behind
the rollback's back. Checked at every boundary of every strategy: after everything settles, the
simulator's production runs the live release, nothing is routed to staging, no preview is applied.
(Before the fix, a step boundary's swap ran after the rollback, and production ran the rolled-back build.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection
from rq import Queue

from portal.core.errors import DomainError
from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSlot
from strategies.operations import services
from strategies.operations.engine import run_operation
from strategies.operations.models import Operation, OperationStatus, Ring, StepStatus
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, FAST_RINGS, VERSIONS, drive, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ONE_SHARE_CANARY = {**FAST_CANARY, "shares": [50]}
# Each strategy's forward steps, by position (the last is go_live): every boundary from the second on.
PLANS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "blue_green": ("blue_green", FAST_BLUE_GREEN, ["check_health", "swap", "verify_health", "go_live"]),
    "blue_green_preview": (
        "blue_green",
        {**FAST_BLUE_GREEN, "preview": True},
        ["check_health", "swap_preview", "verify_health", "swap", "verify_health", "go_live"],
    ),
    "canary": (
        "canary",
        ONE_SHARE_CANARY,
        ["check_health", "set_traffic", "bake", "analyse", "swap", "set_traffic", "go_live"],
    ),
    # Rings (below): 1 gate, 2 target's staging healthy, 3 swap into the target, 4 bake, 5 target healthy,
    # 6 route 10 %, 7 bake, 8 swap into production, 9 routing reset, 10 verify production, 11 go live.
    "rings": ("rings", FAST_RINGS, ["check_health"] + ["?"] * 10),
}
BOUNDARIES = [(name, position) for name, (_, _, kinds) in PLANS.items() for position in range(2, len(kinds) + 1)]


def _second_connection(*, autocommit: bool) -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        dbname=s["NAME"], user=s["USER"], host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, autocommit=autocommit
    )


def _lock_waiters(watcher: psycopg.Connection) -> int:
    """Sessions waiting for a lock (in autocommit: a transaction would see one snapshot of the statistics)."""
    with watcher.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _in_thread(fn: Callable[[], Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _application(name: str) -> tuple[Application, Release, Release]:
    application = ApplicationFactory(slug=f"race-{name}", name=f"Race {name}")
    add_simulated_site(application, VERSIONS)
    with_load(application)
    live = ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    candidate = ReleaseFactory(
        application=application,
        version="1.1.0",
        status=ReleaseStatus.APPROVED,
        deployed_slot=application.slots.get(name="staging"),
    )
    return application, live, candidate


def _with_rings(application: Application) -> Application:
    """A traffic ring and a target ring (another application's production), as a rings promotion uses."""
    target = ApplicationFactory(slug=f"{application.slug}-staff", name=f"{application.name} staff")
    add_simulated_site(target, VERSIONS)
    staff = Ring.objects.create(
        application=application, position=0, name="Staff", kind=Ring.Kind.TARGETS, bake_seconds=0.02, analyse=False
    )
    staff.targets.set([target])
    Ring.objects.create(
        application=application, position=1, name="Some", traffic_percent=10, bake_seconds=0.02, analyse=False
    )
    return target


def _where_it_runs(application: Application) -> dict[str, tuple[str, int, str]]:
    return {
        s.slot_name: (s.version, s.routing_percent, s.preview_target)
        for s in SimulatorSlot.objects.filter(application=application)
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks from a second connection need PostgreSQL")
@pytest.mark.parametrize(("plan", "position"), BOUNDARIES, ids=[f"{p}-step{n}" for p, n in BOUNDARIES])
def test_a_rollback_at_a_step_boundary_leaves_production_on_the_live_release(
    rq_queues: dict[str, Queue], release_manager: User, plan: str, position: int
) -> None:
    strategy, parameters, _ = PLANS[plan]
    application, live, candidate = _application(plan)
    target = _with_rings(application) if strategy == "rings" else None
    operation = services.operation_start(
        release=candidate, strategy=strategy, parameters=parameters, actor=release_manager
    )
    steps = list(operation.steps.order_by("position"))
    if position > len(steps):
        pytest.skip(f"the {plan} plan has {len(steps)} steps")
    held = steps[position - 1]
    admin, watcher = _second_connection(autocommit=False), _second_connection(autocommit=True)
    errors: list[BaseException] = []
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT id FROM releases_operationstep WHERE id = %s FOR UPDATE", [held.pk])
        runner = _in_thread(lambda: run_operation(operation.pk), errors)
        _wait(lambda: _lock_waiters(watcher) >= 1 or not runner.is_alive(), f"the runner to reach step {position}")
        assert runner.is_alive(), f"the runner finished without reaching step {position}: {errors}"
        rollback = _in_thread(
            lambda: services.application_rollback(application=application, actor=release_manager, reason="race"),
            errors,
        )
        time.sleep(0.3)  # the rollback waits for the operation's lock, or has already done what it could
    finally:
        admin.rollback()  # let go of the step's row
        admin.close()
        watcher.close()
    runner.join(30)
    rollback.join(30)
    assert not runner.is_alive() and not rollback.is_alive()
    assert not errors, errors
    drive(rq_queues["operations"], operation, timeout=30)

    live.refresh_from_db()
    candidate.refresh_from_db()
    assert operation.status == OperationStatus.ROLLED_BACK, (operation.status, operation.error)
    assert (candidate.status, live.status) == (ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE)
    assert _where_it_runs(application) == {
        "production": ("1.0.0", 0, ""),
        "staging": ("1.1.0", 0, ""),
        "test": ("1.1.0", 0, ""),
        "dev": ("1.2.0-dev.1", 0, ""),
    }, [(s.position, s.kind, s.status, s.parameters.get("undo", False)) for s in operation.steps.all()]
    if target is not None:
        assert _where_it_runs(target)["production"] == ("1.0.0", 0, "")
    assert not operation.steps.filter(status__in=(StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING))
    assert Operation.objects.filter(application=application).count() == 1, "the rollback aborted the promotion"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent callers need PostgreSQL's row locks")
def test_simultaneous_rollbacks_start_one_and_answer_the_others_409(
    client: Any, rq_queues: dict[str, Queue], release_manager: User
) -> None:
    application, _, candidate = _application("twenty")
    operation = services.operation_start(
        release=candidate,
        strategy="canary",
        parameters={**ONE_SHARE_CANARY, "bake_seconds": 600.0},
        actor=release_manager,
    )
    drive(rq_queues["operations"], operation, until={OperationStatus.RUNNING})  # baking, handed back
    barrier = threading.Barrier(12)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def roll_back() -> None:
        barrier.wait()
        try:
            services.application_rollback(application=application, actor=release_manager, reason="all at once")
            outcomes.append("started")
        except DomainError as exc:
            outcomes.append(f"{exc.code.status}: {exc}")

    threads = [_in_thread(roll_back, errors) for _ in range(12)]
    for thread in threads:
        thread.join(30)

    assert not errors, errors
    assert outcomes.count("started") == 1, outcomes
    assert all(o.startswith("409: Operation #") and "rolling back" in o for o in outcomes if o != "started"), outcomes
    client.force_login(release_manager)
    again = client.post(
        f"/api/v1/applications/{application.slug}/rollback",
        data={"reason": "and once more"},
        content_type="application/json",
    )
    assert again.status_code == 409, again.content
    assert again.json()["code"] == "transition_not_allowed"
    drive(rq_queues["operations"], operation)
    assert operation.status == OperationStatus.ROLLED_BACK
    assert Operation.objects.filter(application=application).count() == 1
