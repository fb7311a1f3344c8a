"""Every write to the release domain goes through a function here.

Each function takes keyword-only arguments, runs in one transaction, writes its audit event(s) in
that same transaction, and raises `DomainError` with a message a person can act on when the change
is not allowed. `DomainError` lives in `portal.core.errors` (its `ErrorCode` says what the caller must
do differently); views and the API turn it into a message or a 4xx by its code, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.status_guard import status_writer
from releases.audit.services import audit_record, snapshot
from releases.catalog.models import (
    STAGE_ORDER,
    Application,
    Environment,
    Health,
    Provider,
    Release,
    ReleaseStatus,
    SimulatorSlot,
    Slot,
    Stage,
)
from releases.catalog.providers import (
    PRODUCTION_SLOT,
    AuthError,
    ConflictError,
    NotFoundError,
    ProviderError,
    TransientError,
)
from releases.catalog.providers.registry import provider_for

S = ReleaseStatus


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
    requests exactly one wins and the other gets a DomainError. This is the only writer of
    `Release.status`: the model refuses a status change made anywhere else (`portal.core.status_guard`).
    """
    transition = TRANSITIONS[action]
    now = clock.now()
    with transaction.atomic():
        current = (
            Release.objects.select_for_update(no_key=True, of=("self",))
            .select_related("application")
            .get(pk=release.pk)
        )
        if current.status not in transition.sources:
            raise DomainError(
                ErrorCode.TRANSITION_NOT_ALLOWED,
                f"{current} is {current.get_status_display().lower()}, so it cannot be {transition.verb}. "
                f"{transition.hint}",
            )
        before = snapshot(current, RELEASE_AUDIT_FIELDS)
        changes: dict[str, Any] = {"status": transition.target, "status_changed_at": now}
        if transition.target == S.APPROVED:
            changes["approved_at"] = now
        if transition.target == S.LIVE:
            changes["live_at"] = now
        with status_writer(Release):  # the one writer of Release.status (portal.core.status_guard)
            updated = Release.objects.filter(pk=current.pk, status=current.status).update(**changes)
        if updated != 1:  # pragma: no cover - select_for_update makes this unreachable on PostgreSQL
            raise DomainError(
                ErrorCode.CONCURRENT_CHANGE, f"{current} changed while you were acting on it; reload and try again."
            )
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


def release_request_approval(*, release: Release, actor: Any, reason: str = "") -> Release:
    return _transition(release, "release.approval_requested", actor=actor, reason=reason)


def release_lapse_approval(*, release: Release, actor: Any = None, reason: str = "") -> Release:
    return _transition(release, "release.approval_lapsed", actor=actor, reason=reason)


def release_approve(*, release: Release, actor: Any, reason: str = "") -> Release:
    return _transition(release, "release.approved", actor=actor, reason=reason)


def release_reject(*, release: Release, actor: Any, reason: str) -> Release:
    if not reason.strip():
        raise DomainError(ErrorCode.INVALID, "Say why the release is rejected; a rejection needs a comment.")
    return _transition(release, "release.rejected", actor=actor, reason=reason)


def release_start_rollout(*, release: Release, actor: Any, reason: str = "") -> Release:
    return _transition(release, "release.rollout_started", actor=actor, reason=reason)


def release_mark_failed(*, release: Release, actor: Any = None, reason: str) -> Release:
    return _transition(release, "release.rollout_failed", actor=actor, reason=reason)


def release_roll_back(*, release: Release, actor: Any, reason: str) -> Release:
    if not reason.strip():
        raise DomainError(
            ErrorCode.INVALID,
            "Say why the release is rolled back; a rollback needs a reason.",
            fields={"reason": "A rollback needs a reason."},
        )
    return _transition(release, "release.rolled_back", actor=actor, reason=reason)


