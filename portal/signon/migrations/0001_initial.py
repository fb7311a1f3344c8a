"""Sign-on identities, moved from the releases app.

State only: the tables were created by the migrations of the app label they had before
(`releases`); each model keeps its `db_table`. A database migrated before the move goes forward by
renaming the models' content types (so permissions and admin history follow them); a new database creates
its content types after migrating, as usual. See docs/architecture.md, "Moving a model".
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_LABEL = "releases"
NEW_LABEL = "signon"
MOVED = ["ssoidentity"]


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
                    name="SsoIdentity",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("issuer", models.CharField(max_length=300)),
                        ("subject", models.CharField(max_length=255)),
                        ("created_at", models.DateTimeField()),
                        ("last_sign_in_at", models.DateTimeField()),
                        (
                            "user",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="sso_identity",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_ssoidentity",
                        "constraints": [
                            models.UniqueConstraint(fields=("issuer", "subject"), name="sso_subject_unique_per_issuer")
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
