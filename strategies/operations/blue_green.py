"""Blue-green: the new build is warm in staging; one swap moves it into production.

gates (staging healthy) → optional swap with preview (apply production's settings to staging,
verify staging, then the swap completes it; a failed verification cancels the preview) → swap →
production verified for `verify_seconds` (health at each check, and error rate and latency against what
production served in the minutes before the swap, the baseline the swap step records) → live. A
verification failure swaps back (the engine's compensation), and the release is rolled back.
"""

from __future__ import annotations

from typing import Any

from portal.core.errors import DomainError, ErrorCode
from strategies.operations.plan import (
    PlanContext,
    StepSpec,
    clean_options,
    promotion_swap_step,
    verify_production_step,
)

LABEL = "Blue-green slot swap"
DEFAULTS: dict[str, Any] = {
    "preview": False,
    "verify_seconds": 60.0,
    "verify_interval_seconds": 10.0,
    "swap_timeout_seconds": 600.0,
}


def clean(parameters: dict[str, Any]) -> dict[str, Any]:
    options = clean_options(parameters, DEFAULTS, strategy="blue-green")
    if options["verify_interval_seconds"] <= 0:
        raise DomainError(
            ErrorCode.INVALID,
            "Invalid strategy options — verify_interval_seconds must be more than 0.",
            fields={"parameters": "verify_interval_seconds must be more than 0."},
        )
    return options


def plan(ctx: PlanContext, options: dict[str, Any]) -> list[StepSpec]:
    src, dst = ctx.source_slot, ctx.target_slot
    steps = [StepSpec("check_health", f"Gate: {src} ({ctx.new_version}) answers its health check", {"slot": src})]
    if options["preview"]:
        steps += [
            StepSpec(
                "swap_preview", f"Apply {dst}'s settings to {src} (swap with preview)", {"source": src, "target": dst}
            ),
            StepSpec(
                "verify_health",
                f"Verify {src} with {dst}'s settings",
                {"slot": src, "seconds": 0, "interval_seconds": options["verify_interval_seconds"]},
            ),
        ]
    steps.append(promotion_swap_step(ctx, src, dst, options))
    steps.append(verify_production_step(dst, options, {}))
    steps.append(StepSpec("go_live", f"Mark {ctx.new_version} live", {}))
    return steps
