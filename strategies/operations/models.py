"""Operations: one background run of a deployment pattern (promotion, rollback) with its ordered steps, and
an application's rings (progressive exposure)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from portal.core.status_guard import StatusGuardedModel
from releases.catalog.models import Application, Environment, Release, StrategyKind


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
        db_table="releases_ring_targets",  # the table kept its name when rings moved out of `releases`
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
        db_table = "releases_ring"  # kept from before the move (docs/architecture.md, "Moving a model")
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

    STATUS_WRITER = "strategies.operations.transitions.operation_transition"

    class Kind(models.TextChoices):
        PROMOTE = "promote", "Promotion"
        ROLLBACK = "rollback", "Rollback"
        REPAIR = "repair", "Drift repair"

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
        db_table = "releases_operation"  # kept from before the move (docs/architecture.md, "Moving a model")
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
        db_table = "releases_operationstep"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["operation", "position"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "position"], name="step_position_unique_per_operation"),
            models.CheckConstraint(name="step_progress_range", condition=Q(progress__lte=100)),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"


class Drift(models.Model):
    """Production differs from what Slipway believes (strategies.operations.reconcile).

    Found by comparing the provider's state — what production runs, what is routed away from it, a
    preview left applied — with the live release and the operations that ran. One open drift per
    application at a time; it is resolved when a later check finds production as Slipway says it is
    (after a repair, or because a person put it back). The findings are what was compared.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="drifts")
    found_at = models.DateTimeField()
    checked_at = models.DateTimeField(help_text="The last check that still found it.")
    findings = models.JSONField(default=list, help_text="[{what, expected, found}] — each difference found.")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=500, blank=True)
    repair = models.ForeignKey(
        Operation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="The repair run."
    )

    class Meta:
        ordering = ["-found_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application"], condition=Q(resolved_at__isnull=True), name="one_open_drift_per_application"
            )
        ]

    def __str__(self) -> str:
        state = "resolved" if self.resolved_at else "open"
        return f"Drift of {self.application} ({state})"

    @property
    def summary(self) -> str:
        return "; ".join(f["what"] for f in self.findings)
