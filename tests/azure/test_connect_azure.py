"""Connecting an Azure application from the portal: the real SDK against the loopback ARM emulator."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Environment
from tests.azure_emulator import AzureEmulator
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(emulator: AzureEmulator) -> Application:
    application = ApplicationFactory(slug="shop", azure=True, environments=False)
    emulator.add_site(
        application.azure_subscription_id,
        application.azure_resource_group,
        application.azure_site_name,
        {"production": "4.1.0", "staging": "4.2.0", "qa": "4.3.0-rc.1"},
    )
    return application


def test_testing_the_connection_discovers_the_sites_slots_and_binding_them_saves_the_stages(
    client: Client, admin_user: User, shop: Application
) -> None:
    client.force_login(admin_user)

    tested = client.post(reverse("application_connect", args=["shop"]), {"action": "test"})

    report = tested.context["report"]
    assert report.ok
    assert {(s.name, s.version) for s in report.slots} == {
        ("production", "4.1.0"),
        ("staging", "4.2.0"),
        ("qa", "4.3.0-rc.1"),
    }
    saved = client.post(
        reverse("application_connect", args=["shop"]),
        {"action": "save", "test": "qa", "preprod": "staging", "prod": "production"},
    )
    assert saved.status_code == 302
    bound = {env.stage: (env.slot.name, env.slot.hostname) for env in Environment.objects.filter(application=shop)}
    assert {stage: name for stage, (name, _host) in bound.items()} == {
        "test": "qa",
        "preprod": "staging",
        "prod": "production",
    }
    assert all(host for _name, host in bound.values())
    assert AuditEvent.objects.filter(action="application.slots_mapped", application=shop).count() == 1


def test_a_site_that_does_not_exist_is_explained_with_the_three_names(
    client: Client, admin_user: User, emulator: AzureEmulator
) -> None:
    ApplicationFactory(slug="ghost", azure=True, environments=False, azure_site_name="no-such-site")
    client.force_login(admin_user)

    response = client.post(reverse("application_connect", args=["ghost"]), {"action": "test"})

    report = response.context["report"]
    assert not report.ok
    assert "There is no site “no-such-site” in resource group" in report.problem
    assert report.provider_message


def test_a_refused_secret_is_explained_as_a_sign_in_problem_without_the_secret(
    client: Client, admin_user: User, shop: Application, settings: Settings
) -> None:
    settings.AZURE_CLIENT_SECRET = "wrong-secret-Qx1~0000"
    client.force_login(admin_user)

    response = client.post(reverse("application_connect", args=["shop"]), {"action": "test"})

    report = response.context["report"]
    assert not report.ok
    assert "could not sign in to Azure" in report.problem
    assert "wrong-secret-Qx1~0000" not in response.content.decode()


def test_a_missing_role_on_the_site_is_explained_as_a_permission_problem(
    client: Client, admin_user: User, shop: Application, emulator: AzureEmulator
) -> None:
    emulator.inject("get_site", 403, site=shop.azure_site_name)
    client.force_login(admin_user)

    response = client.post(reverse("application_connect", args=["shop"]), {"action": "test"})

    report = response.context["report"]
    assert not report.ok
    assert "Website Contributor" in report.problem
