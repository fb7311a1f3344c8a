"""Canary: route growing shares of production traffic to the new build in staging, analyse each.

For each share (default 5 → 25 → 50 → 100 %): route it, bake for `bake_seconds`, analyse the
canary (staging) against stable (production) over the last `analysis_minutes`
(`strategies.operations.analysis`), after checking the canary still answers its health check. A fail
rolls back (traffic to 0 %); an inconclusive analysis bakes once more, then pauses for a person. After the
last share passes, a swap puts the build into production, the routing returns to 0 %, and production is
verified for `verify_seconds` as blue-green does (health, and error rate and latency against the baseline
the swap recorded).
"""

from __future__ import annotations

from typing import Any

from portal.core.errors import DomainError, ErrorCode
from strategies.operations.plan import (
    SKIPPABLE,
    PlanContext,
    StepSpec,
    clean_options,
    promotion_swap_step,
    verify_production_step,
)

LABEL = "Canary"
DEFAULTS: dict[str, Any] = {
    "shares": [5, 25, 50, 100],
    "bake_seconds": 300.0,
    "analysis_minutes": 5,
    "error_margin": 0.01,
    "latency_margin": 0.10,
    "min_requests": 100,
    "min_latency_samples": 30,
    "alpha": 0.01,
    "swap_timeout_seconds": 600.0,
    "verify_seconds": 60.0,
    "verify_interval_seconds": 10.0,
}
ANALYSIS_KEYS = ("error_margin", "latency_margin", "min_requests", "min_latency_samples", "alpha")


def clean(parameters: dict[str, Any]) -> dict[str, Any]:
    options = clean_options(parameters, DEFAULTS, strategy="canary")
    shares = options["shares"]
    if not shares or any(not 0 < s <= 100 for s in shares) or shares != sorted(set(shares)):
        raise DomainError(
            ErrorCode.INVALID,
            f"Invalid strategy options — shares must rise strictly, each from 1 to 100 %, not {shares!r}.",
            fields={"parameters": "shares must rise strictly, each from 1 to 100 %."},
        )
    if not 0 < options["alpha"] < 0.5:
        raise DomainError(
            ErrorCode.INVALID,
            "Invalid strategy options — alpha must be between 0 and 0.5.",
            fields={"parameters": "alpha must be between 0 and 0.5."},
        )
    if options["verify_interval_seconds"] <= 0:
        raise DomainError(
            ErrorCode.INVALID,
            "Invalid strategy options — verify_interval_seconds must be more than 0.",
            fields={"parameters": "verify_interval_seconds must be more than 0."},
        )
    if options["analysis_minutes"] < 1:
        raise DomainError(
            ErrorCode.INVALID,
            "Invalid strategy options — analysis_minutes must be at least 1.",
            fields={"parameters": "analysis_minutes must be at least 1."},
        )
    return options


def plan(ctx: PlanContext, options: dict[str, Any]) -> list[StepSpec]:
    src, dst = ctx.source_slot, ctx.target_slot
    steps = [StepSpec("check_health", f"Gate: {src} ({ctx.new_version}) answers its health check", {"slot": src})]
    shares = options["shares"]
    for index, share in enumerate(shares):
        # The first share always happens; later ones may be skipped by "promote now".
        extra = {SKIPPABLE: True} if index else {}
        steps += [
            StepSpec("set_traffic", f"Route {share} % of traffic to {src}", {"slot": src, "percent": share, **extra}),
            StepSpec(
                "bake",
                f"Bake {share} % for {options['bake_seconds']} s",
                {"seconds": options["bake_seconds"], SKIPPABLE: True},
            ),
            StepSpec(
                "analyse",
                f"Analyse the canary at {share} %",
                {
                    "canary_slot": src,
                    "stable_slot": dst,
                    "minutes": options["analysis_minutes"],
                    "extend_seconds": options["bake_seconds"],
                    **{k: options[k] for k in ANALYSIS_KEYS},
                    SKIPPABLE: True,
                },
            ),
        ]
    steps += [
        promotion_swap_step(ctx, src, dst, options),
        StepSpec("set_traffic", f"Reset routing: 0 % to {src}", {"slot": src, "percent": 0}),
        verify_production_step(dst, options, {k: options[k] for k in ANALYSIS_KEYS}),
        StepSpec("go_live", f"Mark {ctx.new_version} live", {}),
    ]
    return steps
