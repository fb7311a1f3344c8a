"""The simulator's invariants, held by the database whatever the code above it does."""

from __future__ import annotations

import pytest

from portal.core import clock
from releases.catalog.models import (
    Application,
    SimulatorMetricBucket,
    SimulatorSite,
    SimulatorSlot,
    SimulatorSwap,
    SimulatorVersionProfile,
    SwapPhase,
)
from tests.releases.test_constraints import violates

pytestmark = pytest.mark.django_db


def swap(application: Application, **fields: object) -> SimulatorSwap:
    values: dict[str, object] = {
        "application": application,
        "source": "staging",
        "target": "production",
        "started_at": clock.now(),
        "warmup_seconds": 1.0,
        "swap_seconds": 3.0,
        "routing_seconds": 1.0,
        "hang_timeout_seconds": 60.0,
        **fields,
    }
    return SimulatorSwap.objects.create(**values)


def test_one_swap_in_flight_per_application(checkout: Application) -> None:
    swap(checkout, phase=SwapPhase.DONE, finished_at=clock.now())
    swap(checkout, phase=SwapPhase.ROUTING)

    with violates("one_simulator_swap_in_flight_per_application"):
        swap(checkout, source="test")


def test_a_swap_is_finished_exactly_when_it_is_done_or_failed(checkout: Application) -> None:
    with violates("simulator_swap_finished_iff_terminal"):
        swap(checkout, phase=SwapPhase.DONE)
    with violates("simulator_swap_finished_iff_terminal"):
        swap(checkout, phase=SwapPhase.SWAPPING, finished_at=clock.now())


def test_a_failed_swap_says_why(checkout: Application) -> None:
    with violates("simulator_swap_failure_has_error"):
        swap(checkout, phase=SwapPhase.FAILED, finished_at=clock.now())


def test_a_swap_is_between_two_slots_with_consistent_timings(checkout: Application) -> None:
    with violates("simulator_swap_distinct_slots"):
        swap(checkout, target="staging")
    with violates("simulator_swap_timings_consistent"):
        swap(checkout, warmup_seconds=3.0, routing_seconds=1.0, swap_seconds=2.0)


def test_routing_is_0_to_100_percent(checkout: Application) -> None:
    with violates("simulator_routing_range"):
        SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(routing_percent=101)


def test_a_preview_has_a_target_and_saved_settings_and_is_not_with_itself(checkout: Application) -> None:
    slots = SimulatorSlot.objects.filter(application=checkout, slot_name="staging")
    with violates("simulator_preview_complete"):
        slots.update(preview_target="production")
    with violates("simulator_preview_not_self"):
        slots.update(preview_target="staging", preview_saved_settings={})


def test_a_version_profile_is_sane(checkout: Application) -> None:
    SimulatorVersionProfile.objects.create(application=checkout, version="1.0.0")

    with violates("simulator_profile_unique"):
        SimulatorVersionProfile.objects.create(application=checkout, version="1.0.0")
    with violates("simulator_profile_error_rate_range"):
        SimulatorVersionProfile.objects.create(application=checkout, version="2", error_rate=1.01)
    with violates("simulator_profile_latency_order"):
        SimulatorVersionProfile.objects.create(
            application=checkout, version="3", latency_ms_median=100, latency_ms_p95=99
        )
    with violates("simulator_profile_version_not_blank"):
        SimulatorVersionProfile.objects.create(application=checkout, version="")


def test_synthetic_load_is_bounded(checkout: Application) -> None:
    with violates("simulator_synthetic_rpm_range"):
        SimulatorSite.objects.create(application=checkout, synthetic_rpm=SimulatorSite.MAX_SYNTHETIC_RPM + 1)


def test_a_bucket_is_one_per_slot_minute_and_source_with_no_more_errors_than_requests(checkout: Application) -> None:
    slot = SimulatorSlot.objects.get(application=checkout, slot_name="production")
    minute = clock.now().replace(second=0, microsecond=0)
    SimulatorMetricBucket.objects.create(slot=slot, minute=minute, source="served", requests=1)

    with violates("simulator_bucket_unique"):
        SimulatorMetricBucket.objects.create(slot=slot, minute=minute, source="served")
    with violates("simulator_bucket_errors_within_requests"):
        SimulatorMetricBucket.objects.create(slot=slot, minute=minute, source="synthetic", requests=1, errors=2)
