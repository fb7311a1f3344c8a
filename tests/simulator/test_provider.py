"""The simulator as a HostingProvider: every method of the interface, against the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pytest_django.fixtures import Settings

from portal.core import clock
from releases.catalog.models import Application, SimulatorSlot, SimulatorVersionProfile
from releases.catalog.providers import PRODUCTION_SLOT, HostingProvider, NotFoundError, PermanentError
from releases.catalog.providers.registry import provider_for
from releases.catalog.providers.simulator import SimulatorProvider
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db


def slot(application: Application, name: str) -> SimulatorSlot:
    return SimulatorSlot.objects.get(application=application, slot_name=name)


def test_it_is_the_provider_of_a_simulated_application(checkout: Application) -> None:
    provider = provider_for(checkout)

    assert isinstance(provider, SimulatorProvider)
    assert isinstance(provider, HostingProvider)


def test_it_lists_every_slot_with_version_health_traffic_and_hostname(
    checkout: Application, provider: SimulatorProvider
) -> None:
    provider.set_traffic(checkout, "staging", 20)

    states = {s.name: s for s in provider.slot_states(checkout)}

    assert sorted(states) == ["dev", "production", "staging", "test"]
    assert (states["production"].version, states["production"].traffic_percent) == ("1.0.0", 80)
    assert (states["staging"].version, states["staging"].traffic_percent) == ("1.1.0", 20)
    assert states["staging"].hostname == "checkout-staging.sim.slipway.local"
    assert states["production"].hostname == "checkout.sim.slipway.local"
    assert all(s.healthy is True and s.state == "Running" and s.detail == "" for s in states.values())


def test_an_application_without_a_simulated_site_has_no_slots(provider: SimulatorProvider) -> None:
    assert provider.slot_states(ApplicationFactory()) == []


def test_a_healthy_slot_answers_200_with_a_latency(checkout: Application, provider: SimulatorProvider) -> None:
    health = provider.check_health(checkout, "staging")

    assert (health.healthy, health.status_code, health.detail) == (True, 200, "OK")
    assert health.latency_ms is not None and health.latency_ms > 0


def test_an_unhealthy_slot_answers_503(checkout: Application, provider: SimulatorProvider) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(healthy=False)

    health = provider.check_health(checkout, "staging")
    [state] = [s for s in provider.slot_states(checkout) if s.name == "staging"]

    assert (health.healthy, health.status_code, health.detail) == (False, 503, "Simulated health check failing")
    assert (state.healthy, state.detail) == (False, "Simulated health check failing")


def test_a_version_whose_health_check_fails_makes_every_slot_running_it_unhealthy(
    checkout: Application, provider: SimulatorProvider
) -> None:
    SimulatorVersionProfile.objects.create(application=checkout, version="1.1.0", healthy=False)

    unhealthy = {s.name for s in provider.slot_states(checkout) if not s.healthy}

    assert unhealthy == {"staging", "test"}
    assert provider.check_health(checkout, "test").detail == "Version 1.1.0 fails its health check (simulated)"


def test_a_stopped_slot_answers_403_and_says_so(checkout: Application, provider: SimulatorProvider) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="dev").update(running=False)

    health = provider.check_health(checkout, "dev")
    [state] = [s for s in provider.slot_states(checkout) if s.name == "dev"]

    assert (health.healthy, health.status_code) == (False, 403)
    assert state.state == "Stopped"


def test_an_unknown_slot_is_not_found(checkout: Application, provider: SimulatorProvider) -> None:
    with pytest.raises(NotFoundError, match=r"The slot 'canary' of site 'checkout' was not found\.") as caught:
        provider.check_health(checkout, "canary")

    assert (caught.value.status, caught.value.code, caught.value.retryable) == (404, "ResourceNotFound", False)


# --- traffic ---------------------------------------------------------------------------------------


def test_traffic_is_routed_to_a_deployment_slot_and_production_takes_the_rest(
    checkout: Application, provider: SimulatorProvider
) -> None:
    assert provider.get_traffic(checkout) == {}

    provider.set_traffic(checkout, "staging", 25)
    provider.set_traffic(checkout, "staging", 25)  # idempotent
    provider.set_traffic(checkout, "test", 5)

    assert provider.get_traffic(checkout) == {"staging": 25, "test": 5}
    assert {s.name: s.traffic_percent for s in provider.slot_states(checkout)}["production"] == 70

    provider.set_traffic(checkout, "test", 0)  # 0 removes the rule

    assert provider.get_traffic(checkout) == {"staging": 25}


def test_traffic_cannot_route_more_than_everything(checkout: Application, provider: SimulatorProvider) -> None:
    provider.set_traffic(checkout, "staging", 60)

    with pytest.raises(PermanentError, match="other slots already take 60%; at most 100% can be routed"):
        provider.set_traffic(checkout, "test", 50)

    assert provider.get_traffic(checkout) == {"staging": 60}


@pytest.mark.parametrize("percent", [-1, 101, 12.5, True])
def test_traffic_is_a_whole_percentage(checkout: Application, provider: SimulatorProvider, percent: object) -> None:
    with pytest.raises(PermanentError, match="whole percentage from 0 to 100"):
        provider.set_traffic(checkout, "staging", percent)  # type: ignore[arg-type]


def test_the_production_slot_has_no_routing_rule_of_its_own(checkout: Application, provider: SimulatorProvider) -> None:
    with pytest.raises(PermanentError, match="production slot takes whatever traffic the routing rules leave"):
        provider.set_traffic(checkout, PRODUCTION_SLOT, 50)


def test_traffic_to_an_unknown_slot_is_not_found(checkout: Application, provider: SimulatorProvider) -> None:
    with pytest.raises(NotFoundError):
        provider.set_traffic(checkout, "canary", 10)


# --- app settings ----------------------------------------------------------------------------------


def test_app_settings_are_merged_and_none_deletes(checkout: Application, provider: SimulatorProvider) -> None:
    provider.update_app_settings(checkout, "staging", {"FEATURE_X": "on", "DB": "staging-db"})
    provider.update_app_settings(checkout, "staging", {"FEATURE_X": None, "COLOUR": "blue"})
    provider.update_app_settings(checkout, "staging", {"FEATURE_X": None})  # deleting twice is fine

    assert provider.get_app_settings(checkout, "staging") == {"DB": "staging-db", "COLOUR": "blue"}
    assert provider.get_app_settings(checkout, "production") == {}


def test_app_settings_are_text(checkout: Application, provider: SimulatorProvider) -> None:
    with pytest.raises(PermanentError, match="text values"):
        provider.update_app_settings(checkout, "staging", {"WORKERS": 4})  # type: ignore[dict-item]


def test_sticky_settings_are_a_set_of_names(checkout: Application, provider: SimulatorProvider) -> None:
    assert provider.get_sticky_settings(checkout) == []

    provider.set_sticky_settings(checkout, ["DB", "SLOT_NAME", "DB"])

    assert provider.get_sticky_settings(checkout) == ["DB", "SLOT_NAME"]
    provider.set_sticky_settings(checkout, [])
    assert provider.get_sticky_settings(checkout) == []


# --- restart ---------------------------------------------------------------------------------------


def test_a_restart_is_counted_and_the_slot_is_unhealthy_for_a_moment(
    checkout: Application, provider: SimulatorProvider, settings: Settings
) -> None:
    settings.SIMULATOR_TIMINGS = {**settings.SIMULATOR_TIMINGS, "restart_seconds": 2.0}
    moment = clock.now()
    with clock.frozen(moment):
        provider.restart(checkout, "staging")
        provider.restart(checkout, "staging")
        during = provider.check_health(checkout, "staging")
    with clock.frozen(moment + timedelta(seconds=3)):
        after = provider.check_health(checkout, "staging")

    row = slot(checkout, "staging")
    assert (row.restart_count, row.last_restart_at) == (2, moment)
    assert (during.healthy, during.status_code, during.detail) == (False, 503, "Restarting (simulated)")
    assert after.healthy is True


# --- metrics ---------------------------------------------------------------------------------------


def test_metrics_of_a_quiet_slot_are_empty(checkout: Application, provider: SimulatorProvider) -> None:
    sample = provider.metrics(checkout, "staging", minutes=5)

    assert (sample.requests, sample.errors, sample.latencies_ms, sample.error_rate) == (0, 0, [], 0.0)


def test_metrics_of_an_unknown_slot_are_not_found(checkout: Application, provider: SimulatorProvider) -> None:
    with pytest.raises(NotFoundError):
        provider.metrics(checkout, "canary")
