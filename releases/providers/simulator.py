"""The built-in simulator: slots live in the database (`SimulatorSlot`), so every process sees one world."""

from __future__ import annotations

from releases.models import Application, SimulatorSlot

from . import SlotState


class SimulatorProvider:
    def slot_states(self, application: Application) -> list[SlotState]:
        rows = SimulatorSlot.objects.filter(application=application).order_by("slot_name")
        return [
            SlotState(
                name=row.slot_name,
                version=row.version,
                healthy=row.healthy,
                traffic_percent=row.routing_percent,
                detail="" if row.healthy else "Simulated health check failing",
            )
            for row in rows
        ]
