"""The hosting-provider contract: the same tests, run against the simulator and against the real
azure-mgmt-web client talking to the loopback ARM emulator.

Each test arranges its world only through the `World` below (what a site runs before the test), and
then observes it only through the `HostingProvider` interface. A behaviour that differs between the
two providers fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pytest
from django.utils import timezone

from releases.catalog.models import Application, SimulatorSlot
from releases.catalog.providers import PRODUCTION_SLOT, HostingProvider, MetricsSample, NotFoundError, SlotState
from releases.catalog.providers.registry import provider_for
from tests.azure.conftest import azure_emulator, emulator  # noqa: F401 - fixtures used by `world`
from tests.azure_emulator import AzureEmulator, EmulatedSite
from tests.azure_emulator.state import MinuteMetrics
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

VERSIONS = {PRODUCTION_SLOT: "1.0.0", "staging": "1.1.0"}


class World(Protocol):
    """Arranges what the hosting platform runs, behind the provider's back."""

    application: Application

    def set_healthy(self, slot: str, healthy: bool) -> None: ...

    def serve_traffic(self, slot: str, *, requests: int, errors: int, latency_ms: float) -> None: ...


@dataclass
class SimulatedWorld:
    application: Application

    def set_healthy(self, slot: str, healthy: bool) -> None:
        SimulatorSlot.objects.filter(application=self.application, slot_name=slot).update(healthy=healthy)

    def serve_traffic(self, slot: str, *, requests: int, errors: int, latency_ms: float) -> None:
        from releases.catalog.providers.simulator_load import floor_minute, record

        row = SimulatorSlot.objects.get(application=self.application, slot_name=slot)
        record(row, floor_minute(timezone.now()), "served", requests, errors, [latency_ms] * min(requests, 50))


@dataclass
class AzureWorld:
    application: Application
    site: EmulatedSite

    def set_healthy(self, slot: str, healthy: bool) -> None:
        self.site.slot(slot).healthy = healthy

    def serve_traffic(self, slot: str, *, requests: int, errors: int, latency_ms: float) -> None:
        # Azure Monitor answers per minute; the emulator serves the same figures every minute.
        self.site.slot(slot).metrics = MinuteMetrics(requests=requests, errors=errors, response_time_ms=latency_ms)


