"""Fault injection from the simulator page and the API: forms with field errors, roles, audit."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from releases.audit.models import AuditEvent
from releases.catalog.models import Application, SimulatorSite, SimulatorSlot, SimulatorVersionProfile
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db


def page(application: Application) -> str:
    return reverse("application_simulator", args=[application.slug])


def api(slug: str) -> str:
    return reverse("api_application_simulator", args=[slug])


def staging(application: Application) -> SimulatorSlot:
    return SimulatorSlot.objects.get(application=application, slot_name="staging")


# --- the page --------------------------------------------------------------------------------------


def test_a_viewer_sees_the_simulated_site_without_the_forms(
    client: Client, viewer: User, checkout: Application
) -> None:
    client.force_login(viewer)

    response = client.get(page(checkout))

    assert response.status_code == 200
    for slot in ("production", "staging", "test", "dev"):
        assert f'<a href="/sim/checkout/{slot}/"><code>{slot}</code></a>' in response.text
    assert '<a href="/sim/checkout/">Production (routed)</a>' in response.text
    assert 'name="form"' not in response.text


def test_a_release_manager_is_offered_the_forms(client: Client, release_manager: User, checkout: Application) -> None:
    client.force_login(release_manager)

    response = client.get(page(checkout))

    assert response.text.count('name="form" value="slot"') == 4
    assert 'name="form" value="version"' in response.text
    assert 'name="form" value="load"' in response.text
    assert 'name="staging-healthy" id="id_staging-healthy" checked' in response.text


def test_a_viewer_may_not_set_a_fault(client: Client, viewer: User, checkout: Application) -> None:
    client.force_login(viewer)

    response = client.post(page(checkout), {"form": "slot", "slot": "staging", "staging-running": "on"})

    assert response.status_code == 403
    assert "needs the release manager role" in response.text
    assert staging(checkout).healthy is True
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("persona", ["release_manager", "admin_user"])
def test_a_release_manager_or_admin_sets_a_slots_faults_audited(
    persona: str, client: Client, checkout: Application, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(persona)
    client.force_login(user)

    response = client.post(
        page(checkout),
        {"form": "slot", "slot": "staging", "staging-running": "on", "staging-fail_swap": "on"},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == page(checkout)
    slot = staging(checkout)
    assert (slot.healthy, slot.running, slot.fail_swap, slot.hang_swap) == (False, True, True, False)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.application, event.object_repr) == (
        "simulator.fault_set",
        user,
        checkout,
        "sim:checkout/staging",
    )
    assert event.before == {"healthy": True, "running": True, "fail_swap": False, "hang_swap": False}
    assert event.after == {"healthy": False, "running": True, "fail_swap": True, "hang_swap": False}
    assert "Faults of slot staging saved." in client.get(page(checkout)).text
    assert client.get(reverse("sim_slot_healthz", args=["checkout", "staging"])).status_code == 503


def test_saving_the_same_faults_again_writes_no_audit_event(
    client: Client, release_manager: User, checkout: Application
) -> None:
    client.force_login(release_manager)
    data = {"form": "slot", "slot": "staging", "staging-healthy": "on", "staging-running": "on"}

    client.post(page(checkout), data)

    assert not AuditEvent.objects.exists()


def test_a_fault_on_a_slot_the_site_does_not_have_is_refused(
    client: Client, release_manager: User, checkout: Application
) -> None:
    client.force_login(release_manager)

    response = client.post(page(checkout), {"form": "slot", "slot": "canary", "canary-running": "on"})

    assert response.status_code == 400
    assert "The simulated site of Checkout has no slot named &#x27;canary&#x27;." in response.text


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"error_rate": "1.5"}, "error_rate", "Ensure this value is less than or equal to 1.0."),
        ({"error_rate": "-0.1"}, "error_rate", "Ensure this value is greater than or equal to 0.0."),
        ({"latency_ms_median": "-5"}, "latency_ms_median", "Ensure this value is greater than or equal to 0.0."),
        ({"latency_ms_p95": "50"}, "latency_ms_p95", "The 95th percentile cannot be below the median (80 ms)."),
        ({"version": "  "}, "version", "This field is required."),
        ({"error_rate": "lots"}, "error_rate", "Enter a number."),
    ],
)
def test_a_version_profile_with_a_bad_value_is_sent_back_with_the_field_error(
    client: Client, release_manager: User, checkout: Application, data: dict, field: str, message: str
) -> None:
    client.force_login(release_manager)
    valid = {"version": "1.1.0", "error_rate": "0.05", "latency_ms_median": "80", "latency_ms_p95": "200"}

    response = client.post(page(checkout), {"form": "version", **valid, **data})

    assert response.status_code == 400
    assert response.context["version_form"].errors[field] == [message]
    assert not SimulatorVersionProfile.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_release_manager_sets_a_versions_profile_audited(
    client: Client, release_manager: User, checkout: Application
) -> None:
    client.force_login(release_manager)

    response = client.post(
        page(checkout),
        {
            "form": "version",
            "version": "1.1.0",
            "error_rate": "0.05",
            "latency_ms_median": "120",
            "latency_ms_p95": "400",
        },
    )

    assert response.status_code == 302
    profile = SimulatorVersionProfile.objects.get()
    assert (
        profile.version,
        profile.error_rate,
        profile.latency_ms_median,
        profile.latency_ms_p95,
        profile.healthy,
    ) == (
        "1.1.0",
        0.05,
        120.0,
        400.0,
        False,  # the checkbox was not ticked
    )
    event = AuditEvent.objects.get()
    assert (event.action, event.before) == ("simulator.profile_set", None)
    assert event.after == {"error_rate": 0.05, "latency_ms_median": 120.0, "latency_ms_p95": 400.0, "healthy": False}


def test_the_synthetic_load_is_set_within_bounds_audited(
    client: Client, release_manager: User, checkout: Application
) -> None:
    client.force_login(release_manager)

    refused = client.post(page(checkout), {"form": "load", "synthetic_rpm": "5000"})
    accepted = client.post(page(checkout), {"form": "load", "synthetic_rpm": "120"})

    assert refused.status_code == 400
    assert refused.context["load_form"].errors["synthetic_rpm"] == ["Ensure this value is less than or equal to 1200."]
    assert accepted.status_code == 302
    assert SimulatorSite.objects.get(application=checkout).synthetic_rpm == 120
    event = AuditEvent.objects.get()
    assert (event.action, event.before, event.after) == (
        "simulator.load_set",
        {"synthetic_rpm": 0},
        {"synthetic_rpm": 120},
    )


def test_an_unknown_form_is_a_400(client: Client, release_manager: User, checkout: Application) -> None:
    client.force_login(release_manager)

    assert client.post(page(checkout), {"form": "deploy"}).status_code == 400


def test_an_application_not_on_the_simulator_has_no_simulator_page(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    assert client.get(page(ApplicationFactory(azure=True))).status_code == 404


def test_the_application_page_links_the_simulated_slots(client: Client, viewer: User, checkout: Application) -> None:
    client.force_login(viewer)

    response = client.get(checkout.get_absolute_url())

    assert '<a href="/sim/checkout/staging/"><code>staging</code></a>' in response.text
    assert '<a href="/sim/checkout/">Production (routed)</a>' in response.text
    assert f'<a href="{page(checkout)}">Simulator and faults</a>' in response.text


# --- the API ---------------------------------------------------------------------------------------


def put(client: Client, slug: str, body: object) -> object:
    return client.put(api(slug), data=json.dumps(body), content_type="application/json")


def test_the_api_shows_the_simulated_world(client: Client, viewer: User, checkout: Application) -> None:
    client.force_login(viewer)

    response = client.get(api("checkout"))

    assert response.status_code == 200
    body = response.json()
    assert (body["application"], body["routed_url"], body["synthetic_rpm"]) == ("checkout", "/sim/checkout/", 0)
    assert list(body["slots"]) == ["production", "dev", "staging", "test"]
    assert body["slots"]["staging"] | {"health": None, "metrics": None} == {
        "version": "1.1.0",
        "traffic_percent": 0,
        "healthy": True,
        "running": True,
        "fail_swap": False,
        "hang_swap": False,
        "restart_count": 0,
        "served_total": 0,
        "health": None,
        "metrics": None,
        "url": "/sim/checkout/staging/",
        "health_url": "/sim/checkout/staging/healthz",
    }
    assert body["slots"]["production"]["traffic_percent"] == 100
    assert body["slots"]["staging"]["health"] == {"healthy": True, "status_code": 200, "detail": "OK"}
    assert (body["versions"], body["swaps"]) == ({}, [])


def test_the_api_changes_faults_profiles_and_load_in_one_go_audited(
    client: Client, release_manager: User, checkout: Application
) -> None:
    client.force_login(release_manager)

    response = put(
        client,
        "checkout",
        {
            "slots": {"staging": {"hang_swap": True}, "dev": {"healthy": False}},
            "versions": {"1.1.0": {"error_rate": 0.02, "latency_ms_p95": 350}},
            "synthetic_rpm": 90,
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["slots"]["staging"]["hang_swap"] is True
    assert body["slots"]["dev"]["health"]["status_code"] == 503
    assert body["versions"] == {
        "1.1.0": {"error_rate": 0.02, "latency_ms_median": 80.0, "latency_ms_p95": 350.0, "healthy": True}
    }
    assert body["synthetic_rpm"] == 90
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == [
        "simulator.fault_set",
        "simulator.fault_set",
        "simulator.load_set",
        "simulator.profile_set",
    ]
    assert set(AuditEvent.objects.values_list("actor_label", flat=True)) == {release_manager.username}


def test_the_api_names_every_bad_field_and_changes_nothing(
    client: Client, release_manager: User, checkout: Application
) -> None:
    client.force_login(release_manager)

    response = put(
        client,
        "checkout",
        {
            "slots": {
                "staging": {"healthy": "no", "explode": True},
                "canary": {"healthy": False},
                "dev": {"healthy": False},
            },
            "versions": {"1.1.0": {"error_rate": 2}, "1.0.0": {"latency_ms_median": 500}, "2.0.0": {"healthy": 1}},
            "synthetic_rpm": -1,
            "colour": "blue",
        },
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Some fields are not valid; nothing was changed."
    assert body["fields"] == {
        "colour": ["Unknown field; expected slots, versions or synthetic_rpm."],
        "slots.staging.healthy": ["Must be true or false."],
        "slots.staging.explode": ["Unknown fault; expected one of healthy, running, fail_swap, hang_swap."],
        "slots.canary": ["The simulated site has no slot named 'canary'."],
        "versions.1.1.0.error_rate": ["Ensure this value is less than or equal to 1.0."],
        "versions.1.0.0.latency_ms_p95": ["The 95th percentile cannot be below the median (500 ms)."],
        "versions.2.0.0.healthy": ["Must be true or false."],
        "synthetic_rpm": ["Ensure this value is greater than or equal to 0."],
    }
    assert SimulatorSlot.objects.get(application=checkout, slot_name="dev").healthy is True
    assert not AuditEvent.objects.exists()


def test_the_api_refuses_a_body_that_is_not_json(client: Client, release_manager: User, checkout: Application) -> None:
    client.force_login(release_manager)

    response = client.put(api("checkout"), data="healthy=no", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"].startswith("The body is not valid JSON")


def test_the_api_answers_403_in_json_naming_the_missing_role(
    client: Client, viewer: User, no_role_user: User, checkout: Application
) -> None:
    client.force_login(viewer)
    put_response = put(client, "checkout", {"synthetic_rpm": 10})
    client.force_login(no_role_user)
    get_response = client.get(api("checkout"))

    assert put_response.status_code == get_response.status_code == 403
    assert put_response["Content-Type"] == "application/json"
    assert (
        "This needs the release manager role, and your account (vera-viewer) has viewer."
        in (put_response.json()["error"])
    )
    assert "needs the viewer role" in get_response.json()["error"]
    assert SimulatorSite.objects.filter(synthetic_rpm=10).count() == 0


def test_the_api_answers_404_in_json_for_an_unknown_or_unsimulated_application(
    client: Client, release_manager: User
) -> None:
    client.force_login(release_manager)
    azure = ApplicationFactory(azure=True, name="Ledger", slug="ledger")

    unknown = client.get(api("nope"))
    unsimulated = put(client, azure.slug, {"synthetic_rpm": 10})

    assert (unknown.status_code, unknown.json()) == (404, {"error": "There is no application 'nope'."})
    assert (unsimulated.status_code, unsimulated.json()) == (404, {"error": "Ledger does not run on the simulator."})


def test_the_api_allows_get_and_put_only(client: Client, release_manager: User, checkout: Application) -> None:
    client.force_login(release_manager)

    response = client.post(api("checkout"), data="{}", content_type="application/json")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, PUT"
    assert response.json()["error"] == "POST is not allowed here; use GET or PUT."


def test_the_api_needs_the_csrf_token_with_a_session(release_manager: User, checkout: Application) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(release_manager)
    browser.get(page(checkout))  # sets the CSRF cookie, as the portal's pages do
    token = browser.cookies["csrftoken"].value

    without = browser.put(api("checkout"), data='{"synthetic_rpm": 10}', content_type="application/json")
    with_token = browser.put(
        api("checkout"), data='{"synthetic_rpm": 10}', content_type="application/json", headers={"X-CSRFToken": token}
    )

    assert without.status_code == 403
    assert with_token.status_code == 200
    assert with_token.json()["synthetic_rpm"] == 10
