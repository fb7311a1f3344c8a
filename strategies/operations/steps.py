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
from releases.catalog.providers import Attempt, HostingProvider, ProviderError, TransientError, call_with_retry
from releases.catalog.providers.registry import provider_for
from releases.catalog.services import release_go_live, release_restore, release_roll_back
from strategies.operations.analysis import FAIL, PASS, AnalysisConfig, analyse
from strategies.operations.models import Operation, OperationStep, StepStatus
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

    def call[T](self, fn: Callable[[], T], doing: str) -> T:
        """A provider call, retried on transient errors until the step's deadline; each attempt logged."""
        remaining = self.remaining()
        if remaining <= 0:
            raise TimeoutError(f"{doing}: the step's deadline passed.")

        def on_attempt(attempt: Attempt) -> None:
            outcome = "ok" if not attempt.error else attempt.error
            retry = f"; retrying in {attempt.waited_s:.1f} s" if attempt.waited_s else ""
            self.log(f"{doing}: attempt {attempt.number}: {outcome}{retry}")
            self.save(attempts=self.step.attempts)  # attempts counts runs; the log keeps each call
            self.heartbeat()

        return call_with_retry(fn, deadline_s=min(remaining, 600.0), on_attempt=on_attempt, sleep=self.sleep)


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
    expected version means the swap happened (perhaps begun by a runner that died before saving)."""
    p, app, provider = ctx.step.parameters, ctx.application, ctx.provider
    source, target, expect = p["source"], p["target"], p["expect_version"]

    def target_version() -> str:
        return next((s.version for s in provider.slot_states(app) if s.name == target), "")

    if p.get("await_token") and not ctx.step.detail.get("awaited"):
        _await_earlier_swap(ctx, p["await_token"])
    handle = None
    if ctx.step.resume_token:
        token = ctx.step.resume_token
        handle = ctx.call(lambda: provider.resume_swap(app, token), "Resume the swap")
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
    poll = 0.5
    while True:
        ctx.heartbeat()
        remaining = ctx.remaining()
        if remaining <= 0:
            raise TimeoutError(f"The swap of {source} into {target} did not finish before the step's deadline.")
        try:
            handle.result(timeout=min(poll, remaining))
            break
        except TimeoutError:
            poll = min(poll * 2, 5.0)
            continue
        except TransientError as exc:  # a failed poll: keep polling the same swap, never begin another
            ctx.log(f"Polling the swap failed ({exc}); resuming it by its token")
            handle = ctx.call(lambda: provider.resume_swap(app, ctx.step.resume_token), "Resume the swap")
    found = ctx.call(target_version, f"Read what {target} runs")
    if found != expect:
        raise StepFailed(f"After the swap {target} runs {found or 'an unknown version'}, not {expect}.")
    return Done({"swapped": True, "token": ctx.step.resume_token})


def _await_earlier_swap(ctx: StepContext, token: str) -> None:
    """Undoing a swap that timed out: it may still be running at the provider, and would land after
    the swap back (leaving production on the build being rolled back). Wait for it to end first."""
    provider, app = ctx.provider, ctx.application
    try:
        handle = ctx.call(lambda: provider.resume_swap(app, token), "Resume the interrupted swap")
    except ProviderError as exc:  # the provider no longer knows it: it ended long ago
        ctx.update_detail(awaited=f"the provider no longer knows it ({exc})")
        return
    ctx.log(f"Waiting for the interrupted swap {token} to end before swapping back")
    poll = 0.5
    while True:
        ctx.heartbeat()
        remaining = ctx.remaining()
        if remaining <= 0:
            raise TimeoutError(
                "The interrupted swap did not end before the step's deadline; production needs a person."
            )
        try:
            handle.result(timeout=min(poll, remaining))
            outcome = "it completed"
            break
        except TimeoutError:
            poll = min(poll * 2, 5.0)
        except TransientError as exc:
            ctx.log(f"Polling the interrupted swap failed ({exc}); resuming it by its token")
            handle = ctx.call(lambda: provider.resume_swap(app, token), "Resume the interrupted swap")
        except ProviderError as exc:  # it failed: nothing of it to wait for
            outcome = f"it failed ({exc})"
            break
    ctx.log(f"The interrupted swap ended: {outcome}")
    ctx.update_detail(awaited=outcome)


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


def _succeed_operation(operation: Operation, now: datetime) -> None:
    current = Operation.objects.select_for_update(no_key=True).get(pk=operation.pk)
    if not operation_can(current.status, "operation.succeeded"):
        raise StepFailed(f"The operation is no longer running ({current.status}); it was not completed.")
    operation_transition(operation, "operation.succeeded", actor=None, finished_at=now)


def go_live(ctx: StepContext) -> Outcome:
    """The release goes live (superseding the previous one) with the operation's success, in one transaction."""

    operation, now = ctx.operation, clock.now()
    with transaction.atomic():
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
