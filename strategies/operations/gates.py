"""The gates operations contribute to every promotion's gate evaluation (releases.approvals.gates)."""

from __future__ import annotations

from releases.approvals.gates import GateCheck
from releases.approvals.models import GateResult
from releases.catalog.models import Release
from strategies.operations.models import OPERATION_ACTIVE, Drift, Operation


def operation_gate(release: Release) -> GateCheck:
    """No other operation runs on the application."""
    gate = GateResult.Gate.NO_OPERATION
    running = (
        Operation.objects.filter(application_id=release.application_id, status__in=OPERATION_ACTIVE)
        .select_related("release")
        .first()
    )
    if running is None:
        return GateCheck(gate, True, f"No operation runs on {release.application.name}.")
    return GateCheck(gate, False, f"{running} is in progress; wait for it to finish.")


def drift_gate(release: Release) -> GateCheck:
    """Production is where Slipway says it is: no unresolved drift (strategies.operations.reconcile)."""
    gate = GateResult.Gate.NO_DRIFT
    drift = Drift.objects.filter(application_id=release.application_id, resolved_at__isnull=True).first()
    if drift is None:
        return GateCheck(gate, True, f"{release.application.name}'s production matches what Slipway says.")
    return GateCheck(
        gate,
        False,
        f"{release.application.name}'s production has drifted ({drift.summary}); repair it or put it back first.",
    )