def release_restore(*, release: Release, actor: Any, reason: str) -> Release:
    """Bring a superseded release back to live (the target of a rollback)."""
    live = Release.objects.filter(application_id=release.application_id, status=S.LIVE).exclude(pk=release.pk).first()
    if live is not None:
        raise DomainError(ErrorCode.CONFLICT, f"{live} is live; roll it back before restoring {release.version}.")
    try:
        return _transition(release, "release.restored", actor=actor, reason=reason)
    except IntegrityError:  # another release went live in between; the constraint held
        raise DomainError(
            ErrorCode.CONCURRENT_CHANGE,
            f"Another release of {release.application} went live meanwhile; reload and check.",
        ) from None


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

    now = clock.now()
    try:
        states = {s.name: s for s in provider_for(application).slot_states(application)}
    except ProviderError as exc:
        with transaction.atomic():
            Application.objects.filter(pk=application.pk).update(slots_refresh_error=str(exc), slots_refreshed_at=now)
        return RefreshResult([], [], [], [], error=str(exc))

    result = RefreshResult([], [], [], [])
    with transaction.atomic():
        slots = {s.name: s for s in Slot.objects.select_for_update(no_key=True).filter(application=application)}
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


# --- applications: onboarding and connection ---------------------------------------------------
APPLICATION_AUDIT_FIELDS = [
    "name",
    "slug",
    "team",
    "provider",
    "azure_subscription_id",
    "azure_resource_group",
    "azure_site_name",
    "azure_credential",
    "health_check_path",
    "default_strategy",
]
# What a new simulated site starts with: App Service's main slot plus three deployment slots.
SIMULATOR_DEFAULT_SLOTS = ["production", "staging", "test", "dev"]


def application_create(*, actor: Any, **fields: Any) -> Application:
    """Create an application (fields as on the model). A simulated one gets its simulated site too."""
    from django.core.exceptions import ValidationError

    application = Application(**fields)
    try:
        application.full_clean()
    except ValidationError as exc:
        raise DomainError(
            ErrorCode.INVALID,
            "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()),
            fields=exc.message_dict,
        ) from None
    with transaction.atomic():
        application.save()
        if application.provider == Provider.SIMULATOR:
            SimulatorSlot.objects.bulk_create(
                SimulatorSlot(application=application, slot_name=name) for name in SIMULATOR_DEFAULT_SLOTS
            )
        audit_record(
            actor=actor,
            action="application.created",
            obj=application,
            application=application,
            after=snapshot(application, APPLICATION_AUDIT_FIELDS),
        )
    return application


@dataclass
class ConnectionReport:
    ok: bool
    slots: list[Any]  # providers.SlotState
    problem: str = ""  # what failed, in words a person can act on
    provider_message: str = ""  # the provider's own words


def application_test_connection(*, application: Application) -> ConnectionReport:
    """Ask the provider for the site's slots and explain any failure. Reads only; nothing is stored."""

    where = (
        f"site “{application.azure_site_name}” in resource group “{application.azure_resource_group}” "
        f"of subscription {application.azure_subscription_id}"
        if application.provider == Provider.AZURE
        else f"the simulated site of {application.name}"
    )
    try:
        slots = provider_for(application).slot_states(application)
    except AuthError as exc:
        if exc.status == 403:
            problem = (
                f"Signed in, but the identity may not read the {where}. Grant it the Website Contributor role "
                "on the site (and Monitoring Reader for canary metrics)."
            )
        else:
            problem = (
                f"Slipway could not sign in to Azure with the “{application.get_azure_credential_display()}” "
                "credential. Check the AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET variables of the "
                "web and worker processes, or choose another credential."
            )
        return ConnectionReport(False, [], problem, str(exc))
    except NotFoundError as exc:
        problem = f"There is no {where} that this identity can see. Check the subscription, resource group and site."
        return ConnectionReport(False, [], problem, str(exc))
    except (TransientError, ConflictError) as exc:
        problem = "The provider did not answer in time or asked us to slow down; try again in a minute."
        return ConnectionReport(False, [], problem, str(exc))
    except ProviderError as exc:
        return ConnectionReport(False, [], "The provider refused the request.", str(exc))
    if not slots:
        return ConnectionReport(False, [], f"The {where} answered but has no slots.")
    return ConnectionReport(True, slots)


