"""`manage.py operation start|show|pause|resume|promote-now|rollback ...`: operations from a shell."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portal.core.errors import DomainError
from releases.audit.services import origin
from releases.catalog.models import Application, Release
from strategies.operations import services
from strategies.operations.models import Operation


class Command(BaseCommand):
    help = "Start, inspect, pause, resume, promote now or roll back operations."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        start = sub.add_parser("start", help="Promote an approved release into production.")
        start.add_argument("release", type=int, help="Release id")
        start.add_argument("--strategy", default="", help="blue_green or canary (default: the application's)")
        start.add_argument("--options", default="{}", help="Strategy options as JSON, e.g. '{\"bake_seconds\": 60}'")
        show = sub.add_parser("show", help="Print an operation and its steps.")
        show.add_argument("operation", type=int)
        for name in ("pause", "resume", "promote-now"):
            p = sub.add_parser(name)
            p.add_argument("operation", type=int)
            p.add_argument("--reason", default="")
        rollback = sub.add_parser("rollback", help="Roll back an operation (id) or an application (--app).")
        rollback.add_argument("operation", type=int, nargs="?")
        rollback.add_argument("--app", default="", help="Application slug: roll back its live release")
        rollback.add_argument("--reason", required=True)
        for p in sub.choices.values():
            p.add_argument("--as", dest="username", default="", help="Act as this user (default: system)")

    def handle(self, *args: Any, action: str, username: str = "", **options: Any) -> None:
        actor = None
        if username:
            actor = get_user_model().objects.filter(username=username).first()
            if actor is None:
                raise CommandError(f"There is no user {username!r}.")
        try:
            with origin(via="command", command=f"operation {action}"):
                operation = self._do(action, actor, options)
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self._show(operation)

    def _operation(self, pk: int | None) -> Operation:
        operation = Operation.objects.filter(pk=pk).first()
        if operation is None:
            raise CommandError(f"There is no operation {pk}.")
        return operation

    def _do(self, action: str, actor: Any, options: dict[str, Any]) -> Operation:
        reason = options.get("reason", "")
        if action == "start":
            release = Release.objects.filter(pk=options["release"]).select_related("application").first()
            if release is None:
                raise CommandError(f"There is no release {options['release']}.")
            try:
                parameters = json.loads(options["options"])
            except ValueError as exc:
                raise CommandError(f"--options is not JSON: {exc}") from None
            return services.operation_start(
                release=release,
                strategy=options["strategy"] or release.application.default_strategy,
                parameters=parameters,
                actor=actor,
            )
        if action == "rollback" and options.get("app"):
            application = Application.objects.filter(slug=options["app"]).first()
            if application is None:
                raise CommandError(f"There is no application {options['app']!r}.")
            return services.application_rollback(application=application, actor=actor, reason=reason)
        operation = self._operation(options.get("operation"))
        if action == "show":
            return operation
        if action == "pause":
            return services.operation_pause(operation=operation, actor=actor, reason=reason)
        if action == "resume":
            return services.operation_resume(operation=operation, actor=actor, reason=reason)
        if action == "promote-now":
            return services.operation_promote_now(operation=operation, actor=actor, reason=reason)
        return services.operation_rollback(operation=operation, actor=actor, reason=reason)

    def _show(self, operation: Operation) -> None:
        operation.refresh_from_db()
        self.stdout.write(f"#{operation.pk} {operation} — {operation.get_status_display()}")
        if operation.waiting_for:
            self.stdout.write(f"  waiting: {operation.waiting_for}")
        if operation.error:
            self.stdout.write(f"  error: {operation.error}")
        for step in operation.steps.order_by("position"):
            self.stdout.write(
                f"  {step.position:>2}. [{step.get_status_display():<9}] {step.title} ({step.attempts} run(s))"
            )
