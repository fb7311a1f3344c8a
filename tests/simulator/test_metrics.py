"""Request metrics: synthetic load made up lazily and deterministically, split by the traffic share."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest

from portal.core import clock
from releases.catalog.models import (
    Application,
    SimulatorMetricBucket,
    SimulatorSite,
    SimulatorSlot,
    SimulatorVersionProfile,
)
from releases.catalog.providers.simulator import SimulatorProvider
from releases.catalog.providers.simulator_load import DEFAULT_PROFILE, Profile, generate_synthetic

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def loaded(checkout: Application, provider: SimulatorProvider) -> Application:
    """600 requests a minute since noon; a quarter of them routed to staging."""
    SimulatorSite.objects.create(application=checkout, synthetic_rpm=600, synthetic_generated_until=NOON)
    provider.set_traffic(checkout, "staging", 25)
    return checkout


def buckets(application: Application) -> set[tuple[str, datetime, int, int]]:
    return set(
        SimulatorMetricBucket.objects.filter(slot__application=application).values_list(
            "slot__slot_name", "minute", "requests", "errors"
        )
    )


def test_the_synthetic_load_is_split_by_the_traffic_share(loaded: Application, provider: SimulatorProvider) -> None:
    with clock.frozen(NOON + timedelta(minutes=5)):
        production = provider.metrics(loaded, "production", minutes=5)
        staging = provider.metrics(loaded, "staging", minutes=5)
        test = provider.metrics(loaded, "test", minutes=5)

    assert production.requests + staging.requests == 5 * 600
    assert 0.21 <= staging.requests / 3000 <= 0.29
    assert test.requests == 0
    assert production.errors == staging.errors == 0
    assert len(production.latencies_ms) == 5 * SimulatorMetricBucket.MAX_SAMPLES  # capped per minute bucket


def test_errors_and_latencies_follow_the_versions_profile(loaded: Application, provider: SimulatorProvider) -> None:
    SimulatorVersionProfile.objects.create(
        application=loaded, version="1.1.0", error_rate=0.2, latency_ms_median=300, latency_ms_p95=900
    )

    with clock.frozen(NOON + timedelta(minutes=5)):
        production = provider.metrics(loaded, "production", minutes=5)
        staging = provider.metrics(loaded, "staging", minutes=5)

    assert production.errors == 0
    assert 0.14 <= staging.error_rate <= 0.26
    assert 60 <= statistics.median(production.latencies_ms) <= 105  # the default profile: 80 ms
    assert 240 <= statistics.median(staging.latencies_ms) <= 370
    assert 700 <= statistics.quantiles(staging.latencies_ms, n=20)[-1] <= 1150  # p95 near 900 ms


def test_the_synthetic_load_is_the_same_however_it_is_read(loaded: Application, provider: SimulatorProvider) -> None:
    end = NOON + timedelta(minutes=3, seconds=30)
    moment = NOON
    while moment < end:  # read every 7 seconds
        moment += timedelta(seconds=7)
        with clock.frozen(min(moment, end)):
            generate_synthetic(loaded)
    chunked = buckets(loaded)
    SimulatorMetricBucket.objects.all().delete()
    SimulatorSite.objects.filter(application=loaded).update(synthetic_generated_until=NOON)

    with clock.frozen(end):
        made = generate_synthetic(loaded)

    assert made == 3 * 600 + 300
    assert buckets(loaded) == chunked
    assert sum(requests for *_, requests, _errors in chunked) == made


def test_nothing_is_made_twice_for_the_same_moment(loaded: Application) -> None:
    with clock.frozen(NOON + timedelta(minutes=1)):
        first = generate_synthetic(loaded)
        again = generate_synthetic(loaded)

    assert (first, again) == (600, 0)


def test_a_long_pause_is_filled_in_for_the_backfill_period_only(
    checkout: Application, provider: SimulatorProvider
) -> None:
    SimulatorSite.objects.create(application=checkout, synthetic_rpm=60)  # never generated: the demo's start

    with clock.frozen(NOON):
        sample = provider.metrics(checkout, "production", minutes=60)

    assert 899 <= sample.requests <= 901  # 15 minutes (the backfill setting) of 60 a minute


def test_no_load_makes_no_requests(checkout: Application, provider: SimulatorProvider) -> None:
    assert provider.metrics(checkout, "production").requests == 0
    assert not SimulatorMetricBucket.objects.exists()


def test_a_stopped_slot_gets_no_synthetic_requests(loaded: Application, provider: SimulatorProvider) -> None:
    SimulatorSlot.objects.filter(application=loaded, slot_name="staging").update(running=False)

    with clock.frozen(NOON + timedelta(minutes=2)):
        staging = provider.metrics(loaded, "staging", minutes=5)
        production = provider.metrics(loaded, "production", minutes=5)

    assert staging.requests == 0
    assert 0.71 <= production.requests / 1200 <= 0.79


def test_metrics_cover_only_the_window_asked_for(loaded: Application, provider: SimulatorProvider) -> None:
    with clock.frozen(NOON + timedelta(minutes=10)):
        ten = provider.metrics(loaded, "production", minutes=10)
        two = provider.metrics(loaded, "production", minutes=2)

    assert ten.requests > 4 * two.requests
    assert 0.15 <= two.requests / ten.requests <= 0.25  # 2 of the 10 minutes


def test_old_buckets_are_dropped_after_the_retention_period(loaded: Application) -> None:
    with clock.frozen(NOON + timedelta(minutes=1)):
        generate_synthetic(loaded)
    with clock.frozen(NOON + timedelta(hours=25)):
        generate_synthetic(loaded)

    assert not SimulatorMetricBucket.objects.filter(minute__lt=NOON + timedelta(hours=1)).exists()
    assert SimulatorMetricBucket.objects.exists()


@pytest.mark.parametrize(
    ("profile", "u", "expected"),
    [
        (DEFAULT_PROFILE, 0.5, 80.0),
        (DEFAULT_PROFILE, 0.95, 200.0),
        (Profile(0.0, 100.0, 100.0), 0.99, 100.0),
        (Profile(0.0, 0.0, 0.0), 0.5, 0.0),
    ],
)
def test_latency_quantiles_match_the_profile(profile: Profile, u: float, expected: float) -> None:
    assert profile.latency_ms(u) == pytest.approx(expected)


def test_a_build_without_a_profile_behaves_like_the_one_in_production(checkout: Application) -> None:
    from releases.catalog.providers.simulator_load import profile_for

    production = SimulatorSlot.objects.get(application=checkout, slot_name="production").version
    SimulatorVersionProfile.objects.create(
        application=checkout, version=production, error_rate=0.01, latency_ms_median=35.0, latency_ms_p95=90.0
    )

    assert profile_for(checkout, "9.9.9") == Profile(0.01, 35.0, 90.0, True)
    SimulatorVersionProfile.objects.create(
        application=checkout, version="9.9.9", latency_ms_median=300.0, latency_ms_p95=600.0
    )
    assert profile_for(checkout, "9.9.9").latency_ms_median == 300.0
    SimulatorVersionProfile.objects.filter(application=checkout).delete()
    assert profile_for(checkout, "9.9.9") == DEFAULT_PROFILE
