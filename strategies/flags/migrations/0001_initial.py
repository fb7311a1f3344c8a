"""The flag models, moved from the strategies app.

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
NEW_LABEL = "flags"
MOVED = [
    "darklaunch",
    "flag",
    "flagapikey",
    "flagapprovalsetting",
    "flagchangerequest",
    "flageventbucket",
    "flagschedule",
    "flagset",
    "releaseflag",
    "segment",
]


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
                    name="Flag",
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
                                max_length=100,
                                validators=[
                                    django.core.validators.RegexValidator(
                                        "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                                        "Use letters, digits, dots, hyphens and underscores, starting with a letter or digit.",
                                    )
                                ],
                            ),
                        ),
                        ("description", models.TextField(blank=True)),
                        (
                            "flag_type",
                            models.CharField(
                                choices=[
                                    ("boolean", "Boolean (on / off)"),
                                    ("string", "String"),
                                    ("number", "Number"),
                                    ("object", "Object (JSON)"),
                                ],
                                default="boolean",
                                max_length=10,
                            ),
                        ),
                        ("variants", models.JSONField(default=dict)),
                        ("default_variant", models.CharField(max_length=100)),
                        (
                            "enabled",
                            models.BooleanField(
                                default=True, help_text="Off is the kill switch: everyone gets the default."
                            ),
                        ),
                        (
                            "rules",
                            models.JSONField(
                                blank=True, default=dict, help_text="Structured targeting, see definitions.py."
                            ),
                        ),
                        (
                            "targeting_override",
                            models.JSONField(
                                blank=True,
                                help_text="Targeting written by hand in JSONLogic; replaces the rules when set.",
                                null=True,
                            ),
                        ),
                        (
                            "lifecycle",
                            models.CharField(
                                choices=[
                                    ("new", "New"),
                                    ("active", "Active"),
                                    ("permanent", "Permanent"),
                                    ("stale", "Stale"),
                                    ("archived", "Archived"),
                                ],
                                default="new",
                                max_length=10,
                            ),
                        ),
                        ("planned_removal", models.DateField(blank=True, null=True)),
                        (
                            "definition",
                            models.JSONField(default=dict, help_text="The flagd definition served, as last compiled."),
                        ),
                        ("created_at", models.DateTimeField()),
                        ("updated_at", models.DateTimeField()),
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
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="flags",
                                to="releases.environment",
                            ),
                        ),
                        (
                            "owner",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="owned_flags",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_flag",
                        "ordering": ["environment", "key"],
                    },
                ),
                migrations.CreateModel(
                    name="DarkLaunch",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("variant", models.CharField(max_length=100)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("active", "Active"),
                                    ("rolled_out", "Rolled out to everyone"),
                                    ("killed", "Killed"),
                                ],
                                default="active",
                                max_length=12,
                            ),
                        ),
                        (
                            "cohort",
                            models.JSONField(
                                default=dict, help_text="{segments, users, percent}: who the launch reaches."
                            ),
                        ),
                        (
                            "rollout_percent",
                            models.PositiveSmallIntegerField(
                                default=0,
                                help_text="Share of everyone else that gets the variant.",
                                validators=[django.core.validators.MaxValueValidator(100)],
                            ),
                        ),
                        ("started_at", models.DateTimeField()),
                        ("ended_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "started_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "flag",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="launches", to="flags.flag"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_darklaunch",
                        "ordering": ["-started_at"],
                    },
                ),
                migrations.CreateModel(
                    name="FlagApiKey",
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
                            models.CharField(help_text="Public start of the key, shown in lists.", max_length=24),
                        ),
                        ("key_hash", models.CharField(max_length=64, unique=True)),
                        (
                            "can_evaluate",
                            models.BooleanField(default=True, help_text="OFREP evaluation and reporting events."),
                        ),
                        (
                            "can_sync",
                            models.BooleanField(
                                default=False, help_text="Reading the raw flag definitions (flagd sync)."
                            ),
                        ),
                        ("created_at", models.DateTimeField()),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
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
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="flag_api_keys",
                                to="releases.environment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_flagapikey",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="FlagApprovalSetting",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("changes_need_approval", models.BooleanField(default=False)),
                        ("updated_at", models.DateTimeField()),
                        (
                            "environment",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="flag_approval_setting",
                                to="releases.environment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_flagapprovalsetting",
                    },
                ),
                migrations.CreateModel(
                    name="FlagChangeRequest",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("summary", models.CharField(max_length=300)),
                        (
                            "action",
                            models.CharField(
                                choices=[
                                    ("edit", "Edit the flag"),
                                    ("launch_start", "Start a dark launch"),
                                    ("launch_widen", "Widen a dark launch"),
                                    ("launch_rollout", "Roll a dark launch out"),
                                    ("schedule", "Schedule a change"),
                                ],
                                default="edit",
                                max_length=20,
                            ),
                        ),
                        (
                            "changes",
                            models.JSONField(
                                default=dict, help_text="For an edit: the flag fields and their proposed values."
                            ),
                        ),
                        (
                            "arguments",
                            models.JSONField(
                                blank=True,
                                default=dict,
                                help_text="For the other actions: the arguments of the service call approved.",
                            ),
                        ),
                        ("before", models.JSONField(default=dict)),
                        ("after", models.JSONField(default=dict)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("applied", "Approved and applied"),
                                    ("rejected", "Rejected"),
                                    ("failed", "Approved, but could not be applied"),
                                ],
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        ("proposed_at", models.DateTimeField()),
                        ("approvals", models.JSONField(default=list)),
                        ("decided_at", models.DateTimeField(blank=True, null=True)),
                        ("comment", models.TextField(blank=True)),
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
                            "flag",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="change_requests",
                                to="flags.flag",
                            ),
                        ),
                        (
                            "proposed_by",
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
                        "db_table": "strategies_flagchangerequest",
                        "ordering": ["-proposed_at"],
                    },
                ),
                migrations.CreateModel(
                    name="FlagEventBucket",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("flag_key", models.CharField(max_length=100)),
                        ("variant", models.CharField(max_length=100)),
                        ("minute", models.DateTimeField()),
                        ("count", models.PositiveIntegerField(default=0)),
                        ("errors", models.PositiveIntegerField(default=0)),
                        ("latency_count", models.PositiveIntegerField(default=0)),
                        ("latency_sum", models.FloatField(default=0.0)),
                        ("latency_sumsq", models.FloatField(default=0.0)),
                        (
                            "latency_samples",
                            models.JSONField(default=list, help_text="At most a few latencies (ms) of the minute."),
                        ),
                        (
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="flag_event_buckets",
                                to="releases.environment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_flageventbucket",
                        "ordering": ["environment", "flag_key", "minute"],
                    },
                ),
                migrations.CreateModel(
                    name="FlagSchedule",
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
                                choices=[
                                    ("enable_at", "Turn on at"),
                                    ("ramp", "Ramp up a variant"),
                                    ("disable_at", "Turn off at"),
                                ],
                                max_length=12,
                            ),
                        ),
                        (
                            "variant",
                            models.CharField(blank=True, help_text="The variant a ramp rolls out.", max_length=100),
                        ),
                        ("steps", models.JSONField(default=list)),
                        ("next_at", models.DateTimeField(blank=True, db_index=True, null=True)),
                        (
                            "status",
                            models.CharField(
                                choices=[("pending", "Pending"), ("done", "Done"), ("cancelled", "Cancelled")],
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        ("created_at", models.DateTimeField()),
                        ("ended_at", models.DateTimeField(blank=True, null=True)),
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
                            "flag",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="schedules", to="flags.flag"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_flagschedule",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="FlagSet",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("revision", models.PositiveBigIntegerField(default=0)),
                        (
                            "document",
                            models.JSONField(
                                default=dict, help_text="flagd flag definitions, valid against flags.json."
                            ),
                        ),
                        (
                            "hints",
                            models.JSONField(
                                default=dict, help_text="Per flag: how to evaluate it over OFREP (evaluation.py)."
                            ),
                        ),
                        ("updated_at", models.DateTimeField()),
                        (
                            "environment",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="flag_set",
                                to="releases.environment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_flagset",
                    },
                ),
                migrations.CreateModel(
                    name="ReleaseFlag",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "flag_key",
                            models.CharField(
                                max_length=100,
                                validators=[
                                    django.core.validators.RegexValidator(
                                        "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                                        "Use letters, digits, dots, hyphens and underscores, starting with a letter or digit.",
                                    )
                                ],
                            ),
                        ),
                        ("note", models.CharField(blank=True, max_length=300)),
                        ("created_at", models.DateTimeField()),
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
                            "release",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="declared_flags",
                                to="releases.release",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_releaseflag",
                        "ordering": ["release", "flag_key"],
                    },
                ),
                migrations.CreateModel(
                    name="Segment",
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
                        ("name", models.CharField(max_length=100)),
                        ("description", models.TextField(blank=True)),
                        (
                            "match",
                            models.CharField(
                                choices=[("any", "any condition (or)"), ("all", "all conditions (and)")],
                                default="any",
                                max_length=3,
                            ),
                        ),
                        (
                            "conditions",
                            models.JSONField(
                                blank=True, default=list, help_text="[{attribute, op, value}], see definitions.py"
                            ),
                        ),
                        (
                            "users",
                            models.JSONField(
                                blank=True, default=list, help_text="Targeting keys that are always in the segment."
                            ),
                        ),
                        ("created_at", models.DateTimeField()),
                        ("updated_at", models.DateTimeField()),
                        (
                            "application",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="flag_segments",
                                to="releases.application",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "strategies_segment",
                        "ordering": ["application", "key"],
                    },
                ),
                migrations.AddConstraint(
                    model_name="flag",
                    constraint=models.UniqueConstraint(
                        fields=("environment", "key"), name="flag_key_unique_per_environment"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flag",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("lifecycle__in", ["new", "active", "permanent", "stale", "archived"])),
                        name="flag_lifecycle_valid",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flag",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("flag_type__in", ["boolean", "string", "number", "object"])),
                        name="flag_type_valid",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="darklaunch",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("status", "active")), fields=("flag",), name="one_active_launch_per_flag"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="darklaunch",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("rollout_percent__lte", 100)), name="launch_rollout_percent_range"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="darklaunch",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("ended_at__isnull", True), ("status", "active")),
                            models.Q(models.Q(("status", "active"), _negated=True), ("ended_at__isnull", False)),
                            _connector="OR",
                        ),
                        name="launch_ended_iff_finished",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flagapikey",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("can_evaluate", True), ("can_sync", True), _connector="OR"),
                        name="flag_api_key_does_something",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flagchangerequest",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("decided_at__isnull", True), ("status", "pending")),
                            models.Q(models.Q(("status", "pending"), _negated=True), ("decided_at__isnull", False)),
                            _connector="OR",
                        ),
                        name="flag_change_decided_iff_not_pending",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flagchangerequest",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("action__in", ["edit", "launch_start", "launch_widen", "launch_rollout", "schedule"])
                        ),
                        name="flag_change_action_valid",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flageventbucket",
                    constraint=models.UniqueConstraint(
                        fields=("environment", "flag_key", "variant", "minute"),
                        name="one_event_bucket_per_variant_minute",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flageventbucket",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("errors__lte", models.F("count"))), name="event_bucket_errors_le_count"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flagschedule",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("next_at__isnull", False), ("status", "pending")),
                            models.Q(models.Q(("status", "pending"), _negated=True), ("next_at__isnull", True)),
                            _connector="OR",
                        ),
                        name="flag_schedule_pending_iff_next",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="flagschedule",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("kind__in", ["enable_at", "ramp", "disable_at"])),
                        name="flag_schedule_kind_valid",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="releaseflag",
                    constraint=models.UniqueConstraint(fields=("release", "flag_key"), name="release_flag_unique"),
                ),
                migrations.AddConstraint(
                    model_name="segment",
                    constraint=models.UniqueConstraint(
                        fields=("application", "key"), name="segment_key_unique_per_application"
                    ),
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