@pytest.fixture(params=["simulator", "azure"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    if request.param == "simulator":
        application = ApplicationFactory(slug="contract", environments=False)
        for name, version in VERSIONS.items():
            SimulatorSlot.objects.create(application=application, slot_name=name, version=version)
        yield SimulatedWorld(application)
        return
    em: AzureEmulator = request.getfixturevalue("emulator")
    application = ApplicationFactory(slug="contract", azure=True, environments=False, health_check_path="/healthz")
    site = em.add_site(
        application.azure_subscription_id, application.azure_resource_group, application.azure_site_name, VERSIONS
    )
    yield AzureWorld(application, site)


@pytest.fixture
def provider(world: World) -> HostingProvider:
    return provider_for(world.application)


def states(provider: HostingProvider, application: Application) -> dict[str, SlotState]:
    return {state.name: state for state in provider.slot_states(application)}


def versions(provider: HostingProvider, application: Application) -> dict[str, str]:
    return {name: state.version for name, state in states(provider, application).items()}


def test_it_is_a_hosting_provider(provider: HostingProvider) -> None:
    assert isinstance(provider, HostingProvider)


def test_it_lists_every_slot_with_its_version_hostname_state_and_traffic(
    world: World, provider: HostingProvider
) -> None:
    slots = states(provider, world.application)

    assert set(slots) == {PRODUCTION_SLOT, "staging"}
    assert slots[PRODUCTION_SLOT].version == "1.0.0"
    assert slots["staging"].version == "1.1.0"
    assert (slots[PRODUCTION_SLOT].traffic_percent, slots["staging"].traffic_percent) == (100, 0)
    assert all(state.hostname for state in slots.values())
    assert slots[PRODUCTION_SLOT].hostname != slots["staging"].hostname
    assert {state.state for state in slots.values()} == {"Running"}


def test_a_share_of_production_traffic_goes_to_a_slot_and_back_to_zero(world: World, provider: HostingProvider) -> None:
    app = world.application

    provider.set_traffic(app, "staging", 25)
    provider.set_traffic(app, "staging", 25)  # idempotent

    assert provider.get_traffic(app) == {"staging": 25}
    slots = states(provider, app)
    assert (slots[PRODUCTION_SLOT].traffic_percent, slots["staging"].traffic_percent) == (75, 25)

    provider.set_traffic(app, "staging", 0)

    assert provider.get_traffic(app).get("staging", 0) == 0
    assert states(provider, app)[PRODUCTION_SLOT].traffic_percent == 100


def test_a_swap_exchanges_what_the_slots_run_and_a_second_swap_takes_it_back(
    world: World, provider: HostingProvider
) -> None:
    app = world.application

    provider.begin_swap(app, "staging").result(timeout=30)

    assert versions(provider, app) == {PRODUCTION_SLOT: "1.1.0", "staging": "1.0.0"}

    provider.begin_swap(app, "staging", PRODUCTION_SLOT).result(timeout=30)

    assert versions(provider, app) == {PRODUCTION_SLOT: "1.0.0", "staging": "1.1.0"}


def test_a_swap_resumed_from_its_token_by_another_provider_instance_completes_exactly_once(
    world: World, provider: HostingProvider
) -> None:
    app = world.application
    token = provider.begin_swap(app, "staging").resume_token
    assert token

    fresh = provider_for(app)  # as a restarted worker would
    fresh.resume_swap(app, token).result(timeout=30)
    fresh.resume_swap(app, token).result(timeout=30)  # resuming a finished swap swaps nothing again

    assert versions(provider, app) == {PRODUCTION_SLOT: "1.1.0", "staging": "1.0.0"}


def test_app_settings_are_merged_and_a_none_deletes_one(world: World, provider: HostingProvider) -> None:
    app = world.application

    provider.update_app_settings(app, "staging", {"FEATURE_X": "on", "COLOUR": "blue"})
    provider.update_app_settings(app, "staging", {"COLOUR": "green", "FEATURE_X": None})

    settings = provider.get_app_settings(app, "staging")
    assert settings["COLOUR"] == "green"
    assert "FEATURE_X" not in settings
    assert "COLOUR" not in provider.get_app_settings(app, PRODUCTION_SLOT)


def test_sticky_settings_stay_with_their_slot_in_a_swap_and_the_rest_move(
    world: World, provider: HostingProvider
) -> None:
    app = world.application
    provider.set_sticky_settings(app, ["DATABASE"])
    provider.update_app_settings(app, PRODUCTION_SLOT, {"DATABASE": "prod-db", "THEME": "old"})
    provider.update_app_settings(app, "staging", {"DATABASE": "staging-db", "THEME": "new"})

    provider.begin_swap(app, "staging").result(timeout=30)

    assert provider.get_sticky_settings(app) == ["DATABASE"]
    production = provider.get_app_settings(app, PRODUCTION_SLOT)
    staging = provider.get_app_settings(app, "staging")
    assert (production["DATABASE"], production["THEME"]) == ("prod-db", "new")
    assert (staging["DATABASE"], staging["THEME"]) == ("staging-db", "old")


def test_a_swap_with_preview_applies_production_settings_to_staging_and_cancelling_restores_them(
    world: World, provider: HostingProvider
) -> None:
    app = world.application
    provider.set_sticky_settings(app, ["DATABASE"])
    provider.update_app_settings(app, PRODUCTION_SLOT, {"DATABASE": "prod-db"})
    provider.update_app_settings(app, "staging", {"DATABASE": "staging-db"})

    provider.apply_swap_preview(app, "staging")

    assert provider.get_app_settings(app, "staging")["DATABASE"] == "prod-db"
    assert versions(provider, app)["staging"] == "1.1.0"  # the code has not moved yet

    provider.cancel_swap_preview(app, "staging")

    assert provider.get_app_settings(app, "staging")["DATABASE"] == "staging-db"
    assert versions(provider, app) == {PRODUCTION_SLOT: "1.0.0", "staging": "1.1.0"}


def test_a_swap_with_preview_completes_with_a_swap(world: World, provider: HostingProvider) -> None:
    app = world.application
    provider.set_sticky_settings(app, ["DATABASE"])
    provider.update_app_settings(app, PRODUCTION_SLOT, {"DATABASE": "prod-db"})
    provider.update_app_settings(app, "staging", {"DATABASE": "staging-db"})
    provider.apply_swap_preview(app, "staging")

    provider.begin_swap(app, "staging").result(timeout=30)

    assert versions(provider, app) == {PRODUCTION_SLOT: "1.1.0", "staging": "1.0.0"}
    assert provider.get_app_settings(app, PRODUCTION_SLOT)["DATABASE"] == "prod-db"
    assert provider.get_app_settings(app, "staging")["DATABASE"] == "staging-db"


def test_health_follows_what_the_slot_answers(world: World, provider: HostingProvider) -> None:
    app = world.application
    world.set_healthy("staging", False)

    assert provider.check_health(app, PRODUCTION_SLOT).healthy is True
    unhealthy = provider.check_health(app, "staging")
    assert unhealthy.healthy is False
    assert unhealthy.detail
    assert states(provider, app)["staging"].healthy is False


def test_without_probing_it_says_what_runs_where_and_nothing_of_health(world: World, provider: HostingProvider) -> None:
    app = world.application
    world.set_healthy("staging", False)
    provider.set_traffic(app, "staging", 10)

    slots = {state.name: state for state in provider.slot_states(app, probe=False)}

    assert {name: (s.version, s.traffic_percent) for name, s in slots.items()} == {
        PRODUCTION_SLOT: ("1.0.0", 90),
        "staging": ("1.1.0", 10),
    }
    assert {s.healthy for s in slots.values()} == {None}, "not probed: the provider does not say"
    assert states(provider, app)["staging"].healthy is False  # probing still tells


def test_an_unknown_slot_is_not_found(world: World, provider: HostingProvider) -> None:
    with pytest.raises(NotFoundError):
        provider.get_app_settings(world.application, "no-such-slot")
    with pytest.raises(NotFoundError):
        provider.set_traffic(world.application, "no-such-slot", 10)


def test_a_restart_leaves_the_slot_running_what_it_ran(world: World, provider: HostingProvider) -> None:
    provider.restart(world.application, "staging")

    slot = states(provider, world.application)["staging"]
    assert (slot.state, slot.version) == ("Running", "1.1.0")


def test_metrics_report_requests_errors_and_latencies_of_a_slot(world: World, provider: HostingProvider) -> None:
    world.serve_traffic("staging", requests=200, errors=5, latency_ms=80.0)

    sample = provider.metrics(world.application, "staging", minutes=5)
    quiet = provider.metrics(world.application, PRODUCTION_SLOT, minutes=5)

    assert isinstance(sample, MetricsSample)
    assert sample.requests >= 200
    assert sample.error_rate == pytest.approx(0.025)
    assert sample.latencies_ms
    assert all(latency == pytest.approx(80.0) for latency in sample.latencies_ms)
    assert (quiet.requests, quiet.errors) == (0, 0)
