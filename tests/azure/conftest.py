"""Fixtures for the Azure provider: the loopback emulator and settings that point the real SDK at it.

The emulator runs once per test session; each test gets a clean world and its own site. Settings are
the real ones (AZURE_* through pytest-django's `settings`), and the real ClientSecretCredential gets its
token from the emulator's TLS login endpoint, trusted through REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from releases.catalog.models import Application
from releases.catalog.providers.azure import AzureProvider
from tests.azure_emulator import AzureEmulator, EmulatedSite, ServicePrincipal
from tests.factories import ApplicationFactory

PRINCIPAL = ServicePrincipal(
    tenant_id="11111111-2222-3333-4444-555555555555",
    client_id="66666666-7777-8888-9999-000000000000",
    client_secret="emulator-client-secret-Zq8~not-a-real-one",
)
POLLING_INTERVAL_S = 0.05


@pytest.fixture(scope="session")
def azure_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureEmulator]:
    emulator = AzureEmulator.start(tmp_path_factory.mktemp("azure-emulator"), PRINCIPAL)
    yield emulator
    emulator.stop()


def azure_environment(emulator: AzureEmulator) -> dict[str, str]:
    """The environment a Slipway process needs to use the emulator (for subprocesses)."""
    return {
        "AZURE_RESOURCE_MANAGER_URL": emulator.arm_url,
        "AZURE_AUTHORITY_HOST": emulator.authority,
        "AZURE_TENANT_ID": PRINCIPAL.tenant_id,
        "AZURE_CLIENT_ID": PRINCIPAL.client_id,
        "AZURE_CLIENT_SECRET": PRINCIPAL.client_secret,
        "REQUESTS_CA_BUNDLE": emulator.ca_file,
    }


@pytest.fixture
def emulator(
    azure_emulator: AzureEmulator, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AzureEmulator]:
    azure_emulator.reset()
    settings.AZURE_RESOURCE_MANAGER_URL = azure_emulator.arm_url
    settings.AZURE_AUTHORITY_HOST = azure_emulator.authority
    settings.AZURE_TENANT_ID = PRINCIPAL.tenant_id
    settings.AZURE_CLIENT_ID = PRINCIPAL.client_id
    settings.AZURE_CLIENT_SECRET = PRINCIPAL.client_secret
    settings.AZURE_POLLING_INTERVAL = POLLING_INTERVAL_S
    settings.AZURE_HTTP_TIMEOUT = 5
    # The login endpoint's certificate is made at test time; requests (under azure-core) trusts it from here.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azure_emulator.ca_file)
    yield azure_emulator
    azure_emulator.reset()


@pytest.fixture
def application() -> Application:
    """An Azure application (unsaved: the provider needs its coordinates, not a database row)."""
    return ApplicationFactory.build(azure=True, health_check_path="/healthz")


@pytest.fixture
def site(emulator: AzureEmulator, application: Application) -> EmulatedSite:
    """The application's site: production runs 1.0.0, staging 1.1.0, dev 1.2.0-dev."""
    return emulator.add_site(
        application.azure_subscription_id,
        application.azure_resource_group,
        application.azure_site_name,
        {"production": "1.0.0", "staging": "1.1.0", "dev": "1.2.0-dev"},
    )


@pytest.fixture
def provider(site: EmulatedSite, application: Application) -> AzureProvider:
    return AzureProvider.for_application(application)


@pytest.fixture
def worker_script() -> Path:
    return Path(__file__).with_name("swap_worker.py")
