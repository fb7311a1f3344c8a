"""The simulator's traffic: serving requests, routing them by the traffic share, and counting them.

Every request a slot serves, whether a person opened its page (`serve`) or the synthetic load made
it up (`generate_synthetic`), lands in a per-minute `SimulatorMetricBucket` of that slot: exact
counts of requests and HTTP 5xx errors, and a capped sample of latencies. `slot_metrics` is a sum
over the buckets of a window, so reading metrics costs the same whatever the traffic was.

Synthetic load is generated lazily, when metrics are read (and when the load is changed): the
requests of every minute since the last generation are made up then, at most
`SIMULATOR_TIMINGS["synthetic_backfill_minutes"]` of them. It is deterministic: request *i* of
minute *M* of an application always draws the same random numbers, so it lands on the same slot
with the same outcome however the generation is chunked. The share and versions used are those in
force when the minute is generated, not a history of them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum

from portal.core import clock
from releases.catalog.models import (
    Application,
    SimulatorMetricBucket,
    SimulatorSite,
    SimulatorSlot,
    SimulatorVersionProfile,
)
from releases.catalog.providers import PRODUCTION_SLOT, MetricsSample, NotFoundError

_Z95 = NormalDist().inv_cdf(0.95)
MAX_SAMPLES_RETURNED = 5000  # per metrics read, evenly thinned beyond that


@dataclass(frozen=True)
class Profile:
    """How a version behaves: its error rate, its log-normal latency, whether its health check passes."""

    error_rate: float
    latency_ms_median: float
    latency_ms_p95: float
    healthy: bool = True

    def latency_ms(self, u: float) -> float:
        """The latency at quantile `u` (0 < u < 1) of the version's distribution."""
        if self.latency_ms_median <= 0:
            return 0.0
        sigma = math.log(max(self.latency_ms_p95, self.latency_ms_median) / self.latency_ms_median) / _Z95
        u = min(max(u, 1e-9), 1 - 1e-9)
        return self.latency_ms_median * math.exp(sigma * NormalDist().inv_cdf(u))


# A version nobody described: healthy, no errors, a snappy web app.
DEFAULT_PROFILE = Profile(error_rate=0.0, latency_ms_median=80.0, latency_ms_p95=200.0)


def profile_for(application: Application, version: str) -> Profile:
    """How `version` behaves. A build with no profile of its own behaves like the one production runs
    (a new build of a fast API is as fast as the last one until someone says otherwise on the
    Simulator page), and like DEFAULT_PROFILE when production has none either."""
    row = SimulatorVersionProfile.objects.filter(application=application, version=version).first()
    if row is None:
        production = (
            SimulatorSlot.objects.filter(application=application, slot_name=PRODUCTION_SLOT)
            .values_list("version", flat=True)
            .first()
        )
        if production and production != version:
            row = SimulatorVersionProfile.objects.filter(application=application, version=production).first()
    if row is None:
        return DEFAULT_PROFILE
    return Profile(row.error_rate, row.latency_ms_median, row.latency_ms_p95, row.healthy)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def site_for(application: Application) -> SimulatorSite:
    site, _ = SimulatorSite.objects.get_or_create(application=application)
    return site


def slot_or_404(application: Application, slot_name: str, *, lock: bool = False) -> SimulatorSlot:
    rows = SimulatorSlot.objects.select_for_update(no_key=True) if lock else SimulatorSlot.objects
    slot = rows.filter(application=application, slot_name=slot_name).first()
    if slot is None:
        raise NotFoundError(
            f"The slot '{slot_name}' of site '{application.slug}' was not found.", status=404, code="ResourceNotFound"
        )
    return slot


# --- routing ---------------------------------------------------------------------------------------
def shares(slots: list[SimulatorSlot]) -> dict[str, int]:
    """Percent of production traffic each slot takes: the deployment slots' rules, production the rest."""
    routed = {s.slot_name: s.routing_percent for s in slots if s.slot_name != PRODUCTION_SLOT}
    return {PRODUCTION_SLOT: max(0, 100 - sum(routed.values())), **routed}


def choose_slot(slots: list[SimulatorSlot], u: float) -> SimulatorSlot:
    """The slot a request at quantile `u` (0 ≤ u < 1) of the routed traffic goes to."""
    by_name = {s.slot_name: s for s in slots}
    cumulative = 0.0
    for slot in sorted((s for s in slots if s.slot_name != PRODUCTION_SLOT), key=lambda s: s.slot_name):
        cumulative += slot.routing_percent / 100
        if u < cumulative:
            return slot
    if PRODUCTION_SLOT not in by_name:
        raise NotFoundError(f"The site '{slots[0].application.slug}' has no production slot.", status=404)
    return by_name[PRODUCTION_SLOT]


# --- recording -------------------------------------------------------------------------------------
def record(
    slot: SimulatorSlot, minute: datetime, source: str, requests: int, errors: int, samples: list[float]
) -> None:
    """Add requests to the slot's bucket for `minute` (created on first use), keeping at most MAX_SAMPLES latencies."""
    with transaction.atomic():
        bucket = SimulatorMetricBucket.objects.select_for_update(no_key=True).filter(
            slot=slot, minute=minute, source=source
        )
        row = bucket.first()
        if row is None:
            row, _ = SimulatorMetricBucket.objects.get_or_create(slot=slot, minute=minute, source=source)
            row = bucket.get()  # locked, also when another process created it first
        row.requests += requests
        row.errors += errors
        room = SimulatorMetricBucket.MAX_SAMPLES - len(row.latency_samples)
        if room > 0:
            row.latency_samples = row.latency_samples + [round(x, 1) for x in samples[:room]]
        row.save(update_fields=["requests", "errors", "latency_samples"])


