"""What each kind of step does. Every executor is idempotent: run twice, it does the work once.

An executor gets a `StepContext` and returns `Done`, `Wait` (come back at a time: bake, periodic
checks), `Pause` (a person must decide) or `Finished` (it closed the operation itself, in one
transaction with the release's transition); it raises `StepFailed` (or a provider error, or
`TimeoutError` past the step's deadline) when the step failed. Provider calls go through
`ctx.call`, which retries transient errors until the step's deadline and logs each attempt.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from portal.core import clock
from releases.catalog.models import Application, Release, ReleaseStatus
from releases.catalog.providers import (
    Attempt,
    HostingProvider,
    MetricsSample,
    NotFoundError,
    ProviderError,
    TransientError,
    call_with_retry,
)
from releases.catalog.providers.registry import provider_for
from releases.catalog.services import release_go_live, release_restore, release_roll_back
from strategies.operations.analysis import FAIL, PASS, AnalysisConfig, analyse
from strategies.operations.models import Operation, OperationStatus, OperationStep, StepStatus
from strategies.operations.transitions import operation_can, operation_transition

log = logging.getLogger("strategies.operations.engine")


class StepFailed(Exception):
    """The step cannot succeed; `str()` says why, for the operation's error and the page."""


class LostClaim(Exception):
    """Another runner took the operation over (our heartbeat went stale); stop without touching it."""


@dataclass
class Done:
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Wait:
    until: datetime
    why: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pause:
    why: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Finished:
    pass


Outcome = Done | Wait | Pause | Finished


def step_application(operation: Operation, step: OperationStep) -> Application:
    """The application a step acts on: the operation's, or another one named by the step (a ring target)."""
    other = step.parameters.get("application")
    if other is None or other == operation.application_id:
        return operation.application
    return Application.objects.get(pk=other)


@dataclass
class StepContext:
    operation: Operation
    step: OperationStep
    provider: HostingProvider  # the provider of `application`
    runner: str  # the RQ job id holding the claim
    application: Application  # what the step acts on (`step_application`)
    sleep: Callable[[float], None] = time.sleep

    def log(self, message: str) -> None:
        line = f"{clock.now():%H:%M:%S} {message}"
        self.step.log = f"{self.step.log}\n{line}" if self.step.log else line
        OperationStep.objects.filter(pk=self.step.pk).update(log=self.step.log)

    def save(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.step, name, value)
        OperationStep.objects.filter(pk=self.step.pk).update(**fields)

    def update_detail(self, **values: Any) -> None:
        self.save(detail={**self.step.detail, **values})

    def heartbeat(self) -> None:
        now = clock.now()
        if not Operation.objects.filter(pk=self.operation.pk, runner=self.runner).update(heartbeat_at=now):
            raise LostClaim(f"operation {self.operation.pk} was taken over by another runner")

    def remaining(self) -> float:
        if self.step.deadline_at is None:
            return math.inf
        return (self.step.deadline_at - clock.now()).total_seconds()

    def call[T](self, fn: Callable[[], T], doing: str, *, past_deadline: bool = False) -> T:
        """A provider call, retried on transient errors until the step's deadline (at most
        OPERATION_CALL_BUDGET_SECONDS); each attempt logged. `past_deadline` reads are made even after the
        deadline (what became of a swap must be read before the step decides it timed out)."""
        budget = settings.OPERATION_CALL_BUDGET_SECONDS
        remaining = budget if past_deadline else min(self.remaining(), budget)
        if remaining <= 0:
            raise TimeoutError(f"{doing}: the step's deadline passed.")

        def on_attempt(attempt: Attempt) -> None:
            outcome = "ok" if not attempt.error else attempt.error
            retry = f"; retrying in {attempt.waited_s:.1f} s" if attempt.waited_s else ""
            self.log(f"{doing}: attempt {attempt.number}: {outcome}{retry}")
            self.save(attempts=self.step.attempts)  # attempts counts runs; the log keeps each call
            self.heartbeat()

        return call_with_retry(fn, deadline_s=remaining, on_attempt=on_attempt, sleep=self.sleep)


# --- executors -----------------------------------------------------------------------------------
def check_health(ctx: StepContext) -> Outcome:
    slot = ctx.step.parameters["slot"]
    result = ctx.call(lambda: ctx.provider.check_health(ctx.application, slot), f"Health check of {slot}")
    detail = {"healthy": result.healthy, "status_code": result.status_code, "detail": result.detail}
    if not result.healthy:
        ctx.update_detail(**detail)
        raise StepFailed(f"The {slot} slot is unhealthy: HTTP {result.status_code} {result.detail}".strip())
    return Done(detail)


