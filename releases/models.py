"""The release-management domain.

Models hold data and database-level invariants only. State changes live in `releases.services`
(one function per transition), reads that are more than a one-liner in `releases.selectors`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from .fulltext import PostgresGinIndex, audit_search_vector
from .status_guard import StatusGuardedModel

slug_validator = RegexValidator(r"^[a-z0-9][a-z0-9-]*$", "Use lower-case letters, digits and hyphens.")


class Provider(models.TextChoices):
    SIMULATOR = "simulator", "Simulator (built in)"
    AZURE = "azure", "Azure App Service"


class AzureCredential(models.TextChoices):
    MANAGED_IDENTITY = "managed_identity", "Managed identity (Slipway runs on Azure)"
    CLIENT_SECRET = "client_secret", "Service principal with a client secret (from the environment)"
    DEFAULT = "default", "DefaultAzureCredential (environment, workload identity, managed identity)"


class StrategyKind(models.TextChoices):
    BLUE_GREEN = "blue_green", "Blue-green slot swap"
    CANARY = "canary", "Canary"
    RINGS = "rings", "Progressive exposure (rings)"


class Health(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    UNHEALTHY = "unhealthy", "Unhealthy"


class Application(models.Model):
    """A web app hosted on one provider site, with its slots and environments."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=60, unique=True, validators=[slug_validator])
    team = models.CharField(max_length=100, help_text="Owning team; used to filter the dashboard.")
    description = models.TextField(blank=True)
    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.SIMULATOR)
    azure_subscription_id = models.CharField(max_length=64, blank=True)
    azure_resource_group = models.CharField(max_length=90, blank=True)
    azure_site_name = models.CharField(max_length=60, blank=True)
    azure_credential = models.CharField(
        max_length=20,
        choices=AzureCredential.choices,
        default=AzureCredential.CLIENT_SECRET,
        help_text="How Slipway signs in to Azure for this application. Secrets never live in the database.",
    )
    health_check_path = models.CharField(max_length=200, default="/healthz")
    default_strategy = models.CharField(max_length=20, choices=StrategyKind.choices, default=StrategyKind.BLUE_GREEN)
    created_at = models.DateTimeField(auto_now_add=True)
    slots_refresh_requested_at = models.DateTimeField(null=True, blank=True)
    slots_refreshed_at = models.DateTimeField(null=True, blank=True)
    slots_refresh_error = models.TextField(blank=True, help_text="Why the last slot refresh failed, if it did.")

    class Meta:
        ordering = ["name"]
        permissions = [("administer_portal", "Can administer Slipway: applications, policies, tokens")]
        constraints = [
            models.CheckConstraint(
                name="application_azure_coordinates_complete",
                condition=~Q(provider=Provider.AZURE)
                | (~Q(azure_subscription_id="") & ~Q(azure_resource_group="") & ~Q(azure_site_name="")),
                violation_error_message="An Azure application needs a subscription, resource group and site name.",
            ),
            models.CheckConstraint(
                name="application_health_path_absolute", condition=Q(health_check_path__startswith="/")
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("application_detail", args=[self.slug])

    @property
    def slots_refresh_pending(self) -> bool:
        requested, done = self.slots_refresh_requested_at, self.slots_refreshed_at
        return requested is not None and (done is None or done < requested)

    @property
    def production_environment(self) -> Environment | None:
        return self.environments.filter(stage=Stage.PRODUCTION).select_related("slot").first()


class Slot(models.Model):
    """A deployment slot of an application's site (App Service: `production`, `staging`, ...).

    The fields below are Slipway's last *observed* view of the slot, refreshed from the provider.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="slots")
    name = models.CharField(max_length=60, validators=[slug_validator])
    hostname = models.CharField(max_length=255, blank=True)
    is_production = models.BooleanField(default=False, help_text="The site's main slot, which takes live traffic.")
    current_release = models.ForeignKey(
        "Release", on_delete=models.SET_NULL, null=True, blank=True, related_name="running_in_slots"
    )
    running_version = models.CharField(max_length=100, blank=True, help_text="Version the provider reports.")
    traffic_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Share of production traffic routed to this slot.",
    )
    health = models.CharField(max_length=20, choices=Health.choices, default=Health.UNKNOWN)
    health_detail = models.CharField(max_length=500, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["application", "-is_production", "name"]
        constraints = [
            models.UniqueConstraint(fields=["application", "name"], name="slot_name_unique_per_application"),
            models.UniqueConstraint(
                fields=["application"], condition=Q(is_production=True), name="one_production_slot_per_application"
            ),
            models.CheckConstraint(name="slot_traffic_percent_range", condition=Q(traffic_percent__lte=100)),
        ]

    def __str__(self) -> str:
        return f"{self.application.name} / {self.name}"


class Stage(models.TextChoices):
    DEV = "dev", "Development"
    TEST = "test", "Test"
    PREPRODUCTION = "preprod", "Pre-production"
    PRODUCTION = "prod", "Production"


STAGE_ORDER = {Stage.DEV: 10, Stage.TEST: 20, Stage.PREPRODUCTION: 30, Stage.PRODUCTION: 40}


class Environment(models.Model):
    """An ordered stage of an application, bound to exactly one slot (and a slot to at most one stage)."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="environments")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    name = models.CharField(max_length=60)
    position = models.PositiveSmallIntegerField(help_text="Order of promotion, lowest first.")
    slot = models.OneToOneField(Slot, on_delete=models.PROTECT, related_name="environment")

    class Meta:
        ordering = ["application", "position"]
        constraints = [
            models.UniqueConstraint(fields=["application", "stage"], name="environment_stage_unique_per_application"),
            models.UniqueConstraint(fields=["application", "position"], name="environment_position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.application.name} / {self.name}"


class Ring(models.Model):
    """One stage of progressive exposure (the "rings" strategy), in `position` order.

    A ring either routes a share of this application's production traffic to the new build, or
    swaps the build into other applications' production (an internal instance, an early-adopter
    region). After the last ring, the promotion swaps the build into this application's production:
    that is the final ring, everyone. A promotion copies the rings into its plan when it starts, so
    editing them never changes a running operation.
    """

    class Kind(models.TextChoices):
        TRAFFIC = "traffic", "A share of production traffic"
        TARGETS = "targets", "Other applications' production"

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="rings")
    position = models.PositiveSmallIntegerField(help_text="Order of exposure, lowest first.")
    name = models.CharField(max_length=100, help_text="For example “Internal users” or “Early adopters (EU)”.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TRAFFIC)
    traffic_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="Share of production traffic routed to the new build (traffic rings).",
    )
    targets = models.ManyToManyField(
        Application,
        blank=True,
        related_name="ring_memberships",
        help_text="Applications whose production takes the build (target rings); each must have it in a staging slot.",
    )
    bake_seconds = models.FloatField(
        default=600.0, validators=[MinValueValidator(0.0)], help_text="How long the ring runs before it is analysed."
    )
    analyse = models.BooleanField(
        default=True, help_text="Compare the ring's error rate and latency with production's before going on."
    )
    requires_approval = models.BooleanField(
        default=False, help_text="An approver of production must approve the ring before it starts."
    )

    class Meta:
        ordering = ["application", "position"]
        constraints = [
            models.UniqueConstraint(fields=["application", "position"], name="ring_position_unique"),
            models.UniqueConstraint(fields=["application", "name"], name="ring_name_unique"),
            models.CheckConstraint(
                name="ring_traffic_share_iff_traffic_kind",
                condition=Q(kind="traffic", traffic_percent__gte=1, traffic_percent__lte=99)
                | (~Q(kind="traffic") & Q(traffic_percent__isnull=True)),
                violation_error_message="A traffic ring routes 1 to 99 % of traffic; a target ring routes none.",
            ),
        ]

    def __str__(self) -> str:
        return f"Ring {self.position}: {self.name}"


class ReleaseStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ROLLING_OUT = "rolling_out", "Rolling out"
    LIVE = "live", "Live"
    SUPERSEDED = "superseded", "Superseded"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"


RELEASE_TERMINAL = frozenset({ReleaseStatus.REJECTED, ReleaseStatus.ROLLED_BACK, ReleaseStatus.FAILED})


class Release(StatusGuardedModel):
    """A build of an application, moving from registration to production (the lifecycle is in services)."""

    STATUS_WRITER = "releases.services._transition"

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=100)
    build_id = models.CharField(max_length=100, blank=True)
    commit_sha = models.CharField(max_length=64, blank=True)
    committed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the commit was made: where lead time for changes starts."
    )
    branch = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    artifact_url = models.URLField(max_length=500, blank=True)
    deployed_slot = models.ForeignKey(
        Slot, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="Slot the build went to."
    )
    status = models.CharField(max_length=20, choices=ReleaseStatus.choices, default=ReleaseStatus.REGISTERED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="releases_created"
    )
    created_at = models.DateTimeField()
    status_changed_at = models.DateTimeField()
    approved_at = models.DateTimeField(null=True, blank=True)
    live_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("approve_release", "Can approve or reject releases"),
            ("promote_release", "Can promote releases and run operations"),
            ("rollback_release", "Can roll back releases"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["application", "version"], name="release_version_unique_per_application"),
            models.UniqueConstraint(
                fields=["application"], condition=Q(status=ReleaseStatus.LIVE), name="one_live_release_per_application"
            ),
            models.CheckConstraint(name="release_version_not_blank", condition=~Q(version="")),
            models.CheckConstraint(name="release_status_valid", condition=Q(status__in=ReleaseStatus.values)),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="release_status_created_idx"),
            # History pages walk (created_at, id) backwards with a cursor, overall and per application.
            models.Index(fields=["-created_at", "-id"], name="release_created_id_idx"),
            models.Index(fields=["application", "-created_at", "-id"], name="release_app_created_id_idx"),
            models.Index(fields=["-live_at"], name="release_live_at_idx", condition=Q(live_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.application.name} {self.version}"

    def get_absolute_url(self) -> str:
        return reverse("release_detail", args=[self.pk])


class ApprovalPolicy(models.Model):
    """The rules an environment applies before a release may be promoted into it."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="approval_policy")
    approvals_required = models.PositiveSmallIntegerField(default=1, help_text="0 means no approval is needed.")
    approver_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    approver_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
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


class OperationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    ROLLING_BACK = "rolling_back", "Rolling back"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    CANCELLED = "cancelled", "Cancelled"


OPERATION_ACTIVE = frozenset(
    {OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.PAUSED, OperationStatus.ROLLING_BACK}
)


class Operation(StatusGuardedModel):
    """One background run against an application's production (promotion or rollback).

    The RQ job carries only this row's id; the row and its steps are the source of truth.
    """

    STATUS_WRITER = "strategies.transitions.operation_transition"

    class Kind(models.TextChoices):
        PROMOTE = "promote", "Promotion"
        ROLLBACK = "rollback", "Rollback"

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="operations")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="operations")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="operations")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    strategy = models.CharField(max_length=20, choices=StrategyKind.choices, blank=True)
    status = models.CharField(max_length=20, choices=OperationStatus.choices, default=OperationStatus.PENDING)
    parameters = models.JSONField(default=dict, blank=True, help_text="Strategy options chosen for this run.")
    reason = models.TextField(blank=True, help_text="Why it was started (required for rollbacks).")
    error = models.TextField(blank=True, help_text="Why it failed, in words a person can act on.")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from a worker.")
    # The engine's bookkeeping (strategies.engine): which RQ job holds the operation now, the job that
    # was last queued for it, and when a waiting operation (bake time) is due to run again.
    runner = models.CharField(max_length=64, blank=True, help_text="RQ job id that has claimed the operation.")
    job_id = models.CharField(max_length=64, blank=True, help_text="The RQ job last queued for the operation.")
    wake_at = models.DateTimeField(null=True, blank=True, help_text="A waiting operation runs again at this time.")
    waiting_for = models.CharField(max_length=500, blank=True, help_text="Why it waits or is paused, in words.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application"],
                condition=Q(status__in=sorted(OPERATION_ACTIVE)),
                name="one_active_operation_per_application",
                violation_error_message="Another operation is already running on this application.",
            ),
            models.CheckConstraint(
                name="operation_finished_iff_terminal",
                condition=Q(status__in=sorted(OPERATION_ACTIVE), finished_at__isnull=True)
                | (~Q(status__in=sorted(OPERATION_ACTIVE)) & Q(finished_at__isnull=False)),
            ),
            models.CheckConstraint(name="rollback_needs_reason", condition=~Q(kind="rollback") | ~Q(reason="")),
        ]
        # Delivery metrics (releases.delivery): production changes by when they finished, incidents by
        # when they started, and the next successful operation of an application after an incident.
        indexes = [
            models.Index(fields=["finished_at"], name="operation_promote_finished_idx", condition=Q(kind="promote")),
            models.Index(
                fields=["created_at"],
                name="operation_incident_created_idx",
                condition=Q(kind="promote", status__in=["failed", "rolled_back"]) | Q(kind="rollback"),
            ),
            models.Index(
                fields=["application", "finished_at"],
                name="operation_app_succeeded_idx",
                condition=Q(status="succeeded"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.release} ({self.get_status_display().lower()})"

    @property
    def is_active(self) -> bool:
        return self.status in OPERATION_ACTIVE


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class OperationStep(models.Model):
    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=40, help_text="Step type understood by the engine, e.g. swap, set_traffic.")
    title = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0, validators=[MinValueValidator(0), MaxValueValidator(100)])
    detail = models.JSONField(default=dict, blank=True, help_text="Outcome data (metrics, verdicts, provider ids).")
    log = models.TextField(blank=True)
    resume_token = models.TextField(blank=True, help_text="Provider continuation token for a long-running call.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["operation", "position"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "position"], name="step_position_unique_per_operation"),
            models.CheckConstraint(name="step_progress_range", condition=Q(progress__lte=100)),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"


class AuditImmutable(Exception):
    """An attempt to change or remove a recorded audit event: the trail is append-only."""

    def __init__(self, what: str = "changed") -> None:
        super().__init__(
            f"Audit events are append-only and cannot be {what}; record a new event instead "
            "(only the sealer of releases.audit_chain may set sequence, chain_hash and sealed_at, once)."
        )


class AuditEventQuerySet(models.QuerySet):
    """Refuses `update()` and `delete()`: audit events are never changed or removed through the ORM."""

    def update(self, **kwargs: Any) -> int:
        raise AuditImmutable("updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditImmutable("deleted")

    def _seal_update(self, *, sequence: int, chain_hash: str, sealed_at: datetime) -> int:
        """The sealer's one write: the seal fields of events not sealed yet (see releases.audit_chain)."""
        return models.QuerySet.update(
            self.filter(sequence__isnull=True), sequence=sequence, chain_hash=chain_hash, sealed_at=sealed_at
        )


class AuditEvent(models.Model):
    """One recorded state change: who did what to which object, when, with the state before and after.

    Rows are only ever inserted (by `releases.audit.audit_record`), inside the transaction of the change;
    the ORM refuses updates and deletes (`AuditImmutable`), and on PostgreSQL a trigger does too. The
    sealer (`releases.audit_chain.seal_pending`) later gives each event its place in the hash chain.
    """

    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    actor_label = models.CharField(max_length=200, help_text="Who, as shown: a username, a token, or 'system'.")
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    origin = models.JSONField(default=dict, blank=True, help_text="Request id, IP address, user agent or job id.")
    # The hash chain, set once by the sealer: position (1, 2, 3, ...) and sha256(previous hash + content).
    sequence = models.PositiveBigIntegerField(null=True, blank=True, unique=True, editable=False)
    chain_hash = models.CharField(max_length=64, blank=True, editable=False)
    sealed_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sealer takes events not sealed yet in id order; the audit page counts them.
            models.Index(fields=["id"], condition=models.Q(sequence__isnull=True), name="audit_unsealed_idx"),
            models.Index(fields=["object_type", "object_id", "-created_at"], name="audit_object_idx"),
            models.Index(fields=["application", "-created_at"], name="audit_application_idx"),
            # The trail pages walk (created_at, id) backwards with a cursor; the search box is full-text.
            models.Index(fields=["-created_at", "-id"], name="audit_created_id_idx"),
            PostgresGinIndex(audit_search_vector(), name="audit_search_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_repr}"

    def save(self, **kwargs: Any) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields") is not None:
            raise AuditImmutable("changed")
        kwargs["force_insert"] = True  # never an UPDATE, even with a primary key set by hand
        super().save(**kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditImmutable("deleted")


GENESIS_HASH = "0" * 64


class AuditChainHead(models.Model):
    """The one row (id=1) the sealer locks: the end of the audit hash chain and the last verification.

    The audit page reads only this row; `manage.py audit_verify` and the periodic check write the
    verification fields.
    """

    last_sequence = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    last_sealed_at = models.DateTimeField(null=True, blank=True)
    verified_through = models.PositiveBigIntegerField(default=0, help_text="Sequence verified up to.")
    verified_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    verified_at = models.DateTimeField(null=True, blank=True)
    broken_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    broken_event_id = models.BigIntegerField(null=True, blank=True)
    broken_reason = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"audit chain head: sequence {self.last_sequence}"


class ApiToken(models.Model):
    """A scoped credential for pipelines. Only a SHA-256 of the secret is stored; the secret is shown once."""

    class Scope(models.TextChoices):
        READ = "read", "Read everything"
        RELEASES_WRITE = "releases:write", "Register releases and request approval"
        OPERATIONS_WRITE = "operations:write", "Promote, pause, resume and roll back"

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part, shown in lists and logs.")
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="token_name_unique_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class SsoIdentity(models.Model):
    """The single sign-on subject behind an account (portal.oidc): an issuer and its stable user id.

    Users are matched by (issuer, subject) — Entra ID's `oid`, else `sub` — never by e-mail, so an
    identity provider cannot take over a local account by asserting its address.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField()
    last_sign_in_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_subject_unique_per_issuer")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class SimulatorSlot(models.Model):
    """The simulator provider's world: what 'the cloud' runs in each slot.

    Kept apart from `Slot` (Slipway's observed view) so that refreshing, swapping and fault
    injection behave as they would against a real provider.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="simulator_slots")
    slot_name = models.CharField(max_length=60)
    version = models.CharField(max_length=100, blank=True)
    healthy = models.BooleanField(default=True, help_text="Fault: off makes the slot's health check answer 503.")
    routing_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Share of production traffic routed here (ignored on the production slot, which takes the rest).",
    )
    app_settings = models.JSONField(default=dict, blank=True)
    running = models.BooleanField(default=True, help_text="App Service: Running, or Stopped (answers 403).")
    restart_count = models.PositiveIntegerField(default=0)
    last_restart_at = models.DateTimeField(null=True, blank=True)
    fail_swap = models.BooleanField(default=False, help_text="Fault: a swap involving this slot fails in warm-up.")
    hang_swap = models.BooleanField(default=False, help_text="Fault: a swap involving this slot never finishes.")
    served_total = models.PositiveBigIntegerField(default=0, help_text="Requests this slot's pages have served.")
    # Swap with preview: the target's slot settings are applied here and our own kept aside until
    # the swap completes or the preview is cancelled.
    preview_target = models.CharField(max_length=60, blank=True)
    preview_saved_settings = models.JSONField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "slot_name"], name="simulator_slot_unique"),
            models.CheckConstraint(name="simulator_routing_range", condition=Q(routing_percent__lte=100)),
            models.CheckConstraint(
                name="simulator_preview_complete",
                condition=Q(preview_target="", preview_saved_settings__isnull=True)
                | (~Q(preview_target="") & Q(preview_saved_settings__isnull=False)),
            ),
            models.CheckConstraint(
                name="simulator_preview_not_self", condition=~Q(preview_target=models.F("slot_name"))
            ),
        ]

    def __str__(self) -> str:
        return f"sim:{self.application.slug}/{self.slot_name}"


