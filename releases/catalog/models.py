"""The catalogue: applications, their environments and slots, the releases of each and where they run,
and the simulator's world (the "cloud" the built-in provider keeps in the database).

Models hold data and database-level invariants only. State changes live in `releases.catalog.services`
(one function per transition), reads that are more than a one-liner in `releases.catalog.selectors`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from portal.core.status_guard import StatusGuardedModel

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

    STATUS_WRITER = "releases.catalog.services._transition"

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
    behave as `releases.catalog.providers.simulator.DEFAULT_PROFILE`.
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
