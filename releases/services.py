"""Every write to the release domain goes through a function here.

Each function takes keyword-only arguments, runs in one transaction, writes its audit event(s) in
that same transaction, and raises `DomainError` with a message a person can act on when the change
is not allowed. Views and the API turn `DomainError` into a message or a 4xx, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from portal import clock

from .audit import audit_record, snapshot
from .models import (
    Application,
    Release,
    ReleaseStatus,
    Slot,
)

S = ReleaseStatus


class DomainError(Exception):
    """A change the rules do not allow. `str(error)` is shown to the person who asked for it."""


@dataclass(frozen=True)
class Transition:
    action: str  # audit action, e.g. "release.approved"
    sources: frozenset[str]
    target: str
    verb: str  # completes "cannot be ..."
    hint: str  # what would make it possible


# The release lifecycle, in one table. Each named service below performs exactly one of these.
TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in [
        Transition(
            "release.approval_requested",
            frozenset({S.REGISTERED}),
            S.AWAITING_APPROVAL,
            "sent for approval",
            "Only a newly registered release (or one whose request lapsed) can be.",
        ),
        Transition(
            "release.approval_lapsed",
            frozenset({S.AWAITING_APPROVAL}),
            S.REGISTERED,
            "returned to registered",
            "Only a release awaiting approval can lapse.",
        ),
        Transition(
            "release.approved",
            frozenset({S.AWAITING_APPROVAL}),
            S.APPROVED,
            "approved",
            "A release must be awaiting approval to be approved.",
        ),
        Transition(
            "release.rejected",
            frozenset({S.AWAITING_APPROVAL}),
            S.REJECTED,
            "rejected",
            "A release must be awaiting approval to be rejected.",
        ),
        Transition(
            "release.rollout_started",
            frozenset({S.APPROVED}),
            S.ROLLING_OUT,
            "rolled out",
            "Only an approved release can be promoted.",
        ),
        Transition(
            "release.went_live",
            frozenset({S.ROLLING_OUT}),
            S.LIVE,
            "marked live",
            "Only a release that is rolling out can go live.",
        ),
        Transition(
            "release.rollout_failed",
            frozenset({S.ROLLING_OUT}),
            S.FAILED,
            "marked failed",
            "Only a release that is rolling out can fail.",
        ),
        Transition(
            "release.rolled_back",
            frozenset({S.ROLLING_OUT, S.LIVE}),
            S.ROLLED_BACK,
            "rolled back",
            "Only a release that is rolling out or live can be rolled back.",
        ),
        Transition(
            "release.superseded",
            frozenset({S.LIVE}),
            S.SUPERSEDED,
            "superseded",
            "Only the live release can be superseded.",
        ),
        Transition(
            "release.restored",
            frozenset({S.SUPERSEDED}),
            S.LIVE,
            "restored to production",
            "Only a release that was live before can be restored by a rollback.",
        ),
    ]
}

RELEASE_AUDIT_FIELDS = ["status", "status_changed_at", "approved_at", "live_at"]


def allowed_targets(status: str) -> set[str]:
    return {t.target for t in TRANSITIONS.values() if status in t.sources}


def _transition(release: Release, action: str, *, actor: Any, reason: str = "") -> Release:
    """Move `release` along one edge of the lifecycle with a guarded conditional UPDATE.

    The UPDATE only matches while the row is still in an allowed source state, so of two racing
    requests exactly one wins and the other gets a DomainError.
    """
    transition = TRANSITIONS[action]
    now = clock.now()
    with transaction.atomic():
        current = Release.objects.select_for_update(of=("self",)).select_related("application").get(pk=release.pk)
        if current.status not in transition.sources:
            raise DomainError(
                f"{current} is {current.get_status_display().lower()}, so it cannot be {transition.verb}. "
                f"{transition.hint}"
            )
        before = snapshot(current, RELEASE_AUDIT_FIELDS)
        changes: dict[str, Any] = {"status": transition.target, "status_changed_at": now}
        if transition.target == S.APPROVED:
            changes["approved_at"] = now
        if transition.target == S.LIVE:
            changes["live_at"] = now
        updated = Release.objects.filter(pk=current.pk, status=current.status).update(**changes)
        if updated != 1:  # pragma: no cover - select_for_update makes this unreachable on PostgreSQL
            raise DomainError(f"{current} changed while you were acting on it; reload and try again.")
        current.refresh_from_db()
        audit_record(
            actor=actor,
            action=action,
            obj=current,
            application=current.application,
            before=before,
            after=snapshot(current, RELEASE_AUDIT_FIELDS),
            reason=reason,
        )
    release.refresh_from_db()
    return release


def release_register(
    *,
    application: Application,
    version: str,
    actor: AbstractBaseUser | None,
    build_id: str = "",
    commit_sha: str = "",
    branch: str = "",
    notes: str = "",
    artifact_url: str = "",
    deployed_slot: Slot | None = None,
) -> Release:
    version = version.strip()
    if not version:
        raise DomainError("A release needs a version.")
    if deployed_slot is not None and deployed_slot.application_id != application.pk:
        raise DomainError(f"Slot {deployed_slot.name!r} does not belong to {application.name}.")
    now = clock.now()
    try:
        with transaction.atomic():
            release = Release.objects.create(
                application=application,
                version=version,
                build_id=build_id,
                commit_sha=commit_sha,
                branch=branch,
                notes=notes,
                artifact_url=artifact_url,
                deployed_slot=deployed_slot,
                created_by=actor if getattr(actor, "pk", None) else None,
                created_at=now,
                status_changed_at=now,
            )
            audit_record(
                actor=actor,
                action="release.registered",
                obj=release,
                application=application,
                after=snapshot(release, ["version", "build_id", "commit_sha", "branch", "status", "deployed_slot"]),
            )
    except IntegrityError:
        if Release.objects.filter(application=application, version=version).exists():
            raise DomainError(f"{application.name} already has a release {version}.") from None
        raise
    return release


def release_request_approval(*, release: Release, actor: Any, reason: str = "") -> Release:
    return _transition(release, "release.approval_requested", actor=actor, reason=reason)


def release_lapse_approval(*, release: Release, actor: Any = None, reason: str = "") -> Release:
    return _transition(release, "release.approval_lapsed", actor=actor, reason=reason)


def release_approve(*, release: Release, actor: Any, reason: str = "") -> Release:
    return _transition(release, "release.approved", actor=actor, reason=reason)


def release_reject(*, release: Release, actor: Any, reason: str) -> Release:
    if not reason.strip():
        raise DomainError("Say why the release is rejected; a rejection needs a comment.")
    return _transition(release, "release.rejected", actor=actor, reason=reason)


def release_start_rollout(*, release: Release, actor: Any, reason: str = "") -> Release:
    return _transition(release, "release.rollout_started", actor=actor, reason=reason)


def release_mark_failed(*, release: Release, actor: Any = None, reason: str) -> Release:
    return _transition(release, "release.rollout_failed", actor=actor, reason=reason)


def release_roll_back(*, release: Release, actor: Any, reason: str) -> Release:
    if not reason.strip():
        raise DomainError("Say why the release is rolled back; a rollback needs a reason.")
    return _transition(release, "release.rolled_back", actor=actor, reason=reason)


def release_restore(*, release: Release, actor: Any, reason: str) -> Release:
    """Bring a superseded release back to live (the target of a rollback)."""
    live = Release.objects.filter(application_id=release.application_id, status=S.LIVE).exclude(pk=release.pk).first()
    if live is not None:
        raise DomainError(f"{live} is live; roll it back before restoring {release.version}.")
    try:
        return _transition(release, "release.restored", actor=actor, reason=reason)
    except IntegrityError:  # another release went live in between; the constraint held
        raise DomainError(f"Another release of {release.application} went live meanwhile; reload and check.") from None


def release_go_live(*, release: Release, actor: Any = None, reason: str = "") -> Release:
    """Mark a rolling-out release live; the release that was live before becomes superseded.

    Both happen in one transaction, so the application never has two live releases (a database
    constraint as well) nor none in between.
    """
    with transaction.atomic():
        previous = (
            Release.objects.filter(application_id=release.application_id, status=S.LIVE).exclude(pk=release.pk).first()
        )
        if previous is not None:
            _transition(previous, "release.superseded", actor=actor, reason=f"Superseded by {release.version}")
        return _transition(release, "release.went_live", actor=actor, reason=reason)


SLOT_OBSERVED_FIELDS = ["running_version", "current_release", "traffic_percent", "health", "health_detail"]


@dataclass
class RefreshResult:
    changed: list[str]
    unchanged: list[str]
    unknown: list[str]  # slots the provider reports that Slipway does not model
    missing: list[str]  # slots Slipway models that the provider does not report
    error: str = ""


def slots_refresh(*, application: Application, actor: Any = None) -> RefreshResult:
    """Read every slot's state from the provider and record what changed (audited per slot)."""
    from .models import Health
    from .providers import ProviderError, provider_for

    now = clock.now()
    try:
        states = {s.name: s for s in provider_for(application).slot_states(application)}
    except ProviderError as exc:
        with transaction.atomic():
            Application.objects.filter(pk=application.pk).update(slots_refresh_error=str(exc), slots_refreshed_at=now)
        return RefreshResult([], [], [], [], error=str(exc))

    result = RefreshResult([], [], [], [])
    with transaction.atomic():
        slots = {s.name: s for s in Slot.objects.select_for_update().filter(application=application)}
        releases_by_version = {
            r.version: r
            for r in Release.objects.filter(application=application, version__in=[s.version for s in states.values()])
        }
        for name, slot in slots.items():
            state = states.get(name)
            if state is None:
                result.missing.append(name)
                continue
            before = snapshot(slot, SLOT_OBSERVED_FIELDS)
            slot.running_version = state.version
            slot.current_release = releases_by_version.get(state.version)
            slot.traffic_percent = state.traffic_percent
            slot.health = {True: Health.HEALTHY, False: Health.UNHEALTHY, None: Health.UNKNOWN}[state.healthy]
            slot.health_detail = state.detail[:500]
            slot.refreshed_at = now
            slot.save()
            after = snapshot(slot, SLOT_OBSERVED_FIELDS)
            if after != before:
                audit_record(
                    actor=actor,
                    action="slot.observed",
                    obj=slot,
                    application=application,
                    before=before,
                    after=after,
                    reason="Slot refresh from the provider",
                )
                result.changed.append(name)
            else:
                result.unchanged.append(name)
        result.unknown = sorted(set(states) - set(slots))
        Application.objects.filter(pk=application.pk).update(slots_refresh_error="", slots_refreshed_at=now)
    return result