class SimulatorSite(models.Model):
    """The simulated site of an application: settings that belong to the site rather than a slot."""

    MAX_SYNTHETIC_RPM = 1200

    application = models.OneToOneField(Application, on_delete=models.CASCADE, related_name="simulator_site")
    sticky_settings = models.JSONField(default=list, blank=True, help_text="App settings that stay with their slot.")
    synthetic_rpm = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_SYNTHETIC_RPM)],
        help_text="Synthetic load: requests per minute to the production URL, split by the traffic share.",
    )
    synthetic_generated_until = models.DateTimeField(
        null=True, blank=True, help_text="Synthetic load has been generated up to this moment."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="simulator_synthetic_rpm_range", condition=Q(synthetic_rpm__lte=1200)),
        ]

    def __str__(self) -> str:
        return f"sim:{self.application.slug}"


class SimulatorVersionProfile(models.Model):
    """How a version behaves on the simulator: its error rate, its latency, whether its health check passes.

    Latency is log-normal with the given median and 95th percentile. Versions without a profile
    behave as `releases.providers.simulator.DEFAULT_PROFILE`.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="simulator_profiles")
    version = models.CharField(max_length=100)
    error_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of requests answered with HTTP 500 (0 to 1).",
    )
    latency_ms_median = models.FloatField(default=80.0, validators=[MinValueValidator(0.0)])
    latency_ms_p95 = models.FloatField(default=200.0, validators=[MinValueValidator(0.0)])
    healthy = models.BooleanField(default=True, help_text="Fault: off makes this version's health check answer 503.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application", "version"]
        constraints = [
            models.UniqueConstraint(fields=["application", "version"], name="simulator_profile_unique"),
            models.CheckConstraint(
                name="simulator_profile_error_rate_range", condition=Q(error_rate__gte=0.0, error_rate__lte=1.0)
            ),
            models.CheckConstraint(
                name="simulator_profile_latency_order",
                condition=Q(latency_ms_median__gte=0.0, latency_ms_p95__gte=models.F("latency_ms_median")),
            ),
            models.CheckConstraint(name="simulator_profile_version_not_blank", condition=~Q(version="")),
        ]

    def __str__(self) -> str:
        return f"sim:{self.application.slug} {self.version}"


class SwapPhase(models.TextChoices):
    WARMING_UP = "warming_up", "Warming up"
    SWAPPING = "swapping", "Swapping"
    ROUTING = "routing", "Switching routing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


SWAP_IN_FLIGHT = frozenset({SwapPhase.WARMING_UP, SwapPhase.SWAPPING, SwapPhase.ROUTING})


class SimulatorSwap(models.Model):
    """A slot swap on the simulator; its id is the resume token. The phase follows the clock.

    Timings and faults are copied from settings and slots when the swap starts, so every process
    that polls it computes the same phase.
    """

    class Fault(models.TextChoices):
        NONE = "", "None"
        FAIL = "fail", "Fails in warm-up"
        HANG = "hang", "Hangs"

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="simulator_swaps")
    source = models.CharField(max_length=60)
    target = models.CharField(max_length=60)
    phase = models.CharField(max_length=20, choices=SwapPhase.choices, default=SwapPhase.WARMING_UP)
    with_preview = models.BooleanField(default=False, help_text="Completes a swap with preview.")
    fault = models.CharField(max_length=10, choices=Fault.choices, blank=True)
    started_at = models.DateTimeField()
    warmup_seconds = models.FloatField()
    swap_seconds = models.FloatField(help_text="Duration of the whole swap.")
    routing_seconds = models.FloatField()
    hang_timeout_seconds = models.FloatField()
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="What each slot runs after the swap.")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application"],
                condition=Q(phase__in=sorted(SWAP_IN_FLIGHT)),
                name="one_simulator_swap_in_flight_per_application",
                violation_error_message="Another swap is in progress on this site.",
            ),
            models.CheckConstraint(
                name="simulator_swap_finished_iff_terminal",
                condition=Q(phase__in=sorted(SWAP_IN_FLIGHT), finished_at__isnull=True)
                | (~Q(phase__in=sorted(SWAP_IN_FLIGHT)) & Q(finished_at__isnull=False)),
            ),
            models.CheckConstraint(
                name="simulator_swap_failure_has_error", condition=~Q(phase="failed") | ~Q(error="")
            ),
            models.CheckConstraint(name="simulator_swap_distinct_slots", condition=~Q(source=models.F("target"))),
            models.CheckConstraint(
                name="simulator_swap_timings_consistent",
                condition=Q(warmup_seconds__gte=0, routing_seconds__gte=0, hang_timeout_seconds__gte=0)
                & Q(swap_seconds__gte=models.F("warmup_seconds") + models.F("routing_seconds")),
            ),
        ]

    def __str__(self) -> str:
        return f"sim:{self.application.slug} swap {self.source} → {self.target} ({self.get_phase_display().lower()})"

    @property
    def in_flight(self) -> bool:
        return self.phase in SWAP_IN_FLIGHT


class SimulatorMetricBucket(models.Model):
    """Requests one simulated slot served in one minute, from visitors or from the synthetic load.

    Counts are exact; latencies are a sample of at most `MAX_SAMPLES` per bucket, so a metrics
    read is a bounded aggregation whatever the traffic.
    """

    MAX_SAMPLES = 200

    class Source(models.TextChoices):
        SERVED = "served", "Served pages"
        SYNTHETIC = "synthetic", "Synthetic load"

    slot = models.ForeignKey(SimulatorSlot, on_delete=models.CASCADE, related_name="metric_buckets")
    minute = models.DateTimeField(help_text="Start of the minute (UTC, seconds zero).")
    source = models.CharField(max_length=10, choices=Source.choices)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    latency_samples = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["slot", "minute", "source"]
        constraints = [
            models.UniqueConstraint(fields=["slot", "minute", "source"], name="simulator_bucket_unique"),
            models.CheckConstraint(
                name="simulator_bucket_errors_within_requests", condition=Q(errors__lte=models.F("requests"))
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slot} {self.minute:%H:%M} {self.source}: {self.requests} requests"


class IdempotencyKey(models.Model):
    """A POST to the API made with an `Idempotency-Key` header, and the answer it got.

    Keyed by whoever called (the token, or the person for a browser session) and the key. The row is
    written in the transaction of the change the request made, so a concurrent retry with the same key
    waits on the unique constraint and then replays the stored answer instead of doing it twice.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    body_hash = models.CharField(max_length=64, help_text="SHA-256 of the request body.")
    # Empty while the first request runs; it is filled in before that request's transaction commits.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["token", "key"], condition=Q(token__isnull=False), name="idempotency_key_unique_per_token"
            ),
            models.UniqueConstraint(
                fields=["user", "key"], condition=Q(token__isnull=True), name="idempotency_key_unique_per_session_user"
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key[:40]})"


class WebhookSubscription(models.Model):
    """An outgoing webhook: Slipway POSTs signed JSON about an application's events to `url`.

    `secret` is a shared secret, not a password: Slipway needs it in clear to compute each body's
    HMAC-SHA256 signature (releases.webhooks.delivery), and the receiver holds the same value. It is
    shown once, when made or rotated, and never written to logs or the audit trail.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="webhook_subscriptions")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=list, help_text="Event types delivered (releases.webhooks.events.EVENT_TYPES).")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["application", "created_at", "id"]

    def __str__(self) -> str:
        return f"Webhook {self.pk} of {self.application} to {self.url}"


class WebhookDelivery(models.Model):
    """One event sent (or to send) to one subscription, and how the last attempt went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True, help_text="The first 500 characters of the last answer.")
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    attempt_log = models.JSONField(default=list, blank=True, help_text="One entry per attempt: at, code, error.")
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subscription", "-created_at"], name="webhook_delivery_sub_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} to webhook {self.subscription_id} ({self.status})"
