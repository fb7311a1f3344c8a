"""`manage.py audit_verify`: seal pending audit events, then verify the whole hash chain."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.core import clock
from releases.audit.chain import checkpoint_signature, seal_pending, verify_chain


class Command(BaseCommand):
    help = (
        "Seal the audit events not sealed yet, then recompute the whole audit hash chain and report the "
        "first broken link (exit status 1) or that the chain is intact."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-seal", action="store_true", help="Verify without sealing pending events first.")
        parser.add_argument(
            "--since-checkpoint",
            action="store_true",
            help="Verify only the events sealed since the last successful verification (what the periodic check does).",
        )
        parser.add_argument(
            "--checkpoint",
            action="store_true",
            help="Also print a signed checkpoint (JSON) of the verified chain, for a third party to keep.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_seal"]:
            sealed = seal_pending()
            if sealed:
                self.stdout.write(f"Sealed {sealed} pending event{'s' if sealed != 1 else ''}.")
        result = verify_chain(since_checkpoint=options["since_checkpoint"])
        if result.broken:
            raise CommandError(f"BROKEN at {result.broken.describe()}", returncode=1)
        self.stdout.write(
            self.style.SUCCESS(
                f"OK: {result.checked} events, chain intact through sequence {result.through}, "
                f"last hash {result.last_hash}"
            )
        )
        if options["checkpoint"]:
            statement = {
                "sequence": result.through,
                "last_hash": result.last_hash,
                "verified_at": clock.now().isoformat(),
                "signature": checkpoint_signature(result.through, result.last_hash),
            }
            self.stdout.write(json.dumps(statement, sort_keys=True))
