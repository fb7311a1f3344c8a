"""Changing and reading the simulated world from Slipway: fault injection and synthetic load.

These are Slipway's own writes to the simulator (a person sets a fault from the UI or the API),
so each runs in one transaction with its audit event, like `releases.catalog.services`. What the simulated
cloud does by itself (swaps, routing, serving) lives in `releases.catalog.providers.simulator*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.urls import reverse

from portal.core.errors import DomainError, ErrorCode
from releases.audit.services import audit_record, snapshot
from releases.catalog.models import (
    Application,
    Provider,
    SimulatorMetricBucket,
    SimulatorSite,
    SimulatorSlot,
    SimulatorSwap,
    SimulatorVersionProfile,
)
from releases.catalog.providers import PRODUCTION_SLOT
from releases.catalog.providers.simulator import SimulatorProvider, advance_swap
from releases.catalog.providers.simulator_load import (
    DEFAULT_PROFILE,
    generate_synthetic,
    shares,
    site_for,
    slot_metrics,
)

SLOT_FAULT_FIELDS = ["healthy", "running", "fail_swap", "hang_swap"]
PROFILE_FIELDS = ["error_rate", "latency_ms_median", "latency_ms_p95", "healthy"]
LOAD_FIELDS = ["synthetic_rpm"]


def simulated(application: Application) -> None:
    """Refuse applications that are not on the simulator."""
    if application.provider != Provider.SIMULATOR:
        raise DomainError(
            ErrorCode.NOT_FOUND,
            f"{application.name} runs on {application.get_provider_display()}, not on the simulator.",
        )


# --- writes ----------------------------------------------------------------------------------------
def simulator_set_slot_faults(
    *,
    application: Application,
    actor: Any,
    slot_name: str,
    healthy: bool | None = None,
    running: bool | None = None,
    fail_swap: bool | None = None,
    hang_swap: bool | None = None,
    reason: str = "",
) -> SimulatorSlot:
    """Set a slot's faults (None leaves one as it is); audited as `simulator.fault_set` when anything changed."""
    simulated(application)
    changes = {"healthy": healthy, "running": running, "fail_swap": fail_swap, "hang_swap": hang_swap}
    with transaction.atomic():
        slot = (
            SimulatorSlot.objects.select_for_update(no_key=True)
            .filter(application=application, slot_name=slot_name)
            .first()
        )
        if slot is None:
            raise DomainError(
                ErrorCode.NOT_FOUND, f"The simulated site of {application.name} has no slot named {slot_name!r}."
            )
        before = snapshot(slot, SLOT_FAULT_FIELDS)
        for name, value in changes.items():
            if value is not None:
                setattr(slot, name, bool(value))
        after = snapshot(slot, SLOT_FAULT_FIELDS)
        if after != before:
            slot.save(update_fields=[*SLOT_FAULT_FIELDS, "updated_at"])
            audit_record(
                actor=actor,
                action="simulator.fault_set",
                obj=slot,
                application=application,
                before=before,
                after=after,
                reason=reason,
            )
    return slot


def simulator_deploy(*, application: Application, slot_name: str, version: str, actor: Any) -> SimulatorSlot:
    """Put a build on a simulated slot, as a pipeline's deploy would; audited as `simulator.deployed`."""
    simulated(application)
    with transaction.atomic():
        slot = (
            SimulatorSlot.objects.select_for_update(no_key=True)
            .filter(application=application, slot_name=slot_name)
            .first()
        )
        if slot is None:
            raise DomainError(
                ErrorCode.NOT_FOUND, f"The simulated site of {application.name} has no slot named {slot_name!r}."
            )
        before = snapshot(slot, ["version"])
        if slot.version != version:
            # The slot's request history was the previous build's: a canary of the new one is judged
            # on its own requests only (a failed build's slow minutes must not sink its fix).
            SimulatorMetricBucket.objects.filter(slot=slot).delete()
        slot.version = version
        slot.save(update_fields=["version", "updated_at"])
        audit_record(
            actor=actor,
            action="simulator.deployed",
            obj=slot,
            application=application,
            before=before,
            after=snapshot(slot, ["version"]),
            reason=f"Build {version} deployed to {slot_name}",
        )
    return slot


def simulator_set_version_profile(
    *,
    application: Application,
    actor: Any,
    version: str,
    error_rate: float,
    latency_ms_median: float,
    latency_ms_p95: float,
    healthy: bool = True,
    reason: str = "",
) -> SimulatorVersionProfile:
    """Describe how a version behaves; audited as `simulator.profile_set` when anything changed."""
    simulated(application)
    version = version.strip()
    if not version:
        raise DomainError(
            ErrorCode.INVALID,
            "Name the version the profile is for.",
            fields={"version": "Name the version the profile is for."},
        )
    if not 0.0 <= error_rate <= 1.0:
        raise DomainError(
            ErrorCode.INVALID,
            f"The error rate is a share from 0 to 1, not {error_rate}.",
            fields={"error_rate": "A share from 0 to 1."},
        )
    if latency_ms_median < 0 or latency_ms_p95 < latency_ms_median:
        raise DomainError(
            ErrorCode.INVALID,
            "Latencies cannot be negative, and the 95th percentile cannot be below the median.",
            fields={"latency_ms_p95": "At least the median, which is at least 0."},
        )
    with transaction.atomic():
        profile = (
            SimulatorVersionProfile.objects.select_for_update(no_key=True)
            .filter(application=application, version=version)
            .first()
        )
        before = snapshot(profile, PROFILE_FIELDS) if profile else None
        if profile is None:
            profile = SimulatorVersionProfile(application=application, version=version)
        profile.error_rate, profile.latency_ms_median, profile.latency_ms_p95, profile.healthy = (
            float(error_rate),
            float(latency_ms_median),
            float(latency_ms_p95),
            bool(healthy),
        )
        after = snapshot(profile, PROFILE_FIELDS)
        if after != before:
            profile.save()
            audit_record(
                actor=actor,
                action="simulator.profile_set",
                obj=profile,
                application=application,
                before=before,
                after=after,
                reason=reason,
            )
    return profile


