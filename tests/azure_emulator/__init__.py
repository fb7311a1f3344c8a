"""A loopback Azure for driving the real azure-mgmt-web and azure-identity code in tests.

- ARM (`emulator.arm_url`, plain http on 127.0.0.1): Microsoft.Web sites and slots — get, list (paged),
  swap (202 + absolute Location / Azure-AsyncOperation, polled to 200 or the swap's error), swap with
  preview (applySlotConfig / resetSlotConfig), config/web with experiments.rampUpRules, app settings,
  slotConfigNames, restart — and Microsoft.Insights metrics. Every request needs a bearer token the
  login endpoint issued.
- Entra ID (`emulator.authority`, TLS with a throwaway certificate at `emulator.ca_file`): the OpenID
  configuration and the client-credentials token endpoint that MSAL uses.
- Each slot's web app (`slot.host`): answers the health path with the deployed content's health.

Tests arrange the world through `add_site`, steer it through each site's knobs (`swap_polls`,
`hold_swap`, `swap_failure`, `lro_style`, `health_faults`, ...) and `inject` ARM faults, and read back
what was asked with `calls` / `requests` (e.g. how many swap POSTs arrived).
"""

from tests.azure_emulator.emulator import AzureEmulator
from tests.azure_emulator.identity import ServicePrincipal
from tests.azure_emulator.state import PRODUCTION, VERSION_SETTING, EmulatedSite, EmulatedSlot, MinuteMetrics

__all__ = [
    "PRODUCTION",
    "VERSION_SETTING",
    "AzureEmulator",
    "EmulatedSite",
    "EmulatedSlot",
    "MinuteMetrics",
    "ServicePrincipal",
]
