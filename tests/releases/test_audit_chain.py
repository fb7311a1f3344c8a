"""The tamper-evident audit trail: append-only rules, the hash chain, `audit_verify` and the page's status."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.test import Client
from django.urls import reverse

from releases.audit.chain import canonical, checkpoint_signature, link_hash, seal_pending, verify_chain
from releases.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditImmutable
from releases.audit.services import audit_record
from releases.catalog.models import Release
from tests.factories import ApplicationFactory, ReleaseFactory

MOMENT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TRAIL = reverse("audit_list")
on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="The append-only trigger and concurrent sealers need PostgreSQL; run with DATABASE_URL=postgres://...",
)


@pytest.fixture
def release(db: None) -> Release:
    return ReleaseFactory(application=ApplicationFactory(name="Checkout", slug="checkout"), version="7.3.0")


def record_events(release: Release, count: int, start: int = 0) -> list[AuditEvent]:
    events = []
    with transaction.atomic():
        for n in range(start, start + count):
            events.append(
                audit_record(
                    actor=None,
                    action=f"test.{n}",
                    obj=release,
                    application=release.application,
                    before={"n": n, "when": (MOMENT + timedelta(seconds=n)).isoformat()},
                    after={"n": n + 1, "list": [1, 2.5, "é"], "nested": {"b": 1, "a": None}},
                    reason=f"reason {n}",
                )
            )
    return events


def raw(sql: str, params: list[object] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount


@contextlib.contextmanager
def as_attacker() -> Iterator[None]:
    """Raw SQL, as someone with direct database access; on PostgreSQL a superuser who disables the trigger."""
    if connection.vendor == "postgresql":
        raw("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses while deferred foreign-key checks are pending
        raw("ALTER TABLE releases_auditevent DISABLE TRIGGER releases_auditevent_append_only")
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            raw("ALTER TABLE releases_auditevent ENABLE TRIGGER releases_auditevent_append_only")
            raw("SET CONSTRAINTS ALL DEFERRED")


def verify_fails() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", "--no-seal")
    assert failure.value.returncode == 1
    return str(failure.value)


# --- Sealing -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_audit_record_writes_unsealed_events_as_before(release: Release) -> None:
    (event,) = record_events(release, 1)

    event.refresh_from_db()
    assert (event.sequence, event.chain_hash, event.sealed_at) == (None, "", None)
    assert event.action == "test.0" and event.actor_label == "system" and event.object_type == "releases.release"


@pytest.mark.django_db
def test_sealing_gives_contiguous_sequences_and_chained_hashes_in_id_order(release: Release) -> None:
    record_events(release, 5)

    assert seal_pending(batch_size=2) == 5
    assert seal_pending() == 0

    events = list(AuditEvent.objects.order_by("id"))
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    previous = GENESIS_HASH
    for event in events:
        assert event.chain_hash == link_hash(previous, event) and event.sealed_at is not None
        previous = event.chain_hash
    head = AuditChainHead.objects.get(pk=1)
    assert (head.last_sequence, head.last_hash) == (5, previous)

    record_events(release, 2, start=5)
    assert seal_pending() == 2
    assert list(AuditEvent.objects.order_by("id").values_list("sequence", flat=True)) == [1, 2, 3, 4, 5, 6, 7]


@on_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_sealers_never_seal_an_event_twice() -> None:
    release = ReleaseFactory(application=ApplicationFactory(name="Checkout", slug="checkout"), version="7.3.0")
    record_events(release, 300)
    barrier = threading.Barrier(4)
    sealed: list[int] = []
    errors: list[BaseException] = []

    def sealer() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                sealed.append(seal_pending(batch_size=50))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sealer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(sealed) == 300
    assert sorted(AuditEvent.objects.values_list("sequence", flat=True)) == list(range(1, 301))
    assert verify_chain().ok


# --- Append-only ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_orm_refuses_to_change_or_remove_an_event(release: Release) -> None:
    (event,) = record_events(release, 1)

    with pytest.raises(AuditImmutable, match="append-only and cannot be updated"):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(AuditImmutable, match="cannot be deleted"):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditImmutable, match="cannot be deleted"):
        event.delete()
    event.reason = "rewritten"
    with pytest.raises(AuditImmutable, match="cannot be changed"):
        event.save()
    copy = AuditEvent.objects.get(pk=event.pk)
    copy._state.adding = True  # even a "new" row with an existing id is an INSERT, never an UPDATE
    with pytest.raises(DatabaseError), transaction.atomic():
        copy.save()
    assert AuditEvent.objects.get(pk=event.pk).reason == "reason 0"


@pytest.mark.django_db
def test_an_application_with_history_cannot_be_deleted(release: Release) -> None:
    from django.db.models import ProtectedError

    record_events(release, 1)
    with pytest.raises(ProtectedError):
        release.application.delete()


@on_postgres
@pytest.mark.django_db
def test_the_postgresql_trigger_refuses_raw_updates_and_deletes_but_allows_sealing(release: Release) -> None:
    (event,) = record_events(release, 1)

    for sql in (
        "UPDATE releases_auditevent SET reason = 'rewritten' WHERE id = %s",
        "UPDATE releases_auditevent SET reason = 'rewritten', sequence = 1, chain_hash = 'x', sealed_at = now() "
        "WHERE id = %s",
        "DELETE FROM releases_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            raw(sql, [event.pk])

    assert seal_pending() == 1  # the sealing transition is allowed, once
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw("UPDATE releases_auditevent SET chain_hash = %s WHERE id = %s", ["0" * 64, event.pk])
    assert verify_chain().ok


# --- audit_verify --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_audit_verify_seals_then_reports_an_intact_chain(release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    record_events(release, 4)

    call_command("audit_verify")

    out = capsys.readouterr().out
    head = AuditChainHead.objects.get(pk=1)
    assert "Sealed 4 pending events." in out
    assert f"OK: 4 events, chain intact through sequence 4, last hash {head.last_hash}" in out
    assert (head.verified_through, head.verified_hash, head.broken_sequence) == (4, head.last_hash, None)


@pytest.mark.django_db
def test_audit_verify_reports_the_first_changed_event(release: Release) -> None:
    events = record_events(release, 5)
    seal_pending()
    with as_attacker():
        raw("UPDATE releases_auditevent SET reason = 'nothing to see' WHERE id = %s", [events[2].pk])
        raw("UPDATE releases_auditevent SET reason = 'nor here' WHERE id = %s", [events[3].pk])

    message = verify_fails()

    assert f"BROKEN at sequence 3 (event #{events[2].pk}): the stored hash does not match" in message
    assert "expected hash" in message
    head = AuditChainHead.objects.get(pk=1)
    assert (head.broken_sequence, head.broken_event_id, head.verified_through) == (3, events[2].pk, 2)


@pytest.mark.django_db
def test_audit_verify_reports_a_deleted_event(release: Release) -> None:
    events = record_events(release, 5)
    seal_pending()
    with as_attacker():
        raw("DELETE FROM releases_auditevent WHERE id = %s", [events[1].pk])

    assert "BROKEN at sequence 2: sequence 2 is missing" in verify_fails()


@pytest.mark.django_db
def test_audit_verify_reports_deleted_newest_events(release: Release) -> None:
    events = record_events(release, 5)
    seal_pending()
    with as_attacker():
        raw("DELETE FROM releases_auditevent WHERE id >= %s", [events[3].pk])

    assert "BROKEN at sequence 4: sequences 4 to 5 are missing" in verify_fails()


@pytest.mark.django_db
def test_audit_verify_reports_reordered_events(release: Release) -> None:
    events = record_events(release, 5)
    seal_pending()
    with as_attacker():
        raw("UPDATE releases_auditevent SET sequence = 999 WHERE id = %s", [events[1].pk])
        raw("UPDATE releases_auditevent SET sequence = 2 WHERE id = %s", [events[2].pk])
        raw("UPDATE releases_auditevent SET sequence = 3 WHERE id = %s", [events[1].pk])

    assert f"BROKEN at sequence 2 (event #{events[2].pk})" in verify_fails()


@pytest.mark.django_db
def test_the_periodic_check_verifies_the_tail_then_sweeps_older_links_and_keeps_a_break(release: Release) -> None:
    events = record_events(release, 3)
    call_command("audit_verify")
    record_events(release, 2, start=3)

    from releases.audit.chain import verify_audit_chain_job

    assert verify_audit_chain_job() == {"sealed": 2, "checked": 2, "through": 5, "swept": 5, "ok": True}
    with as_attacker():
        raw("UPDATE releases_auditevent SET reason = 'x' WHERE id = %s", [events[0].pk])
    # Past its checkpoint, the old row is found by the rolling re-verification, not only by a full check.
    assert verify_audit_chain_job()["ok"] is False
    head = AuditChainHead.objects.get(pk=1)
    assert head.broken_sequence == 1 and "stored hash does not match" in head.broken_reason
    assert "BROKEN at sequence 1" in verify_fails()
    assert verify_audit_chain_job()["ok"] is False  # the break stays reported until a full check passes


@pytest.mark.django_db
def test_the_rolling_re_verification_resumes_where_it_stopped_and_starts_over(release: Release) -> None:
    record_events(release, 5)
    call_command("audit_verify")
    from releases.audit.chain import sweep_older

    assert (sweep_older(batch=2).through, sweep_older(batch=2).through, sweep_older(batch=2).through) == (2, 4, 5)
    assert sweep_older(batch=2).through == 2  # covered everything: it starts over


# --- The key: a chain no one without it can re-seal ----------------------------------------------------------
@pytest.mark.django_db
def test_a_full_re_seal_without_the_key_is_detected_and_named(release: Release) -> None:
    events = record_events(release, 4)
    seal_pending()
    # The attacker rewrites an event and recomputes every link as a plain SHA-256 chain, and the head with it.
    with as_attacker():
        raw("UPDATE releases_auditevent SET reason = 'approved by the board' WHERE id = %s", [events[1].pk])
        previous = GENESIS_HASH
        for event in AuditEvent.objects.order_by("sequence"):
            previous = hashlib.sha256((previous + canonical(event)).encode()).hexdigest()
            raw("UPDATE releases_auditevent SET chain_hash = %s, chain_key_id = '' WHERE id = %s", [previous, event.pk])
        raw("UPDATE releases_auditchainhead SET last_hash = %s WHERE id = 1", [previous])
    message = verify_fails()
    assert f"BROKEN at sequence 1 (event #{events[0].pk}): the link names no key" in message


@pytest.mark.django_db
def test_a_re_seal_with_another_key_is_detected(release: Release, settings: object) -> None:
    events = record_events(release, 3)
    seal_pending()
    with as_attacker():
        previous = GENESIS_HASH
        for event in AuditEvent.objects.order_by("sequence"):
            forged = hmac.new(b"g" * 32, (previous + "sk1" + canonical(event)).encode(), hashlib.sha256).hexdigest()
            raw("UPDATE releases_auditevent SET chain_hash = %s WHERE id = %s", [forged, event.pk])
            previous = forged
        raw("UPDATE releases_auditchainhead SET last_hash = %s WHERE id = 1", [previous])
    assert f"BROKEN at sequence 1 (event #{events[0].pk}): the stored hash does not match" in verify_fails()


@pytest.mark.django_db
def test_keys_rotate_old_links_verify_while_their_key_is_held(release: Release, settings: object) -> None:
    settings.AUDIT_CHAIN_KEYS = {"2026a": b"a" * 32, "2026b": b"b" * 32}
    settings.AUDIT_CHAIN_KEY_ID = "2026a"
    record_events(release, 2)
    seal_pending()
    settings.AUDIT_CHAIN_KEY_ID = "2026b"
    later = record_events(release, 2, start=2)
    seal_pending()
    assert [e.chain_key_id for e in AuditEvent.objects.order_by("sequence")] == ["2026a", "2026a", "2026b", "2026b"]
    assert verify_chain().ok
    settings.AUDIT_CHAIN_KEYS = {"2026b": b"b" * 32}  # the old key dropped too early
    broken = verify_chain().broken
    assert broken is not None and broken.sequence == 1
    assert "names key '2026a', which this installation does not hold (2026b)" in broken.reason
    assert later[0].pk  # the links of the new key are after the break


@pytest.mark.django_db
def test_audit_verify_prints_a_signed_checkpoint(release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    record_events(release, 3)
    call_command("audit_verify", "--checkpoint")
    statement = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    head = AuditChainHead.objects.get(pk=1)
    assert (statement["sequence"], statement["last_hash"]) == (3, head.last_hash)
    assert statement["signature"] == checkpoint_signature(3, head.last_hash)
    assert statement["signature"] != checkpoint_signature(3, "0" * 64)


# --- The audit page ------------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client: Client, viewer: User) -> Client:
    client.force_login(viewer)
    return client


@pytest.mark.django_db
def test_the_page_shows_the_chain_status(signed_in: Client, release: Release) -> None:
    record_events(release, 3)
    text = signed_in.get(TRAIL).text
    assert "no events sealed into the hash chain yet." in text
    assert "3 events waiting to be sealed" in text

    call_command("audit_verify")
    record_events(release, 1, start=3)
    text = signed_in.get(TRAIL).text
    assert "chain intact up to event #3 (verified" in text
    assert "1 event waiting to be sealed" in text

    assert "Integrity" not in signed_in.get(TRAIL, headers={"HX-Request": "true"}).text  # the results only


@pytest.mark.django_db
def test_the_page_shows_a_broken_chain(signed_in: Client, release: Release) -> None:
    events = record_events(release, 3)
    seal_pending()
    with as_attacker():
        raw("UPDATE releases_auditevent SET reason = 'x' WHERE id = %s", [events[1].pk])
    verify_fails()

    text = signed_in.get(TRAIL).text

    assert f"broken at sequence 2 (event #{events[1].pk})" in text
    assert 'role="alert"' in text
