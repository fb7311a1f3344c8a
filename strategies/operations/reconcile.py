"""Reconciliation: does production run where Slipway says it does? (Drift detection and its repair.)

Slipway's belief, for an application with no operation in flight: its production slot runs the live
release; no deployment slot takes any of production's traffic; no swap preview is left applied. The
provider's state is read (`slot_states`, and the previews where the provider can tell) and compared.
A difference — from a bug, a crash, or a person swapping in the Azure portal — is a `Drift`: it is
audited, shown on the dashboard and the application's page, mailed to the release managers, and
blocks promotions (the "no drift" gate) until it is resolved.

Checked after every operation ends (the engine queues `reconcile_application_job`) and periodically
for every application (`reconcile_all_job`, portal.cron). A drift is resolved by a check that finds
production as Slipway says it is again. `drift_repair` puts it back through the engine: an operation
of kind "repair" that routes 0 % to every routed slot, cancels any preview, and swaps the live build
back into production from the slot it is warm in — each an idempotent step, undone by nothing.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import django_rq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from rq import get_current_job

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import ROLE_PERMISSION, Role, require_role
from releases.audit.services import audit_record, origin
from releases.catalog.jobs import enqueue_slots_refresh
from releases.catalog.models import Application, Environment, Release, ReleaseStatus, Stage
from releases.catalog.providers import PRODUCTION_SLOT, ProviderError
from releases.catalog.providers.registry import provider_for
from strategies.operations import engine
from strategies.operations.models import (
    OPERATION_ACTIVE,
    Drift,
    Operation,
    OperationStatus,
    OperationStep,
    StepStatus,
)
from strategies.operations.plan import StepSpec, swap_step

log = logging.getLogger("strategies.operations.reconcile")


@dataclass(frozen=True)
class Finding:
    what: str  # one sentence a person can act on
    expected: str
    found: str
    kind: str  # "version", "routing", "preview": what the repair does about it
    slot: str


def _production(application: Application) -> Environment | None:
    return application.environments.filter(stage=Stage.PRODUCTION).select_related("slot").first()


def in_flight(application: Application) -> bool:
    """An operation is changing this application's production: its own, or another's rings (a ring target)."""
    active = Operation.objects.filter(status__in=OPERATION_ACTIVE)
    return (
        active.filter(application=application).exists()
        or active.filter(steps__parameters__application=application.pk).exists()
    )


def application_findings(application: Application) -> list[Finding] | None:
    """What differs between the provider and Slipway's belief; None when there is nothing to compare now
    (an operation is in flight, there is no production or no live release, the provider cannot be read)."""
    if in_flight(application):
        return None
    environment = _production(application)
    live = Release.objects.filter(application=application, status=ReleaseStatus.LIVE).first()
    if environment is None or live is None:
        return None
    provider = provider_for(application)
    try:
        states = provider.slot_states(application, probe=False)
        previews = _previews(provider, application)
    except ProviderError as exc:
        log.warning("reconcile: could not read %s from its provider: %s", application, exc)
        return None
    target = environment.slot.name
    findings: list[Finding] = []
    production = next((s for s in states if s.name == target), None)
    expected, why = _believed_version(application, live)
    if production is None:
        findings.append(Finding(f"The provider reports no {target} slot.", expected, "no slot", "missing", target))
    elif production.version and production.version != expected:
        findings.append(
            Finding(f"{target} runs {production.version}, but {why}.", expected, production.version, "version", target)
        )
    for state in states:
        if state.name != target and state.name != PRODUCTION_SLOT and state.traffic_percent > 0:
            findings.append(
                Finding(
                    f"{state.traffic_percent} % of production's traffic is routed to {state.name} "
                    f"({state.version or 'an unknown build'}), and no operation is running.",
                    "0 %",
                    f"{state.traffic_percent} %",
                    "routing",
                    state.name,
                )
            )
    for slot, previewing in previews:
        findings.append(
            Finding(
                f"A swap preview of {slot} with {previewing} is still applied.",
                "no preview",
                f"{slot} has {previewing}'s settings",
                "preview",
                slot,
            )
        )
    return findings


def _believed_version(application: Application, live: Release) -> tuple[str, str]:
    """What production should run: the live release — unless a rings promotion of another application swapped
    its build into this one's production (a ring target) since, and succeeded."""
    ring_swap = (
        OperationStep.objects.filter(
            kind="swap",
            status=StepStatus.SUCCEEDED,
            parameters__application=application.pk,
            operation__status=OperationStatus.SUCCEEDED,
            finished_at__gt=live.status_changed_at,
        )
        .select_related("operation__application")
        .order_by("-finished_at")
        .first()
    )
    if ring_swap is not None and not ring_swap.parameters.get("undo"):
        version = ring_swap.parameters["expect_version"]
        return version, f"{ring_swap.operation.application.name}'s rings put {version} there"
    return live.version, f"the live release is {live.version}"


