"""The audit trail's models, moved from the releases app.

State only: the tables were created by the migrations of the app label they had before
(`releases`); each model keeps its `db_table`. A database migrated before the move goes forward by
renaming the models' content types (so permissions and admin history follow them); a new database creates
its content types after migrating, as usual. See docs/architecture.md, "Moving a model".
"""

import django.contrib.postgres.search
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import releases.audit.fulltext

OLD_LABEL = "releases"
NEW_LABEL = "audit"
MOVED = ["auditchainhead", "auditevent"]


def rename_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label=NEW_LABEL, model=model).exists():
            ContentType.objects.filter(app_label=OLD_LABEL, model=model).update(app_label=NEW_LABEL)


def restore_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label=NEW_LABEL, model__in=MOVED).update(app_label=OLD_LABEL)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("releases", "0015_models_moved_to_their_apps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditChainHead",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("last_sequence", models.PositiveBigIntegerField(default=0)),
                        (
                            "last_hash",
                            models.CharField(
                                default="0000000000000000000000000000000000000000000000000000000000000000",
                                max_length=64,
                            ),
                        ),
                        ("last_sealed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "verified_through",
                            models.PositiveBigIntegerField(default=0, help_text="Sequence verified up to."),
                        ),
                        (
                            "verified_hash",
                            models.CharField(
                                default="0000000000000000000000000000000000000000000000000000000000000000",
                                max_length=64,
                            ),
                        ),
                        ("verified_at", models.DateTimeField(blank=True, null=True)),
                        ("broken_sequence", models.PositiveBigIntegerField(blank=True, null=True)),
                        ("broken_event_id", models.BigIntegerField(blank=True, null=True)),
                        ("broken_reason", models.TextField(blank=True)),
                    ],
                    options={
                        "db_table": "releases_auditchainhead",
                    },
                ),
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("created_at", models.DateTimeField(db_index=True)),
                        (
                            "actor_label",
                            models.CharField(
                                help_text="Who, as shown: a username, a token, or 'system'.", max_length=200
                            ),
                        ),
                        ("action", models.CharField(db_index=True, max_length=80)),
                        ("object_type", models.CharField(max_length=60)),
                        ("object_id", models.CharField(max_length=64)),
                        ("object_repr", models.CharField(max_length=300)),
                        ("before", models.JSONField(blank=True, null=True)),
                        ("after", models.JSONField(blank=True, null=True)),
                        ("reason", models.TextField(blank=True)),
                        (
                            "origin",
                            models.JSONField(
                                blank=True, default=dict, help_text="Request id, IP address, user agent or job id."
                            ),
                        ),
                        (
                            "sequence",
                            models.PositiveBigIntegerField(blank=True, editable=False, null=True, unique=True),
                        ),
                        ("chain_hash", models.CharField(blank=True, editable=False, max_length=64)),
                        ("sealed_at", models.DateTimeField(blank=True, editable=False, null=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="audit_events",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "application",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="audit_events",
                                to="releases.application",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_auditevent",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(
                                condition=models.Q(("sequence__isnull", True)), fields=["id"], name="audit_unsealed_idx"
                            ),
                            models.Index(fields=["object_type", "object_id", "-created_at"], name="audit_object_idx"),
                            models.Index(fields=["application", "-created_at"], name="audit_application_idx"),
                            models.Index(fields=["-created_at", "-id"], name="audit_created_id_idx"),
                            releases.audit.fulltext.PostgresGinIndex(
                                django.contrib.postgres.search.SearchVector("reason", "object_repr", config="english"),
                                name="audit_search_idx",
                            ),
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
