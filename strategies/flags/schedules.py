"""Scheduled flag changes: turn a flag on or off at a time, or ramp a variant up in steps.

A schedule's due steps are applied by the periodic job `apply_due_flag_schedules` (releases/cron.py,
every FLAG_SCHEDULE_SWEEP_SECONDS) through the flag services' own path (`services.flag_save`): the
definition is recompiled, the environment republished with a new revision, and the change audited
as the system with the schedule named in the reason. Applying is idempotent: a step whose change is
already in place writes nothing, and the schedule row moves on with a guarded update (status and
`next_at` unchanged since it was read), so two sweeps racing apply a step once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from releases.audit.services import audit_record
from strategies.flags import services
from strategies.flags.approval import approval_required
from strategies.flags.definitions import DefinitionError
from strategies.flags.models import DarkLaunch, Flag, FlagSchedule, Lifecycle

log = logging.getLogger(__name__)
Kind, Status = FlagSchedule.Kind, FlagSchedule.Status
MAX_STEPS = 10


def describe(schedule: FlagSchedule) -> str:
    steps = [(datetime.fromisoformat(s["at"]), s["percent"]) for s in schedule.steps]
    return describe_plan(schedule.flag, kind=schedule.kind, variant=schedule.variant, steps=steps)


def describe_plan(flag: Flag, *, kind: str, variant: str, steps: Iterable[tuple[datetime, int | None]]) -> str:
    """A schedule in words, e.g. "ramp on: 10 % at 2026-11-27 09:00, 50 % at ..." (times in UTC)."""
    steps = list(steps)
    if kind == Kind.RAMP:
        parts = [f"{percent} % at {at.isoformat()[:16].replace('T', ' ')}" for at, percent in steps]
        return f"ramp {variant}: " + ", ".join(parts)
    verb = "turn on" if kind == Kind.ENABLE_AT else "turn off"
    return f"{verb} at {steps[0][0].isoformat()[:16].replace('T', ' ')}"


def _snapshot(schedule: FlagSchedule) -> dict[str, Any]:
    return {
        "flag": schedule.flag.key,
        "kind": schedule.kind,
        "variant": schedule.variant,
        "steps": [{"at": s["at"], "percent": s["percent"]} for s in schedule.steps],
        "status": schedule.status,
    }


def _clean_steps(flag: Flag, kind: str, variant: str, steps: Iterable[tuple[datetime, int | None]]) -> list[dict]:
    steps = list(steps)
    if not steps:
        raise DefinitionError({"steps": ["Give at least one time."]})
    if len(steps) > MAX_STEPS:
        raise DefinitionError({"steps": [f"At most {MAX_STEPS} steps."]})
    if kind != Kind.RAMP:
        if len(steps) != 1:
            raise DefinitionError({"steps": ["Turning a flag on or off takes one time."]})
        return [{"at": steps[0][0].isoformat(), "percent": None, "applied_at": None}]
    if variant not in flag.variants:
        raise DefinitionError({"variant": [f"{variant!r} is not a variant of {flag.key}."]})
    if variant == flag.default_variant:
        raise DefinitionError({"variant": [f"{variant!r} is the default already: ramp up another variant."]})
    previous_at, previous_percent = None, 0
    for number, (at, percent) in enumerate(steps, start=1):
        if percent is None or not 0 < percent <= 100:
            raise DefinitionError({"steps": [f"Step {number}: a share of more than 0 and at most 100 %."]})
        if percent <= previous_percent:
            raise DefinitionError(
                {"steps": [f"Step {number}: a ramp only goes up ({percent} ≤ {previous_percent} %)."]}
            )
        if previous_at is not None and at <= previous_at:
            raise DefinitionError({"steps": [f"Step {number}: each step comes after the one before."]})
        previous_at, previous_percent = at, percent
    return [{"at": at.isoformat(), "percent": int(percent), "applied_at": None} for at, percent in steps]


def schedule_create(
    *,
    flag: Flag,
    kind: str,
    actor: Any,
    steps: Iterable[tuple[datetime, int | None]],
    variant: str = "",
    approved: bool = False,
) -> FlagSchedule:
    """Plan a change; steps already due are applied at once (by the system, like the sweep would).

    Where flag changes need approval, only turning off can be scheduled directly (it is the safe
    direction, like the kill switch); the others come from an approved change request (`approved`),
    and then every step of the schedule is covered by that approval.
    """
    services.require_manager(actor)
    if kind not in Kind.values:
        raise DefinitionError({"kind": [f"{kind!r} is not a kind of schedule."]})
    with transaction.atomic():
        flag = services.flag_locked(flag)
        if flag.lifecycle == Lifecycle.ARCHIVED:
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, f"{flag.key} is archived.")
        if kind != Kind.DISABLE_AT and not approved and approval_required(flag.environment):
            raise DomainError(
                ErrorCode.APPROVAL_REQUIRED,
                f"Changes to flags in {flag.environment.name} need approval: propose this schedule and an "
                "approver decides it (only turning off can be scheduled directly).",
            )
        if kind == Kind.RAMP:
            if flag.targeting_override is not None:
                raise DomainError(
                    ErrorCode.CONFLICT, f"{flag.key} has hand-written targeting; a ramp needs the structured rules."
                )
            if flag.launches.filter(status=DarkLaunch.Status.ACTIVE).exists():
                raise DomainError(
                    ErrorCode.CONFLICT, f"{flag.key} has an active dark launch: roll it out from the launch page."
                )
            if flag.schedules.filter(kind=Kind.RAMP, status=Status.PENDING).exists():
                raise DomainError(ErrorCode.CONFLICT, f"{flag.key} already has a pending ramp; cancel it first.")
        cleaned = _clean_steps(flag, kind, variant, steps)
        schedule = FlagSchedule.objects.create(
            flag=flag,
            kind=kind,
            variant=variant if kind == Kind.RAMP else "",
            steps=cleaned,
            next_at=datetime.fromisoformat(cleaned[0]["at"]),
            created_at=clock.now(),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            actor=actor,
            action="flag_schedule.created",
            obj=schedule,
            application=flag.environment.application,
            after=_snapshot(schedule),
        )
        if schedule.next_at <= clock.now():
            _apply(schedule, clock.now())
    schedule.refresh_from_db()
    return schedule


def schedule_cancel(*, schedule: FlagSchedule, actor: Any, reason: str = "") -> FlagSchedule:
    services.require_manager(actor)
    with transaction.atomic():
        now = clock.now()
        if not FlagSchedule.objects.filter(pk=schedule.pk, status=Status.PENDING).update(
            status=Status.CANCELLED, next_at=None, ended_at=now
        ):
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, "This schedule is no longer pending.")
        schedule.refresh_from_db()
        audit_record(
            actor=actor,
            action="flag_schedule.cancelled",
            obj=schedule,
            application=schedule.flag.environment.application,
            before={"status": Status.PENDING},
            after={"status": Status.CANCELLED},
            reason=reason,
        )
    return schedule


def _apply(schedule: FlagSchedule, now: datetime) -> str:
    """Apply the due steps of `schedule` (inside the caller's transaction); returns what happened."""
    flag = services.flag_locked(schedule.flag)
    steps = [dict(s) for s in schedule.steps]
    due = [i for i, s in enumerate(steps) if s["applied_at"] is None and datetime.fromisoformat(s["at"]) <= now]
    if not due:
        return f"{schedule}: nothing due"
    last = due[-1]
    before = services.flag_snapshot(flag)
    changed = False
    if schedule.kind == Kind.ENABLE_AT:
        if not flag.enabled and flag.lifecycle != Lifecycle.ARCHIVED:
            flag.enabled, changed = True, True
        what = "turned on"
    elif schedule.kind == Kind.DISABLE_AT:
        if flag.enabled:
            flag.enabled, changed = False, True
        what = "turned off"
    else:
        percent = steps[last]["percent"]
        variant = schedule.variant
        rules = dict(flag.rules or {})
        if percent >= 100:
            # Everyone gets it: it becomes the default (as a dark launch rolled out to 100 % does).
            if flag.default_variant != variant or "fallthrough" in rules:
                rules.pop("fallthrough", None)
                flag.rules, flag.default_variant, changed = rules, variant, True
        else:
            serve = {"split": [[variant, percent], [flag.default_variant, 100 - percent]]}
            if rules.get("fallthrough") != serve:
                rules["fallthrough"] = serve
                flag.rules, changed = rules, True
        what = f"ramp step {last + 1} of {len(steps)}: {variant} to {percent} %"
    if changed:
        services.flag_save(
            flag,
            actor=None,
            action="flag.schedule_applied",
            before=before,
            reason=f"Schedule #{schedule.pk} ({schedule.get_kind_display().lower()}): {what}",
        )
    for i in due:
        steps[i]["applied_at"] = now.isoformat()
    pending = [s for s in steps if s["applied_at"] is None]
    next_at = datetime.fromisoformat(pending[0]["at"]) if pending else None
    updated = FlagSchedule.objects.filter(pk=schedule.pk, status=Status.PENDING, next_at=schedule.next_at).update(
        steps=steps,
        next_at=next_at,
        status=Status.PENDING if pending else Status.DONE,
        ended_at=None if pending else now,
    )
    if not updated:
        raise _Raced()
    return f"{schedule}: {what}" + ("" if changed else " (already so)")


class _Raced(Exception):
    """Another sweep or a cancel moved the schedule on first: this one's change is rolled back."""


def apply_due(now: datetime | None = None) -> list[str]:
    """Apply every due step of every pending schedule; each schedule in its own transaction."""
    now = now or clock.now()
    outcomes = []
    due = FlagSchedule.objects.filter(status=Status.PENDING, next_at__lte=now).order_by("next_at")
    for pk in list(due.values_list("pk", flat=True)[:500]):
        try:
            with transaction.atomic():
                schedule = (
                    FlagSchedule.objects.select_for_update(no_key=True, skip_locked=True)
                    .select_related("flag")
                    .filter(pk=pk, status=Status.PENDING, next_at__lte=now)
                    .first()
                )
                if schedule is None:
                    continue
                outcomes.append(_apply(schedule, now))
        except _Raced:
            outcomes.append(f"schedule #{pk}: applied by another sweep")
        except (DefinitionError, DomainError) as exc:
            outcomes.append(_fail(pk, now, str(exc)))
    return outcomes


def _fail(pk: int, now: datetime, problem: str) -> str:
    """A step that can no longer be applied (a variant removed, say) ends its schedule, audited."""
    with transaction.atomic():
        schedule = FlagSchedule.objects.select_related("flag__environment__application").get(pk=pk)
        if FlagSchedule.objects.filter(pk=pk, status=Status.PENDING).update(
            status=Status.CANCELLED, next_at=None, ended_at=now
        ):
            audit_record(
                actor=None,
                action="flag_schedule.failed",
                obj=schedule,
                application=schedule.flag.environment.application,
                before={"status": Status.PENDING},
                after={"status": Status.CANCELLED},
                reason=problem[:500],
            )
    log.warning("flag schedule %s could not be applied: %s", pk, problem)
    return f"schedule #{pk}: cancelled, {problem}"
