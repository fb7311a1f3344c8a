"""Release intake: a pipeline or a release manager registers a build; on the simulator that plays the deploy,
and an approval opens at once where the next environment asks for one (so intake sits above approvals)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from portal.core import clock, events
from portal.core.errors import DomainError, ErrorCode
from releases.approvals.workflow import approval_request_open_on_arrival
from releases.audit.services import audit_record, snapshot
from releases.catalog.models import Application, Environment, Provider, Release, Slot, Stage
from releases.catalog.simulator.services import simulator_deploy


def release_register(
    *,
    application: Application,
    version: str,
    actor: AbstractBaseUser | None,
    build_id: str = "",
    commit_sha: str = "",
    committed_at: datetime | None = None,
    branch: str = "",
    notes: str = "",
    artifact_url: str = "",
    deployed_slot: Slot | None = None,
) -> Release:
    version = version.strip()
    if not version:
        raise DomainError(
            ErrorCode.INVALID, "A release needs a version.", fields={"version": "A release needs a version."}
        )
    if committed_at is not None and committed_at > clock.now():
        raise DomainError(
            ErrorCode.INVALID,
            "The commit time is in the future; give the time the commit was made.",
            fields={"committed_at": "The commit time is in the future."},
        )
    if deployed_slot is not None and deployed_slot.application_id != application.pk:
        raise DomainError(
            ErrorCode.INVALID,
            f"Slot {deployed_slot.name!r} does not belong to {application.name}.",
            fields={"deployed_slot": f"Not a slot of {application.name}."},
        )
    now = clock.now()
    try:
        with transaction.atomic():
            release = Release.objects.create(
                application=application,
                version=version,
                build_id=build_id,
                commit_sha=commit_sha,
                committed_at=committed_at,
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
                after=snapshot(
                    release, ["version", "build_id", "commit_sha", "committed_at", "branch", "status", "deployed_slot"]
                ),
            )
            events.publish("release.registered", release, application)
            if (
                deployed_slot is not None
                and application.provider == Provider.SIMULATOR
                and application.simulator_slots.filter(slot_name=deployed_slot.name).exists()
            ):
                # On the simulator nothing else deploys builds: registering one plays the pipeline's
                # deploy, so the slot an approver opens runs the version they are asked about.
                simulator_deploy(application=application, slot_name=deployed_slot.name, version=version, actor=actor)
                Slot.objects.filter(pk=deployed_slot.pk).update(running_version=version, current_release=release)
                _simulate_ring_deploys(release, deployed_slot, actor)
            # A release that reaches an environment whose successor needs approval asks for it at once.
            approval_request_open_on_arrival(release=release, actor=actor)
    except IntegrityError:
        if Release.objects.filter(application=application, version=version).exists():
            raise DomainError(
                ErrorCode.CONFLICT,
                f"{application.name} already has a release {version}.",
                fields={"version": f"{application.name} already has a release {version}."},
            ) from None
        raise
    return release


def _simulate_ring_deploys(release: Release, deployed_slot: Slot, actor: Any) -> None:
    """The pipeline stages a build for production also in each ring target's pre-production slot, and
    registers it there: a ring target's production is judged by its own release's approval and freeze
    (`strategies.operations.exposure`), so its approvers are asked about the build as well."""

    if not Environment.objects.filter(slot=deployed_slot, stage=Stage.PREPRODUCTION).exists():
        return
    application, version = release.application, release.version
    targets = Application.objects.filter(ring_memberships__application=application, provider=Provider.SIMULATOR)
    for target in targets.distinct():
        staging = target.environments.filter(stage=Stage.PREPRODUCTION).select_related("slot").first()
        if staging is None or not target.simulator_slots.filter(slot_name=staging.slot.name).exists():
            continue
        if Release.objects.filter(application=target, version=version).exists():
            simulator_deploy(application=target, slot_name=staging.slot.name, version=version, actor=actor)
            Slot.objects.filter(pk=staging.slot_id).update(running_version=version)
            continue
        release_register(
            application=target,
            version=version,
            actor=actor,
            build_id=release.build_id,
            commit_sha=release.commit_sha,
            committed_at=release.committed_at,
            branch=release.branch,
            notes=f"Staged with {application.name} {version}, whose rings expose it here.",
            artifact_url=release.artifact_url,
            deployed_slot=staging.slot,
        )
