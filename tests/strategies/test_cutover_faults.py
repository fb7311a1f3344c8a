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
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings
from rq import Queue

from releases.catalog.models import Application, SimulatorSlot, SimulatorSwap
from strategies.operations.engine import operations_recover
from strategies.operations.models import Operation, OperationStatus, StepStatus
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
    ("canary", {**FAST_CANARY, "shares": [25, 50], "swap_timeout_seconds": 0.5}),
    ("blue_green", {**FAST_BLUE_GREEN, "swap_timeout_seconds": 0.5}),
    ("blue_green", {**FAST_BLUE_GREEN, "preview": True, "swap_timeout_seconds": 0.5}),
    ("rings", {**FAST_RINGS, "swap_timeout_seconds": 0.5}),
]


@pytest.mark.parametrize(("strategy", "parameters"), HUNG, ids=["canary", "blue_green", "preview", "rings"])
def test_a_hung_swap_is_undone_with_every_undo_step_and_without_holding_a_worker(
    rq_queues: dict[str, Queue],
    release_manager: User,
    hanging_swaps: None,
    strategy: str,
    parameters: dict,
) -> None:
    operation, candidate, live = promote(800, strategy, parameters, release_manager)
    application = operation.application
    # The promotion's own swap hangs (for rings: the last one, into this application's production).
    SimulatorSlot.objects.filter(application=application, slot_name="staging").update(hang_swap=True)
    queue = rq_queues["operations"]

    drive(queue, operation, until=SETTLED)
    assert "did not finish before the step's deadline" in operation.error, operation.error
    hung = SimulatorSwap.objects.get(application=application, source="staging", target="production")
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
    runs = where_it_runs(application)
    assert runs["production"] == ("1.0.0", 0, "") and runs["staging"] == ("1.1.0", 0, ""), runs
    undo = list(operation.steps.filter(parameters__undo=True).order_by("position"))
    assert undo and all(s.status == StepStatus.SUCCEEDED for s in undo), [(s.title, s.status, s.log) for s in undo]
    swap_back = next(s for s in undo if s.kind == "swap" and "application" not in s.parameters)
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