def _previews(provider: Any, application: Application) -> list[tuple[str, str]]:
    """(slot, previewed target) for each applied preview, where the provider can tell (the simulator).
    App Service's ARM API does not say whether a slot's configuration was applied for a swap preview."""
    applied = getattr(provider, "applied_previews", None)
    return list(applied(application)) if applied else []


# --- the record ------------------------------------------------------------------------------------
def reconcile(application: Application) -> Drift | None:
    """Compare now and record the outcome: open a drift, update its findings, or resolve it. Returns the open
    drift, if any. Idempotent; safe to run from any number of processes (one open drift per application)."""
    findings = application_findings(application)
    now = clock.now()
    if findings is None:
        return Drift.objects.filter(application=application, resolved_at__isnull=True).first()
    rows = [asdict(f) for f in findings]
    with transaction.atomic():
        Application.objects.select_for_update(no_key=True).filter(pk=application.pk).first()  # one checker at a time
        current = Drift.objects.filter(application=application, resolved_at__isnull=True).first()
        if in_flight(application):  # an operation started while the provider was read: its state is not drift
            return current
        if not findings:
            if current is not None:
                resolution = (
                    f"Production matches again after repair #{current.repair_id}."
                    if current.repair_id
                    else "Production matches what Slipway says again."
                )
                Drift.objects.filter(pk=current.pk).update(resolved_at=now, checked_at=now, resolution=resolution)
                _observe(application)
                audit_record(
                    actor=None,
                    action="drift.resolved",
                    obj=current,
                    application=application,
                    before={"findings": current.findings},
                    after={"findings": []},
                    reason=resolution,
                )
            return None
        if current is None:
            try:
                with transaction.atomic():
                    current = Drift.objects.create(application=application, found_at=now, checked_at=now, findings=rows)
            except IntegrityError:  # another checker opened it meanwhile
                return Drift.objects.filter(application=application, resolved_at__isnull=True).first()
            audit_record(
                actor=None,
                action="drift.found",
                obj=current,
                application=application,
                after={"findings": rows},
                reason="; ".join(f.what for f in findings),
            )
            transaction.on_commit(lambda: _notify_later(current.pk))
            _observe(application)
            log.warning("drift on %s: %s", application, current.summary)
        elif current.findings != rows:
            audit_record(
                actor=None,
                action="drift.changed",
                obj=current,
                application=application,
                before={"findings": current.findings},
                after={"findings": rows},
                reason="; ".join(f.what for f in findings),
            )
            Drift.objects.filter(pk=current.pk).update(findings=rows, checked_at=now)
            _observe(application)
        else:
            Drift.objects.filter(pk=current.pk).update(checked_at=now)
    current.refresh_from_db()
    return current


def _observe(application: Application) -> None:
    """What the dashboard and the application page show of the slots is refreshed too, so that they show what
    the drift says (a swap behind Slipway's back changed them without any of Slipway's jobs noticing)."""
    try:
        enqueue_slots_refresh(application)
    except Exception:  # the drift is recorded either way; a stale picture is only stale
        log.exception("reconcile: could not queue a refresh of the slots of %s", application)


def open_drift(application: Application) -> Drift | None:
    return Drift.objects.filter(application=application, resolved_at__isnull=True).first()