def set_traffic(ctx: StepContext) -> Outcome:
    slot, percent = ctx.step.parameters["slot"], ctx.step.parameters["percent"]
    ctx.call(lambda: ctx.provider.set_traffic(ctx.application, slot, percent), f"Route {percent} % to {slot}")
    return Done({"percent": percent})


def bake(ctx: StepContext) -> Outcome:
    step = ctx.step
    until = step.detail.get("until")
    if until is None:
        until = (step.started_at + timedelta(seconds=step.parameters["seconds"])).isoformat()
        ctx.update_detail(until=until)
    due = datetime.fromisoformat(until)
    now = clock.now()
    if now >= due:
        return Done()
    total = max(step.parameters["seconds"], 1e-6)
    ctx.save(progress=min(99, int(100 * (1 - (due - now).total_seconds() / total))))
    return Wait(due, f"Baking until {due:%H:%M:%S} UTC")


def analyse_canary(ctx: StepContext) -> Outcome:
    p, detail = ctx.step.parameters, ctx.step.detail
    now = clock.now()
    extended_until = detail.get("extended_until")
    if extended_until and now < datetime.fromisoformat(extended_until) and not detail.get("accept_inconclusive"):
        return Wait(datetime.fromisoformat(extended_until), "Baking longer: the last analysis was inconclusive")
    app = ctx.application
    slot = p["canary_slot"]
    health = ctx.call(lambda: ctx.provider.check_health(app, slot), f"Health check of {slot}")
    if not health.healthy:
        ctx.update_detail(health={"healthy": False, "status_code": health.status_code, "detail": health.detail})
        raise StepFailed(
            f"The canary ({slot}) failed its health check at the analysis: HTTP {health.status_code} {health.detail}"
        )
    # Stable may be another application: a ring target's production is compared with the operation's.
    stable_id = p.get("stable_application", app.pk)
    stable_app = app if stable_id == app.pk else Application.objects.get(pk=stable_id)
    stable_provider = ctx.provider if stable_app is app else provider_for(stable_app)
    canary = ctx.call(lambda: ctx.provider.metrics(app, p["canary_slot"], minutes=p["minutes"]), "Canary metrics")
    stable = ctx.call(
        lambda: stable_provider.metrics(stable_app, p["stable_slot"], minutes=p["minutes"]), "Stable metrics"
    )
    verdict = analyse(canary, stable, AnalysisConfig.from_parameters(p))
    analyses = [*detail.get("analyses", []), {"at": now.isoformat(), **verdict.as_detail()}]
    ctx.update_detail(analyses=analyses, verdict=verdict.verdict)
    ctx.log(f"Analysis: {verdict.verdict}: {' '.join(verdict.reasons)}")
    if verdict.verdict == PASS:
        return Done()
    if verdict.verdict == FAIL:
        raise StepFailed("Canary analysis failed. " + " ".join(verdict.reasons))
    if detail.get("accept_inconclusive"):
        return Done({"accepted": "A person resumed the operation, accepting an inconclusive analysis."})
    if not extended_until:
        until = now + timedelta(seconds=p["extend_seconds"])
        ctx.update_detail(extended_until=until.isoformat())
        return Wait(until, "The analysis was inconclusive; baking once more")
    return Pause(
        "The canary analysis was inconclusive twice (" + " ".join(verdict.reasons) + ") Resume to accept the canary "
        "and go on, or roll back."
    )


