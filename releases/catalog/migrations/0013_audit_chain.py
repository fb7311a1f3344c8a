"""Tamper-evident audit: the hash chain fields, the chain head row, and (PostgreSQL) an append-only trigger."""

from django.db import migrations, models

GENESIS_HASH = "0" * 64

# Refuses DELETE, and UPDATE unless it is the one sealing of an unsealed event: sequence, chain_hash
# and sealed_at go from empty to a value and every other column stays as it was. TRUNCATE (Django's
# test flush) is a statement, not row deletes, so this row-level trigger does not see it.
APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION releases_auditevent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit events are append-only: DELETE of audit event % refused', OLD.id;
    END IF;
    IF OLD.sequence IS NULL AND NEW.sequence IS NOT NULL AND NEW.chain_hash <> '' AND NEW.sealed_at IS NOT NULL
       AND (to_jsonb(OLD) - 'sequence' - 'chain_hash' - 'sealed_at')
           = (to_jsonb(NEW) - 'sequence' - 'chain_hash' - 'sealed_at') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: UPDATE of audit event % refused (only its sealing is allowed)', OLD.id;
END
$$;
DROP TRIGGER IF EXISTS releases_auditevent_append_only ON releases_auditevent;
CREATE TRIGGER releases_auditevent_append_only BEFORE UPDATE OR DELETE ON releases_auditevent
    FOR EACH ROW EXECUTE FUNCTION releases_auditevent_append_only();
"""

DROP_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS releases_auditevent_append_only ON releases_auditevent;
DROP FUNCTION IF EXISTS releases_auditevent_append_only();
"""


def create_head(apps, schema_editor):
    apps.get_model("releases", "AuditChainHead").objects.using(schema_editor.connection.alias).get_or_create(pk=1)


def install_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL, params=None)  # no placeholders: % is plpgsql


def remove_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0012_webhooks"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("last_sequence", models.PositiveBigIntegerField(default=0)),
                ("last_hash", models.CharField(default=GENESIS_HASH, max_length=64)),
                ("last_sealed_at", models.DateTimeField(blank=True, null=True)),
                ("verified_through", models.PositiveBigIntegerField(default=0, help_text="Sequence verified up to.")),
                ("verified_hash", models.CharField(default=GENESIS_HASH, max_length=64)),
                ("verified_at", models.DateTimeField(blank=True, null=True)),
                ("broken_sequence", models.PositiveBigIntegerField(blank=True, null=True)),
                ("broken_event_id", models.BigIntegerField(blank=True, null=True)),
                ("broken_reason", models.TextField(blank=True)),
            ],
        ),
        migrations.AddField(
            model_name="auditevent",
            name="chain_hash",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="sealed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="sequence",
            field=models.PositiveBigIntegerField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("sequence__isnull", True)), fields=["id"], name="audit_unsealed_idx"
            ),
        ),
        migrations.RunPython(create_head, migrations.RunPython.noop),
        migrations.RunPython(install_trigger, remove_trigger),
    ]
