"""The built-in simulator: a hosting provider whose "cloud" lives in the database.

Every process (web, workers, a shell) reads and writes the same rows, so a swap begun by one
worker can be polled by another and a fault set in the UI is seen by the next health check.

- Slots are `SimulatorSlot` rows (version, health fault, routing share, app settings, swap faults,
  running state, restarts); site-wide state (sticky setting names, synthetic load) is `SimulatorSite`.
- A swap is a `SimulatorSwap` row whose id is the resume token. Nothing runs in the background:
  its phase (warming up → swapping → switching routing → done) is a function of the time since it
  started, worked out by whoever polls it. The poll that finds it finished exchanges the two slots'
  versions and non-sticky settings under row locks, so exactly one poll completes it. A swap with
  the "fail" fault fails at the end of warm-up with App Service's message; one with the "hang"
  fault stays in "swapping" until `hang_timeout_seconds` (settings) and then fails.
- Health is the slot's `healthy` fault, its running state, a short window after a restart, and the
  health fault of the version it runs (`SimulatorVersionProfile.healthy`). The slot's public
  `/healthz` page answers what `check_health` says.
- Traffic, requests and metrics: see `simulator_load`.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from portal.core import clock
from releases.catalog.models import SWAP_IN_FLIGHT, Application, SimulatorSite, SimulatorSlot, SimulatorSwap, SwapPhase
from releases.catalog.providers import (
    PRODUCTION_SLOT,
    ConflictError,
    HealthResult,
    MetricsSample,
    NotFoundError,
    PermanentError,
    SlotState,
)
from releases.catalog.providers.simulator_load import Profile, profile_for, site_for, slot_metrics, slot_or_404

__all__ = ["PRODUCTION_SLOT", "SimulatorProvider", "SimulatorSwapHandle", "advance_swap", "slot_health"]

SIMULATED_DOMAIN = "sim.slipway.local"  # the hostnames the simulator reports (as the demo's slots have)


def hostname(application: Application, slot_name: str) -> str:
    suffix = "" if slot_name == PRODUCTION_SLOT else f"-{slot_name}"
    return f"{application.slug}{suffix}.{SIMULATED_DOMAIN}"


# --- swaps -----------------------------------------------------------------------------------------
def _swap_phase_at(swap: SimulatorSwap, elapsed: float) -> str:
    if elapsed < swap.warmup_seconds:
        return SwapPhase.WARMING_UP
    if swap.fault == SimulatorSwap.Fault.HANG or elapsed < swap.swap_seconds - swap.routing_seconds:
        return SwapPhase.SWAPPING
    return SwapPhase.ROUTING


def advance_swap(swap_id: int) -> SimulatorSwap:
    """Bring the swap's stored phase up to the clock; complete or fail it when its time has come."""
    with transaction.atomic():
        swap = (
            SimulatorSwap.objects.select_for_update(no_key=True, of=("self",))
            .select_related("application")
            .filter(pk=swap_id)
            .first()
        )
        if swap is None:
            raise NotFoundError(f"There is no swap operation {swap_id} on the simulator.", status=404, code="NotFound")
        if not swap.in_flight:
            return swap
        elapsed = (clock.now() - swap.started_at).total_seconds()
        if swap.fault == SimulatorSwap.Fault.FAIL and elapsed >= swap.warmup_seconds:
            return _fail(
                swap,
                f"Cannot swap slots for site '{swap.application.slug}' because the application initialization in "
                f"'{swap.source}' slot either took too long or failed. Please check application initialization "
                "configuration and try again. (simulated fault)",
                after=swap.warmup_seconds,
            )
        if swap.fault == SimulatorSwap.Fault.HANG and elapsed >= swap.hang_timeout_seconds:
            return _fail(
                swap,
                f"The swap of '{swap.source}' into '{swap.target}' on site '{swap.application.slug}' did not finish "
                f"within {swap.hang_timeout_seconds:g} seconds and was abandoned. (simulated fault)",
                after=swap.hang_timeout_seconds,
            )
        if swap.fault != SimulatorSwap.Fault.HANG and elapsed >= swap.swap_seconds:
            return _complete(swap)
        phase = _swap_phase_at(swap, elapsed)
        if phase != swap.phase:
            SimulatorSwap.objects.filter(pk=swap.pk, phase=swap.phase).update(phase=phase)
            swap.phase = phase
        return swap


