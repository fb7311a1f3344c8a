"""Adding an application in the portal, testing its connection, and binding discovered slots to stages."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.core.errors import DomainError
from releases.audit.models import AuditEvent
from releases.catalog import services
from releases.catalog.models import Application, Environment, Provider, SimulatorSlot, Slot, Stage
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

NEW_SIMULATED = {
    "name": "Billing Web",
    "slug": "billing-web",
    "team": "Payments",
    "description": "",
    "provider": "simulator",
    "azure_subscription_id": "",
    "azure_resource_group": "",
    "azure_site_name": "",
    "azure_credential": "client_secret",
    "health_check_path": "/healthz",
    "default_strategy": "blue_green",
}


def test_an_admin_adds_a_simulated_application_and_gets_its_simulated_site(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)

    response = client.post(reverse("application_create"), NEW_SIMULATED)

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("application_connect", args=["billing-web"])
    application = Application.objects.get(slug="billing-web")
    assert sorted(SimulatorSlot.objects.filter(application=application).values_list("slot_name", flat=True)) == [
        "dev",
        "production",
        "staging",
        "test",
    ]
    event = AuditEvent.objects.get(action="application.created")
    assert event.actor == admin_user
    assert event.after["slug"] == "billing-web"


def test_an_azure_application_without_its_coordinates_gets_field_errors_and_nothing_is_saved(
    client: Client, admin_user: User
) -> None:
    client.force_login(admin_user)

    response = client.post(
        reverse("application_create"),
        {**NEW_SIMULATED, "provider": "azure", "azure_subscription_id": "not-a-guid", "health_check_path": "healthz"},
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["azure_resource_group"] == ["Needed for an Azure application."]
    assert errors["azure_site_name"] == ["Needed for an Azure application."]
    assert "looks like" in errors["azure_subscription_id"][0]
    assert "Start the path" in errors["health_check_path"][0]
    assert not Application.objects.filter(slug="billing-web").exists()
    assert not AuditEvent.objects.exists()


def test_a_release_manager_may_not_add_applications(client: Client, release_manager: User) -> None:
    client.force_login(release_manager)

    response = client.post(reverse("application_create"), NEW_SIMULATED)

    assert response.status_code == 403
    assert "needs the admin role" in response.content.decode()
    assert not Application.objects.exists()


def test_testing_the_connection_lists_the_discovered_slots_and_suggests_a_binding(
    client: Client, admin_user: User
) -> None:
    client.force_login(admin_user)
    client.post(reverse("application_create"), NEW_SIMULATED)

    response = client.post(reverse("application_connect", args=["billing-web"]), {"action": "test"})

    assert response.status_code == 200
    report = response.context["report"]
    assert report.ok
    assert {s.name for s in report.slots} == {"production", "staging", "test", "dev"}
    form = response.context["form"]
    assert form["prod"].initial == "production"
    assert form["preprod"].initial == "staging"


def test_the_connection_test_answers_htmx_with_just_the_result(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)
    client.post(reverse("application_create"), NEW_SIMULATED)

    response = client.post(
        reverse("application_connect", args=["billing-web"]), {"action": "test"}, headers={"HX-Request": "true"}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="connection"')
    assert "Connected: the site has 4 slots." in body
    assert "<html" not in body


def test_saving_the_binding_creates_slots_and_environments_and_audits_it(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)
    client.post(reverse("application_create"), NEW_SIMULATED)

    response = client.post(
        reverse("application_connect", args=["billing-web"]),
        {"action": "save", "dev": "dev", "test": "test", "preprod": "staging", "prod": "production"},
    )

    assert response.status_code == 302
    application = Application.objects.get(slug="billing-web")
    bound = {env.stage: env.slot.name for env in Environment.objects.filter(application=application)}
    assert bound == {"dev": "dev", "test": "test", "preprod": "staging", "prod": "production"}
    assert Slot.objects.get(application=application, name="production").is_production
    event = AuditEvent.objects.get(action="application.slots_mapped")
    assert event.before == {}
    assert event.after == bound


def test_binding_production_to_a_deployment_slot_is_refused_with_a_reason(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)
    client.post(reverse("application_create"), NEW_SIMULATED)

    response = client.post(
        reverse("application_connect", args=["billing-web"]),
        {"action": "save", "preprod": "production", "prod": "staging"},
    )

    assert response.status_code == 409
    assert "Production must be the site's “production” slot" in html.unescape(response.content.decode())
    assert not Environment.objects.filter(application__slug="billing-web").exists()
    assert not AuditEvent.objects.filter(action="application.slots_mapped").exists()


def test_two_stages_cannot_share_a_slot() -> None:
    application = services.application_create(actor=None, **{**NEW_SIMULATED, "slug": "billing", "name": "Billing"})
    slots = services.application_test_connection(application=application).slots

    with pytest.raises(DomainError, match="one stage only"):
        services.application_map_slots(
            application=application,
            actor=None,
            mapping={"test": "staging", "preprod": "staging", "prod": "production"},
            slots=slots,
        )


def test_a_stage_can_move_to_a_slot_another_stage_is_leaving() -> None:
    application = ApplicationFactory(slug="checkout")  # dev, test, staging, production bound in stage order
    for name in ["production", "staging", "test", "dev", "qa"]:
        SimulatorSlot.objects.create(application=application, slot_name=name)
    slots = services.application_test_connection(application=application).slots

    services.application_map_slots(
        application=application,
        actor=None,
        mapping={"dev": "qa", "test": "dev", "preprod": "staging", "prod": "production"},
        slots=slots,
    )

    bound = {env.stage: env.slot.name for env in application.environments.select_related("slot")}
    assert bound == {"dev": "qa", "test": "dev", "preprod": "staging", "prod": "production"}


def test_two_stages_trading_slots_in_one_step_is_refused_and_nothing_changes() -> None:
    application = ApplicationFactory(slug="checkout")
    for name in ["production", "staging", "test", "dev"]:
        SimulatorSlot.objects.create(application=application, slot_name=name)
    slots = services.application_test_connection(application=application).slots
    before = {env.stage: env.slot.name for env in application.environments.select_related("slot")}

    with pytest.raises(DomainError, match="cannot trade slots"):
        services.application_map_slots(
            application=application,
            actor=None,
            mapping={"dev": "test", "test": "dev", "preprod": "staging", "prod": "production"},
            slots=slots,
        )

    assert {env.stage: env.slot.name for env in application.environments.select_related("slot")} == before


def test_an_unreachable_site_is_explained_not_crashed(client: Client, admin_user: User) -> None:
    # An Azure application with no credentials configured in the environment (tests never set them).
    application = ApplicationFactory(
        slug="shop",
        provider=Provider.AZURE,
        azure_subscription_id="00000000-0000-0000-0000-000000000001",
        azure_resource_group="rg-shop",
        azure_site_name="shop-web",
        environments=False,
    )
    client.force_login(admin_user)

    response = client.post(reverse("application_connect", args=[application.slug]), {"action": "test"})

    assert response.status_code == 200
    report = response.context["report"]
    assert not report.ok
    assert "could not sign in to Azure" in report.problem
    assert "AZURE_" in report.provider_message
    assert "The connection failed." in response.content.decode()


def test_unbinding_a_stage_with_history_is_refused() -> None:
    from tests.factories import ApprovalRequestFactory, ReleaseFactory

    application = ApplicationFactory(slug="checkout")
    for name in ["production", "staging", "test", "dev"]:
        SimulatorSlot.objects.create(application=application, slot_name=name)
    test_env = application.environments.get(stage=Stage.TEST)
    ApprovalRequestFactory(release=ReleaseFactory(application=application), environment=test_env)
    slots = services.application_test_connection(application=application).slots

    with pytest.raises(DomainError, match="cannot be unbound"):
        services.application_map_slots(
            application=application,
            actor=None,
            mapping={"dev": "dev", "test": "", "preprod": "staging", "prod": "production"},
            slots=slots,
        )
