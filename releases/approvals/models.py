"""Approvals: per-environment policies and freeze windows, requests and decisions, gate results, freeze
overrides and the notifications sent about requests."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from releases.catalog.models import Environment, Release


class ApprovalPolicy(models.Model):
    """The rules an environment applies before a release may be promoted into it."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="approval_policy")
    approvals_required = models.PositiveSmallIntegerField(default=1, help_text="0 means no approval is needed.")
    approver_groups = models.ManyToManyField(
        Group, blank=True, related_name="+", db_table="releases_approvalpolicy_approver_groups"
    )
    approver_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", db_table="releases_approvalpolicy_approver_users"
    )
    forbid_self_approval = models.BooleanField(
        default=True, help_text="Whoever created or registered a release may not approve it."
    )
    expiry_hours = models.PositiveIntegerField(default=72, help_text="A pending request lapses after this long.")
    auto_promote = models.BooleanField(
        default=False, help_text="Promote automatically once approved, in the next moment outside a freeze window."
    )
    require_healthy_slot = models.BooleanField(
        default=True, help_text="Gate: the slot the release runs in before this environment passes its health check."
    )
    reminder_hours = models.PositiveIntegerField(
        default=12, help_text="Remind approvers this many hours before a request lapses (0: no reminder)."
    )
    # Incoming-webhook URLs carry their own credential: never shown back, logged or written to the audit trail.
    teams_webhook_url = models.URLField(max_length=1000, blank=True, help_text="Microsoft Teams incoming webhook.")
    slack_webhook_url = models.URLField(max_length=1000, blank=True, help_text="Slack incoming webhook.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "releases_approvalpolicy"  # kept from before the move (docs/architecture.md, "Moving a model")
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(name="policy_expiry_positive", condition=Q(expiry_hours__gte=1)),
            models.CheckConstraint(name="policy_approvals_at_most_10", condition=Q(approvals_required__lte=10)),
        ]

    def __str__(self) -> str:
        return f"Policy for {self.environment}"


