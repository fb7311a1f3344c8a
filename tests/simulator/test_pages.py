"""The simulated slots' own pages: public, routed by the traffic share, pinned by cookie, counted."""

from __future__ import annotations

from collections import Counter

import pytest
from django.test import Client
from django.urls import reverse

from releases.catalog.models import Application, SimulatorMetricBucket, SimulatorSlot, SimulatorVersionProfile
from releases.catalog.providers.simulator import SimulatorProvider
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

COOKIE = "x-ms-routing-name"


def routed(application: Application) -> str:
    return reverse("sim_routed", args=[application.slug])


def slot_page(application: Application, slot: str) -> str:
    return reverse("sim_slot", args=[application.slug, slot])


def healthz(application: Application, slot: str) -> str:
    return reverse("sim_slot_healthz", args=[application.slug, slot])


# --- one slot's page -------------------------------------------------------------------------------


def test_a_slot_page_shows_app_slot_version_health_and_counts_each_visit(client: Client, checkout: Application) -> None:
    first = client.get(slot_page(checkout, "staging"))
    second = client.get(slot_page(checkout, "staging"))

    assert first.status_code == second.status_code == 200
    assert "<h1>Checkout</h1>" in second.text
    assert '<code id="slot">staging</code>' in second.text
    assert '<strong id="version">1.1.0</strong>' in second.text
    assert "Healthy" in second.text
    assert '<td id="served">2</td>' in second.text
    assert (second["X-Served-By-Slot"], second["X-Served-Version"]) == ("staging", "1.1.0")
    assert SimulatorSlot.objects.get(application=checkout, slot_name="staging").served_total == 2


def test_a_version_with_a_full_error_rate_answers_500(client: Client, checkout: Application) -> None:
    SimulatorVersionProfile.objects.create(application=checkout, version="1.1.0", error_rate=1.0)

    response = client.get(slot_page(checkout, "staging"))

    assert response.status_code == 500
    assert "HTTP 500" in response.text


def test_a_stopped_slot_answers_403_and_serves_nothing(client: Client, checkout: Application) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="dev").update(running=False)

    response = client.get(slot_page(checkout, "dev"))

    assert response.status_code == 403
    assert "This web app is stopped." in response.text
    assert not SimulatorMetricBucket.objects.exists()


def test_an_unknown_slot_or_a_site_not_on_the_simulator_is_a_404(client: Client, checkout: Application) -> None:
    azure = ApplicationFactory(azure=True)

    assert client.get(slot_page(checkout, "canary")).status_code == 404
    assert client.get(healthz(checkout, "canary")).status_code == 404
    assert client.get(routed(azure)).status_code == 404
    assert client.get(slot_page(azure, "staging")).status_code == 404


# --- health ----------------------------------------------------------------------------------------


def test_the_health_page_answers_200_when_healthy(client: Client, checkout: Application) -> None:
    response = client.get(healthz(checkout, "production"))

    assert (response.status_code, response.text) == (200, "OK\n")
    assert response["Content-Type"] == "text/plain; charset=utf-8"


def test_the_health_page_answers_503_for_an_unhealthy_slot_or_version(client: Client, checkout: Application) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(healthy=False)
    SimulatorVersionProfile.objects.create(application=checkout, version="1.2.0-dev.1", healthy=False)

    staging, dev = client.get(healthz(checkout, "staging")), client.get(healthz(checkout, "dev"))

    assert (staging.status_code, staging.text) == (503, "Simulated health check failing\n")
    assert (dev.status_code, dev.text) == (503, "Version 1.2.0-dev.1 fails its health check (simulated)\n")
    assert not SimulatorMetricBucket.objects.exists()  # health checks are not visitors


def test_the_health_page_answers_what_the_provider_says(client: Client, checkout: Application) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="test").update(running=False)
    health = SimulatorProvider().check_health(checkout, "test")

    response = client.get(healthz(checkout, "test"))

    assert (
        (response.status_code, response.text)
        == (health.status_code, f"{health.detail}\n")
        == (
            403,
            "Error 403 - This web app is stopped.\n",
        )
    )


# --- the routed production URL ---------------------------------------------------------------------


def test_without_a_routing_rule_every_visitor_gets_production(client: Client, checkout: Application) -> None:
    response = client.get(routed(checkout))

    assert response.status_code == 200
    assert response["X-Served-By-Slot"] == "production"
    assert response.cookies[COOKIE].value == "self"
    assert response.cookies[COOKIE]["httponly"]
    assert "production URL, routed by the traffic share" in response.text


def test_the_routed_url_honours_the_traffic_share_and_the_metrics_count_what_was_served(
    checkout: Application,
) -> None:
    provider = SimulatorProvider()
    provider.set_traffic(checkout, "staging", 25)
    visitor = Client()
    answered: Counter[str] = Counter()
    cookies: Counter[str] = Counter()

    for _ in range(1000):
        visitor.cookies.clear()  # a new visitor every time
        response = visitor.get(routed(checkout))
        assert response.status_code == 200
        answered[response["X-Served-By-Slot"]] += 1
        cookies[response.cookies[COOKIE].value] += 1

    assert set(answered) == {"production", "staging"}
    assert 180 <= answered["staging"] <= 320, answered
    assert cookies == Counter({"self": answered["production"], "staging": answered["staging"]})
    for slot in ("production", "staging"):
        sample = provider.metrics(checkout, slot, minutes=5)
        assert (sample.requests, sample.errors) == (answered[slot], 0)
        assert 0 < len(sample.latencies_ms) <= sample.requests


def test_a_pinned_visitor_stays_on_the_slot_whatever_the_share(client: Client, checkout: Application) -> None:
    pinned = client.get(routed(checkout), {COOKIE: "staging"})
    later = [client.get(routed(checkout)) for _ in range(20)]

    assert pinned["X-Served-By-Slot"] == "staging"
    assert pinned.cookies[COOKIE].value == "staging"
    assert {r["X-Served-By-Slot"] for r in later} == {"staging"}  # the share is 0 %, the cookie wins


def test_self_sends_a_visitor_back_to_production(client: Client, checkout: Application) -> None:
    SimulatorProvider().set_traffic(checkout, "staging", 100)
    client.get(routed(checkout), {COOKIE: "staging"})

    back = client.get(routed(checkout), {COOKIE: "self"})
    later = [client.get(routed(checkout)) for _ in range(10)]

    assert back["X-Served-By-Slot"] == "production"
    assert back.cookies[COOKIE].value == "self"
    assert {r["X-Served-By-Slot"] for r in later} == {"production"}  # 100 % to staging, yet pinned to production


def test_a_cookie_naming_a_slot_that_is_gone_is_routed_afresh(client: Client, checkout: Application) -> None:
    client.cookies[COOKIE] = "canary"

    response = client.get(routed(checkout))

    assert response["X-Served-By-Slot"] == "production"
    assert response.cookies[COOKIE].value == "self"


def test_errors_follow_the_version_of_the_slot_that_answered(client: Client, checkout: Application) -> None:
    SimulatorVersionProfile.objects.create(application=checkout, version="1.1.0", error_rate=1.0)
    client.get(routed(checkout), {COOKIE: "staging"})
    statuses = [client.get(routed(checkout)).status_code for _ in range(5)]
    client.get(routed(checkout), {COOKIE: "self"})

    staging = SimulatorProvider().metrics(checkout, "staging")
    production = SimulatorProvider().metrics(checkout, "production")

    assert statuses == [500] * 5
    assert (staging.requests, staging.errors, staging.error_rate) == (6, 6, 1.0)
    assert (production.requests, production.errors) == (1, 0)