# --- the repair ------------------------------------------------------------------------------------
def drift_repair(*, drift: Drift, actor: Any, reason: str = "") -> Operation:
    """Put production back as Slipway says it is, through the engine (one "repair" operation)."""
    require_role(actor, Role.RELEASE_MANAGER)
    application = drift.application
    if in_flight(application):
        raise DomainError(
            ErrorCode.OPERATION_ACTIVE,
            f"An operation is changing {application.name}'s production now; repair once it has finished.",
        )
    current = reconcile(application)  # what is true now, not what the page showed
    if current is None:
        raise DomainError(ErrorCode.CONFLICT, f"{application.name} has no drift to repair: production matches.")
    environment = _production(application)
    live = Release.objects.get(application=application, status=ReleaseStatus.LIVE)
    target = environment.slot.name
    steps: list[StepSpec] = []
    for finding in current.findings:
        if finding["kind"] == "routing":
            slot = finding["slot"]
            steps.append(StepSpec("set_traffic", f"Route 0 % of traffic to {slot}", {"slot": slot, "percent": 0}))
    for finding in current.findings:
        if finding["kind"] == "preview":
            slot = finding["slot"]
            steps.append(StepSpec("cancel_preview", f"Cancel the swap preview of {slot}", {"source": slot}))
    for finding in current.findings:
        if finding["kind"] == "version":
            expected = finding["expected"]  # the live release, or what a rings promotion put there
            source = _slot_running(application, expected, exclude=target)
            if source is None:
                raise DomainError(
                    ErrorCode.CONFLICT,
                    f"No slot of {application.name} runs {expected}, which production should run, so it cannot be "
                    f"swapped back into {target}; deploy {expected} to a staging slot first, then repair.",
                )
            steps.append(
                swap_step(
                    source,
                    target,
                    expect=expected,
                    before=finding["found"],
                    title=f"Swap {source} into {target}: {finding['found']} → {expected}",
                    timeout_seconds=600.0,  # an App Service swap often takes minutes
                )
            )
    if not steps:
        raise DomainError(
            ErrorCode.CONFLICT, f"Slipway cannot repair this drift of {application.name} itself: {current.summary}"
        )
    why = reason.strip() or f"Repair of drift #{current.pk}: {current.summary}"
    try:
        with transaction.atomic():
            operation = Operation.objects.create(
                application=application,
                release=live,
                environment=environment,
                kind=Operation.Kind.REPAIR,
                reason=why[:2000],
                started_by=actor if getattr(actor, "pk", None) else None,
                created_at=clock.now(),
            )
            OperationStep.objects.bulk_create(
                OperationStep(operation=operation, position=i, kind=s.kind, title=s.title, parameters=s.parameters)
                for i, s in enumerate(steps, start=1)
            )
            Drift.objects.filter(pk=current.pk).update(repair=operation)
            audit_record(
                actor=actor,
                action="operation.created",
                obj=operation,
                application=application,
                after={"kind": "repair", "drift": current.pk, "steps": [s.title for s in steps]},
                reason=why,
            )
            audit_record(
                actor=actor,
                action="drift.repair_started",
                obj=current,
                application=application,
                after={"operation": operation.pk},
                reason=why,
            )
            engine.enqueue_operation(operation)
    except IntegrityError:
        raise DomainError(
            ErrorCode.OPERATION_ACTIVE, f"Another operation is already running on {application.name}."
        ) from None
    return operation


def _slot_running(application: Application, version: str, *, exclude: str) -> str | None:
    states = provider_for(application).slot_states(application, probe=False)
    return next((s.name for s in states if s.version == version and s.name != exclude), None)


# --- notifying, jobs ---------------------------------------------------------------------------------
def _notify_later(drift_id: int) -> None:
    try:
        django_rq.get_queue("notifications").enqueue(notify_drift_job, drift_id)
    except Exception:  # the drift is recorded and shown; a lost mail must not undo that
        log.exception("reconcile: could not queue the drift mail for drift %s", drift_id)


def release_managers() -> list[Any]:
    app_label, codename = ROLE_PERMISSION[Role.RELEASE_MANAGER].split(".")
    has = Q(groups__permissions__codename=codename, groups__permissions__content_type__app_label=app_label)
    return list(
        get_user_model().objects.filter(is_active=True).filter(has | Q(is_superuser=True)).exclude(email="").distinct()
    )


def notify_drift_job(drift_id: int) -> dict[str, Any]:
    """RQ job (notifications queue): mail the release managers that production drifted."""
    drift = Drift.objects.select_related("application").filter(pk=drift_id).first()
    if drift is None or drift.resolved_at is not None:
        return {"sent": 0}
    people = release_managers()
    url = settings.SITE_URL + reverse("application_detail", args=[drift.application.slug])
    lines = "\n".join(f"- {f['what']}" for f in drift.findings)
    body = (
        f"Production of {drift.application.name} is not where Slipway says it is:\n\n{lines}\n\n"
        f"Promotions of {drift.application.name} wait until this is resolved. Repair it, or look first: {url}\n"
    )
    for person in people:
        EmailMultiAlternatives(
            f"[Slipway] Drift: {drift.application.name} production differs from Slipway", body, None, [person.email]
        ).send()
    return {"sent": len(people)}


def reconcile_application_job(application_id: int) -> dict[str, Any]:
    """RQ job: reconcile one application (queued by the engine when an operation ends)."""
    job = get_current_job()
    application = Application.objects.filter(pk=application_id).first()
    if application is None:
        return {"drift": None}
    with origin(via="job", job_id=job.id if job else ""):
        drift = reconcile(application)
    return {"drift": drift.pk if drift else None}


def reconcile_all_job() -> dict[str, Any]:
    """Periodic (portal.cron): reconcile every application with a live release."""
    job = get_current_job()
    drifted = []
    with origin(via="job", job_id=job.id if job else ""):
        for application in Application.objects.filter(releases__status=ReleaseStatus.LIVE).distinct():
            try:
                if reconcile(application) is not None:
                    drifted.append(application.slug)
            except Exception:  # one application's failure must not stop the others
                log.exception("reconcile: %s failed", application)
    return {"drifted": drifted}
