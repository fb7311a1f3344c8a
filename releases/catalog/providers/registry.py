"""Which provider serves an application."""

from __future__ import annotations

from releases.catalog.models import Application, Provider
from releases.catalog.providers import HostingProvider, NotFoundError
from releases.catalog.providers.simulator import SimulatorProvider


def provider_for(application: Application) -> HostingProvider:
    if application.provider == Provider.SIMULATOR:
        return SimulatorProvider()
    if application.provider == Provider.AZURE:
        # On first use: the Azure SDKs take over a second to import, which a simulator-only run never needs.
        from releases.catalog.providers.azure import AzureProvider

        return AzureProvider.for_application(application)
    raise NotFoundError(f"Unknown provider {application.provider!r} for {application.name}.")
