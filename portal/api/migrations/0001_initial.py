"""API tokens and idempotency keys, moved from the releases app.

State only: the tables were created by the migrations of the app label they had before
(`releases`); each model keeps its `db_table`. A database migrated before the move goes forward by
renaming the models' content types (so permissions and admin history follow them); a new database creates
its content types after migrating, as usual. See docs/architecture.md, "Moving a model".
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_LABEL = "releases"
NEW_LABEL = "api"
MOVED = ["apitoken", "idempotencykey"]


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
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiToken",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        (
                            "prefix",
                            models.CharField(
                                help_text="Public part, shown in lists and logs.", max_length=16, unique=True
                            ),
                        ),
                        ("secret_hash", models.CharField(max_length=64, unique=True)),
                        ("scopes", models.JSONField(default=list)),
                        ("created_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "owner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="api_tokens",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_apitoken",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="IdempotencyKey",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("key", models.CharField(max_length=255)),
                        ("method", models.CharField(max_length=10)),
                        ("path", models.CharField(max_length=500)),
                        ("body_hash", models.CharField(help_text="SHA-256 of the request body.", max_length=64)),
                        ("response_status", models.PositiveSmallIntegerField(blank=True, null=True)),
                        ("response_body", models.JSONField(blank=True, null=True)),
                        ("response_headers", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField()),
                        (
                            "token",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="api.apitoken",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_idempotencykey",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.AddConstraint(
                    model_name="apitoken",
                    constraint=models.UniqueConstraint(fields=("owner", "name"), name="token_name_unique_per_owner"),
                ),
                migrations.AddIndex(
                    model_name="idempotencykey",
                    index=models.Index(fields=["created_at"], name="idempotency_key_created_idx"),
                ),
                migrations.AddConstraint(
                    model_name="idempotencykey",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("token__isnull", False)),
                        fields=("token", "key"),
                        name="idempotency_key_unique_per_token",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="idempotencykey",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("token__isnull", True)),
                        fields=("user", "key"),
                        name="idempotency_key_unique_per_session_user",
                    ),
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
