"""Plans: what a strategy turns a promotion into, and how a failed plan is undone.

A plan is an ordered list of `StepSpec`; the engine stores it as `OperationStep` rows before the
first step runs, so the page can show it and a new worker can pick it up. Step kinds are the
engine's vocabulary (`strategies.operations.steps.EXECUTORS`); parameters are JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal.core.errors import DomainError, ErrorCode
from releases.catalog.models import Application, Environment, Release
from strategies.operations.models import OperationStep

# Steps a "promote now" may skip: waiting and analysing, and the intermediate traffic shares.
SKIPPABLE = "skippable"


@dataclass(frozen=True)
class StepSpec:
    kind: str
    title: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanContext:
    """What a strategy needs to know to plan: the release, where it runs now, what production runs."""

    release: Release
    environment: Environment
    source_slot: str  # the slot the new build runs in (staging)
    target_slot: str  # the environment's slot (production)
    new_version: str
    previous_version: str  # what production runs now

    @property
    def application(self) -> Application:
        return self.release.application


def swap_step(source: str, target: str, *, expect: str, before: str, title: str, **extra: Any) -> StepSpec:
    """A swap of `source` into `target`, done once `target` runs `expect` (so repeating it is harmless)."""
    return StepSpec(
        "swap",
        title,
        {"source": source, "target": target, "expect_version": expect, "previous_version": before, **extra},
    )


def promotion_swap_step(ctx: PlanContext, source: str, target: str, options: dict[str, Any]) -> StepSpec:
    """The swap that puts the new release into production, as every promoting strategy ends."""
    return swap_step(
        source,
        target,
        expect=ctx.new_version,
        before=ctx.previous_version,
        title=f"Swap {source} into {target}: {ctx.previous_version or 'nothing'} → {ctx.new_version}",
        timeout_seconds=options["swap_timeout_seconds"],
        record_baseline=True,  # what production served before: its verification compares with it
    )


def verify_production_step(target: str, options: dict[str, Any], analysis: dict[str, Any]) -> StepSpec:
    """After the swap: production stays healthy, and no worse on error rate and latency than before it."""
    return StepSpec(
        "verify_health",
        f"Verify {target} stays healthy and no worse than before the swap for {options['verify_seconds']} s",
        {
            "slot": target,
            "seconds": options["verify_seconds"],
            "interval_seconds": options["verify_interval_seconds"],
            "compare_with_baseline": True,
            **analysis,
            SKIPPABLE: True,
        },
    )


def compensation_for(steps: list[OperationStep]) -> list[StepSpec]:
    """Undo what the steps did: traffic back to 0 %, then swaps reversed (newest first), then previews cancelled.

    Every step that began is undone — succeeded, failed, interrupted, or waiting on its provider (a swap
    in flight): it may have half happened. Each undo is idempotent (a swap back is a no-op when the target
    already runs the old version, traffic at 0 % stays at 0 %), so undoing something that never happened
    is harmless. Routing goes first because it is the quickest way to take the build out of production's
    traffic and needs nothing else to finish; a swap back may have to wait for a swap still in flight;
    a preview can only be cancelled once no swap of its slot runs. Each undo step is run and retried on its
    own (the engine's `_step_failed`), so one that fails never keeps the others from running.
    """
    began = [s for s in steps if s.started_at is not None and not s.parameters.get("undo")]
    newest_first = sorted(began, key=lambda s: s.position, reverse=True)
    traffic: list[StepSpec] = []
    swaps: list[StepSpec] = []
    previews: list[StepSpec] = []
    reset_slots: set[tuple[Any, str]] = set()
    for step in newest_first:
        p = step.parameters
        # A step on another application (a ring target) is undone on that application.
        on = {"application": p["application"]} if "application" in p else {}
        if step.kind == "set_traffic" and (p.get("application"), p["slot"]) not in reset_slots:
            reset_slots.add((p.get("application"), p["slot"]))
            traffic.append(
                StepSpec("set_traffic", f"Route 0 % of traffic to {p['slot']}", {"slot": p["slot"], "percent": 0, **on})
            )
        elif step.kind == "swap_preview":
            previews.append(
                StepSpec("cancel_preview", f"Cancel the swap preview of {p['source']}", {"source": p["source"], **on})
            )
        elif step.kind == "swap":
            where = f"{p['application_name']} " if p.get("application_name") else ""
            swaps.append(
                swap_step(
                    p["source"],
                    p["target"],
                    expect=p["previous_version"],
                    before=p["expect_version"],
                    title=f"Swap back: {where}{p['target']} returns to {p['previous_version'] or 'nothing'}",
                    # Never less time to undo than the default: the swap it undoes may have timed out.
                    timeout_seconds=max(p.get("timeout_seconds", 600.0), 600.0),
                    # A swap that did not finish may still be running at the provider: let it end first.
                    **({"await_token": step.resume_token} if step.resume_token else {}),
                    **on,
                    **({"application_name": p["application_name"]} if "application_name" in p else {}),
                )
            )
    return [*traffic, *swaps, *previews]


def clean_options(parameters: dict[str, Any], defaults: dict[str, Any], *, strategy: str) -> dict[str, Any]:
    """The defaults overridden by `parameters`, each checked against its default's type.

    DomainError names every bad option at once.
    """

    if not isinstance(parameters, dict):
        raise DomainError(
            ErrorCode.INVALID,
            "Strategy options must be an object of name → value.",
            fields={"parameters": "An object of name → value."},
        )
    unknown = sorted(set(parameters) - set(defaults))
    problems = [f"{name}: unknown option for {strategy} (known: {', '.join(defaults)})" for name in unknown]
    cleaned = dict(defaults)
    for name, default in defaults.items():
        if name not in parameters:
            continue
        value = parameters[name]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int | float):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            if ok and isinstance(default, int) and not isinstance(value, int):
                ok = float(value).is_integer()
                value = int(value)
        elif isinstance(default, list):
            ok = isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            problems.append(f"{name}: {value!r} is not a valid value (like {default!r})")
        else:
            cleaned[name] = value
    if problems:
        raise DomainError(
            ErrorCode.INVALID,
            "Invalid strategy options — " + "; ".join(problems) + ".",
            fields={"parameters": problems},
        )
    return cleaned
