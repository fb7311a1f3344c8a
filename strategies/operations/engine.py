"""The operations engine: runs an Operation's steps as RQ jobs, crash-safely.

Why here and not in `releases`: the engine is the executor of strategies' plans, and it depends
on them (plans, step kinds, compensation); `releases` keeps the lifecycle it calls.

How a run goes:

1. `run_operation(operation_id)` (queue "operations") **claims** the operation with a conditional
   UPDATE: it must be runnable and unclaimed (or its claimant's heartbeat stale). The job id is
   stored as `runner`; a thread beats for the claim every OPERATION_HEARTBEAT_SECONDS.
2. It **starts** the first unfinished step exactly once (`_claim_step`): under the operation's lock,
   only while the operation is in the state that allows it. It persists status, start, attempts,
   detail, log and progress (the log line "step finished" is written only after the row is). A step
   that must **wait** (bake, periodic verification, a swap still in flight, a retry) stores `wake_at`,
   re-enqueues the operation with `queue.enqueue_at` and returns: no worker is held. Very short waits
   are slept in place. One run hands back between steps after OPERATION_RUN_BUDGET_SECONDS.
3. A failed step (its error, a provider error, its deadline) starts **compensation**: the undo of
   every step that began is appended (routing to 0 % first, then swaps back, then previews cancelled)
   and run the same way, each undo retried on its own; when all have run the release is rolled back,
   or — if an undo failed for good — the operation and release fail with the error saying production
   needs a person.
4. The **recovery pass** (`operations_recover`: every OPERATION_RECOVERY_SWEEP_SECONDS from rqcron, and
   at each worker's start) re-enqueues every runnable operation whose claimant stopped beating, whose
   job is gone from Redis, or whose wake-up is overdue (no RQ scheduler moving jobs). A step found
   interrupted is run again (steps are idempotent); one interrupted `OPERATION_MAX_STEP_RUNS` times
   is treated as unknowable and the operation rolls back.
5. When an operation ends, a **reconciliation** of its applications is queued
   (`strategies.operations.reconcile`): production must be where Slipway now says it is.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import django_rq
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from portal.core import clock, events
from releases.audit.services import audit_record, origin
from releases.catalog.jobs import enqueue_slots_refresh
from releases.catalog.models import Release, ReleaseStatus
from releases.catalog.providers import ProviderError
from releases.catalog.providers.registry import provider_for
from releases.catalog.services import release_mark_failed, release_roll_back
from strategies.operations.exposure import step_exposure
from strategies.operations.models import Operation, OperationStatus, OperationStep, StepStatus
from strategies.operations.plan import compensation_for
from strategies.operations.steps import (
    DEFAULT_TIMEOUT_SECONDS,
    EXECUTORS,
    NO_DEADLINE,
    Done,
    Finished,
    LostClaim,
    Pause,
    StepContext,
    StepFailed,
    Wait,
    step_application,
)
from strategies.operations.transitions import operation_can, operation_transition

log = logging.getLogger("strategies.operations.engine")

QUEUE = "operations"
RUNNABLE = (OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.ROLLING_BACK)
UNFINISHED_STEP = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)
LIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED}


def _event(name: str, operation_id: int, position: int | None = None) -> dict[str, Any]:
    return {"extra": {"operation_event": name, "operation_id": operation_id, "step_position": position}}


# --- enqueueing ----------------------------------------------------------------------------------
def enqueue_operation(operation: Operation, *, at: datetime | None = None) -> str:
    """Queue a run of `operation` (now, or at `at`), recording the job id on the row.

    Inside a transaction the job reaches Redis when it commits (django-rq's on-commit mode).
    """
    job_id = f"operation-{operation.pk}-{uuid.uuid4().hex[:12]}"
    Operation.objects.filter(pk=operation.pk).update(job_id=job_id)
    operation.job_id = job_id
    queue = django_rq.get_queue(QUEUE)
    timeout = settings.OPERATION_JOB_TIMEOUT_SECONDS
    if at is None:
        queue.enqueue(run_operation, operation.pk, job_id=job_id, job_timeout=timeout)
    else:
        queue.enqueue_at(at, run_operation, operation.pk, job_id=job_id, job_timeout=timeout)
    return job_id


# --- the job -------------------------------------------------------------------------------------
def run_operation(operation_id: int) -> dict[str, Any]:
    """RQ job: drive the operation as far as it can go now. Safe to run any number of times."""
    job = get_current_job()
    runner = job.id if job else f"inline-{uuid.uuid4().hex[:12]}"
    with origin(via="job", job_id=runner):
        try:
            claimed = _claim(operation_id, runner)
        except Exception:
            _release_claim(operation_id, runner)  # the claiming UPDATE committed before the audited part failed
            raise
        if not claimed:
            return {"skipped": "not runnable, or another runner holds it"}
        log.info("operation %s claimed by %s", operation_id, runner, **_event("claimed", operation_id))
        beat = _Heartbeat(operation_id, runner) if job is not None else None
        try:
            outcome = _drive(operation_id, runner)
            if outcome.get("status") in ENDED:
                _reconcile_later(operation_id)
            return outcome
        except LostClaim as exc:
            log.warning("%s", exc)
            return {"skipped": str(exc)}
        finally:
            if beat is not None:
                beat.stop()
            _release_claim(operation_id, runner)


ENDED = {OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.ROLLED_BACK}
# By name: strategies.operations.reconcile builds on the engine (its repairs are operations).
RECONCILE_JOB = "strategies.operations.reconcile.reconcile_application_job"


def _reconcile_later(operation_id: int) -> None:
    """Once an operation has ended, check that production is where Slipway now says it is (and its ring
    targets' too). A failure to queue only delays that to the periodic check."""
    operation = Operation.objects.filter(pk=operation_id).first()
    if operation is None:
        return
    applications = {operation.application_id} | {
        a for a in operation.steps.values_list("parameters__application", flat=True) if isinstance(a, int)
    }
    try:
        queue = django_rq.get_queue("default")
        for application_id in sorted(applications):
            queue.enqueue(RECONCILE_JOB, application_id)
    except Exception:
        log.exception("operation %s: could not queue the reconciliation", operation_id)


class _Heartbeat:
    """Beat for the claim every OPERATION_HEARTBEAT_SECONDS while the job runs, from a thread of its own.

    So a live runner in a long provider call never looks dead, and the recovery pass can call a runner
    dead after a short silence (OPERATION_HEARTBEAT_STALE_SECONDS): a killed worker's operation goes
    on within seconds. The thread has its own database connection, closed when it stops; a failed
    beat is only logged (the run itself finds a lost claim at its next step). Only in an RQ job: the
    demo seeder's replay, under a frozen clock, has nobody to take over from it.
    """

    def __init__(self, operation_id: int, runner: str) -> None:
        self.operation_id, self.runner = operation_id, runner
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{operation_id}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopped.wait(settings.OPERATION_HEARTBEAT_SECONDS):
                try:
                    Operation.objects.filter(pk=self.operation_id, runner=self.runner).update(heartbeat_at=clock.now())
                except DatabaseError:
                    log.warning("operation %s: a heartbeat failed", self.operation_id, exc_info=True)
                    db_connection.close()
        finally:
            db_connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)


def _release_claim(operation_id: int, runner: str) -> None:
    """Give the claim up, so the recovery pass may re-enqueue the operation without waiting for staleness.

    If the run ended because the database connection died (the server terminated it, a failover), this
    connection cannot clear the claim: it is closed and the claim cleared on a new one. Before, the claim
    stayed until the heartbeat went stale (OPERATION_HEARTBEAT_STALE_SECONDS) and the operation sat idle
    that long (found by tests/faults/test_database_connection_dropped.py).
    """
    try:
        Operation.objects.filter(pk=operation_id, runner=runner).update(runner="")
    except DatabaseError:
        if db_connection.in_atomic_block:  # never close a connection under a caller's transaction
            raise
        log.warning("operation %s: the database connection was lost; releasing the claim on a new one", operation_id)
        db_connection.close()
        Operation.objects.filter(pk=operation_id, runner=runner).update(runner="")


def _claim(operation_id: int, runner: str) -> bool:
    now = clock.now()
    stale = now - timedelta(seconds=settings.OPERATION_HEARTBEAT_STALE_SECONDS)
    claimed = (
        Operation.objects.filter(pk=operation_id, status__in=RUNNABLE)
        .filter(Q(runner="") | Q(runner=runner) | Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
        .update(runner=runner, heartbeat_at=now)
    )
    if not claimed:
        return False
    with transaction.atomic():
        operation = Operation.objects.select_for_update(no_key=True).get(pk=operation_id)
        if operation_can(operation.status, "operation.running"):
            operation_transition(operation, "operation.running", actor=None, started_at=now)
    return True


def _load(operation_id: int) -> Operation:
    return Operation.objects.select_related("application", "release", "environment").get(pk=operation_id)


def _drive(operation_id: int, runner: str) -> dict[str, Any]:
    ran = 0
    began = time.monotonic()
    while True:
        operation = _load(operation_id)
        if operation.status not in (OperationStatus.RUNNING, OperationStatus.ROLLING_BACK):
            return {"status": operation.status, "steps_run": ran}
        if operation.runner != runner:
            raise LostClaim(f"operation {operation_id} was taken over by {operation.runner or 'nobody'}")
        unfinished = list(operation.steps.filter(status__in=UNFINISHED_STEP).order_by("position"))
        if not unfinished:
            _close(operation)
            continue
        now = clock.now()
        ready = [s for s in unfinished if not _retry_later(s, now) and not _behind_a_swap(s, unfinished)]
        if not ready:  # every undo left is failing and waits for its next try
            until = min(datetime.fromisoformat(s.detail["retry_at"]) for s in unfinished if _retry_later(s, now))
            return _hand_back(operation, runner, Wait(until, "Retrying a failed undo step"), ran)
        if ran and time.monotonic() - began > settings.OPERATION_RUN_BUDGET_SECONDS:
            # Hand back between steps, so one job never outlives RQ's timeout for it (OPERATION_JOB_TIMEOUT).
            return _hand_back(operation, runner, Wait(now, "Going on in a new run"), ran)
        guard = _guard_exposure(operation, ready[0])
        if isinstance(guard, Wait):
            return _hand_back(operation, runner, guard, ran)
        if guard:
            _step_failed(operation, ready[0], guard)
            continue
        outcome = _run_step(operation, ready[0], runner)
        ran += 1
        if isinstance(outcome, Wait):
            if Operation.objects.filter(pk=operation_id).values_list("status", flat=True).get() != operation.status:
                continue  # a person paused or rolled back while the step ran: act on that now, not at the wake-up
            delay = (outcome.until - clock.now()).total_seconds()
            if delay <= settings.OPERATION_INLINE_WAIT_SECONDS:
                time.sleep(max(delay, 0))
                continue
            return _hand_back(operation, runner, outcome, ran)
        if isinstance(outcome, Pause):
            if not _pause_for_a_person(operation, outcome.why):
                continue  # a person rolled back (or paused) meanwhile: act on that now
            return {"status": "paused", "steps_run": ran}


def _guard_exposure(operation: Operation, step: OperationStep) -> Wait | str | None:
    """Right before a promotion's step exposes production (`exposure`): a freeze of that production holds the
    step until it ends (a Wait; audited once per hold); a missing approval refuses it (the reason, which fails
    the step and so rolls the promotion back); None lets it start. Judged afresh, as the promotion may have
    been started hours ago; a step already begun (a swap in flight) is never held."""
    if operation.kind != Operation.Kind.PROMOTE or operation.status != OperationStatus.RUNNING:
        return None
    if step.status != StepStatus.PENDING:
        return None
    exposure = step_exposure(operation.application_id, step.kind, step.parameters, operation.release.version)
    if exposure is None:
        return None
    if exposure.approval:
        return f"“{step.title}” was not started: {exposure.approval}"
    if not exposure.frozen:
        return None
    note = f"Held: {exposure.frozen} “{step.title}” starts when it ends."
    if step.detail.get("held") != note:
        now = clock.now()
        with transaction.atomic():
            OperationStep.objects.filter(pk=step.pk).update(
                log=f"{step.log}\n{now:%H:%M:%S} {note}" if step.log else f"{now:%H:%M:%S} {note}",
                detail={**step.detail, "held": note},
            )
            audit_record(
                actor=None,
                action="operation.held",
                obj=operation,
                application=operation.application,
                after={
                    "step": step.position,
                    "environment": f"{exposure.environment.application.name} {exposure.environment.name}",
                    "until": exposure.opens_at.isoformat() if exposure.opens_at else None,
                },
                reason=exposure.frozen,
            )
    until = exposure.opens_at or clock.now() + timedelta(seconds=60)
    return Wait(until, note)


def _behind_a_swap(step: OperationStep, unfinished: list[OperationStep]) -> bool:
    """A preview is cancelled only once no undo swap of the same application is left: the provider refuses to
    cancel a preview while its swap runs, and the swap back may be waiting for it."""
    if step.kind != "cancel_preview":
        return False
    where = step.parameters.get("application")
    return any(s.kind == "swap" and s.parameters.get("application") == where for s in unfinished if s is not step)


def _retry_later(step: OperationStep, now: datetime) -> bool:
    retry_at = step.detail.get("retry_at") if step.status == StepStatus.PENDING else None
    return bool(retry_at) and datetime.fromisoformat(retry_at) > now


def _hand_back(operation: Operation, runner: str, wait: Wait, ran: int) -> dict[str, Any]:
    """Come back later (a bake, a swap still in flight, a retry): no worker is held while it waits."""
    with transaction.atomic():
        # The claim goes with the hand-back, so the job queued here can claim the operation at once.
        Operation.objects.filter(pk=operation.pk, runner=runner).update(
            wake_at=wait.until, waiting_for=wait.why[:500], runner=""
        )
        due = wait.until <= clock.now()  # going on in a new run: queued now, not left to a scheduler
        enqueue_operation(operation, at=None if due else wait.until)
    log.info("operation %s waits until %s", operation.pk, wait.until, **_event("waiting", operation.pk))
    return {"status": "waiting", "until": wait.until.isoformat(), "steps_run": ran}


def _claim_step(operation_id: int, step_id: int, runner: str) -> tuple[OperationStep, str] | None:
    """Start a step, exactly once per decision: returns the step and how ("start", "resume" after a
    runner died in it, "give_up" after OPERATION_MAX_STEP_RUNS such deaths), or None.

    Under the operation's lock (which `compensate` takes too), the step must still be unfinished and
    the operation in the state that allows it: a forward step while it runs, an undo step while it
    rolls back. So a rollback that lands between choosing a step and starting it wins: the step is
    not started (it was skipped), and a step that was started is on the undo list compensation builds.
    A forward step found interrupted during a rollback is abandoned: the undo steps cover it.
    """
    now = clock.now()
    with transaction.atomic():
        operation = Operation.objects.select_for_update(no_key=True).get(pk=operation_id)
        if operation.runner != runner:
            raise LostClaim(f"operation {operation_id} was taken over by {operation.runner or 'nobody'}")
        if operation.status not in (OperationStatus.RUNNING, OperationStatus.ROLLING_BACK):
            return None
        step = OperationStep.objects.select_for_update(no_key=True).get(pk=step_id)
        if step.status not in UNFINISHED_STEP:
            return None
        interrupted = step.status == StepStatus.RUNNING
        if operation.status == OperationStatus.ROLLING_BACK and not step.parameters.get("undo"):
            note = "Abandoned: the operation is rolling back, and its undo steps cover this one."
            OperationStep.objects.filter(pk=step.pk).update(
                status=StepStatus.FAILED if interrupted else StepStatus.SKIPPED,
                finished_at=now,
                log=f"{step.log}\n{now:%H:%M:%S} {note}" if step.log else note,
            )
            return None
        if interrupted and step.attempts >= settings.OPERATION_MAX_STEP_RUNS:
            return step, "give_up"
        changes: dict[str, Any] = {"status": StepStatus.RUNNING}
        if step.status == StepStatus.PENDING or interrupted:  # a run; coming back from a wait is not another
            changes["attempts"] = F("attempts") + 1
        if step.started_at is None:
            changes["started_at"] = now
        if step.deadline_at is None and step.kind not in NO_DEADLINE:
            timeout = step.parameters.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
            changes["deadline_at"] = now + timedelta(seconds=timeout)
        OperationStep.objects.filter(pk=step.pk).update(**changes)
        Operation.objects.filter(pk=operation_id).update(heartbeat_at=now, wake_at=None, waiting_for="")
    step.refresh_from_db()
    return step, "resume" if interrupted else "start"


def _run_step(operation: Operation, chosen: OperationStep, runner: str) -> Done | Wait | Pause | Finished | None:
    claimed = _claim_step(operation.pk, chosen.pk, runner)
    if claimed is None:
        return None
    step, how = claimed
    interrupted = how == "resume"
    if how == "give_up":
        _step_failed(
            operation,
            step,
            f"“{step.title}” was interrupted {step.attempts} times, so its outcome cannot be known; rolling back.",
        )
        return None
    operation.refresh_from_db(fields=["status", "error"])
    log.info(
        "operation %s step %s (%s) started",
        operation.pk,
        step.position,
        step.kind,
        **_event("step_started", operation.pk, step.position),
    )
    application = step_application(operation, step)
    ctx = StepContext(
        operation=operation, step=step, provider=provider_for(application), runner=runner, application=application
    )
    if interrupted:
        ctx.log("Resumed after an interruption (the previous runner stopped mid-step).")
    try:
        outcome = EXECUTORS[step.kind](ctx)
    except LostClaim:
        raise
    except (StepFailed, ProviderError, TimeoutError) as exc:
        _step_failed(operation, step, _describe(step, exc))
        return None
    if isinstance(outcome, Done):
        OperationStep.objects.filter(pk=step.pk, status=StepStatus.RUNNING).update(
            status=StepStatus.SUCCEEDED, finished_at=clock.now(), progress=100, detail={**step.detail, **outcome.detail}
        )
        events.publish("operation.step_finished", step, operation.application)
        if step.kind in CHANGES_SLOTS:
            _observe_slots(application)
    elif isinstance(outcome, Wait | Pause):
        OperationStep.objects.filter(pk=step.pk, status=StepStatus.RUNNING).update(
            status=StepStatus.WAITING, detail={**step.detail, **outcome.detail}
        )
    log.info(
        "operation %s step %s finished: %s",
        operation.pk,
        step.position,
        type(outcome).__name__,
        **_event("step_finished", operation.pk, step.position),
    )
    return outcome


# Steps after which what the slots run or route has changed: the portal's observed view is refreshed.
CHANGES_SLOTS = {"swap", "set_traffic", "swap_preview", "cancel_preview"}


def _observe_slots(application: Any) -> None:
    """Have the observed slots (dashboard, application page) refreshed by a background job: reading
    every slot from the provider (on Azure a few ARM calls and a health probe per slot) does not
    belong in the operation's own run. A failure to enqueue only leaves the picture stale."""

    try:
        enqueue_slots_refresh(application)
    except Exception:  # the step succeeded; a stale picture must not fail it
        log.exception("operation: asking for a refresh of the slots of %s failed", application)


def _describe(step: OperationStep, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"“{step.title}” timed out: {exc}"
    if isinstance(exc, ProviderError):
        return f"“{step.title}” failed: the provider said: {exc}"
    return f"“{step.title}” failed: {exc}"


def _step_failed(operation: Operation, step: OperationStep, error: str) -> None:
    """Record why the step failed and decide what comes next.

    A forward step's failure starts compensation (a promotion) or fails the operation (a rollback's
    own steps). An undo step's failure is retried on its own, up to OPERATION_UNDO_ATTEMPTS runs, while
    the other undo steps go on; one that fails for good is reported by `_close` once the rest have run,
    so routing back to 0 % and cancelling a preview are never skipped because a swap back failed.
    """
    now = clock.now()
    current = Operation.objects.get(pk=operation.pk)
    line = f"{now:%H:%M:%S} {error}"
    text = f"{step.log}\n{line}" if step.log else line
    undo = bool(step.parameters.get("undo"))
    if current.status == OperationStatus.ROLLING_BACK and undo and step.attempts < settings.OPERATION_UNDO_ATTEMPTS:
        retry_at = now + timedelta(seconds=min(2.0**step.attempts, 60.0))
        again: dict[str, Any] = {}
        if step.kind == "swap" and step.resume_token:
            # The next try begins a new swap, after the one this try began has ended (never resumes a failed one).
            again = {"parameters": {**step.parameters, "await_token": step.resume_token}, "resume_token": ""}
            step.detail.pop("awaited", None)
            step.detail.pop("swap_requested_at", None)
        OperationStep.objects.filter(pk=step.pk).update(
            **again,
            status=StepStatus.PENDING,
            deadline_at=None,  # the next run has its own deadline
            log=f"{text} Trying again at {retry_at:%H:%M:%S} (run {step.attempts + 1} of "
            f"{settings.OPERATION_UNDO_ATTEMPTS}); the other undo steps go on meanwhile.",
            detail={**step.detail, "retry_at": retry_at.isoformat(), "error": error},
        )
        log.warning(
            "operation %s: %s (will retry)", operation.pk, error, **_event("step_failed", operation.pk, step.position)
        )
        return
    OperationStep.objects.filter(pk=step.pk).update(
        status=StepStatus.FAILED, finished_at=now, log=text, detail={**step.detail, "error": error}
    )
    log.warning("operation %s: %s", operation.pk, error, **_event("step_failed", operation.pk, step.position))
    if current.status in (OperationStatus.RUNNING, OperationStatus.PAUSED):  # a pause lands between steps
        if current.kind == Operation.Kind.PROMOTE:
            compensate(operation_id=operation.pk, error=error, actor=None)
        else:
            _fail(current, error)


# --- compensation, closing -----------------------------------------------------------------------
def compensate(*, operation_id: int, error: str, actor: Any, reason: str = "") -> Operation | None:
    """Start undoing: forward steps not begun are skipped, the undo steps appended, status rolling back.

    Returns None when the operation can no longer roll back (it finished, or is rolling back already).
    Under the operation's lock, which a runner takes to start a step (`_claim_step`), so the undo list
    is built from what the steps are: a step that began (running, waiting on its provider, failed,
    succeeded) is undone; one not begun is skipped and can no longer start. A step running right now is
    left to its runner, who reads the new status before choosing the next step.
    """
    with transaction.atomic():
        operation = Operation.objects.select_for_update(no_key=True).select_related("application").get(pk=operation_id)
        if operation.kind != Operation.Kind.PROMOTE or not operation_can(operation.status, "operation.rolling_back"):
            return None  # a rollback or a repair is not undone: undoing it would bring back what it took away
        steps = list(operation.steps.order_by("position"))
        operation.steps.filter(status__in=(StepStatus.PENDING, StepStatus.WAITING)).update(status=StepStatus.SKIPPED)
        undo = compensation_for(steps)
        last = steps[-1].position if steps else 0
        OperationStep.objects.bulk_create(
            OperationStep(
                operation=operation,
                position=last + i,
                kind=s.kind,
                title=s.title,
                parameters={**s.parameters, "undo": True},
            )
            for i, s in enumerate(undo, start=1)
        )
        operation_transition(
            operation,
            "operation.rolling_back",
            actor=actor,
            reason=reason or error,
            error=error[:2000],
            started_at=operation.started_at or clock.now(),
            wake_at=None,
            waiting_for="",
        )
    return operation


def _close(operation: Operation) -> None:
    """Every step is done: a rollback that completed rolls the release back; a plan without a final step succeeds.

    A rollback whose undo steps did not all succeed fails the operation, naming each, for a person.
    """
    with transaction.atomic():
        current = Operation.objects.select_for_update(no_key=True).get(pk=operation.pk)
        if operation_can(current.status, "operation.rolled_back"):
            failed = [
                s
                for s in current.steps.filter(status=StepStatus.FAILED).order_by("position")
                if s.parameters.get("undo")
            ]
            if failed:
                undone = "; ".join(s.detail.get("error") or s.title for s in failed)
                _fail(current, f"{current.error} Then undoing failed: {undone} Production needs a person to check it.")
                return
            release = Release.objects.select_for_update(no_key=True).get(pk=current.release_id)
            if release.status == ReleaseStatus.ROLLING_OUT:
                release_roll_back(release=release, actor=None, reason=current.error or "Rolled back")
            operation_transition(current, "operation.rolled_back", actor=None, reason=current.error)
        elif operation_can(current.status, "operation.succeeded"):
            operation_transition(current, "operation.succeeded", actor=None, reason=current.error)


def _fail(operation: Operation, error: str) -> None:

    with transaction.atomic():
        current = Operation.objects.select_for_update(no_key=True).get(pk=operation.pk)
        if not operation_can(current.status, "operation.failed"):
            return
        release = Release.objects.select_for_update(no_key=True).get(pk=current.release_id)
        if release.status == ReleaseStatus.ROLLING_OUT:
            release_mark_failed(release=release, actor=None, reason=error)
        operation_transition(current, "operation.failed", actor=None, reason=error, error=error[:2000])


def _pause_for_a_person(operation: Operation, why: str) -> bool:
    """Pause for a person's decision; False when the operation is no longer running (a person acted first)."""
    with transaction.atomic():
        current = Operation.objects.select_for_update(no_key=True).get(pk=operation.pk)
        if current.status != OperationStatus.RUNNING:  # a person may have paused or rolled it back meanwhile
            return False
        operation_transition(current, "operation.paused", actor=None, reason=why, waiting_for=why[:500])
        return True


# --- recovery ------------------------------------------------------------------------------------
def _job_alive(job_id: str) -> bool:
    if not job_id:
        return False
    queue = django_rq.get_queue(QUEUE)
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=True) in LIVE_JOB_STATES


def _overdue_wake_up(operation: Operation, now: datetime) -> bool:
    """Its wake-up job is still scheduled in Redis OPERATION_WAKE_UP_GRACE_SECONDS past its time: nothing is
    moving scheduled jobs.

    RQ's scheduler runs inside one `--with-scheduler` worker that holds a lock: when that worker dies,
    another takes the lock over only after about two minutes, and when Redis goes away the scheduler
    exits until the worker's maintenance interval (10 minutes). Every bake and verification would wait
    that long (found by tests/faults/test_redis_outage.py). So the recovery pass, which rqcron runs every
    OPERATION_RECOVERY_SWEEP_SECONDS on its own, is the engine's own wake-up sweep. The stale job is deleted
    before the operation is re-enqueued, so it cannot run a second time when a scheduler comes back (and
    if it did, its claim would find the operation taken).
    """
    if (
        operation.wake_at is None
        or (now - operation.wake_at).total_seconds() < settings.OPERATION_WAKE_UP_GRACE_SECONDS
    ):
        return False
    queue = django_rq.get_queue(QUEUE)
    try:
        job = Job.fetch(operation.job_id, connection=queue.connection)
    except NoSuchJobError:
        return False
    if job.get_status(refresh=True) != JobStatus.SCHEDULED:
        return False
    job.delete()
    return True


def operations_recover(*, stale_after: float | None = None) -> list[tuple[int, str]]:
    """Re-enqueue every runnable operation that nobody is driving; returns (id, why) for each.

    Nobody is driving it when its claimant's heartbeat is older than `stale_after` seconds
    (OPERATION_HEARTBEAT_STALE_SECONDS by default), or when it is unclaimed and its job is no longer
    queued, scheduled or running in Redis (a worker died before claiming, or Redis lost its data), or
    its wake-up job is still scheduled past its time (`_overdue_wake_up`: no scheduler is moving jobs).
    The re-enqueued job takes the claim over and resumes the interrupted step.
    """
    stale_after = settings.OPERATION_HEARTBEAT_STALE_SECONDS if stale_after is None else stale_after
    now = clock.now()
    recovered = []
    for operation in Operation.objects.filter(status__in=RUNNABLE).select_related("application"):
        if operation.runner:
            beat = operation.heartbeat_at
            if beat is not None and (now - beat).total_seconds() < stale_after:
                continue
            why = f"its runner {operation.runner} stopped beating"
            # The new job's claim succeeds only on a stale heartbeat: make the staleness we judged count.
            Operation.objects.filter(pk=operation.pk, runner=operation.runner).update(
                heartbeat_at=now - timedelta(seconds=settings.OPERATION_HEARTBEAT_STALE_SECONDS + 1)
            )
        elif _overdue_wake_up(operation, now):
            why = (
                f"its wake-up job {operation.job_id} was still scheduled "
                f"{settings.OPERATION_WAKE_UP_GRACE_SECONDS:g} s past its time"
            )
        elif _job_alive(operation.job_id):
            continue
        else:
            why = f"its job {operation.job_id or '(none)'} is gone from Redis"
        with transaction.atomic():
            enqueue_operation(operation)
            audit_record(
                actor=None,
                action="operation.recovered",
                obj=operation,
                application=operation.application,
                reason=f"Re-enqueued because {why}.",
            )
        log.warning("operation %s re-enqueued: %s", operation.pk, why)
        recovered.append((operation.pk, why))
    return recovered


def recover_operations_job() -> dict[str, Any]:
    """Periodic (portal.cron): the recovery pass."""
    job = get_current_job()
    with origin(via="job", job_id=job.id if job else ""):
        return {"recovered": operations_recover()}
