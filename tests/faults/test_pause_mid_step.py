"""A pause that lands while a step runs (a real `rqworker` held at the step by the pause protocol).

- The step then fails: the promotion is still compensated (before, the failure was recorded and nothing
  else happened; resuming went on to the next step, the swap).
- The step is the last one (go live): it waits for the person's resume instead of failing (before, the
  operation ended "succeeded" with its release still rolling out).
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rq import Queue

from releases.catalog.models import ReleaseStatus, SimulatorSlot, SimulatorVersionProfile
from strategies.operations import services
from strategies.operations.models import OperationStatus, StepStatus
from tests.faults.conftest import Worker
from tests.faults.test_redis_outage import promote
from tests.strategies.conftest import FAST_BLUE_GREEN, FAST_CANARY, drive

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_step_failing_after_a_pause_landed_still_rolls_the_promotion_back(
    rq_queues: dict[str, Queue], workers: list[Worker], release_manager: User, tmp_path
) -> None:
    # Canary: 1 gate, 2 route 50 %, 3 bake, 4 analyse, 5 swap, ... The worker is held as the analysis starts.
    operation, candidate, _ = promote("canary", {**FAST_CANARY, "shares": [50]}, release_manager)
    worker = Worker(tmp_path, settings.REDIS_URL, pause={"SLIPWAY_PAUSE_AT": "step_started:4"})
    workers.append(worker)
    worker.start(burst=True, queues=("operations",))
    worker.wait_until_paused()
    services.operation_pause(operation=operation, actor=release_manager, reason="a look first")
    SimulatorVersionProfile.objects.create(application=operation.application, version="1.1.0", healthy=False)
    worker.go_on()
    worker.wait(timeout=60)

    operation.refresh_from_db()
    assert operation.status in (OperationStatus.ROLLING_BACK, OperationStatus.ROLLED_BACK), operation.status
    drive(rq_queues["operations"], operation)
    assert operation.status == OperationStatus.ROLLED_BACK, operation.error
    assert operation.steps.get(position=4).status == StepStatus.FAILED
    assert not operation.steps.filter(kind="swap", parameters__undo__isnull=True).exclude(status=StepStatus.SKIPPED)
    routing = SimulatorSlot.objects.get(application=operation.application, slot_name="staging").routing_percent
    assert routing == 0
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.ROLLED_BACK


def test_a_pause_landing_as_the_release_goes_live_waits_for_the_resume(
    rq_queues: dict[str, Queue], workers: list[Worker], release_manager: User, tmp_path
) -> None:
    # Blue-green: 1 gate, 2 swap, 3 verify, 4 go live. The worker is held as go live starts.
    operation, candidate, live = promote("blue_green", FAST_BLUE_GREEN, release_manager)
    worker = Worker(tmp_path, settings.REDIS_URL, pause={"SLIPWAY_PAUSE_AT": "step_started:4"})
    workers.append(worker)
    worker.start(burst=True, queues=("operations",))
    worker.wait_until_paused()
    services.operation_pause(operation=operation, actor=release_manager, reason="hold on")
    worker.go_on()
    worker.wait(timeout=60)

    operation.refresh_from_db()
    candidate.refresh_from_db()
    assert operation.status == OperationStatus.PAUSED, (operation.status, operation.error)
    assert candidate.status == ReleaseStatus.ROLLING_OUT
    assert operation.steps.get(position=4).status == StepStatus.WAITING

    services.operation_resume(operation=operation, actor=release_manager, reason="go")
    drive(rq_queues["operations"], operation)

    candidate.refresh_from_db()
    live.refresh_from_db()
    assert operation.status == OperationStatus.SUCCEEDED
    assert (candidate.status, live.status) == (ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED)
