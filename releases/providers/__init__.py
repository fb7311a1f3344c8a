"""Hosting providers: where an application's slots actually run.

One interface (`HostingProvider`), one implementation per target. This first cut covers what the
slot refresh needs; swaps, traffic routing and settings arrive with the provider issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from releases.models import Application, Provider


class ProviderError(Exception):
    """A provider call failed; the message is the provider's own words."""


@dataclass(frozen=True)
class SlotState:
    name: str
    version: str
    healthy: bool | None  # None: the provider could not tell
    traffic_percent: int
    detail: str = ""


class HostingProvider(Protocol):
    def slot_states(self, application: Application) -> list[SlotState]: ...


def provider_for(application: Application) -> HostingProvider:
    if application.provider == Provider.SIMULATOR:
        from .simulator import SimulatorProvider

        return SimulatorProvider()
    raise ProviderError(
        f"The {application.get_provider_display()} provider is not available in this version of Slipway yet."
    )
