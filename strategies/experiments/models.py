"""A/B experiments on feature flags, and the per-user rows the events API folds events into.

An `Experiment` splits one flag of one environment between variants (control first) through the
flag's consistent percentage bucketing. Applications report exposure and metric events; each event
id leaves an `ExperimentEventReceipt` (idempotency), and events are folded, set-based, into one
`ExperimentExposure` row per user and one `ExperimentMetricValue` row per user and metric, so an
analysis is a GROUP BY in the database. `ExperimentSnapshot` keeps each analysis (the page's
"over time" chart and the always-valid p-value's running minimum).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from releases.catalog.models import Environment
from strategies.flags.models import Flag, FlagChangeRequest, Segment

experiment_key_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,59}$", "Use lower-case letters, digits and hyphens, starting with a letter or digit."
)

# Statuses in which the experiment holds its flag (at most one per flag).
ACTIVE_STATUSES = ("starting", "running", "shipping")


class Experiment(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        STARTING = "starting", "Pending approval to start"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"
        SHIPPING = "shipping", "Pending approval to ship"
        DECIDED = "decided", "Decided"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="experiments")
    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="experiments")
    key = models.CharField(max_length=60, validators=[experiment_key_validator])
    name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True)
    allocation = models.JSONField(default=list, help_text="[[variant, percent], ...], control first; sums to 100.")
    segment = models.ForeignKey(
        Segment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="experiments",
        help_text="Only this segment takes part; empty: everyone.",
    )
    primary_metric = models.JSONField(default=dict, help_text="{name, kind, direction}")
    guardrails = models.JSONField(default=list, help_text="[{name, kind, direction, tolerance}]")
    mde = models.FloatField(help_text="Minimum detectable effect.")
    mde_relative = models.BooleanField(default=True)
    alpha = models.FloatField(default=0.05)
    power = models.FloatField(default=0.8)
    baseline_rate = models.FloatField(null=True, blank=True)
    baseline_mean = models.FloatField(null=True, blank=True)
    baseline_sd = models.FloatField(null=True, blank=True)
    planned_users = models.PositiveIntegerField(default=0, help_text="Planned users per variant.")
    tau2 = models.FloatField(null=True, blank=True, help_text="mSPRT mixing variance; empty: the default.")
    cuped = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    pending_change = models.ForeignKey(
        FlagChangeRequest, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decision = models.JSONField(null=True, blank=True, help_text="{action, variant, analysis, ...}")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        db_table = "strategies_experiment"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "key"], name="experiment_key_unique_per_environment"),
            models.UniqueConstraint(
                fields=["flag"], condition=Q(status__in=ACTIVE_STATUSES), name="one_running_experiment_per_flag"
            ),
            models.CheckConstraint(
                name="experiment_status_valid",
                condition=Q(status__in=["draft", "starting", "running", "stopped", "shipping", "decided"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"

    def get_absolute_url(self) -> str:
        return reverse("experiment_detail", args=[self.environment.application.slug, self.pk])

    @property
    def variants(self) -> list[str]:
        return [variant for variant, _ in self.allocation]

    @property
    def control(self) -> str:
        return self.allocation[0][0]

    @property
    def metrics(self) -> list[dict]:
        return [{**self.primary_metric, "role": "primary"}] + [{**g, "role": "guardrail"} for g in self.guardrails]

    @property
    def rule_name(self) -> str:
        return f"Experiment {self.key}"


class ExperimentEventReceipt(models.Model):
    """One accepted event id of an environment: a retried batch finds its ids here and is not counted twice."""

    environment_id = models.BigIntegerField()
    event_id = models.CharField(max_length=200)
    received_at = models.DateTimeField()

    class Meta:
        db_table = (
            "strategies_experimenteventreceipt"  # kept from before the move (docs/architecture.md, "Moving a model")
        )
        constraints = [
            models.UniqueConstraint(fields=["environment_id", "event_id"], name="experiment_event_id_unique"),
        ]

    def __str__(self) -> str:
        return f"Event {self.event_id} of environment {self.environment_id}"


class ExperimentExposure(models.Model):
    """A user's exposure: the variant first seen, when, the pre-period covariate; `conflicted` when the
    user was also seen in another variant (a broken client: such users are left out of the analysis)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    user_key = models.CharField(max_length=200)
    variant = models.CharField(max_length=100)
    first_at = models.DateTimeField()
    covariate = models.FloatField(null=True, blank=True)
    conflicted = models.BooleanField(default=False)

    class Meta:
        db_table = "strategies_experimentexposure"  # kept from before the move (docs/architecture.md, "Moving a model")
        constraints = [
            models.UniqueConstraint(fields=["experiment", "user_key"], name="one_exposure_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_key} saw {self.variant}"


class ExperimentMetricValue(models.Model):
    """A user's events of one metric: how many, and the sum of their values."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="metric_values")
    user_key = models.CharField(max_length=200)
    metric = models.CharField(max_length=100)
    count = models.PositiveIntegerField(default=0)
    total = models.FloatField(default=0.0)

    class Meta:
        db_table = (
            "strategies_experimentmetricvalue"  # kept from before the move (docs/architecture.md, "Moving a model")
        )
        constraints = [
            models.UniqueConstraint(fields=["experiment", "user_key", "metric"], name="one_metric_value_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} of {self.user_key}: {self.count} event(s), {self.total:g}"


class ExperimentSnapshot(models.Model):
    """One analysis: when, and its results (JSON, see analysis.py)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField()
    results = models.JSONField(default=dict)

    class Meta:
        db_table = "strategies_experimentsnapshot"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["experiment", "taken_at", "id"]
        indexes = [models.Index(fields=["experiment", "taken_at"], name="experiment_snapshot_time")]

    def __str__(self) -> str:
        return f"Analysis of {self.experiment_id} at {self.taken_at:%Y-%m-%d %H:%M}"
