"""The audit chain becomes keyed: each link records the key that sealed it (HMAC, releases.audit.chain), the
head keeps where the rolling re-verification resumes, and the links sealed before are re-sealed with the key.

The re-sealing first verifies the unkeyed chain as it was (SHA-256 links): a chain already broken is not
laundered into a valid keyed one — the migration stops and names the first broken link. On PostgreSQL the
append-only trigger now also lets the sealer set the key id, once.
"""

import hashlib

from django.conf import settings
from django.db import migrations, models

from releases.audit.chain import canonical, link_hash

GENESIS_HASH = "0" * 64

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION releases_auditevent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit events are append-only: DELETE of audit event % refused', OLD.id;
    END IF;
    IF OLD.sequence IS NULL AND NEW.sequence IS NOT NULL AND NEW.chain_hash <> '' AND NEW.sealed_at IS NOT NULL
       AND (to_jsonb(OLD) - 'sequence' - 'chain_hash' - 'chain_key_id' - 'sealed_at')
           = (to_jsonb(NEW) - 'sequence' - 'chain_hash' - 'chain_key_id' - 'sealed_at') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: UPDATE of audit event % refused (only its sealing is allowed)', OLD.id;
END
$$;
"""

TRIGGER = "releases_auditevent_append_only"


def keyed_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL, params=None)  # no placeholders: % is plpgsql


def reseal_with_the_key(apps, schema_editor):
    event_model = apps.get_model("audit", "AuditEvent")
    head_model = apps.get_model("audit", "AuditChainHead")
    db = schema_editor.connection.alias
    head = head_model.objects.using(db).filter(pk=1).first()
    if head is None or head.last_sequence == 0:
        return
    key_id = settings.AUDIT_CHAIN_KEY_ID
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute(f"ALTER TABLE releases_auditevent DISABLE TRIGGER {TRIGGER}")
    old_previous = new_previous = GENESIS_HASH
    expected = 1
    for event in event_model.objects.using(db).filter(sequence__isnull=False).order_by("sequence").iterator(2000):
        unkeyed = hashlib.sha256((old_previous + canonical(event)).encode()).hexdigest()
        if event.sequence != expected or unkeyed != event.chain_hash:
            raise RuntimeError(
                f"The audit chain is broken at sequence {expected} (event #{event.pk}) before it could be keyed: "
                "run `manage.py audit_verify` with the previous release and investigate before upgrading."
            )
        old_previous, expected = event.chain_hash, expected + 1
        new_previous = link_hash(new_previous, event, key_id)
        event_model.objects.using(db).filter(pk=event.pk).update(chain_hash=new_previous, chain_key_id=key_id)
    if old_previous != head.last_hash:
        raise RuntimeError("The audit chain head does not match its last event; investigate before upgrading.")
    head_model.objects.using(db).filter(pk=1).update(
        last_hash=new_previous,
        verified_through=0,
        verified_hash=GENESIS_HASH,
        swept_through=0,
        broken_sequence=None,
        broken_event_id=None,
        broken_reason="",
    )
    if postgres:
        schema_editor.execute(f"ALTER TABLE releases_auditevent ENABLE TRIGGER {TRIGGER}")


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="chain_key_id",
            field=models.CharField(
                blank=True, editable=False, help_text="Which AUDIT_CHAIN_KEYS key sealed this link.", max_length=32
            ),
        ),
        migrations.AddField(
            model_name="auditchainhead",
            name="swept_through",
            field=models.PositiveBigIntegerField(
                default=0, help_text="Where the rolling re-verification of older links resumes."
            ),
        ),
        migrations.RunPython(keyed_trigger, migrations.RunPython.noop),
        migrations.RunPython(reseal_with_the_key, migrations.RunPython.noop),
    ]
