"""A simulated application to work on: the standard four slots, each running a known version."""

from __future__ import annotations

import pytest

from releases.catalog.models import Application
from releases.catalog.providers.simulator import SimulatorProvider
from tests.factories import ApplicationFactory, add_simulated_site

VERSIONS = {"production": "1.0.0", "staging": "1.1.0", "test": "1.1.0", "dev": "1.2.0-dev.1"}


@pytest.fixture
def checkout(db: None) -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application, VERSIONS)
    return application


@pytest.fixture
def provider() -> SimulatorProvider:
    return SimulatorProvider()