def swap(ctx: StepContext) -> Outcome:
    """Swap `source` into `target` once: a persisted token is resumed; a target already running the
    expected version means the swap happened (perhaps begun by a runner that died before saving).

    A swap still in flight after OPERATION_SWAP_POLL_SECONDS hands the operation back (`Wait`) and is
    followed by its token on the next run, so no worker sits on a slow swap. What became of a resumed
    swap is read before its deadline is looked at: a swap that landed while nobody watched succeeded."""
    p, app, provider = ctx.step.parameters, ctx.application, ctx.provider
    source, target, expect = p["source"], p["target"], p["expect_version"]

    def target_version() -> str:
        return next((s.version for s in provider.slot_states(app) if s.name == target), "")

    if p.get("await_token") and not ctx.step.detail.get("awaited"):
        waiting = _await_earlier_swap(ctx, p["await_token"])
        if waiting is not None:
            return waiting
    if ctx.step.resume_token:
        token = ctx.step.resume_token
        handle = ctx.call(lambda: provider.resume_swap(app, token), "Resume the swap", past_deadline=True)
        ctx.log(f"Resuming swap {token}")
    else:
        intent = ctx.step.detail.get("swap_requested_at")
        if intent:
            # A runner asked for a swap and died before saving its token: that swap may be running. Give it
            # time to land (a second swap would undo it) before deciding that it never happened.
            settle_until = datetime.fromisoformat(intent) + timedelta(seconds=settings.OPERATION_SWAP_SETTLE_SECONDS)
            while clock.now() < settle_until and ctx.call(target_version, f"Read what {target} runs") != expect:
                ctx.heartbeat()
                ctx.sleep(min(1.0, max(0.01, (settle_until - clock.now()).total_seconds())))
        if p.get("record_baseline") and "baseline" not in ctx.step.detail:
            _record_baseline(ctx, target)
        ctx.update_detail(swap_requested_at=clock.now().isoformat())

        def start() -> Any:
            if target_version() == expect:
                return None
            return provider.begin_swap(app, source, target)

        handle = ctx.call(start, f"Swap {source} into {target}")
        if handle is None:
            return Done({"swapped": False, "note": f"{target} already runs {expect}; nothing to swap."})
        log.info("operation %s swap begun", ctx.operation.pk, extra=_event(ctx, "swap_begun"))
        ctx.save(resume_token=handle.resume_token)
        ctx.log(f"Swap begun; resume token {handle.resume_token}")
        log.info("operation %s swap token saved", ctx.operation.pk, extra=_event(ctx, "swap_token_saved"))
    if not _follow(ctx, handle, lambda: provider.resume_swap(app, ctx.step.resume_token), "the swap"):
        if ctx.remaining() <= 0:
            # Before calling it timed out, look at what the target runs: a poller that has not polled yet (the
            # Azure SDK's polls at its interval) says "running" of a swap that has landed.
            if ctx.call(target_version, f"Read what {target} runs", past_deadline=True) == expect:
                return Done({"swapped": True, "token": ctx.step.resume_token, "note": "landed by the deadline"})
            raise TimeoutError(f"The swap of {source} into {target} did not finish before the step's deadline.")
        return _come_back(ctx, f"Waiting for the swap of {source} into {target} to finish")
    found = ctx.call(target_version, f"Read what {target} runs", past_deadline=True)
    if found != expect:
        raise StepFailed(f"After the swap {target} runs {found or 'an unknown version'}, not {expect}.")
    return Done({"swapped": True, "token": ctx.step.resume_token})


BASELINE_MINUTES = 5
BASELINE_MAX_LATENCIES = 500


def _record_baseline(ctx: StepContext, slot: str) -> None:
    """What `slot` served over the last minutes before the swap: the verification after it compares
    error rate and latency with this. Without it (the provider could not say) verification is health only."""
    try:
        sample = ctx.call(
            lambda: ctx.provider.metrics(ctx.application, slot, minutes=BASELINE_MINUTES), f"Baseline metrics of {slot}"
        )
    except (ProviderError, TimeoutError) as exc:
        ctx.log(f"No baseline of {slot} ({exc}); its verification will look at health only")
        ctx.update_detail(baseline=None)
        return
    latencies = sample.latencies_ms
    if len(latencies) > BASELINE_MAX_LATENCIES:
        latencies = [latencies[int(i * len(latencies) / BASELINE_MAX_LATENCIES)] for i in range(BASELINE_MAX_LATENCIES)]
    ctx.update_detail(
        baseline={"slot": slot, "requests": sample.requests, "errors": sample.errors, "latencies_ms": latencies}
    )


def _baseline(ctx: StepContext, slot: str) -> MetricsSample | None:
    """The baseline the operation's promotion swap into `slot` recorded, if any."""
    for step in OperationStep.objects.filter(operation_id=ctx.operation.pk, kind="swap").order_by("-position"):
        recorded = step.detail.get("baseline")
        if recorded and recorded.get("slot") == slot and not step.parameters.get("undo"):
            return MetricsSample(recorded["requests"], recorded["errors"], list(recorded["latencies_ms"]))
    return None


