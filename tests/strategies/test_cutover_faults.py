"""Provider faults in the middle of a cut-over: production ends where the portal says it is.

- A swap that hangs (the simulator's `hang_swap` fault) at each strategy's swap: the undo steps all run —
  routing back to 0 % at once, the swap back once the hung swap has ended, the preview cancelled — and no
  worker sits on the hung swap: the operation is handed back and comes again.
- A swap whose runner died right after saving its token, resumed only after the step's deadline: what
  became of it is read first; it had landed, so the promotion goes on (before, it was "timed out" unread
  and swapped back: production flipped twice and a good promotion was rolled back).
"""

from __future__ import annotations

import signal
import time

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings
from rq import Queue, SimpleWorker

from releases.catalog.models import Application, SimulatorSlot, SimulatorSwap
from strategies.operations.engine import operations_recover
from strategies.operations.models import Drift, Operation, OperationStatus, StepStatus
from strategies.operations.reconcile import drift_repair
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, FAST_RINGS, drive
from tests.strategies.test_crash import killed_worker, promote

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def where_it_runs(application: Application) -> dict[str, tuple[str, int, str]]:
    return {
        s.slot_name: (s.version, s.routing_percent, s.preview_target)
        for s in SimulatorSlot.objects.filter(application=application)
    }


@pytest.fixture
def hanging_swaps(settings: Settings) -> None:
    """A hung swap is abandoned by the provider after 3 s; the engine polls a swap 0.2 s at a time and comes
    back for it every 0.5 s through the queue (never sleeping that in the worker)."""
    settings.SIMULATOR_TIMINGS = {**settings.SIMULATOR_TIMINGS, "hang_timeout_seconds": 3.0}
    settings.OPERATION_SWAP_POLL_SECONDS = 0.2
    settings.OPERATION_SWAP_RECHECK_SECONDS = 0.5
    settings.OPERATION_INLINE_WAIT_SECONDS = 0.1


SETTLED = {OperationStatus.ROLLING_BACK, OperationStatus.ROLLED_BACK, OperationStatus.FAILED}
HUNG = [
    ("canary", {**FAST_CANARY, "shares": [25, 50], "swap_timeout_seconds": 0.5}, ""),
    ("blue_green", {**FAST_BLUE_GREEN, "swap_timeout_seconds": 0.5}, ""),
    ("blue_green", {**FAST_BLUE_GREEN, "preview": True, "swap_timeout_seconds": 0.5}, ""),
    ("rings", {**FAST_RINGS, "swap_timeout_seconds": 0.5}, ""),  # the last swap, into its own production
    ("rings", {**FAST_RINGS, "swap_timeout_seconds": 0.5}, "-staff"),  # the first: into the ring target's
]


@pytest.mark.parametrize(
    ("strategy", "parameters", "hung_on"), HUNG, ids=["canary", "blue_green", "preview", "rings", "ring-target"]
)
def test_a_hung_swap_is_undone_with_every_undo_step_and_without_holding_a_worker(
    rq_queues: dict[str, Queue],
    release_manager: User,
    hanging_swaps: None,
    strategy: str,
    parameters: dict,
    hung_on: str,
) -> None:
    operation, candidate, live = promote(800, strategy, parameters, release_manager)
    application = operation.application
    hanging = Application.objects.get(slug=f"{application.slug}{hung_on}")  # where the swap hangs
    SimulatorSlot.objects.filter(application=hanging, slot_name="staging").update(hang_swap=True)
    queue = rq_queues["operations"]

    drive(queue, operation, until=SETTLED)
    assert "did not finish before the step's deadline" in operation.error, operation.error
    hung = SimulatorSwap.objects.get(application=hanging, source="staging", target="production")
    # While the hung swap goes on, the operation waits for it in the queue: no job of it is running.
    held_back = False
    while operation.status == OperationStatus.ROLLING_BACK and hung.in_flight:
        drive(queue, operation, until=SETTLED, timeout=10)
        if queue.started_job_registry.count == 0 and operation.wake_at is not None:
            held_back = True
            assert where_it_runs(application)["staging"][1] == 0, "routing went back to 0 % first"
        hung.refresh_from_db()
        time.sleep(0.1)
    drive(queue, operation, timeout=30)

    assert held_back, "the swap back waited for the hung swap in the queue, not in a worker"
    assert operation.status == OperationStatus.ROLLED_BACK, operation.error
    candidate.refresh_from_db()
    live.refresh_from_db()
    assert (candidate.status, live.status) == ("rolled_back", "live")
    for app in {application, hanging}:
        runs = where_it_runs(app)
        assert runs["production"] == ("1.0.0", 0, "") and runs["staging"] == ("1.1.0", 0, ""), (app.slug, runs)
    undo = list(operation.steps.filter(parameters__undo=True).order_by("position"))
    assert undo and all(s.status == StepStatus.SUCCEEDED for s in undo), [(s.title, s.status, s.log) for s in undo]
    swap_back = next(
        s for s in undo if s.kind == "swap" and s.parameters.get("application", application.pk) == hanging.pk
    )
    assert swap_back.detail["awaited"].startswith("it failed"), swap_back.detail
    if parameters.get("preview"):
        assert [s.kind for s in undo][-1] == "cancel_preview"


