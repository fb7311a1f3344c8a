"""The approval models, moved from the releases app.

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
NEW_LABEL = "approvals"
MOVED = [
    "approvaldecision",
    "approvalpolicy",
    "approvalrequest",
    "freezeoverride",
    "freezewindow",
    "gateresult",
    "notificationdelivery",
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
        ("auth", "0012_alter_user_first_name_max_length"),
        ("releases", "0015_models_moved_to_their_apps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApprovalPolicy",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "approvals_required",
                            models.PositiveSmallIntegerField(default=1, help_text="0 means no approval is needed."),
                        ),
                        (
                            "forbid_self_approval",
                            models.BooleanField(
                                default=True, help_text="Whoever created or registered a release may not approve it."
                            ),
                        ),
                        (
                            "expiry_hours",
                            models.PositiveIntegerField(
                                default=72, help_text="A pending request lapses after this long."
                            ),
                        ),
                        (
                            "auto_promote",
                            models.BooleanField(
                                default=False,
                                help_text="Promote automatically once approved, in the next moment outside a freeze window.",
                            ),
                        ),
                        (
                            "require_healthy_slot",
                            models.BooleanField(
                                default=True,
                                help_text="Gate: the slot the release runs in before this environment passes its health check.",
                            ),
                        ),
                        (
                            "reminder_hours",
                            models.PositiveIntegerField(
                                default=12,
                                help_text="Remind approvers this many hours before a request lapses (0: no reminder).",
                            ),
                        ),
                        (
                            "teams_webhook_url",
                            models.URLField(blank=True, help_text="Microsoft Teams incoming webhook.", max_length=1000),
                        ),
                        (
                            "slack_webhook_url",
                            models.URLField(blank=True, help_text="Slack incoming webhook.", max_length=1000),
                        ),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "approver_groups",
                            models.ManyToManyField(
                                blank=True,
                                db_table="releases_approvalpolicy_approver_groups",
                                related_name="+",
                                to="auth.group",
                            ),
                        ),
                        (
                            "approver_users",
                            models.ManyToManyField(
                                blank=True,
                                db_table="releases_approvalpolicy_approver_users",
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "environment",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="approval_policy",
                                to="releases.environment",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "approval policies",
                        "db_table": "releases_approvalpolicy",
                    },
                ),
                migrations.CreateModel(
                    name="ApprovalRequest",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("approved", "Approved"),
                                    ("rejected", "Rejected"),
                                    ("expired", "Expired"),
                                    ("superseded", "Superseded"),
                                ],
                                default="pending",
                                max_length=20,
                            ),
                        ),
                        (
                            "approvals_required",
                            models.PositiveSmallIntegerField(help_text="Copied from the policy when requested."),
                        ),
                        ("created_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField()),
                        ("settled_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "waited",
                            models.DurationField(
                                blank=True,
                                help_text="From the request to its settlement: the approval lead time.",
                                null=True,
                            ),
                        ),
                        (
                            "reminded_at",
                            models.DateTimeField(
                                blank=True, help_text="When approvers were reminded of it.", null=True
                            ),
                        ),
                        (
                            "auto_promote_after",
                            models.DateTimeField(
                                blank=True,
                                help_text="Approved under an auto-promote policy: the first moment outside a freeze window to promote.",
                                null=True,
                            ),
                        ),
                        (
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="approval_requests",
                                to="releases.environment",
                            ),
                        ),
                        (
                            "release",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="approval_requests",
                                to="releases.release",
                            ),
                        ),
                        (
                            "requested_by",
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
                        "db_table": "releases_approvalrequest",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.CreateModel(
                    name="ApprovalDecision",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "verdict",
                            models.CharField(choices=[("approve", "Approved"), ("reject", "Rejected")], max_length=10),
                        ),
                        ("comment", models.TextField(blank=True)),
                        ("decided_at", models.DateTimeField()),
                        (
                            "approver",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="approval_decisions",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "request",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="decisions",
                                to="approvals.approvalrequest",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_approvaldecision",
                        "ordering": ["decided_at"],
                    },
                ),
                migrations.CreateModel(
                    name="FreezeOverride",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("reason", models.TextField()),
                        ("created_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField(help_text="The end of the freeze it overrides.")),
                        (
                            "created_by",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="freeze_overrides",
                                to="releases.environment",
                            ),
                        ),
                        (
                            "release",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="freeze_overrides",
                                to="releases.release",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_freezeoverride",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.CreateModel(
                    name="FreezeWindow",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        (
                            "kind",
                            models.CharField(choices=[("weekly", "Every week"), ("dated", "Dated")], max_length=10),
                        ),
                        ("timezone", models.CharField(default="UTC", max_length=64)),
                        (
                            "start_weekday",
                            models.PositiveSmallIntegerField(
                                blank=True, null=True, validators=[django.core.validators.MaxValueValidator(6)]
                            ),
                        ),
                        ("start_time", models.TimeField(blank=True, null=True)),
                        (
                            "end_weekday",
                            models.PositiveSmallIntegerField(
                                blank=True, null=True, validators=[django.core.validators.MaxValueValidator(6)]
                            ),
                        ),
                        ("end_time", models.TimeField(blank=True, null=True)),
                        ("starts_at", models.DateTimeField(blank=True, null=True)),
                        ("ends_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "policy",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="freeze_windows",
                                to="approvals.approvalpolicy",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_freezewindow",
                    },
                ),
                migrations.CreateModel(
                    name="GateResult",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "gate",
                            models.CharField(
                                choices=[
                                    ("slot_health", "Pre-production slot is healthy"),
                                    ("no_freeze", "No freeze window is active"),
                                    ("no_operation", "No other operation runs on the application"),
                                ],
                                max_length=20,
                            ),
                        ),
                        ("passed", models.BooleanField()),
                        ("detail", models.CharField(blank=True, max_length=500)),
                        ("evaluated_at", models.DateTimeField()),
                        (
                            "environment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="gate_results",
                                to="releases.environment",
                            ),
                        ),
                        (
                            "evaluated_by",
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
                                related_name="gate_results",
                                to="releases.release",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_gateresult",
                        "ordering": ["-evaluated_at", "gate"],
                    },
                ),
                migrations.CreateModel(
                    name="NotificationDelivery",
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
                                    ("opened", "Request opened"),
                                    ("reminder", "Reminder before expiry"),
                                    ("settled", "Request settled"),
                                ],
                                max_length=10,
                            ),
                        ),
                        (
                            "channel",
                            models.CharField(
                                choices=[("email", "Email"), ("teams", "Microsoft Teams"), ("slack", "Slack")],
                                max_length=10,
                            ),
                        ),
                        (
                            "recipient",
                            models.CharField(
                                help_text="An email address, or the channel's name for a webhook (never its URL).",
                                max_length=254,
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed")],
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        ("attempts", models.PositiveSmallIntegerField(default=0)),
                        ("last_error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField()),
                        ("sent_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "request",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="deliveries",
                                to="approvals.approvalrequest",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "releases_notificationdelivery",
                        "ordering": ["created_at", "id"],
                    },
                ),
                migrations.AddConstraint(
                    model_name="approvalpolicy",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("expiry_hours__gte", 1)), name="policy_expiry_positive"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="approvalpolicy",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("approvals_required__lte", 10)), name="policy_approvals_at_most_10"
                    ),
                ),
                migrations.AddIndex(
                    model_name="approvalrequest",
                    index=models.Index(fields=["status", "expires_at"], name="request_status_expiry_idx"),
                ),
                migrations.AddConstraint(
                    model_name="approvalrequest",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("status", "pending")),
                        fields=("release", "environment"),
                        name="one_pending_request_per_release_environment",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="approvalrequest",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("settled_at__isnull", True), ("waited__isnull", True)),
                            models.Q(("settled_at__isnull", False), ("waited__isnull", False)),
                            _connector="OR",
                        ),
                        name="request_waited_iff_settled",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="approvalrequest",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("expires_at__gt", models.F("created_at"))),
                        name="request_expires_after_creation",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="approvalrequest",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("settled_at__isnull", True), ("status", "pending")),
                            models.Q(models.Q(("status", "pending"), _negated=True), ("settled_at__isnull", False)),
                            _connector="OR",
                        ),
                        name="request_settled_iff_not_pending",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="approvaldecision",
                    constraint=models.UniqueConstraint(
                        fields=("request", "approver"), name="one_decision_per_approver_per_request"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="approvaldecision",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("verdict", "approve"), models.Q(("comment", ""), _negated=True), _connector="OR"
                        ),
                        name="rejection_needs_comment",
                        violation_error_message="A rejection needs a comment.",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="freezeoverride",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("reason", ""), _negated=True), name="freeze_override_needs_reason"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="freezeoverride",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("expires_at__gt", models.F("created_at"))),
                        name="freeze_override_expires_after_creation",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="freezewindow",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("end_time__isnull", False),
                                ("end_weekday__isnull", False),
                                ("ends_at__isnull", True),
                                ("kind", "weekly"),
                                ("start_time__isnull", False),
                                ("start_weekday__isnull", False),
                                ("starts_at__isnull", True),
                            ),
                            models.Q(
                                ("end_weekday__isnull", True),
                                ("ends_at__isnull", False),
                                ("kind", "dated"),
                                ("start_weekday__isnull", True),
                                ("starts_at__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="freeze_window_fields_match_kind",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="freezewindow",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("kind", "weekly"), ("ends_at__gt", models.F("starts_at")), _connector="OR"),
                        name="freeze_window_dated_ends_after_start",
                    ),
                ),
                migrations.AddIndex(
                    model_name="gateresult",
                    index=models.Index(
                        fields=["release", "environment", "-evaluated_at"], name="gate_result_latest_idx"
                    ),
                ),
                migrations.AddConstraint(
                    model_name="notificationdelivery",
                    constraint=models.UniqueConstraint(
                        fields=("request", "kind", "channel", "recipient"),
                        name="one_delivery_per_message_and_recipient",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="notificationdelivery",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("sent_at__isnull", False), ("status", "sent")),
                            models.Q(models.Q(("status", "sent"), _negated=True), ("sent_at__isnull", True)),
                            _connector="OR",
                        ),
                        name="delivery_sent_at_iff_sent",
                    ),
                ),
            ],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
