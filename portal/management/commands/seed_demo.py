"""`python manage.py seed_demo`: the demo organisation (see `portal.demo.organisation`). Safe to run again."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from portal.demo.organisation import DEMO_USERS, seed


class Command(BaseCommand):
    help = (
        "Create the demo organisation: three applications with slots, environments, approval policies and "
        "six weeks of release history, and one user per role. Whatever already exists is left as it is."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        try:
            results = seed(log=self.stdout.write)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        created = [r for r in results if r.created]
        elapsed = time.monotonic() - started
        if created:
            self.stdout.write(self.style.SUCCESS(f"Seeded {len(created)} application(s) in {elapsed:.1f} s."))
        else:
            self.stdout.write(self.style.SUCCESS("The demo organisation is already there; nothing changed."))
        self.stdout.write("Demo sign-ins (user / password / role):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {username:<12} {password:<22} {role}")
