"""`manage.py operation`: start, inspect and roll back operations from a shell."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rq import Queue

from releases.catalog.models import Release, ReleaseStatus
from strategies.operations.models import Operation, OperationStatus
from tests.strategies.conftest import FAST_BLUE_GREEN, drive

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_promotion_started_from_the_shell_runs_and_can_be_shown(
    candidate: Release, release_manager: User, rq_queues: dict[str, Queue], capsys: pytest.CaptureFixture[str]
) -> None:
    call_command(
        "operation",
        "start",
        str(candidate.pk),
        "--strategy",
        "blue_green",
        "--options",
        json.dumps(FAST_BLUE_GREEN),
        "--as",
        release_manager.username,
    )
    operation = Operation.objects.get(release=candidate)
    assert operation.started_by == release_manager

    drive(rq_queues["operations"], operation)
    capsys.readouterr()
    call_command("operation", "show", str(operation.pk))

    shown = capsys.readouterr().out
    assert operation.status == OperationStatus.SUCCEEDED
    assert "succeeded" in shown.lower()
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.LIVE


def test_the_shell_refuses_what_the_rules_refuse_in_words(candidate: Release, viewer: User) -> None:
    with pytest.raises(CommandError, match="release manager"):
        call_command("operation", "start", str(candidate.pk), "--as", viewer.username)
    with pytest.raises(CommandError, match="There is no operation 999999"):
        call_command("operation", "show", "999999")
    assert not Operation.objects.exists()
