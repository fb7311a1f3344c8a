"""Feature flags: toggles, segments, dark launches, API keys and reported events.

Each environment of an application has its own flags. What is served is a flagd flag-definition
document per environment (`FlagSet.document`), rebuilt by `strategies.flags.services` inside the
transaction of every change, with a revision number that the evaluation cache compares.
Models hold data and database-level invariants only.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from releases.catalog.models import Application, Environment

flag_key_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    "Use letters, digits, dots, hyphens and underscores, starting with a letter or digit.",
)
segment_key_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,59}$", "Use lower-case letters, digits and hyphens, starting with a letter or digit."
)


class FlagType(models.TextChoices):
    BOOLEAN = "boolean", "Boolean (on / off)"
    STRING = "string", "String"
    NUMBER = "number", "Number"
    OBJECT = "object", "Object (JSON)"


class Lifecycle(models.TextChoices):
    NEW = "new", "New"
    ACTIVE = "active", "Active"
    PERMANENT = "permanent", "Permanent"
    STALE = "stale", "Stale"
    ARCHIVED = "archived", "Archived"


# Flags that are still meant to go away: a planned removal date in the past makes them overdue.
LIFECYCLE_TEMPORARY = (Lifecycle.NEW, Lifecycle.ACTIVE)


class Segment(models.Model):
    """A named, reusable cohort of an application ("internal staff", "beta customers").

    Served as a flagd `$evaluators` entry in every environment of the application, so a rule or an
    expert's targeting refers to it with `{"$ref": "<key>"}`.
    """

    class Match(models.TextChoices):
        ANY = "any", "any condition (or)"
        ALL = "all", "all conditions (and)"

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="flag_segments")
    key = models.CharField(max_length=60, validators=[segment_key_validator])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    match = models.CharField(max_length=3, choices=Match.choices, default=Match.ANY)
    conditions = models.JSONField(default=list, blank=True, help_text="[{attribute, op, value}], see definitions.py")
    users = models.JSONField(default=list, blank=True, help_text="Targeting keys that are always in the segment.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "strategies_segment"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["application", "key"]
        constraints = [
            models.UniqueConstraint(fields=["application", "key"], name="segment_key_unique_per_application")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class FlagSet(models.Model):
    """The flagd document an environment serves, and its revision (bumped by every change)."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="flag_set")
    revision = models.PositiveBigIntegerField(default=0)
    document = models.JSONField(default=dict, help_text="flagd flag definitions, valid against flags.json.")
    hints = models.JSONField(default=dict, help_text="Per flag: how to evaluate it over OFREP (evaluation.py).")
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "strategies_flagset"  # kept from before the move (docs/architecture.md, "Moving a model")

    def __str__(self) -> str:
        return f"Flags of {self.environment} (revision {self.revision})"


class Flag(models.Model):
    """A feature flag of one environment: typed variants, a default, targeting, a lifecycle."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="flags")
    key = models.CharField(max_length=100, validators=[flag_key_validator])
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="owned_flags"
    )
    flag_type = models.CharField(max_length=10, choices=FlagType.choices, default=FlagType.BOOLEAN)
    variants = models.JSONField(default=dict)
    default_variant = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True, help_text="Off is the kill switch: everyone gets the default.")
    rules = models.JSONField(default=dict, blank=True, help_text="Structured targeting, see definitions.py.")
    targeting_override = models.JSONField(
        null=True, blank=True, help_text="Targeting written by hand in JSONLogic; replaces the rules when set."
    )
    lifecycle = models.CharField(max_length=10, choices=Lifecycle.choices, default=Lifecycle.NEW)
    planned_removal = models.DateField(null=True, blank=True)
    definition = models.JSONField(default=dict, help_text="The flagd definition served, as last compiled.")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "strategies_flag"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["environment", "key"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "key"], name="flag_key_unique_per_environment"),
            models.CheckConstraint(name="flag_lifecycle_valid", condition=Q(lifecycle__in=Lifecycle.values)),
            models.CheckConstraint(name="flag_type_valid", condition=Q(flag_type__in=FlagType.values)),
        ]

    def __str__(self) -> str:
        return self.key

    def get_absolute_url(self) -> str:
        return reverse("flag_detail", args=[self.environment.application.slug, self.pk])


class DarkLaunch(models.Model):
    """A flag variant turned on for a cohort only, watched, then widened, rolled out or killed.

    The cohort is a rule at the top of the flag's targeting (marked `"launch": true`); rolling out
    serves the variant to a growing share of everyone else through the flag's fallthrough split.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ROLLED_OUT = "rolled_out", "Rolled out to everyone"
        KILLED = "killed", "Killed"

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="launches")
    variant = models.CharField(max_length=100)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    cohort = models.JSONField(default=dict, help_text="{segments, users, percent}: who the launch reaches.")
    rollout_percent = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)], help_text="Share of everyone else that gets the variant."
    )
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "strategies_darklaunch"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["flag"], condition=Q(status="active"), name="one_active_launch_per_flag"),
            models.CheckConstraint(name="launch_rollout_percent_range", condition=Q(rollout_percent__lte=100)),
            models.CheckConstraint(
                name="launch_ended_iff_finished",
                condition=Q(status="active", ended_at__isnull=True) | (~Q(status="active") & Q(ended_at__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return f"Dark launch of {self.flag.key}={self.variant}"

    def get_absolute_url(self) -> str:
        return reverse("launch_detail", args=[self.flag.environment.application.slug, self.pk])


class FlagApiKey(models.Model):
    """A credential of one environment for OFREP clients, reported events and flagd sync.

    Only the SHA-256 of the key is stored (looked up by it); the key is shown once.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="flag_api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=24, help_text="Public start of the key, shown in lists.")
    key_hash = models.CharField(max_length=64, unique=True)
    can_evaluate = models.BooleanField(default=True, help_text="OFREP evaluation and reporting events.")
    can_sync = models.BooleanField(default=False, help_text="Reading the raw flag definitions (flagd sync).")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "strategies_flagapikey"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                name="flag_api_key_does_something", condition=Q(can_evaluate=True) | Q(can_sync=True)
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class FlagEventBucket(models.Model):
    """Reported outcomes of one flag variant in one minute: exact counts, latency moments, a few samples."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="flag_event_buckets")
    flag_key = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    minute = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    latency_count = models.PositiveIntegerField(default=0)
    latency_sum = models.FloatField(default=0.0)
    latency_sumsq = models.FloatField(default=0.0)
    latency_samples = models.JSONField(default=list, help_text="At most a few latencies (ms) of the minute.")

    class Meta:
        db_table = "strategies_flageventbucket"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["environment", "flag_key", "minute"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "flag_key", "variant", "minute"], name="one_event_bucket_per_variant_minute"
            ),
            models.CheckConstraint(name="event_bucket_errors_le_count", condition=Q(errors__lte=models.F("count"))),
        ]

    def __str__(self) -> str:
        return f"{self.flag_key}={self.variant} @ {self.minute:%Y-%m-%d %H:%M}"


class FlagSchedule(models.Model):
    """A change of a flag planned for later: turn it on, turn it off, or ramp a variant up in steps.

    `steps` is `[{"at": iso datetime, "percent": int | None, "applied_at": iso | None}]` in time
    order (one step for enable/disable, percent None); `next_at` is the first unapplied step's time,
    so the sweep (`schedules.apply_due`) finds due schedules with one indexed query.
    """

    class Kind(models.TextChoices):
        ENABLE_AT = "enable_at", "Turn on at"
        RAMP = "ramp", "Ramp up a variant"
        DISABLE_AT = "disable_at", "Turn off at"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="schedules")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    variant = models.CharField(max_length=100, blank=True, help_text="The variant a ramp rolls out.")
    steps = models.JSONField(default=list)
    next_at = models.DateTimeField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "strategies_flagschedule"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                name="flag_schedule_pending_iff_next",
                condition=Q(status="pending", next_at__isnull=False) | (~Q(status="pending") & Q(next_at__isnull=True)),
            ),
            models.CheckConstraint(
                name="flag_schedule_kind_valid", condition=Q(kind__in=["enable_at", "ramp", "disable_at"])
            ),
        ]

    def __str__(self) -> str:
        return f"Schedule #{self.pk} of {self.flag.key}: {self.get_kind_display().lower()}"