def _fail(swap: SimulatorSwap, error: str, *, after: float) -> SimulatorSwap:
    swap.phase, swap.error = SwapPhase.FAILED, error
    swap.finished_at = swap.started_at + timedelta(seconds=after)
    swap.save(update_fields=["phase", "error", "finished_at"])
    return swap


def _complete(swap: SimulatorSwap) -> SimulatorSwap:
    """Exchange what the two slots run: versions and every app setting that is not sticky."""
    slots = {
        s.slot_name: s
        for s in SimulatorSlot.objects.select_for_update(no_key=True)
        .filter(application_id=swap.application_id, slot_name__in=[swap.source, swap.target])
        .order_by("pk")
    }
    if len(slots) != 2:
        missing = sorted({swap.source, swap.target} - set(slots))
        return _fail(swap, f"The slot '{missing[0]}' no longer exists.", after=swap.swap_seconds)
    source, target = slots[swap.source], slots[swap.target]
    site = SimulatorSite.objects.filter(application_id=swap.application_id).first()
    sticky = set(site.sticky_settings if site else [])

    def own(slot: SimulatorSlot) -> dict[str, Any]:
        return dict(slot.preview_saved_settings if slot.preview_target else slot.app_settings)

    source_own, target_own = own(source), own(target)
    source.app_settings = {k: v for k, v in source_own.items() if k in sticky} | {
        k: v for k, v in target_own.items() if k not in sticky
    }
    target.app_settings = {k: v for k, v in target_own.items() if k in sticky} | {
        k: v for k, v in source_own.items() if k not in sticky
    }
    source.version, target.version = target.version, source.version
    for slot in (source, target):
        slot.preview_target, slot.preview_saved_settings = "", None
        slot.save(update_fields=["version", "app_settings", "preview_target", "preview_saved_settings", "updated_at"])
    swap.phase = SwapPhase.DONE
    swap.finished_at = swap.started_at + timedelta(seconds=swap.swap_seconds)
    swap.result = {swap.source: source.version, swap.target: target.version}
    swap.save(update_fields=["phase", "finished_at", "result"])
    return swap


