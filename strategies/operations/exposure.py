"""Which steps expose a build on a production-facing surface, and whether that surface's rules allow it.

A promotion's forward step exposes production when it swaps a build into a production slot (its own
application's, or a ring target's) or routes a share of production traffic to the new build. Each such
step is judged by the production it reaches — that environment's approvals and freeze
(`releases.approvals.gates.exposure_check`) — when the promotion starts and again right before the step
begins, because a freeze can start, and a target's approval can lapse, while a canary bakes. Undo steps,
rollbacks and repairs are never held: taking a build away is always allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from releases.approvals.gates import Exposure, exposure_check
from releases.catalog.models import Environment, Stage


def exposed_environment(application_id: int, kind: str, parameters: dict[str, Any]) -> Environment | None:
    """The production environment a forward step of a promotion of `application_id` exposes, or None."""
    if parameters.get("undo"):
        return None
    on = parameters.get("application", application_id)
    productions = Environment.objects.filter(application_id=on, stage=Stage.PRODUCTION).select_related(
        "application", "slot"
    )
    if kind == "swap":
        return productions.filter(slot__name=parameters["target"]).first()
    if kind == "set_traffic" and parameters.get("percent", 0) > 0:
        return productions.exclude(slot__name=parameters["slot"]).first()
    return None


def step_exposure(
    application_id: int, kind: str, parameters: dict[str, Any], version: str, at: datetime | None = None
) -> Exposure | None:
    """The exposure check of one step (None when the step exposes nothing)."""
    environment = exposed_environment(application_id, kind, parameters)
    if environment is None:
        return None
    return exposure_check(environment, parameters.get("expect_version") or version, at)


def plan_blockers(
    application_id: int, own: Environment, steps: Iterable[tuple[str, dict[str, Any]]], version: str
) -> list[str]:
    """What stops a planned promotion at its start on surfaces other than its own production (whose approval,
    freeze and gates `promotion_blockers` judges): a ring target's own approvals and freeze."""
    reasons: list[str] = []
    seen = {own.pk}
    for kind, parameters in steps:
        environment = exposed_environment(application_id, kind, parameters)
        if environment is None or environment.pk in seen:
            continue
        seen.add(environment.pk)
        reasons += exposure_check(environment, parameters.get("expect_version") or version).blockers
    return reasons