class FreezeWindow(models.Model):
    """A period during which promotion into the policy's environment is refused.

    Weekly windows recur (for example Friday 16:00 to Monday 08:00 in the policy's time zone);
    dated windows cover a fixed span (a holiday freeze).
    """

    class Kind(models.TextChoices):
        WEEKLY = "weekly", "Every week"
        DATED = "dated", "Dated"

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="freeze_windows")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    timezone = models.CharField(max_length=64, default="UTC")
    start_weekday = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(6)])
    start_time = models.TimeField(null=True, blank=True)
    end_weekday = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(6)])
    end_time = models.TimeField(null=True, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "releases_freezewindow"  # kept from before the move (docs/architecture.md, "Moving a model")
        constraints = [
            models.CheckConstraint(
                name="freeze_window_fields_match_kind",
                condition=(
                    Q(
                        kind="weekly",
                        start_weekday__isnull=False,
                        start_time__isnull=False,
                        end_weekday__isnull=False,
                        end_time__isnull=False,
                        starts_at__isnull=True,
                        ends_at__isnull=True,
                    )
                    | Q(
                        kind="dated",
                        starts_at__isnull=False,
                        ends_at__isnull=False,
                        start_weekday__isnull=True,
                        end_weekday__isnull=True,
                    )
                ),
            ),
            models.CheckConstraint(
                name="freeze_window_dated_ends_after_start",
                condition=Q(kind="weekly") | Q(ends_at__gt=models.F("starts_at")),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ApprovalRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    SUPERSEDED = "superseded", "Superseded"


class ApprovalRequest(models.Model):
    """A request for approval of one release into one environment, settled by decisions."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="approval_requests")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="approval_requests")
    status = models.CharField(
        max_length=20, choices=ApprovalRequestStatus.choices, default=ApprovalRequestStatus.PENDING
    )
    approvals_required = models.PositiveSmallIntegerField(help_text="Copied from the policy when requested.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    waited = models.DurationField(
        null=True, blank=True, help_text="From the request to its settlement: the approval lead time."
    )
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="When approvers were reminded of it.")
    auto_promote_after = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Approved under an auto-promote policy: the first moment outside a freeze window to promote.",
    )

    class Meta:
        db_table = "releases_approvalrequest"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "expires_at"], name="request_status_expiry_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "environment"],
                condition=Q(status=ApprovalRequestStatus.PENDING),
                name="one_pending_request_per_release_environment",
            ),
            models.CheckConstraint(
                name="request_waited_iff_settled",
                condition=Q(settled_at__isnull=True, waited__isnull=True)
                | Q(settled_at__isnull=False, waited__isnull=False),
            ),
            models.CheckConstraint(
                name="request_expires_after_creation", condition=Q(expires_at__gt=models.F("created_at"))
            ),
            models.CheckConstraint(
                name="request_settled_iff_not_pending",
                condition=Q(status=ApprovalRequestStatus.PENDING, settled_at__isnull=True)
                | (~Q(status=ApprovalRequestStatus.PENDING) & Q(settled_at__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return f"Approval of {self.release} for {self.environment.name}"


class ApprovalDecision(models.Model):
    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_decisions")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    decided_at = models.DateTimeField()

    class Meta:
        db_table = "releases_approvaldecision"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["decided_at"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="one_decision_per_approver_per_request"),
            models.CheckConstraint(
                name="rejection_needs_comment",
                condition=Q(verdict="approve") | ~Q(comment=""),
                violation_error_message="A rejection needs a comment.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.get_verdict_display().lower()} {self.request.release}"


class GateResult(models.Model):
    """One evaluation of one automated gate for promoting a release into an environment.

    Gates are evaluated on demand (a button, or `approvals.promotion_blockers`); every evaluation is
    kept, and the page shows the latest one of each gate.
    """

    class Gate(models.TextChoices):
        SLOT_HEALTH = "slot_health", "Pre-production slot is healthy"
        NO_FREEZE = "no_freeze", "No freeze window is active"
        NO_OPERATION = "no_operation", "No other operation runs on the application"
        NO_DRIFT = "no_drift", "Production is where Slipway says it is (no drift)"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="gate_results")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="gate_results")
    gate = models.CharField(max_length=20, choices=Gate.choices)
    passed = models.BooleanField()
    detail = models.CharField(max_length=500, blank=True)
    evaluated_at = models.DateTimeField()
    evaluated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        db_table = "releases_gateresult"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-evaluated_at", "gate"]
        indexes = [
            models.Index(fields=["release", "environment", "-evaluated_at"], name="gate_result_latest_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_gate_display()}: {'passed' if self.passed else 'failed'}"


class FreezeOverride(models.Model):
    """Break-glass: an admin lets one release into a frozen environment until the freeze ends."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="freeze_overrides")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="freeze_overrides")
    reason = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(help_text="The end of the freeze it overrides.")

    class Meta:
        db_table = "releases_freezeoverride"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(name="freeze_override_needs_reason", condition=~Q(reason="")),
            models.CheckConstraint(
                name="freeze_override_expires_after_creation", condition=Q(expires_at__gt=models.F("created_at"))
            ),
        ]

    def __str__(self) -> str:
        return f"Freeze override for {self.release} into {self.environment.name}"


class NotificationDelivery(models.Model):
    """One message about an approval request to one recipient on one channel, and how sending it went.

    Rows are written with the change they announce; a job (queue "notifications") sends each one,
    retried on failure. The unique constraint makes sending a given message twice impossible.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        TEAMS = "teams", "Microsoft Teams"
        SLACK = "slack", "Slack"

    class Kind(models.TextChoices):
        OPENED = "opened", "Request opened"
        REMINDER = "reminder", "Reminder before expiry"
        SETTLED = "settled", "Request settled"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipient = models.CharField(
        max_length=254, help_text="An email address, or the channel's name for a webhook (never its URL)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "releases_notificationdelivery"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "kind", "channel", "recipient"], name="one_delivery_per_message_and_recipient"
            ),
            models.CheckConstraint(
                name="delivery_sent_at_iff_sent",
                condition=Q(status="sent", sent_at__isnull=False) | (~Q(status="sent") & Q(sent_at__isnull=True)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient} by {self.get_channel_display()}"