def _follow(ctx: StepContext, handle: Any, resume: Callable[[], Any], what: str) -> bool:
    """Poll a swap in flight for up to OPERATION_SWAP_POLL_SECONDS (never past the step's deadline, but
    at least once): True when it finished, False when it is still running. A failed swap raises its
    provider error; a failed poll is resumed by the token, never begun again."""
    poll_until = time.monotonic() + max(0.0, min(settings.OPERATION_SWAP_POLL_SECONDS, ctx.remaining()))
    poll = 0.5
    while True:
        ctx.heartbeat()
        left = poll_until - time.monotonic()
        try:
            handle.result(timeout=max(0.0, min(poll, left)))
            return True
        except TimeoutError:
            if left <= 0:
                return False
            poll = min(poll * 2, 5.0)
        except TransientError as exc:
            if left <= 0:
                return False
            ctx.log(f"Polling {what} failed ({exc}); resuming it by its token")
            ctx.sleep(min(poll, max(left, 0.01)))
            poll = min(poll * 2, 5.0)
            handle = ctx.call(resume, f"Resume {what}", past_deadline=True)


def _come_back(ctx: StepContext, why: str) -> Wait:
    return Wait(clock.now() + timedelta(seconds=settings.OPERATION_SWAP_RECHECK_SECONDS), why)


def _await_earlier_swap(ctx: StepContext, token: str) -> Wait | None:
    """Undoing a swap that did not finish: it may still be running at the provider, and would land after
    the swap back (leaving production on the build being rolled back). Wait for it to end first — by
    coming back for it, not by holding the worker. None once it ended."""
    provider, app = ctx.provider, ctx.application

    def resume() -> Any:
        return provider.resume_swap(app, token)

    try:
        handle = ctx.call(resume, "Resume the interrupted swap", past_deadline=True)
    except NotFoundError as exc:  # the provider no longer knows it: it ended long ago
        ctx.update_detail(awaited=f"the provider no longer knows it ({exc})")
        return None
    except TransientError as exc:  # cannot tell now: never swap back blind, come back
        ctx.log(f"The interrupted swap cannot be read now ({exc}); trying again shortly")
        return _come_back(ctx, "Waiting to read the interrupted swap")
    try:
        finished = _follow(ctx, handle, resume, "the interrupted swap")
    except TransientError as exc:
        ctx.log(f"The interrupted swap cannot be read now ({exc}); trying again shortly")
        return _come_back(ctx, "Waiting to read the interrupted swap")
    except ProviderError as exc:  # it failed: nothing of it to wait for
        outcome = f"it failed ({exc})"
    else:
        if not finished:
            if ctx.remaining() <= 0:
                raise TimeoutError(
                    "The interrupted swap did not end before the step's deadline; production needs a person."
                )
            ctx.log(f"Waiting for the interrupted swap {token} to end before swapping back")
            return _come_back(ctx, "Waiting for the interrupted swap to end before swapping back")
        outcome = "it completed"
    ctx.log(f"The interrupted swap ended: {outcome}")
    ctx.update_detail(awaited=outcome)
    return None


def swap_preview(ctx: StepContext) -> Outcome:
    p = ctx.step.parameters
    ctx.call(lambda: ctx.provider.apply_swap_preview(ctx.application, p["source"], p["target"]), "Apply the preview")
    return Done()


def cancel_preview(ctx: StepContext) -> Outcome:
    source = ctx.step.parameters["source"]
    ctx.call(lambda: ctx.provider.cancel_swap_preview(ctx.application, source), "Cancel the preview")
    return Done()


def verify_health(ctx: StepContext) -> Outcome:
    p, step = ctx.step.parameters, ctx.step
    slot = p["slot"]
    result = ctx.call(lambda: ctx.provider.check_health(ctx.application, slot), f"Health check of {slot}")
    now = clock.now()
    check = {"at": now.isoformat(), "healthy": result.healthy, "code": result.status_code}
    checks = [*step.detail.get("checks", []), check]
    ctx.update_detail(checks=checks[-50:])
    if not result.healthy:
        raise StepFailed(
            f"{slot} failed its health check during verification: HTTP {result.status_code} {result.detail}"
        )
    elapsed = (now - step.started_at).total_seconds()
    baseline = _baseline(ctx, slot) if p.get("compare_with_baseline") else None
    if baseline is not None:
        since = max(1, math.ceil(elapsed / 60))
        served = ctx.call(lambda: ctx.provider.metrics(ctx.application, slot, minutes=since), f"Metrics of {slot}")
        verdict = analyse(served, baseline, AnalysisConfig.from_parameters(p))
        check["analysis"] = verdict.verdict
        ctx.update_detail(checks=[*checks[:-1], check][-50:], analysis=verdict.as_detail())
        if verdict.verdict == FAIL:
            raise StepFailed(f"{slot} is worse than before the swap: " + " ".join(verdict.reasons))
    if elapsed >= p["seconds"]:
        return Done()
    ctx.save(progress=min(99, int(100 * elapsed / max(p["seconds"], 1e-6))))
    end = step.started_at + timedelta(seconds=p["seconds"])
    return Wait(min(now + timedelta(seconds=p["interval_seconds"]), end), f"Verifying {slot} until {end:%H:%M:%S} UTC")