class SimulatorSwapHandle:
    """A swap on the simulator; any process holding the token can poll it."""

    def __init__(self, swap_id: int) -> None:
        self.swap_id = swap_id

    @property
    def resume_token(self) -> str:
        return str(self.swap_id)

    def status(self) -> SimulatorSwap:
        """The swap row, with its phase brought up to the clock."""
        return advance_swap(self.swap_id)

    def done(self) -> bool:
        return not self.status().in_flight

    def result(self, timeout: float | None = None) -> None:
        """Wait for the swap to finish.

        A failed swap raises PermanentError with the provider's message; a swap still running after
        `timeout` seconds raises the built-in TimeoutError (the swap goes on; resume it by its token).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            swap = self.status()
            if swap.phase == SwapPhase.DONE:
                return
            if swap.phase == SwapPhase.FAILED:
                raise PermanentError(swap.error, status=400, code="SwapFailed")
            interval = max(0.01, min(0.5, swap.swap_seconds / 10))
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"The swap of '{swap.source}' into '{swap.target}' is still {swap.get_phase_display().lower()} "
                        f"after {timeout:g} seconds."
                    )
                interval = min(interval, remaining)
            time.sleep(interval)


def _in_flight_swap(application: Application) -> SimulatorSwap | None:
    """The swap in progress on the site, if any, after bringing each candidate up to the clock."""
    for swap_id in SimulatorSwap.objects.filter(application=application, phase__in=SWAP_IN_FLIGHT).values_list(
        "pk", flat=True
    ):
        swap = advance_swap(swap_id)
        if swap.in_flight:
            return swap
    return None


def _conflict(swap: SimulatorSwap) -> ConflictError:
    return ConflictError(
        "Cannot modify this site because another operation is in progress. "
        f"Details: Id: {swap.pk}, OperationName: SwapSiteSlots, CreatedTime: {swap.started_at:%Y-%m-%dT%H:%M:%S}, "
        f"SiteName: {swap.application.slug}, SlotName: {swap.source}, TargetSlot: {swap.target}",
        status=409,
        code="Conflict",
    )


def _lock_site(application: Application) -> SimulatorSite:
    """The site row, locked: the per-site mutex for swaps and previews (App Service serialises them too)."""
    site_for(application)
    return SimulatorSite.objects.select_for_update(no_key=True).get(application=application)


def _distinct(source: str, target: str) -> None:
    if source == target:
        raise PermanentError(f"Cannot swap slot '{source}' with itself.", status=400, code="BadRequest")


def slot_health(application: Application, row: SimulatorSlot, profile: Profile | None = None) -> HealthResult:
    """What the slot's health check answers now (`profile`: its version's, when the caller has it already)."""
    if not row.running:
        return HealthResult(False, 403, "Error 403 - This web app is stopped.")
    restarted = row.last_restart_at
    window = settings.SIMULATOR_TIMINGS["restart_seconds"]
    if restarted is not None and (clock.now() - restarted).total_seconds() < window:
        return HealthResult(False, 503, "Restarting (simulated)")
    if not row.healthy:
        return HealthResult(False, 503, "Simulated health check failing")
    profile = profile or profile_for(application, row.version)
    if not profile.healthy:
        return HealthResult(False, 503, f"Version {row.version} fails its health check (simulated)")
    return HealthResult(True, 200, "OK", round(profile.latency_ms(random.random()), 1))  # noqa: S311


# --- the provider ----------------------------------------------------------------------------------
class SimulatorProvider:
    """`HostingProvider` on the simulated cloud. Stateless: every call reads the database."""

    def slot_states(self, application: Application, *, probe: bool = True) -> list[SlotState]:
        # A real platform finishes a swap whether or not anyone polls it: bring swaps up to the clock first.
        _in_flight_swap(application)
        rows = list(SimulatorSlot.objects.filter(application=application).order_by("slot_name"))
        routed_elsewhere = sum(row.routing_percent for row in rows if row.slot_name != PRODUCTION_SLOT)
        states = []
        for row in rows:
            health = slot_health(application, row) if probe else None
            states.append(
                SlotState(
                    name=row.slot_name,
                    version=row.version,
                    healthy=health.healthy if health else None,
                    traffic_percent=max(0, 100 - routed_elsewhere)
                    if row.slot_name == PRODUCTION_SLOT
                    else row.routing_percent,
                    hostname=hostname(application, row.slot_name),
                    state="Running" if row.running else "Stopped",
                    detail="" if health is None or health.healthy else health.detail,
                )
            )
        return states

    def check_health(self, application: Application, slot: str) -> HealthResult:
        return slot_health(application, slot_or_404(application, slot))

    def begin_swap(self, application: Application, source: str, target: str = PRODUCTION_SLOT) -> SimulatorSwapHandle:
        _distinct(source, target)
        timings = settings.SIMULATOR_TIMINGS
        with transaction.atomic():
            _lock_site(application)
            slots = [slot_or_404(application, source, lock=True), slot_or_404(application, target, lock=True)]
            current = _in_flight_swap(application)
            if current is not None:
                raise _conflict(current)
            src, tgt = slots
            if tgt.preview_target or (src.preview_target and src.preview_target != target):
                previewing = tgt if tgt.preview_target else src
                raise PermanentError(
                    f"The slot '{previewing.slot_name}' is previewing a swap with '{previewing.preview_target}'; "
                    "complete that swap or cancel the preview first.",
                    status=400,
                    code="BadRequest",
                )
            if any(s.fail_swap for s in slots):
                fault = SimulatorSwap.Fault.FAIL
            elif any(s.hang_swap for s in slots):
                fault = SimulatorSwap.Fault.HANG
            else:
                fault = SimulatorSwap.Fault.NONE
            try:
                with transaction.atomic():
                    swap = SimulatorSwap.objects.create(
                        application=application,
                        source=source,
                        target=target,
                        with_preview=src.preview_target == target,
                        fault=fault,
                        started_at=clock.now(),
                        warmup_seconds=timings["warmup_seconds"],
                        swap_seconds=timings["swap_seconds"],
                        routing_seconds=timings["routing_seconds"],
                        hang_timeout_seconds=timings["hang_timeout_seconds"],
                    )
            except IntegrityError:  # another process started one in between (PostgreSQL without the lock order)
                current = _in_flight_swap(application)
                if current is None:
                    raise
                raise _conflict(current) from None
        return SimulatorSwapHandle(swap.pk)

    def resume_swap(self, application: Application, resume_token: str) -> SimulatorSwapHandle:
        try:
            swap_id = int(resume_token)
        except (TypeError, ValueError):
            message = f"{resume_token!r} is not a simulator swap token."
            raise NotFoundError(message, status=404, code="NotFound") from None
        if not SimulatorSwap.objects.filter(pk=swap_id, application=application).exists():
            raise NotFoundError(
                f"There is no swap operation {swap_id} on site '{application.slug}'.", status=404, code="NotFound"
            )
        return SimulatorSwapHandle(swap_id)

    def apply_swap_preview(self, application: Application, source: str, target: str = PRODUCTION_SLOT) -> None:
        _distinct(source, target)
        with transaction.atomic():
            site = _lock_site(application)
            src = slot_or_404(application, source, lock=True)
            tgt = slot_or_404(application, target, lock=True)
            current = _in_flight_swap(application)
            if current is not None:
                raise _conflict(current)
            if src.preview_target == target:
                return  # already applied: idempotent
            if src.preview_target or tgt.preview_target:
                previewing = src if src.preview_target else tgt
                raise PermanentError(
                    f"The slot '{previewing.slot_name}' is already previewing a swap with "
                    f"'{previewing.preview_target}'; cancel that preview first.",
                    status=400,
                    code="BadRequest",
                )
            sticky = set(site.sticky_settings)
            own = dict(src.app_settings)
            src.preview_saved_settings = own
            src.preview_target = target
            src.app_settings = {k: v for k, v in own.items() if k not in sticky} | {
                k: v for k, v in tgt.app_settings.items() if k in sticky
            }
            src.save(update_fields=["app_settings", "preview_target", "preview_saved_settings", "updated_at"])

    def cancel_swap_preview(self, application: Application, source: str) -> None:
        with transaction.atomic():
            _lock_site(application)
            src = slot_or_404(application, source, lock=True)
            current = _in_flight_swap(application)
            if current is not None and current.with_preview and current.source == source:
                raise _conflict(current)
            if not src.preview_target:
                return  # nothing to cancel: idempotent
            src.app_settings = dict(src.preview_saved_settings or {})
            src.preview_target, src.preview_saved_settings = "", None
            src.save(update_fields=["app_settings", "preview_target", "preview_saved_settings", "updated_at"])

    def applied_previews(self, application: Application) -> list[tuple[str, str]]:
        """(slot, target) of every slot with a swap preview applied (drift detection reads it)."""
        rows = SimulatorSlot.objects.filter(application=application).exclude(preview_target="").order_by("slot_name")
        return list(rows.values_list("slot_name", "preview_target"))

    def get_traffic(self, application: Application) -> dict[str, int]:
        rows = SimulatorSlot.objects.filter(application=application, routing_percent__gt=0).exclude(
            slot_name=PRODUCTION_SLOT
        )
        return dict(rows.order_by("slot_name").values_list("slot_name", "routing_percent"))

    def set_traffic(self, application: Application, slot: str, percent: int) -> None:
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise PermanentError(
                f"The traffic share must be a whole percentage from 0 to 100, not {percent!r}.",
                status=400,
                code="BadRequest",
            )
        if slot == PRODUCTION_SLOT:
            raise PermanentError(
                "The production slot takes whatever traffic the routing rules leave; set the share of a "
                "deployment slot instead.",
                status=400,
                code="BadRequest",
            )
        with transaction.atomic():
            rows = list(
                SimulatorSlot.objects.select_for_update(no_key=True).filter(application=application).order_by("pk")
            )
            row = next((r for r in rows if r.slot_name == slot), None)
            if row is None:
                slot_or_404(application, slot)  # raises NotFoundError
                return  # pragma: no cover
            others = sum(r.routing_percent for r in rows if r.slot_name not in (slot, PRODUCTION_SLOT))
            if others + percent > 100:
                raise PermanentError(
                    f"Routing {percent}% to '{slot}' would send {others + percent}% of the traffic away from "
                    f"production, and other slots already take {others}%; at most 100% can be routed.",
                    status=400,
                    code="BadRequest",
                )
            if row.routing_percent != percent:
                row.routing_percent = percent
                row.save(update_fields=["routing_percent", "updated_at"])

    def get_app_settings(self, application: Application, slot: str) -> dict[str, str]:
        return dict(slot_or_404(application, slot).app_settings)

    def update_app_settings(self, application: Application, slot: str, changes: dict[str, str | None]) -> None:
        bad = sorted(
            repr(k) for k, v in changes.items() if not (isinstance(k, str) and k and (v is None or isinstance(v, str)))
        )
        if bad:
            raise PermanentError(
                f"App settings need non-empty names and text values (None deletes one); not {', '.join(bad)}.",
                status=400,
                code="BadRequest",
            )
        with transaction.atomic():
            row = slot_or_404(application, slot, lock=True)

            def merged(settings_: dict[str, Any]) -> dict[str, Any]:
                out = dict(settings_)
                for name, value in changes.items():
                    if value is None:
                        out.pop(name, None)
                    else:
                        out[name] = value
                return out

            row.app_settings = merged(row.app_settings)
            if row.preview_target:  # keep the change when the preview is cancelled, too
                row.preview_saved_settings = merged(row.preview_saved_settings or {})
            row.save(update_fields=["app_settings", "preview_saved_settings", "updated_at"])

    def get_sticky_settings(self, application: Application) -> list[str]:
        site = SimulatorSite.objects.filter(application=application).first()
        return list(site.sticky_settings) if site else []

    def set_sticky_settings(self, application: Application, names: list[str]) -> None:
        if any(not isinstance(n, str) or not n for n in names):
            raise PermanentError("Sticky setting names must be non-empty text.", status=400, code="BadRequest")
        with transaction.atomic():
            site = _lock_site(application)
            site.sticky_settings = sorted(set(names))
            site.save(update_fields=["sticky_settings", "updated_at"])

    def restart(self, application: Application, slot: str) -> None:
        with transaction.atomic():
            row = slot_or_404(application, slot, lock=True)
            row.restart_count += 1
            row.last_restart_at = clock.now()
            row.save(update_fields=["restart_count", "last_restart_at", "updated_at"])

    def metrics(self, application: Application, slot: str, *, minutes: int = 5) -> MetricsSample:
        return slot_metrics(application, slot, minutes=minutes)
