"""The audit hash chain: sealing events into it, and verifying it.

`audit_record` writes events unsealed, so no write waits for another. The sealer (`seal_pending`, every
AUDIT_SEAL_SWEEP_SECONDS from releases/cron.py, and at the start of `manage.py audit_verify`) locks the
one `AuditChainHead` row and gives each unsealed event, in id order, the next `sequence` and
`chain_hash = HMAC-SHA256(key, previous hash + key id + canonical JSON of the event)` with the key named by
its `chain_key_id` (AUDIT_CHAIN_KEYS, held outside the database); the first link's previous hash is 64 zeros.
Whoever can write the table but does not hold the key cannot re-seal it: every recomputed link fails. An
event is unsealed for a few seconds at most (longer only if no cron runs).

`verify_chain` walks the chain in sequence order, recomputing every hash, and reports the first broken
link. The periodic check (every AUDIT_VERIFY_SWEEP_SECONDS) verifies the tail since the last checkpoint and
re-verifies AUDIT_VERIFY_SWEEP_BATCH older links, resuming where it stopped (`swept_through`), so an old row
edited after its checkpoint is found within a few passes; `manage.py audit_verify` verifies the whole chain
and can print a signed checkpoint for a third party to hold. The audit page reads the head row only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Func, Subquery

from portal.core import clock
from releases.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
VERIFY_CHUNK_SIZE = 2000
HEAD_ID = 1


def canonical(event: AuditEvent) -> str:
    """The event's immutable content as canonical JSON: what its link in the chain hashes."""
    content: dict[str, Any] = {
        "id": event.pk,
        "created_at": event.created_at.astimezone(UTC).isoformat(),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "application_id": event.application_id,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "origin": event.origin,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)


class UnknownKey(Exception):
    """The link names a key this installation does not hold (AUDIT_CHAIN_KEYS)."""