def application_map_slots(*, application: Application, actor: Any, mapping: dict[str, str], slots: list[Any]) -> None:
    """Bind each stage to a discovered slot: creates or updates Slot and Environment rows, audited.

    `mapping` is stage → slot name ("" leaves the stage unbound); `slots` are the provider's SlotStates.
    """

    discovered = {s.name: s for s in slots}
    chosen = {stage: name for stage, name in mapping.items() if name}
    if chosen.get(Stage.PRODUCTION) != PRODUCTION_SLOT:
        raise DomainError(
            ErrorCode.INVALID, f"Production must be the site's “{PRODUCTION_SLOT}” slot; it takes the live traffic."
        )
    if PRODUCTION_SLOT in {name for stage, name in chosen.items() if stage != Stage.PRODUCTION}:
        raise DomainError(ErrorCode.INVALID, "The production slot can only be bound to the production stage.")
    used = list(chosen.values())
    if len(used) != len(set(used)):
        raise DomainError(ErrorCode.INVALID, "Each slot can serve one stage only; pick different slots.")
    unknown = set(used) - set(discovered)
    if unknown:
        raise DomainError(
            ErrorCode.INVALID, f"The site has no slot named {', '.join(sorted(unknown))}; test the connection again."
        )

    with transaction.atomic():
        environments = {env.stage: env for env in application.environments.select_related("slot")}
        before = {stage: env.slot.name for stage, env in environments.items()}
        # 1. Stages left unbound lose their environment, unless it already has history.
        for stage, env in list(environments.items()):
            if stage not in chosen:
                if env.approval_requests.exists() or env.operations.exists():
                    raise DomainError(
                        ErrorCode.CONFLICT,
                        f"{env.name} already has approvals or operations on record, so it cannot be unbound.",
                    )
                env.delete()
                del environments[stage]
        # 2. Slots as discovered (hostname may have changed).
        slot_rows = {}
        for name in chosen.values():
            state = discovered[name]
            slot_rows[name], _ = Slot.objects.update_or_create(
                application=application,
                name=name,
                defaults={"hostname": state.hostname, "is_production": name == PRODUCTION_SLOT},
            )
        # 3. Bind, freeing slots before reusing them: a stage moving to a slot another stage is about to
        #    leave waits for it. Two stages trading slots cannot be ordered and are refused.
        pending = dict(chosen)
        while pending:
            progressed = False
            for stage, name in list(pending.items()):
                slot, env = slot_rows[name], environments.get(stage)
                holder = Environment.objects.filter(slot=slot).exclude(application=application, stage=stage).first()
                if holder is not None:
                    continue
                if env is None:
                    environments[stage] = Environment.objects.create(
                        application=application,
                        stage=stage,
                        name=Stage(stage).label,
                        position=STAGE_ORDER[Stage(stage)],
                        slot=slot,
                    )
                elif env.slot_id != slot.pk:
                    env.slot = slot
                    env.save(update_fields=["slot"])
                del pending[stage]
                progressed = True
            if not progressed:
                stuck = ", ".join(f"{Stage(stage).label} → {name}" for stage, name in pending.items())
                raise DomainError(
                    ErrorCode.CONFLICT,
                    f"These stages want slots other stages still hold: {stuck}. Two stages cannot trade slots in "
                    "one step; unbind one of them first.",
                )
        after = {env.stage: env.slot.name for env in application.environments.select_related("slot")}
        if after != before:
            audit_record(
                actor=actor,
                action="application.slots_mapped",
                obj=application,
                application=application,
                before=before,
                after=after,
            )