@dataclass(frozen=True)
class Served:
    """What a slot answered to one request."""

    slot: SimulatorSlot
    profile: Profile
    status: int  # 200, 500 (the version's error rate) or 403 (the slot is stopped)
    latency_ms: float
    served_total: int  # the slot's counter, this request included

    @property
    def version(self) -> str:
        return self.slot.version


def serve(application: Application, slot: SimulatorSlot, *, draw: Callable[[], float] = random.random) -> Served:
    """Answer one request on `slot` as its version would, and count it.

    A stopped slot answers 403 like App Service and counts nothing. Otherwise the request fails
    (HTTP 500) with the version's error rate and takes a latency drawn from its profile; both are
    recorded in the slot's bucket for this minute, and the slot's page counter goes up by one.
    """
    profile = profile_for(application, slot.version)
    if not slot.running:
        return Served(slot, profile, 403, 0.0, slot.served_total)
    failed = draw() < profile.error_rate
    latency = profile.latency_ms(draw())
    with transaction.atomic():
        record(slot, floor_minute(clock.now()), SimulatorMetricBucket.Source.SERVED, 1, int(failed), [latency])
        SimulatorSlot.objects.filter(pk=slot.pk).update(served_total=F("served_total") + 1)
    # The counter as of this request (the row holds the exact total when requests race).
    return Served(slot, profile, 500 if failed else 200, latency, slot.served_total + 1)


# --- synthetic load --------------------------------------------------------------------------------
def generate_synthetic(application: Application) -> int:
    """Make up the synthetic requests since the last generation; returns how many were made.

    The site row is locked meanwhile, so two processes never generate the same interval twice.
    Buckets older than the retention period are dropped on the way.
    """
    timings = settings.SIMULATOR_TIMINGS
    site_for(application)
    made = 0
    with transaction.atomic():
        site = SimulatorSite.objects.select_for_update(no_key=True).get(application=application)
        now = clock.now()
        earliest = now - timedelta(minutes=timings["synthetic_backfill_minutes"])
        start = max(site.synthetic_generated_until or earliest, earliest)
        if start >= now:
            return 0
        if site.synthetic_rpm:
            slots = list(SimulatorSlot.objects.filter(application=application))
            if slots:
                made = _generate(application, slots, site.synthetic_rpm, start, now)
        SimulatorSite.objects.filter(pk=site.pk).update(synthetic_generated_until=now)
        retention = timedelta(hours=timings["metrics_retention_hours"])
        SimulatorMetricBucket.objects.filter(slot__application=application, minute__lt=now - retention).delete()
    return made


def _generate(application: Application, slots: list[SimulatorSlot], rpm: int, start: datetime, end: datetime) -> int:
    """Synthetic requests in [start, end): request i of minute M arrives at M + i·60/rpm seconds."""
    profiles = {s.version: profile_for(application, s.version) for s in slots}
    totals: dict[tuple[int, datetime], list] = {}
    by_pk = {s.pk: s for s in slots}
    made = 0
    minute = floor_minute(start)
    while minute < end:
        first = math.ceil((max(start, minute) - minute).total_seconds() * rpm / 60)
        last = min(math.ceil((min(end, minute + timedelta(minutes=1)) - minute).total_seconds() * rpm / 60), rpm)
        rng = random.Random(f"slipway-simulator/{application.pk}/{minute.isoformat()}")  # noqa: S311 - simulation
        for i in range(last):
            u_slot, u_error, u_latency = rng.random(), rng.random(), rng.random()
            if i < first:
                continue  # generated by an earlier call; drawn only to keep the stream aligned
            slot = choose_slot(slots, u_slot)
            if not slot.running:
                continue  # a stopped slot answers 403 and serves nothing worth counting
            profile = profiles[slot.version]
            entry = totals.setdefault((slot.pk, minute), [0, 0, []])
            entry[0] += 1
            entry[1] += int(u_error < profile.error_rate)
            if len(entry[2]) < SimulatorMetricBucket.MAX_SAMPLES:
                entry[2].append(profile.latency_ms(u_latency))
            made += 1
        minute += timedelta(minutes=1)
    for (slot_pk, at), (requests, errors, samples) in totals.items():
        record(by_pk[slot_pk], at, SimulatorMetricBucket.Source.SYNTHETIC, requests, errors, samples)
    return made


# --- reading ---------------------------------------------------------------------------------------
def slot_metrics(application: Application, slot_name: str, *, minutes: int = 5) -> MetricsSample:
    """Requests the slot served in the last `minutes`, rounded out to whole minute buckets."""
    slot = slot_or_404(application, slot_name)
    generate_synthetic(application)
    buckets = SimulatorMetricBucket.objects.filter(
        slot=slot, minute__gte=floor_minute(clock.now() - timedelta(minutes=max(minutes, 0)))
    )
    totals = buckets.aggregate(requests=Sum("requests"), errors=Sum("errors"))
    samples = [x for row in buckets.values_list("latency_samples", flat=True) for x in row]
    if len(samples) > MAX_SAMPLES_RETURNED:
        step = len(samples) / MAX_SAMPLES_RETURNED
        samples = [samples[int(i * step)] for i in range(MAX_SAMPLES_RETURNED)]
    return MetricsSample(requests=totals["requests"] or 0, errors=totals["errors"] or 0, latencies_ms=samples)