class FlagApprovalSetting(models.Model):
    """Whether changes to an environment's flags wait for approval under its `ApprovalPolicy`."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="flag_approval_setting")
    changes_need_approval = models.BooleanField(default=False)
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "strategies_flagapprovalsetting"  # kept from before the move (docs/architecture.md)

    def __str__(self) -> str:
        return f"Flag approvals of {self.environment}: {'on' if self.changes_need_approval else 'off'}"


class FlagChangeRequest(models.Model):
    """A proposed change of a flag in an environment whose flag changes need approval.

    An edit's `changes` maps flag fields (enabled, rules, targeting_override, default_variant, variants,
    description, owner_id, planned_removal) to their proposed values; `before`/`after` are the flag's
    audit snapshots when proposed, for the diff shown to approvers. A dark-launch step or a schedule is
    the service call (`action`, `arguments`) made when approved, on behalf of the proposer; its
    `after` is what a dry run of that call produced. `approvals` lists
    `{"user", "at", "comment"}`; the change is applied when enough approvals are in.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Approved, but could not be applied"

    class Action(models.TextChoices):
        EDIT = "edit", "Edit the flag"
        LAUNCH_START = "launch_start", "Start a dark launch"
        LAUNCH_WIDEN = "launch_widen", "Widen a dark launch"
        LAUNCH_ROLLOUT = "launch_rollout", "Roll a dark launch out"
        SCHEDULE = "schedule", "Schedule a change"
        SEGMENT = "segment", "Change a segment the flag uses"

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="change_requests")
    summary = models.CharField(max_length=300)
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.EDIT)
    changes = models.JSONField(default=dict, help_text="For an edit: the flag fields and their proposed values.")
    arguments = models.JSONField(
        default=dict, blank=True, help_text="For the other actions: the arguments of the service call approved."
    )
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    proposed_at = models.DateTimeField()
    approvals = models.JSONField(default=list)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        db_table = "strategies_flagchangerequest"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-proposed_at"]
        constraints = [
            models.CheckConstraint(
                name="flag_change_decided_iff_not_pending",
                condition=Q(status="pending", decided_at__isnull=True)
                | (~Q(status="pending") & Q(decided_at__isnull=False)),
            ),
            models.CheckConstraint(
                name="flag_change_action_valid",
                condition=Q(
                    action__in=["edit", "launch_start", "launch_widen", "launch_rollout", "schedule", "segment"]
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"Change #{self.pk} of {self.flag.key}: {self.summary}"


class ReleaseFlag(models.Model):
    """A flag (by key) that a release introduces; shown per environment on the release page."""

    release = models.ForeignKey("releases.Release", on_delete=models.CASCADE, related_name="declared_flags")
    flag_key = models.CharField(max_length=100, validators=[flag_key_validator])
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        db_table = "strategies_releaseflag"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["release", "flag_key"]
        constraints = [
            models.UniqueConstraint(fields=["release", "flag_key"], name="release_flag_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.flag_key} in {self.release}"
