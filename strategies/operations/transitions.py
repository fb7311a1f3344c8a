"""The operation lifecycle: one table of edges and the one function that moves an operation along them.

Shaped like the release lifecycle (`releases.catalog.services.TRANSITIONS` and `_transition`). Every change of
`Operation.status` — by a person (pause, resume, promote now, roll back, a ring's approval) or by the
engine (claim, pause for a person, compensate, close, fail) — is `operation_transition`: it locks the
row, checks the edge, writes the status and the fields that go with it in a conditional UPDATE, and
records the audit event (and the webhook event, for the edges subscribers see) in the same transaction.
The model refuses a status written anywhere else (`portal.core.status_guard`).

Callers that have more to do in the same transaction (steps to skip, the release's own transition)
lock the operation first, do it, and then call `operation_transition`, which takes the lock again (a
no-op in the same transaction) and checks the edge itself. The engine's callers skip an edge that no
longer applies (someone paused or rolled back meanwhile) by asking `operation_can` first; the people's
services let the `DomainError` through to the person.

```
pending ──► running ──► succeeded            every active status ──► failed
   │          │  ▲                            (pending, running, paused, rolling back)
   │          ▼  │ resumed, promoted now,
   └──────► paused   ring approved            pending, running, paused ──► rolling back ──► rolled back
```

`cancelled` is a status no edge leads to (kept for rows that may have it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from portal.core import clock, events
from portal.core.errors import DomainError, ErrorCode
from portal.core.status_guard import status_writer
from releases.audit.services import audit_record, snapshot
from strategies.operations.models import OPERATION_ACTIVE, Operation, OperationStatus

S = OperationStatus

# What an operation's audit events snapshot before and after each edge.
OPERATION_AUDIT_FIELDS = ["status", "error", "started_at", "finished_at", "waiting_for"]


@dataclass(frozen=True)
class OperationTransition:
    action: str  # audit action, e.g. "operation.paused"
    moves: Mapping[str, str]  # source status → target status (promote now keeps a running one running)
    refusal: str  # follows "Operation #N is <status>; " when the source status is not one of `moves`
    webhook: str = ""  # the webhook event it emits, if subscribers see it

    @property
    def sources(self) -> frozenset[str]:
        return frozenset(self.moves)


def _to(target: str, *sources: str) -> dict[str, str]:
    return dict.fromkeys(sources, target)


# The operation lifecycle, in one table.
TRANSITIONS: dict[str, OperationTransition] = {
    t.action: t
    for t in [
        OperationTransition(
            "operation.running", _to(S.RUNNING, S.PENDING), "it cannot start running.", "operation.started"
        ),
        OperationTransition("operation.paused", _to(S.PAUSED, S.PENDING, S.RUNNING), "it cannot be paused."),
        OperationTransition("operation.resumed", _to(S.RUNNING, S.PAUSED), "it cannot be resumed."),
        OperationTransition(
            "operation.promoted_now",
            {S.PENDING: S.PENDING, S.RUNNING: S.RUNNING, S.PAUSED: S.RUNNING},  # promoting now also resumes
            "there is nothing to skip.",
        ),
        OperationTransition(
            "operation.ring_approved", _to(S.RUNNING, S.PAUSED), "it is not waiting for a ring's approval."
        ),
        OperationTransition(
            "operation.rolling_back",
            _to(S.ROLLING_BACK, S.PENDING, S.RUNNING, S.PAUSED),
            "it cannot be rolled back. To take a live release back, roll back the application.",
        ),
        OperationTransition(
            "operation.succeeded",
            _to(S.SUCCEEDED, S.RUNNING),
            "it is not running, so it cannot succeed.",
            "operation.succeeded",
        ),
        OperationTransition(
            "operation.rolled_back",
            _to(S.ROLLED_BACK, S.ROLLING_BACK),
            "it is not rolling back, so it cannot be rolled back completely.",
            "operation.rolled_back",
        ),
        OperationTransition(
            "operation.failed",
            _to(S.FAILED, S.PENDING, S.RUNNING, S.PAUSED, S.ROLLING_BACK),
            "it is finished, so it cannot fail.",
            "operation.failed",
        ),
    ]
}


def operation_can(status: str, action: str) -> bool:
    """Whether an operation in `status` may take the edge `action` (a key of `TRANSITIONS`)."""
    return status in TRANSITIONS[action].moves


def operation_refusal(operation: Operation, action: str) -> str:
    """The sentence shown when `operation`, in its current status, may not take the edge `action`."""
    status = operation.get_status_display().lower()
    return f"Operation #{operation.pk} is {status}; {TRANSITIONS[action].refusal}"


def operation_transition(
    operation: Operation,
    action: str,
    *,
    actor: Any,
    reason: str = "",
    audit_after: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Operation:
    """Move `operation` along the edge `action`, writing `fields` with the status; returns it refreshed.

    A finished operation gets `finished_at` (now), no wake-up and no waiting reason unless `fields`
    say otherwise. The audit event's `after` is the operation's snapshot plus `audit_after`. An edge
    that does not start from the operation's status raises `DomainError`, and nothing is written.
    """
    transition = TRANSITIONS[action]
    if "status" in fields:
        raise TypeError("operation_transition() sets the status from its table; do not pass one.")
    with transaction.atomic():
        current = Operation.objects.select_for_update(no_key=True).select_related("application").get(pk=operation.pk)
        target = transition.moves.get(current.status)
        if target is None:
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, operation_refusal(current, action))
        before = snapshot(current, OPERATION_AUDIT_FIELDS)
        finished = {"finished_at": clock.now(), "wake_at": None, "waiting_for": ""}
        changes = {**({} if target in OPERATION_ACTIVE else finished), **fields, "status": target}
        with status_writer(Operation):  # the one writer of Operation.status (portal.core.status_guard)
            updated = Operation.objects.filter(pk=current.pk, status=current.status).update(**changes)
        if updated != 1:  # pragma: no cover - the row lock makes this unreachable on PostgreSQL
            raise DomainError(
                ErrorCode.CONCURRENT_CHANGE,
                f"Operation #{current.pk} changed while you were acting on it; reload and try again.",
            )
        current.refresh_from_db()
        audit_record(
            actor=actor,
            action=action,
            obj=current,
            application=current.application,
            before=before,
            after={**snapshot(current, OPERATION_AUDIT_FIELDS), **(audit_after or {})},
            reason=reason,
        )
        if transition.webhook:
            events.publish(transition.webhook, current, current.application)
    for field in Operation._meta.concrete_fields:  # the caller's instance as stored, its cached relations kept
        setattr(operation, field.attname, getattr(current, field.attname))
    return operation
