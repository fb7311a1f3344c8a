"""Operations, steps and rings, moved from the releases app.

State only: the tables were created by the migrations of the app label they had before
(`releases`); each model keeps its `db_table`. A database migrated before the move goes forward by
renaming the models' content types (so permissions and admin history follow them); a new database creates
its content types after migrating, as usual. See docs/architecture.md, "Moving a model".
"""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_LABEL = "releases"
NEW_LABEL = "operations"
MOVED = ["operation", "operationstep", "ring"]


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
                    name="Operation",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[("promote", "Promotion"), ("rollback", "Rollback")], max_length=20
                            ),
                        ),
                        (
                            "strategy",
                            models.CharField(
                                blank=True,
                                choices=[
                                    ("blue_green", "Blue-green slot swap"),
                                    ("canary", "Canary"),
                                    ("rings", "Progressive exposure (rings)"),
                                ],
                                max_length=20,
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("running", "Running"),
                                    ("paused", "Paused"),
                                    ("rolling_back", "Rolling back"),
                                    ("succeeded", "Succeeded"),
                                    ("failed", "Failed"),
                                    ("rolled_back", "Rolled back"),
                                    ("cancelled", "Cancelled"),
                                ],
                                default="pending",
                                max_length=20,
                            ),
                        ),
                        (
                            "parameters",
                            models.JSONField(
                                blank=True, default=dict, help_text="Strategy options chosen for this run."
                            ),
                        ),
                        (
                            "reason",
                            models.TextField(blank=True, help_text="Why it was started (required for rollbacks)."),
                        ),
                        (
                            "error",
                            models.TextField(blank=True, help_text="Why it failed, in words a person can act on."),
                        ),
                        ("created_at", models.DateTimeField()),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "heartbeat_at",
                            models.DateTimeField(blank=True, help_text="Last sign of life from a worker.", null=True),
                        ),
                        (
                            "runner",
                            models.CharField(
                                blank=True, help_text="RQ job id that has claimed the operation.", max_length=64
                            ),
                        ),
                        (
                            "job_id",
                            models.CharField(
                                blank=True, help_text="The RQ job last queued for the operation.", max_length=64
                            ),
                        ),
                        (
                            "wake_at",
                            models.DateTimeField(
                                blank=True, help_text="A waiting operation runs again at this time.", null=True
                            ),
                        ),
                        (
                            "waiting_for",
                            models.CharField(
                                blank=True, help_text="Why it waits or is paused, in words.", max_length=500
                            ),
                        ),
                        (
                            "application",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="operations",
                                to="releases.application",
                            ),
                        ),
                        (
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="operations",
                                to="releases.environment",
                            ),
                        ),
                        (
                            "release",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="operations",
                                to="releases.release",
                            ),
                        ),
                        (
                            "started_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_operation",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.CreateModel(
                    name="OperationStep",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("position", models.PositiveSmallIntegerField()),
                        (
                            "kind",
                            models.CharField(
                                help_text="Step type understood by the engine, e.g. swap, set_traffic.", max_length=40
                            ),
                        ),
                        ("title", models.CharField(max_length=200)),
                        ("parameters", models.JSONField(blank=True, default=dict)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("running", "Running"),
                                    ("waiting", "Waiting"),
                                    ("succeeded", "Succeeded"),
                                    ("failed", "Failed"),
                                    ("skipped", "Skipped"),
                                ],
                                default="pending",
                                max_length=20,
                            ),
                        ),
                        ("attempts", models.PositiveSmallIntegerField(default=0)),
                        (
                            "progress",
                            models.PositiveSmallIntegerField(
                                default=0,
                                validators=[
                                    django.core.validators.MinValueValidator(0),
                                    django.core.validators.MaxValueValidator(100),
                                ],
                            ),
                        ),
                        (
                            "detail",
                            models.JSONField(
                                blank=True, default=dict, help_text="Outcome data (metrics, verdicts, provider ids)."
                            ),
                        ),
                        ("log", models.TextField(blank=True)),
                        (
                            "resume_token",
                            models.TextField(
                                blank=True, help_text="Provider continuation token for a long-running call."
                            ),
                        ),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("deadline_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "operation",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="steps",
                                to="operations.operation",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_operationstep",
                        "ordering": ["operation", "position"],
                    },
                ),
                migrations.CreateModel(
                    name="Ring",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("position", models.PositiveSmallIntegerField(help_text="Order of exposure, lowest first.")),
                        (
                            "name",
                            models.CharField(
                                help_text="For example “Internal users” or “Early adopters (EU)”.", max_length=100
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("traffic", "A share of production traffic"),
                                    ("targets", "Other applications' production"),
                                ],
                                default="traffic",
                                max_length=10,
                            ),
                        ),
                        (
                            "traffic_percent",
                            models.PositiveSmallIntegerField(
                                blank=True,
                                help_text="Share of production traffic routed to the new build (traffic rings).",
                                null=True,
                                validators=[
                                    django.core.validators.MinValueValidator(1),
                                    django.core.validators.MaxValueValidator(99),
                                ],
                            ),
                        ),
                        (
                            "bake_seconds",
                            models.FloatField(
                                default=600.0,
                                help_text="How long the ring runs before it is analysed.",
                                validators=[django.core.validators.MinValueValidator(0.0)],
                            ),
                        ),
                        (
                            "analyse",
                            models.BooleanField(
                                default=True,
                                help_text="Compare the ring's error rate and latency with production's before going on.",
                            ),
                        ),
                        (
                            "requires_approval",
                            models.BooleanField(
                                default=False,
                                help_text="An approver of production must approve the ring before it starts.",
                            ),
                        ),
                        (
                            "application",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="rings",
                                to="releases.application",
                            ),
                        ),
                        (
                            "targets",
                            models.ManyToManyField(
                                blank=True,
                                db_table="releases_ring_targets",
                                help_text="Applications whose production takes the build (target rings); each must have it in a staging slot.",
                                related_name="ring_memberships",
                                to="releases.application",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_ring",
                        "ordering": ["application", "position"],
                    },
                ),
                migrations.AddIndex(
                    model_name="operation",
                    index=models.Index(
                        condition=models.Q(("kind", "promote")),
                        fields=["finished_at"],
                        name="operation_promote_finished_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="operation",
                    index=models.Index(
                        condition=models.Q(
                            models.Q(("kind", "promote"), ("status__in", ["failed", "rolled_back"])),
                            ("kind", "rollback"),
                            _connector="OR",
                        ),
                        fields=["created_at"],
                        name="operation_incident_created_idx",
                    ),
                ),
                migrations.AddIndex(
                    model_name="operation",
                    index=models.Index(
                        condition=models.Q(("status", "succeeded")),
                        fields=["application", "finished_at"],
                        name="operation_app_succeeded_idx",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="operation",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("status__in", ["paused", "pending", "rolling_back", "running"])),
                        fields=("application",),
                        name="one_active_operation_per_application",
                        violation_error_message="Another operation is already running on this application.",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="operation",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("finished_at__isnull", True),
                                ("status__in", ["paused", "pending", "rolling_back", "running"]),
                            ),
                            models.Q(
                                models.Q(
                                    ("status__in", ["paused", "pending", "rolling_back", "running"]), _negated=True
                                ),
                                ("finished_at__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="operation_finished_iff_terminal",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="operation",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("kind", "rollback"), _negated=True),
                            models.Q(("reason", ""), _negated=True),
                            _connector="OR",
                        ),
                        name="rollback_needs_reason",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="operationstep",
                    constraint=models.UniqueConstraint(
                        fields=("operation", "position"), name="step_position_unique_per_operation"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="operationstep",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("progress__lte", 100)), name="step_progress_range"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="ring",
                    constraint=models.UniqueConstraint(fields=("application", "position"), name="ring_position_unique"),
                ),
                migrations.AddConstraint(
                    model_name="ring",
                    constraint=models.UniqueConstraint(fields=("application", "name"), name="ring_name_unique"),
                ),
                migrations.AddConstraint(
                    model_name="ring",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("kind", "traffic"), ("traffic_percent__gte", 1), ("traffic_percent__lte", 99)),
                            models.Q(models.Q(("kind", "traffic"), _negated=True), ("traffic_percent__isnull", True)),
                            _connector="OR",
                        ),
                        name="ring_traffic_share_iff_traffic_kind",
                        violation_error_message="A traffic ring routes 1 to 99 % of traffic; a target ring routes none.",
                    ),
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
