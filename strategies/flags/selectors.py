"""Reads behind the flag pages: stale flags, a flag's history with diffs, a dark launch's figures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Q, QuerySet, Sum, Value, When
from django.db.models.fields import BooleanField
from scipy import stats

from portal.core import clock
from releases.audit.models import AuditEvent
from strategies.flags.definitions import definition_diff
from strategies.flags.evaluation import exposures
from strategies.flags.models import DarkLaunch, Flag, FlagEventBucket, Lifecycle
from strategies.flags.services import stale_filter


def stale_flags() -> QuerySet[Flag]:
    return (
        Flag.objects.filter(stale_filter(clock.now().date()))
        .select_related("environment__application", "owner")
        .order_by("planned_removal", "environment__application__name", "key")
    )


def flags_of(application_id: int) -> QuerySet[Flag]:
    return (
        Flag.objects.filter(environment__application_id=application_id)
        .exclude(lifecycle=Lifecycle.ARCHIVED)
        .select_related("environment", "owner")
        .prefetch_related("launches")
        .order_by("environment__position", "key")
    )


@dataclass(frozen=True)
class HistoryEntry:
    event: AuditEvent
    diff: list[str]


def flag_history(flag: Flag, *, limit: int = 50) -> list[HistoryEntry]:
    """The flag's audit events (its own and its launches'), newest first, each with the definition's diff."""
    launch_ids = [str(pk) for pk in flag.launches.values_list("pk", flat=True)]
    events = (
        AuditEvent.objects.filter(
            Q(object_type="strategies.flag", object_id=str(flag.pk))
            | Q(object_type="strategies.darklaunch", object_id__in=launch_ids)
        )
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )
    return [HistoryEntry(event, definition_diff(event.before, event.after)) for event in events]


@dataclass(frozen=True)
class Side:
    """Reported outcomes of one side of a launch: the cohort (launched variant) or everyone else."""

    count: int = 0
    errors: int = 0
    latency_count: int = 0
    latency_sum: float = 0.0
    latency_sumsq: float = 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.count if self.count else None

    @property
    def latency_mean(self) -> float | None:
        return self.latency_sum / self.latency_count if self.latency_count else None

    @property
    def latency_sd(self) -> float | None:
        if self.latency_count < 2:
            return None
        mean = self.latency_sum / self.latency_count
        variance = (self.latency_sumsq - self.latency_count * mean * mean) / (self.latency_count - 1)
        return math.sqrt(max(variance, 0.0))


@dataclass(frozen=True)
class LaunchFigures:
    exposures_total: int | None
    exposures_last_hour: int | None
    cohort: Side
    others: Side
    error_p_value: float | None  # one-sided: is the cohort's error rate higher than everyone else's?
    latency_p_value: float | None  # one-sided Welch test from the moments: is the cohort slower?

    @property
    def verdict(self) -> str:
        if self.cohort.count < 30 or self.others.count < 30:
            return "Too few reported events to compare yet (30 a side at least)."
        worse = []
        if self.error_p_value is not None and self.error_p_value < 0.01:
            worse.append("has more errors")
        if self.latency_p_value is not None and self.latency_p_value < 0.01:
            worse.append("is slower")
        if worse:
            return f"The cohort {' and '.join(worse)} than everyone else (p < 0.01)."
        return "No significant difference between the cohort and everyone else."


def _two_proportion_p(a: Side, b: Side) -> float | None:
    if not a.count or not b.count:
        return None
    pooled = (a.errors + b.errors) / (a.count + b.count)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.count + 1 / b.count))
    if se == 0:
        return None
    z = ((a.errors / a.count) - (b.errors / b.count)) / se
    return float(stats.norm.sf(z))


def _welch_p(a: Side, b: Side) -> float | None:
    if a.latency_sd is None or b.latency_sd is None or a.latency_mean is None or b.latency_mean is None:
        return None
    va, vb = a.latency_sd**2 / a.latency_count, b.latency_sd**2 / b.latency_count
    if va + vb == 0:
        return None
    t = (a.latency_mean - b.latency_mean) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / ((va**2 / (a.latency_count - 1)) + (vb**2 / (b.latency_count - 1)) or 1e-12)
    return float(stats.t.sf(t, dof))


def launch_figures(launch: DarkLaunch) -> LaunchFigures:
    """Exposures (Redis) and the cohort's reported errors and latency against everyone else's (summed in SQL)."""
    flag = launch.flag
    buckets = FlagEventBucket.objects.filter(
        environment_id=flag.environment_id,
        flag_key=flag.key,
        minute__gte=launch.started_at.replace(second=0, microsecond=0),
    )
    if launch.ended_at:
        buckets = buckets.filter(minute__lte=launch.ended_at)
    rows = (
        buckets.annotate(
            in_cohort=Case(
                When(variant=launch.variant, then=Value(True)), default=Value(False), output_field=BooleanField()
            )
        )
        .values("in_cohort")
        .annotate(
            n=Sum("count"),
            e=Sum("errors"),
            lc=Sum("latency_count"),
            ls=Sum("latency_sum"),
            lss=Sum("latency_sumsq"),
        )
    )
    sides: dict[bool, Side] = {}
    for row in rows:
        sides[bool(row["in_cohort"])] = Side(
            int(row["n"] or 0), int(row["e"] or 0), int(row["lc"] or 0), float(row["ls"] or 0), float(row["lss"] or 0)
        )
    cohort, others = sides.get(True, Side()), sides.get(False, Side())
    total, last_hour = exposures(launch.pk)
    return LaunchFigures(
        exposures_total=total,
        exposures_last_hour=last_hour,
        cohort=cohort,
        others=others,
        error_p_value=_two_proportion_p(cohort, others),
        latency_p_value=_welch_p(cohort, others),
    )


def cohort_summary(launch: DarkLaunch) -> str:
    cohort: dict[str, Any] = launch.cohort
    parts = []
    if cohort.get("segments"):
        parts.append("segment " + ", ".join(cohort["segments"]))
    if cohort.get("users"):
        users = cohort["users"]
        parts.append(
            f"{len(users)} user{'s' if len(users) != 1 else ''} ({', '.join(users[:5])}{'…' if len(users) > 5 else ''})"
        )
    who = " or ".join(parts) or "everyone"
    if cohort.get("percent") is not None:
        who = f"{cohort['percent']:g} % of {who}"
    return who
