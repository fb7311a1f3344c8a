"""The operation lifecycle: every edge from every status through its one writer, `operation_transition`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from portal.core import clock
from portal.core.errors import DomainError
from releases.audit.models import AuditEvent
from releases.webhooks.models import WebhookDelivery, WebhookSubscription
from strategies.operations import transitions
from strategies.operations.models import Operation, OperationStatus
from strategies.operations.transitions import operation_transition
from tests.factories import OperationFactory

pytestmark = pytest.mark.django_db

S = OperationStatus
MOMENT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FINISHED = {S.SUCCEEDED, S.FAILED, S.ROLLED_BACK, S.CANCELLED}

# The lifecycle as designed, written out independently of transitions.TRANSITIONS:
# audit action -> {status it may start from: status it ends in}, and the webhook event subscribers get.
LIFECYCLE: dict[str, dict[str, str]] = {
    "operation.running": {S.PENDING: S.RUNNING},
    "operation.paused": {S.PENDING: S.PAUSED, S.RUNNING: S.PAUSED},
    "operation.resumed": {S.PAUSED: S.RUNNING},
    "operation.promoted_now": {S.PENDING: S.PENDING, S.RUNNING: S.RUNNING, S.PAUSED: S.RUNNING},
    "operation.ring_approved": {S.PAUSED: S.RUNNING},
    "operation.rolling_back": {S.PENDING: S.ROLLING_BACK, S.RUNNING: S.ROLLING_BACK, S.PAUSED: S.ROLLING_BACK},
    "operation.succeeded": {S.RUNNING: S.SUCCEEDED},
    "operation.rolled_back": {S.ROLLING_BACK: S.ROLLED_BACK},
    "operation.failed": {S.PENDING: S.FAILED, S.RUNNING: S.FAILED, S.PAUSED: S.FAILED, S.ROLLING_BACK: S.FAILED},
}
WEBHOOKS = {
    "operation.running": "operation.started",
    "operation.succeeded": "operation.succeeded",
    "operation.rolled_back": "operation.rolled_back",
    "operation.failed": "operation.failed",
}
# The sentence after "Operation #N is <status>; " — the ones people see are the ones they saw before.
REFUSALS = {
    "operation.paused": "it cannot be paused.",
    "operation.resumed": "it cannot be resumed.",
    "operation.promoted_now": "there is nothing to skip.",
    "operation.rolling_back": "it cannot be rolled back. To take a live release back, roll back the application.",
}

MATRIX = [(status, action) for action in LIFECYCLE for status in S.values]
LEGAL = [(status, action) for status, action in MATRIX if status in LIFECYCLE[action]]
ILLEGAL = [(status, action) for status, action in MATRIX if status not in LIFECYCLE[action]]


def operation_in(status: str, **fields: object) -> Operation:
    return OperationFactory(status=status, waiting_for="" if status in FINISHED else "Baking until 09:35 UTC", **fields)


def test_the_operation_lifecycle_table_is_the_one_designed() -> None:
    assert {action: dict(t.moves) for action, t in transitions.TRANSITIONS.items()} == LIFECYCLE
    assert {action: t.webhook for action, t in transitions.TRANSITIONS.items() if t.webhook} == WEBHOOKS
    for action, sentence in REFUSALS.items():
        assert transitions.TRANSITIONS[action].refusal == sentence


def test_a_finished_operation_has_no_way_out() -> None:
    for status in FINISHED:
        assert not [action for action in LIFECYCLE if transitions.operation_can(status, action)], status


@pytest.mark.parametrize(("status", "action"), LEGAL)
def test_a_legal_transition_writes_the_status_and_one_audit_event(
    status: str, action: str, release_manager: User
) -> None:
    target = LIFECYCLE[action][status]
    operation = operation_in(status)
    subscription = WebhookSubscription.objects.create(
        application=operation.application,
        url="https://hooks.example.com/slipway",
        secret="s3cret-for-the-test",
        events=sorted(set(WEBHOOKS.values())),
        created_at=MOMENT,
    )

    with clock.frozen(MOMENT):
        returned = operation_transition(operation, action, actor=release_manager, reason="Checked by the test suite")

    stored = Operation.objects.get(pk=operation.pk)
    assert returned is operation
    assert operation.status == stored.status == target
    if target in FINISHED:
        assert (stored.finished_at, stored.wake_at, stored.waiting_for) == (MOMENT, None, "")
    else:
        assert stored.finished_at is None
        assert stored.waiting_for == "Baking until 09:35 UTC"  # what a caller does not pass stays as it was
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.reason, event.created_at) == (
        action,
        release_manager,
        "Checked by the test suite",
        MOMENT,
    )
    assert (event.object_type, event.object_id, event.application) == (
        "releases.operation",
        str(operation.pk),
        operation.application,
    )
    assert event.before["status"] == status
    assert event.after["status"] == target
    assert set(event.after) == {"status", "error", "started_at", "finished_at", "waiting_for"}
    webhook = WEBHOOKS.get(action)
    deliveries = list(WebhookDelivery.objects.filter(subscription=subscription).values_list("event_type", flat=True))
    assert deliveries == ([webhook] if webhook else [])


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_an_illegal_transition_is_refused_and_changes_nothing(status: str, action: str, release_manager: User) -> None:
    operation = operation_in(status)
    before = Operation.objects.filter(pk=operation.pk).values().get()

    with pytest.raises(DomainError) as refused:
        operation_transition(operation, action, actor=release_manager, reason="Checked by the test suite", error="x")

    label = S(status).label.lower()
    assert str(refused.value) == f"Operation #{operation.pk} is {label}; {transitions.TRANSITIONS[action].refusal}"
    assert Operation.objects.filter(pk=operation.pk).values().get() == before
    assert operation.status == status
    assert AuditEvent.objects.count() == 0


def test_the_matrix_covers_every_status_and_every_transition() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(S.values) * len(transitions.TRANSITIONS)
    assert len(LEGAL) == sum(len(t.moves) for t in transitions.TRANSITIONS.values())


def test_the_fields_that_go_with_an_edge_are_written_with_it_and_recorded(release_manager: User) -> None:
    operation = operation_in(S.RUNNING)

    with clock.frozen(MOMENT):
        operation_transition(
            operation,
            "operation.failed",
            actor=None,
            reason="The swap failed",
            audit_after={"ring": "Ring 1"},
            error="“Swap” failed: the provider said: conflict",
        )

    operation.refresh_from_db()
    assert (operation.status, operation.error, operation.finished_at) == (
        S.FAILED,
        "“Swap” failed: the provider said: conflict",
        MOMENT,
    )
    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_label) == (None, "system")
    assert event.after == {
        "status": "failed",
        "error": "“Swap” failed: the provider said: conflict",
        "started_at": None,
        "finished_at": DjangoJSONEncoder().default(MOMENT),
        "waiting_for": "",
        "ring": "Ring 1",
    }


def test_the_status_comes_from_the_table_never_from_the_caller(release_manager: User) -> None:
    operation = operation_in(S.RUNNING)

    with pytest.raises(TypeError, match="sets the status from its table"):
        operation_transition(operation, "operation.paused", actor=release_manager, status=S.SUCCEEDED)

    operation.refresh_from_db()
    assert operation.status == S.RUNNING
    assert AuditEvent.objects.count() == 0


def test_a_stale_instance_is_checked_against_the_row_as_stored(release_manager: User) -> None:
    operation = operation_in(S.RUNNING)
    stale = Operation.objects.get(pk=operation.pk)
    operation_transition(operation, "operation.rolling_back", actor=release_manager, reason="Errors went up")

    with pytest.raises(DomainError, match=r"is rolling back; it cannot be paused\."):
        operation_transition(stale, "operation.paused", actor=release_manager)

    assert Operation.objects.get(pk=operation.pk).status == S.ROLLING_BACK
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["operation.rolling_back"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_of_two_racing_edges_exactly_one_is_taken(release_manager: User) -> None:
    operation = operation_in(S.RUNNING)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def take(action: str) -> None:
        try:
            barrier.wait(timeout=10)
            operation_transition(Operation.objects.get(pk=operation.pk), action, actor=None, reason=action)
            outcomes[action] = "taken"
        except DomainError as exc:
            outcomes[action] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(a,)) for a in ("operation.succeeded", "operation.rolling_back")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    stored = Operation.objects.get(pk=operation.pk)
    taken = [action for action, outcome in outcomes.items() if outcome == "taken"]
    assert len(outcomes) == 2 and len(taken) == 1, outcomes
    assert stored.status == LIFECYCLE[taken[0]][S.RUNNING]
    assert list(AuditEvent.objects.filter(object_id=str(operation.pk)).values_list("action", flat=True)) == taken
