"""The built-in simulator: slots live in the database (`SimulatorSlot`), so every process sees one world."""

from __future__ import annotations

from releases.models import Application, SimulatorSlot

from . import SlotState

# As on App Service, the site's main slot is called "production"; it takes whatever share of the
# traffic the routing rules do not send to other slots.
PRODUCTION_SLOT = "production"


class SimulatorProvider:
    def slot_states(self, application: Application) -> list[SlotState]:
        rows = list(SimulatorSlot.objects.filter(application=application).order_by("slot_name"))
        routed_elsewhere = sum(row.routing_percent for row in rows if row.slot_name != PRODUCTION_SLOT)
        return [
            SlotState(
                name=row.slot_name,
                version=row.version,
                healthy=row.healthy,
                traffic_percent=max(0, 100 - routed_elsewhere)
                if row.slot_name == PRODUCTION_SLOT
                else row.routing_percent,
                detail="" if row.healthy else "Simulated health check failing",
            )
            for row in rows
        ]
