"""Progressive exposure: the build reaches the application's rings one after another, then everyone.

Each ring (`releases.models.Ring`, in position order) optionally waits for its own approval, then
either routes a share of production traffic to the new build in staging, or swaps the build into
other applications' production (the build must already be in each target's staging slot). It bakes,
then is analysed: a traffic ring like a canary step (staging against production); a target ring by
its targets' health, and their production's metrics against this application's (still old)
production. After the last ring, the build is swapped into this application's production, the
final ring: everyone.

A failure — or a person's rollback — undoes the rings already done in reverse (the engine's
compensation: traffic back to 0 %, target swaps reversed). A person can halt (pause) between
steps and resume. The rings are copied into the plan when the promotion starts.
"""

from __future__ import annotations

from typing import Any

from portal.core.errors import DomainError, ErrorCode
from releases.catalog.models import Application, Stage
from releases.catalog.providers import ProviderError
from releases.catalog.providers.registry import provider_for
from strategies.operations.canary import ANALYSIS_KEYS
from strategies.operations.canary import DEFAULTS as CANARY_DEFAULTS
from strategies.operations.models import Ring
from strategies.operations.plan import (
    SKIPPABLE,
    PlanContext,
    StepSpec,
    clean_options,
    promotion_swap_step,
    swap_step,
    verify_production_step,
)

LABEL = "Progressive exposure (rings)"
DEFAULTS: dict[str, Any] = {
    "analysis_minutes": 5,
    **{k: CANARY_DEFAULTS[k] for k in ANALYSIS_KEYS},
    "swap_timeout_seconds": 600.0,
    "verify_seconds": 60.0,
    "verify_interval_seconds": 10.0,
}


def clean(parameters: dict[str, Any]) -> dict[str, Any]:
    options = clean_options(parameters, DEFAULTS, strategy="rings")
    if not 0 < options["alpha"] < 0.5:
        raise DomainError(
            ErrorCode.INVALID,
            "Invalid strategy options — alpha must be between 0 and 0.5.",
            fields={"parameters": "alpha must be between 0 and 0.5."},
        )
    if options["analysis_minutes"] < 1:
        raise DomainError(
            ErrorCode.INVALID,
            "Invalid strategy options — analysis_minutes must be at least 1.",
            fields={"parameters": "analysis_minutes must be at least 1."},
        )
    if options["verify_interval_seconds"] <= 0:
        raise DomainError(
            ErrorCode.INVALID,
            "Invalid strategy options — verify_interval_seconds must be more than 0.",
            fields={"parameters": "verify_interval_seconds must be more than 0."},
        )
    return options


def rings_of(application: Application) -> list[Ring]:
    return list(application.rings.prefetch_related("targets").order_by("position"))


def target_slots(target: Application, version: str) -> tuple[str, str, str]:
    """(staging slot, production slot, what production runs) of a ring target that has `version` staged."""
    production = target.environments.filter(stage=Stage.PRODUCTION).select_related("slot").first()
    staging = target.environments.filter(stage=Stage.PREPRODUCTION).select_related("slot").first()
    if production is None or staging is None:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"Ring target {target.name} needs a pre-production and a production environment to swap between.",
        )
    try:
        states = {s.name: s.version for s in provider_for(target).slot_states(target)}
    except ProviderError as exc:
        raise DomainError(
            ErrorCode.PROVIDER_UNAVAILABLE, f"The provider could not say what {target.name}'s slots run: {exc}"
        ) from None
    staged = states.get(staging.slot.name, "")
    if staged != version:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"Ring target {target.name}'s {staging.slot.name} slot runs {staged or 'nothing'}, not {version}; "
            f"deploy {version} there first.",
        )
    return staging.slot.name, production.slot.name, states.get(production.slot.name, "")


def _analysis(options: dict[str, Any], **slots: Any) -> dict[str, Any]:
    return {
        **slots,
        "minutes": options["analysis_minutes"],
        **{k: options[k] for k in ANALYSIS_KEYS},
        SKIPPABLE: True,
    }