def link_hash(previous_hash: str, event: AuditEvent, key_id: str | None = None) -> str:
    """The link's keyed hash, with the key `key_id` (by default the one that sealed it)."""
    key_id = event.chain_key_id if key_id is None else key_id
    key = settings.AUDIT_CHAIN_KEYS.get(key_id) if key_id else None
    if key is None:
        raise UnknownKey(key_id)
    message = (previous_hash + key_id + canonical(event)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def checkpoint_signature(sequence: int, last_hash: str) -> str:
    """A signed statement that the chain was intact through `sequence` ending in `last_hash`: kept outside
    Slipway, it proves later that nothing up to there was rewritten, even by someone who then took the key."""
    key_id = settings.AUDIT_CHAIN_KEY_ID
    message = f"slipway-audit-checkpoint:{sequence}:{last_hash}".encode()
    return f"{key_id}:{hmac.new(settings.AUDIT_CHAIN_KEYS[key_id], message, hashlib.sha256).hexdigest()}"


def _head(*, lock: bool = False) -> AuditChainHead:
    # The migration creates the row; a flushed test database (TRUNCATE) may not have it.
    queryset = AuditChainHead.objects.select_for_update(no_key=True) if lock else AuditChainHead.objects.all()
    head, _ = queryset.get_or_create(pk=HEAD_ID)
    return head


def _seal_batch(limit: int) -> int:
    with transaction.atomic():
        head = _head(lock=True)  # every sealer waits here for the one before it (SQLite: IMMEDIATE transactions)
        events = list(AuditEvent.objects.filter(sequence__isnull=True).order_by("id")[:limit])
        if not events:
            return 0
        now = clock.now()
        sequence, previous, key_id = head.last_sequence, head.last_hash, settings.AUDIT_CHAIN_KEY_ID
        for event in events:
            sequence += 1
            previous = link_hash(previous, event, key_id)
            sealed = AuditEvent.objects.filter(pk=event.pk)._seal_update(
                sequence=sequence, chain_hash=previous, chain_key_id=key_id, sealed_at=now
            )
            if sealed != 1:
                raise RuntimeError(f"audit event {event.pk} was sealed by someone else while the chain head was locked")
        head.last_sequence, head.last_hash, head.last_sealed_at = sequence, previous, now
        head.save(update_fields=["last_sequence", "last_hash", "last_sealed_at"])
        return len(events)


def seal_pending(*, batch_size: int = BATCH_SIZE) -> int:
    """Seal every event not sealed yet, in id order, one transaction per batch. Returns how many."""
    total = 0
    while sealed := _seal_batch(batch_size):
        total += sealed
        if sealed < batch_size:
            break
    return total


@dataclass(frozen=True)
class BrokenLink:
    sequence: int
    event_id: int | None
    reason: str
    expected_hash: str = ""
    stored_hash: str = ""

    def describe(self) -> str:
        where = f"sequence {self.sequence}" + (f" (event #{self.event_id})" if self.event_id else "")
        hashes = ""
        if self.expected_hash:
            hashes = f"; expected hash {self.expected_hash}, stored {self.stored_hash or '(none)'}"
        return f"{where}: {self.reason}{hashes}"


@dataclass(frozen=True)
class Verification:
    checked: int
    through: int
    last_hash: str
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _walk(start: int, previous: str, through: int, head_hash: str) -> Verification:
    expected_sequence, checked = start + 1, 0
    events = (
        AuditEvent.objects.filter(sequence__gt=start, sequence__lte=through)
        .order_by("sequence")
        .iterator(chunk_size=VERIFY_CHUNK_SIZE)
    )
    for event in events:
        if event.sequence != expected_sequence:
            reason = (
                f"sequence {expected_sequence} is missing (the next sealed event, #{event.pk}, has sequence "
                f"{event.sequence}): events were deleted or their sequence changed"
            )
            return Verification(checked, expected_sequence - 1, previous, BrokenLink(expected_sequence, None, reason))
        try:
            expected = link_hash(previous, event)
        except UnknownKey:
            held = ", ".join(sorted(settings.AUDIT_CHAIN_KEYS))
            reason = (
                f"the link names key {event.chain_key_id!r}, which this installation does not hold ({held}): "
                "it was sealed elsewhere or re-sealed without the key"
                if event.chain_key_id
                else "the link names no key: it was re-sealed without the key"
            )
            return Verification(checked, expected_sequence - 1, previous, BrokenLink(event.sequence, event.pk, reason))
        if expected != event.chain_hash:
            reason = (
                "the stored hash does not match the event's content and the link before it: "
                "the event was changed, or events were reordered"
            )
            broken = BrokenLink(event.sequence, event.pk, reason, expected, event.chain_hash)
            return Verification(checked, expected_sequence - 1, previous, broken)
        previous, checked, expected_sequence = event.chain_hash, checked + 1, expected_sequence + 1
    if expected_sequence <= through:
        reason = f"sequences {expected_sequence} to {through} are missing: the newest sealed events were deleted"
        return Verification(checked, expected_sequence - 1, previous, BrokenLink(expected_sequence, None, reason))
    if through and previous != head_hash:
        reason = "the chain head's hash does not match the last event's"
        return Verification(checked, through, previous, BrokenLink(through, None, reason, previous, head_hash))
    return Verification(checked, through, previous, None)


def verify_chain(*, since_checkpoint: bool = False, record: bool = True) -> Verification:
    """Recompute the chain (all of it, or only past the last checkpoint) and report the first broken link.

    With `record`, the result is written on the head row for the audit page: the checkpoint moves on
    when the chain is intact, and a break is kept until a full verification finds the chain intact.
    """
    head = _head()
    if since_checkpoint and head.broken_sequence is not None:
        broken = BrokenLink(head.broken_sequence, head.broken_event_id, head.broken_reason)
        return Verification(0, head.verified_through, head.verified_hash, broken)
    start, previous = (head.verified_through, head.verified_hash) if since_checkpoint else (0, GENESIS_HASH)
    result = _walk(start, previous, head.last_sequence, head.last_hash)
    if record:
        fields: dict[str, Any] = {"verified_at": clock.now(), "verified_through": result.through}
        fields["verified_hash"] = result.last_hash
        if result.broken:
            fields.update(
                broken_sequence=result.broken.sequence,
                broken_event_id=result.broken.event_id,
                broken_reason=result.broken.describe(),
            )
        else:
            fields.update(broken_sequence=None, broken_event_id=None, broken_reason="")
        AuditChainHead.objects.filter(pk=HEAD_ID).update(**fields)
    if result.broken:
        log.error("audit chain broken at %s", result.broken.describe())
    return result


@dataclass(frozen=True)
class ChainStatus:
    last_sequence: int
    last_sealed_at: datetime | None
    verified_through: int
    verified_at: datetime | None
    broken_sequence: int | None
    broken_event_id: int | None
    broken_reason: str
    waiting: int


def chain_status() -> ChainStatus:
    """What the audit page says about integrity: the head row and the number of unsealed events, one query."""
    unsealed = Subquery(
        AuditEvent.objects.filter(sequence__isnull=True).order_by().values(n=Func(F("id"), function="COUNT"))
    )
    head = AuditChainHead.objects.filter(pk=HEAD_ID).annotate(waiting=unsealed).first()
    if head is None:
        head = AuditChainHead(pk=HEAD_ID)
        head.waiting = AuditEvent.objects.filter(sequence__isnull=True).count()
    return ChainStatus(
        last_sequence=head.last_sequence,
        last_sealed_at=head.last_sealed_at,
        verified_through=head.verified_through,
        verified_at=head.verified_at,
        broken_sequence=head.broken_sequence,
        broken_event_id=head.broken_event_id,
        broken_reason=head.broken_reason,
        waiting=head.waiting,
    )


# --- Periodic jobs (releases/cron.py) ------------------------------------------------------------------


def seal_audit_chain_job() -> dict[str, int]:
    return {"sealed": seal_pending()}


def sweep_older(*, batch: int | None = None) -> Verification:
    """Re-verify up to `batch` links already verified, resuming where the last sweep stopped and starting over
    after the checkpoint: over successive passes every link is checked again, so an old row edited after its
    checkpoint is found. A break is recorded on the head row as a full verification would."""
    batch = batch or settings.AUDIT_VERIFY_SWEEP_BATCH
    head = _head()
    start = head.swept_through if head.swept_through < head.verified_through else 0
    through = min(start + batch, head.verified_through)
    if through <= start:
        return Verification(0, start, "", None)
    hashes = dict(AuditEvent.objects.filter(sequence__in=[start, through]).values_list("sequence", "chain_hash"))
    previous = GENESIS_HASH if start == 0 else hashes.get(start, "")
    result = _walk(start, previous, through, hashes.get(through, ""))
    if result.broken:
        AuditChainHead.objects.filter(pk=HEAD_ID).update(
            broken_sequence=result.broken.sequence,
            broken_event_id=result.broken.event_id,
            broken_reason=result.broken.describe(),
            verified_at=clock.now(),
        )
        log.error("audit chain broken at %s (found by the rolling re-verification)", result.broken.describe())
    else:
        AuditChainHead.objects.filter(pk=HEAD_ID).update(swept_through=through)
    return result


def verify_audit_chain_job() -> dict[str, object]:
    """Seal, verify the tail since the last checkpoint, and re-verify a batch of older links (`sweep_older`)."""
    sealed = seal_pending()
    result = verify_chain(since_checkpoint=True)
    swept = sweep_older() if result.ok else None
    ok = result.ok and (swept is None or swept.ok)
    checked = swept.checked if swept else 0
    return {"sealed": sealed, "checked": result.checked, "through": result.through, "swept": checked, "ok": ok}
