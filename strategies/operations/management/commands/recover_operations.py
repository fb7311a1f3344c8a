"""Re-enqueue operations nobody is driving (run before starting workers; also a periodic job)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from releases.audit.services import origin
from strategies.operations.engine import operations_recover


class Command(BaseCommand):
    help = "Re-enqueue runnable operations whose worker died or whose job Redis lost."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--stale-after", type=float, default=None, help="Seconds without a heartbeat (default: setting)."
        )

    def handle(self, *args: Any, stale_after: float | None = None, **options: Any) -> None:
        with origin(via="command", command="recover_operations"):
            recovered = operations_recover(stale_after=stale_after)
        for operation_id, why in recovered:
            self.stdout.write(f"operation {operation_id}: re-enqueued ({why})")
        self.stdout.write(f"{len(recovered)} operation(s) recovered")