def test_a_swap_resumed_after_its_deadline_is_read_before_it_is_judged(
    rq_queues: dict[str, Queue], release_manager: User, settings: Settings
) -> None:
    operation, _, _ = promote(900, "blue_green", {**FAST_BLUE_GREEN, "swap_timeout_seconds": 1.0}, release_manager)

    assert killed_worker("swap_token_saved") == -signal.SIGKILL
    swap = operation.steps.get(kind="swap")
    assert swap.resume_token and swap.status == StepStatus.RUNNING
    time.sleep(1.2)  # the recovery comes after the step's deadline; the swap landed meanwhile
    assert [pk for pk, _ in operations_recover(stale_after=0)] == [operation.pk]
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert SimulatorSwap.objects.filter(application=operation.application).count() == 1, "swapped once, not back"
    assert where_it_runs(operation.application)["production"][0] == "1.1.0"
    swap.refresh_from_db()
    assert f"Resuming swap {swap.resume_token}" in swap.log and swap.detail["swapped"] is True
    assert Operation.objects.filter(application=operation.application).count() == 1


def test_an_undo_that_keeps_failing_is_retried_then_reported_and_production_shows_as_drift(
    rq_queues: dict[str, Queue], release_manager: User
) -> None:
    """The swap back fails every time (the simulator's `fail_swap`): it is run OPERATION_UNDO_ATTEMPTS times,
    then the operation and release fail saying production needs a person, and reconciliation shows where
    production really is — until a person clears the fault and repairs it."""
    operation, candidate, live = promote(
        801, "blue_green", {**FAST_BLUE_GREEN, "verify_seconds": 6.0, "verify_interval_seconds": 2.5}, release_manager
    )
    application = operation.application
    queue = rq_queues["operations"]
    drive(queue, operation, until={OperationStatus.RUNNING})  # swapped; the verification waits for its next check
    assert where_it_runs(application)["production"][0] == "1.1.0"
    SimulatorSlot.objects.filter(application=application, slot_name="production").update(healthy=False)
    SimulatorSlot.objects.filter(application=application, slot_name="staging").update(fail_swap=True)

    drive(queue, operation, timeout=40)

    assert operation.status == OperationStatus.FAILED
    assert "Then undoing failed:" in operation.error and "Production needs a person" in operation.error
    swap_back = operation.steps.get(parameters__undo=True)
    assert swap_back.status == StepStatus.FAILED and swap_back.attempts == settings.OPERATION_UNDO_ATTEMPTS
    assert swap_back.log.count("Trying again at") == settings.OPERATION_UNDO_ATTEMPTS - 1
    # Each try began a swap of its own (after the one before it had ended), never resumed the failed one.
    swaps = SimulatorSwap.objects.filter(application=application).order_by("pk")
    assert [s.phase for s in swaps] == ["done"] + ["failed"] * settings.OPERATION_UNDO_ATTEMPTS
    candidate.refresh_from_db()
    live.refresh_from_db()
    assert (candidate.status, live.status) == ("failed", "live")
    SimpleWorker([rq_queues["default"]], connection=rq_queues["default"].connection).work(burst=True)
    drift = Drift.objects.get(application=application, resolved_at__isnull=True)
    assert drift.summary == "production runs 1.1.0, but the live release is 1.0.0."

    SimulatorSlot.objects.filter(application=application, slot_name="staging").update(fail_swap=False)
    SimulatorSlot.objects.filter(application=application, slot_name="production").update(healthy=True)
    repair = drift_repair(drift=drift, actor=release_manager)
    drive(queue, repair)
    SimpleWorker([rq_queues["default"]], connection=rq_queues["default"].connection).work(burst=True)

    assert repair.status == OperationStatus.SUCCEEDED
    assert where_it_runs(application)["production"][0] == "1.0.0"
    drift.refresh_from_db()
    assert drift.resolved_at is not None


def test_a_swap_back_that_fails_once_is_tried_again_and_the_rollback_completes(
    rq_queues: dict[str, Queue], release_manager: User
) -> None:
    operation, candidate, live = promote(
        802, "blue_green", {**FAST_BLUE_GREEN, "verify_seconds": 6.0, "verify_interval_seconds": 2.5}, release_manager
    )
    application = operation.application
    queue = rq_queues["operations"]
    drive(queue, operation, until={OperationStatus.RUNNING})  # swapped; the verification waits for its next check
    SimulatorSlot.objects.filter(application=application, slot_name="production").update(healthy=False)
    staging = SimulatorSlot.objects.filter(application=application, slot_name="staging")
    staging.update(fail_swap=True)

    drive(queue, operation, until={OperationStatus.ROLLING_BACK})
    while "Trying again at" not in operation.steps.get(parameters__undo=True).log:
        drive(queue, operation, until={OperationStatus.ROLLING_BACK, OperationStatus.FAILED}, timeout=10)
    staging.update(fail_swap=False)  # the provider recovers before the next try
    drive(queue, operation, timeout=30)

    assert operation.status == OperationStatus.ROLLED_BACK, operation.error
    swap_back = operation.steps.get(parameters__undo=True)
    assert swap_back.status == StepStatus.SUCCEEDED and swap_back.attempts == 2
    assert where_it_runs(application)["production"][0] == "1.0.0"
    candidate.refresh_from_db()
    live.refresh_from_db()
    assert (candidate.status, live.status) == ("rolled_back", "live")