def plan(ctx: PlanContext, options: dict[str, Any]) -> list[StepSpec]:
    application, src, dst = ctx.application, ctx.source_slot, ctx.target_slot
    rings = rings_of(application)
    if not rings:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"{application.name} has no rings. "
            "Define them on the application's rings page, or choose another strategy.",
        )
    steps = [StepSpec("check_health", f"Gate: {src} ({ctx.new_version}) answers its health check", {"slot": src})]
    routes_traffic = False
    placed: dict[int, tuple[str, str, str]] = {}  # target → (staging, production, running), read once
    for ring in rings:
        label = f"Ring {ring.position} ({ring.name})"
        if ring.requires_approval:
            steps.append(
                StepSpec(
                    "approve_ring", f"{label}: an approver approves it", {"ring": ring.position, "ring_name": label}
                )
            )
        if ring.kind == Ring.Kind.TRAFFIC:
            routes_traffic = True
            percent = ring.traffic_percent
            steps.append(
                StepSpec("set_traffic", f"{label}: route {percent} % to {src}", {"slot": src, "percent": percent})
            )
        else:
            targets = list(ring.targets.order_by("name"))
            if not targets:
                raise DomainError(
                    ErrorCode.CONFLICT, f"{label} has no target applications; add some or delete the ring."
                )
            for target in targets:
                if target.pk == application.pk:
                    raise DomainError(
                        ErrorCode.CONFLICT,
                        f"{label} names {application.name} itself; its own production is the last ring.",
                    )
                staging, production, running = placed[target.pk] = target_slots(target, ctx.new_version)
                on = {"application": target.pk, "application_name": target.name}
                steps.append(
                    StepSpec(
                        "check_health",
                        f"{label}: {target.name} {staging} ({ctx.new_version}) answers its health check",
                        {"slot": staging, **on},
                    )
                )
                steps.append(
                    swap_step(
                        staging,
                        production,
                        expect=ctx.new_version,
                        before=running,
                        title=f"{label}: swap {target.name} {staging} into {production}: "
                        f"{running or 'nothing'} → {ctx.new_version}",
                        timeout_seconds=options["swap_timeout_seconds"],
                        **on,
                    )
                )
        steps.append(
            StepSpec(
                "bake",
                f"{label}: bake for {ring.bake_seconds:g} s",
                {"seconds": ring.bake_seconds, SKIPPABLE: True},
            )
        )
        if ring.kind == Ring.Kind.TRAFFIC:
            if ring.analyse:
                steps.append(
                    StepSpec(
                        "analyse",
                        f"{label}: analyse {src} against {dst}",
                        _analysis(options, canary_slot=src, stable_slot=dst, extend_seconds=ring.bake_seconds),
                    )
                )
        else:
            for target in targets:
                production = placed[target.pk][1]
                on = {"application": target.pk, "application_name": target.name}
                steps.append(
                    StepSpec(
                        "check_health",
                        f"{label}: {target.name} {production} answers its health check",
                        {"slot": production, **on},
                    )
                )
                if ring.analyse:
                    steps.append(
                        StepSpec(
                            "analyse",
                            f"{label}: analyse {target.name} {production} against {application.name} {dst}",
                            _analysis(
                                options,
                                canary_slot=production,
                                stable_slot=dst,
                                stable_application=application.pk,
                                extend_seconds=ring.bake_seconds,
                                **on,
                            ),
                        )
                    )
    steps.append(promotion_swap_step(ctx, src, dst, options))
    if routes_traffic:
        steps.append(StepSpec("set_traffic", f"Reset routing: 0 % to {src}", {"slot": src, "percent": 0}))
    steps.append(verify_production_step(dst, options, {k: options[k] for k in ANALYSIS_KEYS}))
    steps.append(StepSpec("go_live", f"Mark {ctx.new_version} live (everyone)", {}))
    return steps
