"""The webhook models, moved from the releases app.

State only: the tables were created by the migrations of the app label they had before
(`releases`); each model keeps its `db_table`. A database migrated before the move goes forward by
renaming the models' content types (so permissions and admin history follow them); a new database creates
its content types after migrating, as usual. See docs/architecture.md, "Moving a model".
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_LABEL = "releases"
NEW_LABEL = "webhooks"
MOVED = ["webhookdelivery", "webhooksubscription"]


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
                    name="WebhookSubscription",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("url", models.URLField(max_length=500)),
                        ("secret", models.CharField(max_length=100)),
                        (
                            "events",
                            models.JSONField(
                                default=list, help_text="Event types delivered (releases.webhooks.events.EVENT_TYPES)."
                            ),
                        ),
                        ("active", models.BooleanField(default=True)),
                        ("created_at", models.DateTimeField()),
                        (
                            "application",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="webhook_subscriptions",
                                to="releases.application",
                            ),
                        ),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_webhooksubscription",
                        "ordering": ["application", "created_at", "id"],
                    },
                ),
                migrations.CreateModel(
                    name="WebhookDelivery",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("event_id", models.UUIDField()),
                        ("event_type", models.CharField(max_length=50)),
                        ("payload", models.JSONField()),
                        (
                            "status",
                            models.CharField(
                                choices=[("pending", "Pending"), ("succeeded", "Succeeded"), ("failed", "Failed")],
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        ("attempts", models.PositiveSmallIntegerField(default=0)),
                        ("last_status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                        ("last_error", models.TextField(blank=True)),
                        (
                            "response_excerpt",
                            models.TextField(blank=True, help_text="The first 500 characters of the last answer."),
                        ),
                        ("last_duration_ms", models.PositiveIntegerField(blank=True, null=True)),
                        (
                            "attempt_log",
                            models.JSONField(
                                blank=True, default=list, help_text="One entry per attempt: at, code, error."
                            ),
                        ),
                        ("created_at", models.DateTimeField()),
                        ("delivered_at", models.DateTimeField(blank=True, null=True)),
                        ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "subscription",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="deliveries",
                                to="webhooks.webhooksubscription",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_webhookdelivery",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(fields=["subscription", "-created_at"], name="webhook_delivery_sub_idx")
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
