"""Reads for the pages: each returns exactly what a page shows, in few queries."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from releases.catalog.models import Application, Environment, Release, ReleaseStatus


def teams() -> list[str]:
    return list(Application.objects.order_by("team").values_list("team", flat=True).distinct())


def releases_for(*, application: Application | None = None, status: str = "") -> QuerySet[Release]:
    qs = Release.objects.select_related("application", "created_by")
    if application is not None:
        qs = qs.filter(application=application)
    if status:
        qs = qs.filter(status=status)
    return qs


# --- history and the audit trail -------------------------------------------------------------------


def live_release_of(application: Application) -> Release | None:
    return Release.objects.filter(application=application, status=ReleaseStatus.LIVE).first()


def releases_between(older: Release, newer: Release, *, limit: int) -> list[Release]:
    """The releases after `older` up to and including `newer` (same application), newest first.

    What changes when going from `older` to `newer`. At most `limit + 1` rows, so the caller can
    tell that there are more than `limit` without counting them.
    """
    after_older = Q(created_at__gt=older.created_at) | Q(created_at=older.created_at, pk__gt=older.pk)
    up_to_newer = Q(created_at__lt=newer.created_at) | Q(created_at=newer.created_at, pk__lte=newer.pk)
    return list(
        Release.objects.filter(after_older, up_to_newer, application_id=older.application_id)
        .select_related("created_by")
        .order_by("-created_at", "-id")[: limit + 1]
    )


# --- approvals -------------------------------------------------------------------------------------


def releases_since_live(release: Release) -> list[Release]:
    """The releases between the one live in production (exclusive) and `release` (inclusive), newest first.

    Their notes are what changes for users when `release` reaches production.
    """
    live = Release.objects.filter(application_id=release.application_id, status=ReleaseStatus.LIVE).first()
    qs = Release.objects.filter(application_id=release.application_id).filter(
        Q(created_at__lt=release.created_at) | Q(created_at=release.created_at, pk__lte=release.pk)
    )
    if live is not None:
        qs = qs.filter(Q(created_at__gt=live.created_at) | Q(created_at=live.created_at, pk__gt=live.pk))
    return list(qs.select_related("created_by").order_by("-created_at", "-id")[:50])


# --- the application page ---------------------------------------------------------------------------


@dataclass
class TrafficShare:
    slot: str
    version: str
    percent: int
    offset: int  # where its bar starts, in percent


def traffic_split(environments: list[Environment]) -> list[TrafficShare]:
    """Who takes production's visitors: the routed slots' shares, and production the rest."""
    slots = [env.slot for env in environments]
    routed = [s for s in slots if not s.is_production and s.traffic_percent]
    production = next((s for s in slots if s.is_production), None)
    shares = []
    if production is not None:
        rest = max(0, 100 - sum(s.traffic_percent for s in routed))
        shares.append(TrafficShare(production.name, production.running_version, rest, 0))
    offset = shares[0].percent if shares else 0
    for slot in routed:
        shares.append(TrafficShare(slot.name, slot.running_version, slot.traffic_percent, offset))
        offset += slot.traffic_percent
    return shares