def simulator_set_synthetic_load(
    *, application: Application, actor: Any, requests_per_minute: int, reason: str = ""
) -> SimulatorSite:
    """Change the synthetic load. The minutes so far are generated at the old rate first."""
    simulated(application)
    most = SimulatorSite.MAX_SYNTHETIC_RPM
    if not 0 <= requests_per_minute <= most:
        raise DomainError(
            ErrorCode.INVALID, f"The synthetic load is 0 to {most} requests a minute, not {requests_per_minute}."
        )
    with transaction.atomic():
        generate_synthetic(application)
        site = SimulatorSite.objects.select_for_update(no_key=True).get(application=application)
        before = snapshot(site, LOAD_FIELDS)
        site.synthetic_rpm = requests_per_minute
        after = snapshot(site, LOAD_FIELDS)
        if after != before:
            site.save(update_fields=["synthetic_rpm", "updated_at"])
            audit_record(
                actor=actor,
                action="simulator.load_set",
                obj=site,
                application=application,
                before=before,
                after=after,
                reason=reason,
            )
    return site


@dataclass
class SimulatorChanges:
    """A validated set of changes, as the API's PUT carries them (each part optional)."""

    slots: dict[str, dict[str, bool]]
    versions: dict[str, dict[str, Any]]
    synthetic_rpm: int | None = None


def simulator_configure(*, application: Application, actor: Any, changes: SimulatorChanges) -> None:
    """Apply several changes at once: all of them, each audited, or none."""
    with transaction.atomic():
        for slot_name, faults in changes.slots.items():
            simulator_set_slot_faults(application=application, actor=actor, slot_name=slot_name, **faults)
        for version, profile in changes.versions.items():
            simulator_set_version_profile(application=application, actor=actor, version=version, **profile)
        if changes.synthetic_rpm is not None:
            simulator_set_synthetic_load(
                application=application, actor=actor, requests_per_minute=changes.synthetic_rpm
            )


# --- reads -----------------------------------------------------------------------------------------
def simulator_profile_values(application: Application, version: str) -> dict[str, Any]:
    """The version's profile as field values (the defaults when it has none)."""
    profile = SimulatorVersionProfile.objects.filter(application=application, version=version).first()
    if profile is not None:
        return {name: getattr(profile, name) for name in PROFILE_FIELDS}
    return {
        "error_rate": DEFAULT_PROFILE.error_rate,
        "latency_ms_median": DEFAULT_PROFILE.latency_ms_median,
        "latency_ms_p95": DEFAULT_PROFILE.latency_ms_p95,
        "healthy": DEFAULT_PROFILE.healthy,
    }


def simulator_state(application: Application, *, minutes: int = 5) -> dict[str, Any]:
    """Everything the simulator page and API show: slots with health, share and recent metrics; profiles; load."""
    simulated(application)
    provider = SimulatorProvider()
    site = site_for(application)
    rows = list(SimulatorSlot.objects.filter(application=application).order_by("slot_name"))
    share = shares(rows)
    slots: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r.slot_name != PRODUCTION_SLOT, r.slot_name)):
        health = provider.check_health(application, row.slot_name)
        sample = slot_metrics(application, row.slot_name, minutes=minutes)
        latencies = sorted(sample.latencies_ms)
        slots[row.slot_name] = {
            "version": row.version,
            "traffic_percent": share.get(row.slot_name, 0),
            "healthy": row.healthy,
            "running": row.running,
            "fail_swap": row.fail_swap,
            "hang_swap": row.hang_swap,
            "restart_count": row.restart_count,
            "served_total": row.served_total,
            "health": {"healthy": health.healthy, "status_code": health.status_code, "detail": health.detail},
            "metrics": {
                "minutes": minutes,
                "requests": sample.requests,
                "errors": sample.errors,
                "error_rate": round(sample.error_rate, 4),
                "latency_ms_p95": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
            },
            "url": reverse("sim_slot", args=[application.slug, row.slot_name]),
            "health_url": reverse("sim_slot_healthz", args=[application.slug, row.slot_name]),
        }
    versions = {
        p.version: {name: getattr(p, name) for name in PROFILE_FIELDS}
        for p in SimulatorVersionProfile.objects.filter(application=application).order_by("version")
    }
    swaps = []
    for swap in SimulatorSwap.objects.filter(application=application)[:5]:
        swap = advance_swap(swap.pk) if swap.in_flight else swap
        swaps.append(
            {
                "id": swap.pk,
                "source": swap.source,
                "target": swap.target,
                "phase": swap.phase,
                "fault": swap.fault,
                "started_at": swap.started_at.isoformat(),
                "finished_at": swap.finished_at.isoformat() if swap.finished_at else None,
                "error": swap.error,
            }
        )
    return {
        "application": application.slug,
        "routed_url": reverse("sim_routed", args=[application.slug]),
        "synthetic_rpm": site.synthetic_rpm,
        "sticky_settings": list(site.sticky_settings),
        "slots": slots,
        "versions": versions,
        "swaps": swaps,
    }
