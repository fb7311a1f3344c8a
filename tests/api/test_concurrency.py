"""A pipeline step retried while the first try still runs: each try in its own thread, with its own
database connection, all released at once. Exactly one does the work; the others get its answer.

PostgreSQL only: this is about the unique constraint and row locks between concurrent transactions,
which SQLite does not have (it serialises whole-database writes instead).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client
from rq import Queue

from portal.api.models import IdempotencyKey
from releases.approvals.models import ApprovalRequest
from releases.approvals.workflow import approval_decide
from releases.audit.models import AuditEvent
from releases.catalog.models import Release
from strategies.operations.models import Operation
from tests.api.conftest import FAST_BLUE_GREEN

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="Concurrent retries need PostgreSQL's row locks; run with DATABASE_URL=postgres://...",
    ),
]

ROUNDS = 4  # races are probabilistic: several rounds make a double execution very likely to show
TRIES = 5


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread, all released together; return what each returned."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


def post(path: str, token: str, body: dict, key: str | None) -> Callable[[], Any]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return lambda: Client().post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def test_concurrent_retries_with_one_key_register_one_release(
    rq_queues: dict[str, Queue], checkout: Any, token: str
) -> None:
    for round_ in range(ROUNDS):
        version = f"2.0.{round_}"
        body = {"application": "checkout", "version": version, "deployed_slot": "staging"}

        answers = at_once([post("/api/v1/releases", token, body, key=f"register-{version}")] * TRIES)

        assert [a.status_code for a in answers] == [201] * TRIES, [a.content for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert sum("Idempotent-Replayed" not in a for a in answers) == 1  # one did it, the rest replayed
        assert Release.objects.filter(version=version).count() == 1
        assert AuditEvent.objects.filter(action="release.registered", object_repr__endswith=version).count() == 1
        assert ApprovalRequest.objects.filter(release__version=version).count() == 1
        assert IdempotencyKey.objects.filter(key=f"register-{version}").count() == 1


def test_concurrent_retries_with_one_key_start_one_operation(
    rq_queues: dict[str, Queue], checkout: Any, token: str, approver: User
) -> None:
    registered = Client().post(
        "/api/v1/releases",
        data=json.dumps({"application": "checkout", "version": "2.0.0", "deployed_slot": "staging"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    release = Release.objects.get(pk=registered.json()["id"])
    approval_decide(request=ApprovalRequest.objects.get(release=release), actor=approver, verdict="approve")
    promote = {"strategy": "blue_green", "parameters": FAST_BLUE_GREEN}

    answers = at_once([post(f"/api/v1/releases/{release.pk}/promote", token, promote, key="promote-2.0.0")] * TRIES)

    assert [a.status_code for a in answers] == [201] * TRIES, [a.content for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a for a in answers) == 1
    assert Operation.objects.filter(release=release).count() == 1
    assert AuditEvent.objects.filter(action="operation.created").count() == 1


def test_concurrent_registrations_without_a_key_still_make_one_release(
    rq_queues: dict[str, Queue], checkout: Any, token: str
) -> None:
    for round_ in range(ROUNDS):
        version = f"3.0.{round_}"
        body = {"application": "checkout", "version": version}

        answers = at_once([post("/api/v1/releases", token, body, key=None)] * TRIES)

        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] * (TRIES - 1) + [201], [a.content for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert Release.objects.filter(version=version).count() == 1