def approve_ring(ctx: StepContext) -> Outcome:
    """A ring with its own approval: pause until an approver approves it (`services.ring_approve`)."""
    approval = ctx.step.detail.get("approval")
    if approval:
        return Done()
    return Pause(
        f"“{ctx.step.parameters['ring_name']}” waits for an approver of production to approve it before it starts."
    )


def _finish_step(step: OperationStep, now: datetime) -> None:
    OperationStep.objects.filter(pk=step.pk).update(status=StepStatus.SUCCEEDED, finished_at=now, progress=100)


def _paused(operation: Operation) -> Pause | None:
    """A person paused after the final step was started: it waits for their resume (under the operation's lock,
    taken before the releases', as everywhere)."""
    current = Operation.objects.select_for_update(no_key=True).get(pk=operation.pk)
    if current.status == OperationStatus.PAUSED:
        return Pause("Paused before the last step; resume to complete it.")
    return None


def _succeed_operation(operation: Operation, now: datetime) -> None:
    current = Operation.objects.select_for_update(no_key=True).get(pk=operation.pk)
    if not operation_can(current.status, "operation.succeeded"):
        raise StepFailed(f"The operation is no longer running ({current.status}); it was not completed.")
    operation_transition(operation, "operation.succeeded", actor=None, finished_at=now)


def go_live(ctx: StepContext) -> Outcome:
    """The release goes live (superseding the previous one) with the operation's success, in one transaction."""

    operation, now = ctx.operation, clock.now()
    with transaction.atomic():
        if waiting := _paused(operation):
            return waiting
        release = Release.objects.select_for_update(no_key=True).get(pk=operation.release_id)
        if release.status == ReleaseStatus.ROLLING_OUT:
            release_go_live(release=release, actor=None, reason=f"Promoted by operation {operation.pk}")
        _finish_step(ctx.step, now)
        _succeed_operation(operation, now)
    return Finished()


def restore_previous(ctx: StepContext) -> Outcome:
    """Rollback operation: the live release is rolled back and the previous one restored, in one transaction."""

    operation, now = ctx.operation, clock.now()
    previous_id = ctx.step.parameters["previous_release"]
    with transaction.atomic():
        if waiting := _paused(operation):
            return waiting
        release = Release.objects.select_for_update(no_key=True).get(pk=operation.release_id)
        previous = Release.objects.select_for_update(no_key=True).get(pk=previous_id)
        if release.status == ReleaseStatus.LIVE:
            release_roll_back(release=release, actor=operation.started_by, reason=operation.reason)
        if previous.status == ReleaseStatus.SUPERSEDED:
            release_restore(release=previous, actor=operation.started_by, reason=operation.reason)
        _finish_step(ctx.step, now)
        _succeed_operation(operation, now)
    return Finished()


def _event(ctx: StepContext, name: str) -> dict[str, Any]:
    return {"operation_event": name, "operation_id": ctx.operation.pk, "step_position": ctx.step.position}


EXECUTORS: dict[str, Callable[[StepContext], Outcome]] = {
    "check_health": check_health,
    "set_traffic": set_traffic,
    "bake": bake,
    "analyse": analyse_canary,
    "swap": swap,
    "swap_preview": swap_preview,
    "cancel_preview": cancel_preview,
    "verify_health": verify_health,
    "go_live": go_live,
    "restore": restore_previous,
    "approve_ring": approve_ring,
}

# Steps with no deadline of their own: they wait rather than work.
NO_DEADLINE = {"bake", "verify_health", "analyse", "go_live", "restore", "approve_ring"}
DEFAULT_TIMEOUT_SECONDS = 120
__all__ = ["EXECUTORS", "ProviderError", "StepContext", "StepFailed"]
