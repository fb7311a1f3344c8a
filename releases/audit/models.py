"""The audit trail: append-only events, hash-chained by the sealer (releases.audit.chain)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models

from releases.audit.fulltext import PostgresGinIndex, audit_search_vector


class AuditImmutable(Exception):
    """An attempt to change or remove a recorded audit event: the trail is append-only."""

    def __init__(self, what: str = "changed") -> None:
        super().__init__(
            f"Audit events are append-only and cannot be {what}; record a new event instead "
            "(only the sealer of releases.audit_chain may set sequence, chain_hash and sealed_at, once)."
        )


class AuditEventQuerySet(models.QuerySet):
    """Refuses `update()` and `delete()`: audit events are never changed or removed through the ORM."""

    def update(self, **kwargs: Any) -> int:
        raise AuditImmutable("updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditImmutable("deleted")

    def _seal_update(self, *, sequence: int, chain_hash: str, chain_key_id: str, sealed_at: datetime) -> int:
        """The sealer's one write: the seal fields of events not sealed yet (see releases.audit_chain)."""
        return models.QuerySet.update(
            self.filter(sequence__isnull=True),
            sequence=sequence,
            chain_hash=chain_hash,
            chain_key_id=chain_key_id,
            sealed_at=sealed_at,
        )


class AuditEvent(models.Model):
    """One recorded state change: who did what to which object, when, with the state before and after.

    Rows are only ever inserted (by `releases.audit.audit_record`), inside the transaction of the change;
    the ORM refuses updates and deletes (`AuditImmutable`), and on PostgreSQL a trigger does too. The
    sealer (`releases.audit_chain.seal_pending`) later gives each event its place in the hash chain.
    """

    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    actor_label = models.CharField(max_length=200, help_text="Who, as shown: a username, a token, or 'system'.")
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    application = models.ForeignKey(
        # A string, not an import: the audit trail sits below the catalogue (docs/architecture.md, Layers).
        "releases.Application",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    origin = models.JSONField(default=dict, blank=True, help_text="Request id, IP address, user agent or job id.")
    # The hash chain, set once by the sealer: position (1, 2, 3, ...) and sha256(previous hash + content).
    sequence = models.PositiveBigIntegerField(null=True, blank=True, unique=True, editable=False)
    chain_hash = models.CharField(max_length=64, blank=True, editable=False)
    chain_key_id = models.CharField(
        max_length=32, blank=True, editable=False, help_text="Which AUDIT_CHAIN_KEYS key sealed this link."
    )
    sealed_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        db_table = "releases_auditevent"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sealer takes events not sealed yet in id order; the audit page counts them.
            models.Index(fields=["id"], condition=models.Q(sequence__isnull=True), name="audit_unsealed_idx"),
            models.Index(fields=["object_type", "object_id", "-created_at"], name="audit_object_idx"),
            models.Index(fields=["application", "-created_at"], name="audit_application_idx"),
            # The trail pages walk (created_at, id) backwards with a cursor; the search box is full-text.
            models.Index(fields=["-created_at", "-id"], name="audit_created_id_idx"),
            PostgresGinIndex(audit_search_vector(), name="audit_search_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_repr}"

    def save(self, **kwargs: Any) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields") is not None:
            raise AuditImmutable("changed")
        kwargs["force_insert"] = True  # never an UPDATE, even with a primary key set by hand
        super().save(**kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditImmutable("deleted")


GENESIS_HASH = "0" * 64


class AuditChainHead(models.Model):
    """The one row (id=1) the sealer locks: the end of the audit hash chain and the last verification.

    The audit page reads only this row; `manage.py audit_verify` and the periodic check write the
    verification fields.
    """

    last_sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    last_sealed_at = models.DateTimeField(null=True, blank=True)
    verified_through = models.PositiveBigIntegerField(default=0, help_text="Sequence verified up to.")
    verified_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    verified_at = models.DateTimeField(null=True, blank=True)
    broken_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    broken_event_id = models.BigIntegerField(null=True, blank=True)
    broken_reason = models.TextField(blank=True)
    swept_through = models.PositiveBigIntegerField(
        default=0, help_text="Where the rolling re-verification of older links resumes."
    )

    class Meta:
        db_table = "releases_auditchainhead"  # kept from before the move (docs/architecture.md, "Moving a model")

    def __str__(self) -> str:
        return f"audit chain head: sequence {self.last_sequence}"
