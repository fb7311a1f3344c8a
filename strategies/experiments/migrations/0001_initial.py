"""The experiment models, moved from the strategies app.

State only: the tables were created by the migrations of the app label they had before
(`strategies`); each model keeps its `db_table`. A database migrated before the move goes forward by
renaming the models' content types (so permissions and admin history follow them); a new database creates
its content types after migrating, as usual. See docs/architecture.md, "Moving a model".
"""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_LABEL = "strategies"
NEW_LABEL = "experiments"
MOVED = ["experiment", "experimenteventreceipt", "experimentexposure", "experimentmetricvalue", "experimentsnapshot"]


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
        ("flags", "0001_initial"),
        ("releases", "0015_models_moved_to_their_apps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Experiment",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "key",
                            models.CharField(
                                max_length=60,
                                validators=[
                                    django.core.validators.RegexValidator(
                                        "^[a-z0-9][a-z0-9-]{0,59}$",
                                        "Use lower-case letters, digits and hyphens, starting with a letter or digit.",
                                    )
                                ],
                            ),
                        ),
                        ("name", models.CharField(max_length=200)),
                        ("hypothesis", models.TextField(blank=True)),
                        (
                            "allocation",
                            models.JSONField(
                                default=list, help_text="[[variant, percent], ...], control first; sums to 100."
                            ),
                        ),
                        ("primary_metric", models.JSONField(default=dict, help_text="{name, kind, direction}")),
                        (
                            "guardrails",
                            models.JSONField(default=list, help_text="[{name, kind, direction, tolerance}]"),
                        ),
                        ("mde", models.FloatField(help_text="Minimum detectable effect.")),
                        ("mde_relative", models.BooleanField(default=True)),
                        ("alpha", models.FloatField(default=0.05)),
                        ("power", models.FloatField(default=0.8)),
                        ("baseline_rate", models.FloatField(blank=True, null=True)),
                        ("baseline_mean", models.FloatField(blank=True, null=True)),
                        ("baseline_sd", models.FloatField(blank=True, null=True)),
                        (
                            "planned_users",
                            models.PositiveIntegerField(default=0, help_text="Planned users per variant."),
                        ),
                        (
                            "tau2",
                            models.FloatField(
                                blank=True, help_text="mSPRT mixing variance; empty: the default.", null=True
                            ),
                        ),
                        ("cuped", models.BooleanField(default=False)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("draft", "Draft"),
                                    ("starting", "Pending approval to start"),
                                    ("running", "Running"),
                                    ("stopped", "Stopped"),
                                    ("shipping", "Pending approval to ship"),
                                    ("decided", "Decided"),
                                ],
                                default="draft",
                                max_length=10,
                            ),
                        ),
                        (
                            "decision",
                            models.JSONField(blank=True, help_text="{action, variant, analysis, ...}", null=True),
                        ),
                        ("created_at", models.DateTimeField()),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("stopped_at", models.DateTimeField(blank=True, null=True)),
                        ("decided_at", models.DateTimeField(blank=True, null=True)),
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
                        (
                            "decided_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="experiments",
                                to="releases.environment",
                            ),
                        ),
                        (
                            "flag",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="experiments", to="flags.flag"
                            ),
                        ),
                        (
                            "pending_change",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="flags.flagchangerequest",
                            ),
                        ),
                        (
                            "segment",
                            models.ForeignKey(
                                blank=True,
                                help_text="Only this segment takes part; empty: everyone.",
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="experiments",
                                to="flags.segment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_experiment",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="ExperimentEventReceipt",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("environment_id", models.BigIntegerField()),
                        ("event_id", models.CharField(max_length=200)),
                        ("received_at", models.DateTimeField()),
                    ],
                    options={
                        "db_table": "strategies_experimenteventreceipt",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("environment_id", "event_id"), name="experiment_event_id_unique"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ExperimentExposure",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("user_key", models.CharField(max_length=200)),
                        ("variant", models.CharField(max_length=100)),
                        ("first_at", models.DateTimeField()),
                        ("covariate", models.FloatField(blank=True, null=True)),
                        ("conflicted", models.BooleanField(default=False)),
                        (
                            "experiment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="exposures",
                                to="experiments.experiment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_experimentexposure",
                    },
                ),
                migrations.CreateModel(
                    name="ExperimentMetricValue",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("user_key", models.CharField(max_length=200)),
                        ("metric", models.CharField(max_length=100)),
                        ("count", models.PositiveIntegerField(default=0)),
                        ("total", models.FloatField(default=0.0)),
                        (
                            "experiment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="metric_values",
                                to="experiments.experiment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_experimentmetricvalue",
                    },
                ),
                migrations.CreateModel(
                    name="ExperimentSnapshot",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("taken_at", models.DateTimeField()),
                        ("results", models.JSONField(default=dict)),
                        (
                            "experiment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="snapshots",
                                to="experiments.experiment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_experimentsnapshot",
                        "ordering": ["experiment", "taken_at", "id"],
                    },
                ),
                migrations.AddConstraint(
                    model_name="experiment",
                    constraint=models.UniqueConstraint(
                        fields=("environment", "key"), name="experiment_key_unique_per_environment"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="experiment",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("status__in", ("starting", "running", "shipping"))),
                        fields=("flag",),
                        name="one_running_experiment_per_flag",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="experiment",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("status__in", ["draft", "starting", "running", "stopped", "shipping", "decided"])
                        ),
                        name="experiment_status_valid",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="experimentexposure",
                    constraint=models.UniqueConstraint(fields=("experiment", "user_key"), name="one_exposure_per_user"),
                ),
                migrations.AddConstraint(
                    model_name="experimentmetricvalue",
                    constraint=models.UniqueConstraint(
                        fields=("experiment", "user_key", "metric"), name="one_metric_value_per_user"
                    ),
                ),
                migrations.AddIndex(
                    model_name="experimentsnapshot",
                    index=models.Index(fields=["experiment", "taken_at"], name="experiment_snapshot_time"),
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
