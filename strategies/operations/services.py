"""Operations: start, preview, pause, resume, promote now, roll back (each audited, each permission-checked).

Services as in `releases.catalog.services`: keyword-only arguments, one transaction with the audit event,
`DomainError` with a sentence a person can act on.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, has_role, missing_role_message
from releases.approvals.common import policy_of
from releases.approvals.gates import promotion_blockers
from releases.approvals.models import ApprovalRequest, ApprovalRequestStatus
from releases.approvals.workflow import source_slot
from releases.audit.services import audit_record, snapshot
from releases.catalog.models import Application, Environment, Release, ReleaseStatus, Stage, StrategyKind
from releases.catalog.providers import ProviderError
from releases.catalog.providers.registry import provider_for
from releases.catalog.services import release_start_rollout
from strategies.operations import engine
from strategies.operations.exposure import plan_blockers
from strategies.operations.models import OPERATION_ACTIVE, Operation, OperationStatus, OperationStep, Ring, StepStatus
from strategies.operations.plan import SKIPPABLE, PlanContext, StepSpec, compensation_for, swap_step
from strategies.operations.reconcile import reconcile
from strategies.operations.registry import strategy_for
from strategies.operations.transitions import operation_can, operation_refusal, operation_transition


def _require_manager(actor: Any) -> None:
    if actor is not None and not has_role(actor, Role.RELEASE_MANAGER):
        raise DomainError(ErrorCode.FORBIDDEN, missing_role_message(actor, Role.RELEASE_MANAGER))


def active_operation(application: Application) -> Operation | None:
    return (
        Operation.objects.filter(application=application, status__in=OPERATION_ACTIVE).select_related("release").first()
    )


def _already_running(application: Application) -> DomainError:
    running = active_operation(application)
    what = f"{running} (#{running.pk})" if running else "an operation that has just started"
    return DomainError(
        ErrorCode.OPERATION_ACTIVE,
        f"Another operation is already running on {application.name}: {what}. Wait for it or stop it.",
    )


def ring_operation_touching(application: Application) -> Operation | None:
    """An active operation of another application whose rings swap builds into `application`."""
    touching = OperationStep.objects.filter(
        operation__status__in=OPERATION_ACTIVE, parameters__application=application.pk
    ).exclude(operation__application=application)
    step = touching.select_related("operation__release__application").first()
    return step.operation if step else None


def _refuse_ring_conflicts(application: Application, strategy: str) -> None:
    """Two operations never act on one application: neither its own and another's ring, nor two rings."""
    other = ring_operation_touching(application)
    if other is not None:
        raise DomainError(
            ErrorCode.OPERATION_ACTIVE,
            f"{application.name} is a ring of {other.application.name}'s running promotion #{other.pk}; "
            "wait for it to finish.",
        )
    if strategy == StrategyKind.RINGS:
        for ring in application.rings.prefetch_related("targets"):
            for target in ring.targets.all():
                running = active_operation(target) or ring_operation_touching(target)
                if running is not None and running.application_id != application.pk:
                    raise DomainError(
                        ErrorCode.OPERATION_ACTIVE,
                        f"Ring target {target.name} is busy with operation #{running.pk} ({running}); "
                        "wait for it to finish.",
                    )


def _production(release: Release, environment: Environment | None) -> Environment:
    environment = environment or release.application.environments.filter(stage=Stage.PRODUCTION).first()
    if environment is None:
        raise DomainError(
            ErrorCode.CONFLICT, f"{release.application.name} has no production environment to promote into."
        )
    if environment.application_id != release.application_id:
        raise DomainError(
            ErrorCode.INVALID,
            f"{environment} is not an environment of {release.application.name}.",
            fields={"environment": f"Not an environment of {release.application.name}."},
        )
    return environment


def plan_context(release: Release, environment: Environment) -> PlanContext:
    """Where the build runs and what production runs, read from the provider now."""
    slot = source_slot(release, environment)
    if slot is None:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"Slipway does not know which slot runs {release.version}; set the release's deployed slot.",
        )
    try:
        states = {s.name: s for s in provider_for(release.application).slot_states(release.application)}
    except ProviderError as exc:
        raise DomainError(
            ErrorCode.PROVIDER_UNAVAILABLE, f"The provider could not say what the slots run: {exc}"
        ) from None
    source, target = states.get(slot.name), states.get(environment.slot.name)
    if source is None or target is None:
        raise DomainError(ErrorCode.CONFLICT, f"The provider reports no {slot.name} or {environment.slot.name} slot.")
    if source.version and source.version != release.version:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"The {slot.name} slot runs {source.version}, not {release.version}; deploy {release.version} there first.",
        )
    return PlanContext(
        release=release,
        environment=environment,
        source_slot=slot.name,
        target_slot=environment.slot.name,
        new_version=release.version,
        previous_version=target.version,
    )


def operation_preview(
    *, release: Release, strategy: str, parameters: dict[str, Any], environment: Environment | None = None
) -> list[StepSpec]:
    """The steps a promotion would run, without starting it (for the page before the button)."""
    module = strategy_for(strategy)
    options = module.clean(parameters)
    return module.plan(plan_context(release, _production(release, environment)), options)


def operation_start(
    *,
    release: Release,
    strategy: str,
    parameters: dict[str, Any],
    actor: Any,
    environment: Environment | None = None,
    reason: str = "",
) -> Operation:
    """Promote an approved release into production with `strategy`; the run happens in a worker.

    `actor` None is the system (auto-promote). Two simultaneous starts make one operation: the
    partial unique constraint refuses the second, which gets a DomainError saying what runs.
    """
    _require_manager(actor)
    environment = _production(release, environment)
    release.refresh_from_db()
    if release.status != ReleaseStatus.APPROVED:
        raise DomainError(
            ErrorCode.TRANSITION_NOT_ALLOWED,
            f"{release} is {release.get_status_display().lower()}; only an approved release can be promoted.",
        )
    module = strategy_for(strategy)
    options = module.clean(parameters)
    if active_operation(release.application) is not None:
        raise _already_running(release.application)
    _refuse_ring_conflicts(release.application, strategy)
    # Production is read now, not only when the last check ran: a promotion never starts on drift.
    reconcile(release.application)
    blockers = promotion_blockers(release, environment, actor=actor)
    if blockers:
        raise DomainError(ErrorCode.PROMOTION_BLOCKED, "Promotion is blocked: " + " ".join(blockers), blockers=blockers)
    steps = module.plan(plan_context(release, environment), options)
    # Every other production the plan reaches (a ring target's) by its own approvals and freeze.
    planned = ((s.kind, s.parameters) for s in steps)
    if blockers := plan_blockers(release.application_id, environment, planned, release.version):
        raise DomainError(ErrorCode.PROMOTION_BLOCKED, "Promotion is blocked: " + " ".join(blockers), blockers=blockers)
    now = clock.now()
    try:
        with transaction.atomic():
            operation = Operation.objects.create(
                application=release.application,
                release=release,
                environment=environment,
                kind=Operation.Kind.PROMOTE,
                strategy=strategy,
                parameters=options,
                reason=reason,
                started_by=actor if getattr(actor, "pk", None) else None,
                created_at=now,
            )
            OperationStep.objects.bulk_create(
                OperationStep(operation=operation, position=i, kind=s.kind, title=s.title, parameters=s.parameters)
                for i, s in enumerate(steps, start=1)
            )
            release_start_rollout(release=release, actor=actor, reason=f"{module.LABEL} promotion #{operation.pk}")
            audit_record(
                actor=actor,
                action="operation.created",
                obj=operation,
                application=release.application,
                after={
                    **snapshot(operation, ["kind", "strategy", "status"]),
                    "parameters": options,
                    "steps": len(steps),
                },
                reason=reason,
            )
            engine.enqueue_operation(operation)
    except IntegrityError:
        raise _already_running(release.application) from None
    return operation


def operation_pause(*, operation: Operation, actor: Any, reason: str = "") -> Operation:
    """Stop at the next step boundary (a step in progress finishes). Rollbacks cannot be paused."""
    _require_manager(actor)
    return operation_transition(operation, "operation.paused", actor=actor, reason=reason)


def operation_resume(*, operation: Operation, actor: Any, reason: str = "") -> Operation:
    """Go on from where it stopped; an inconclusive canary analysis it paused on counts as accepted."""
    _require_manager(actor)
    ring = operation.steps.filter(status=StepStatus.WAITING, kind="approve_ring").first()
    if ring is not None and operation.status == OperationStatus.PAUSED:
        raise DomainError(
            ErrorCode.APPROVAL_REQUIRED,
            f"{ring.parameters['ring_name']} waits for an approver of production; it goes on when they approve it "
            "(or roll back).",
        )
    with transaction.atomic():
        waiting = operation.steps.filter(status=StepStatus.WAITING, kind="analyse").first()
        if waiting is not None and operation.status == OperationStatus.PAUSED:
            OperationStep.objects.filter(pk=waiting.pk).update(
                detail={**waiting.detail, "accept_inconclusive": True, "accepted_by": str(actor or "system")}
            )
        operation_transition(operation, "operation.resumed", actor=actor, reason=reason)
        engine.enqueue_operation(operation)
    return operation


def operation_promote_now(*, operation: Operation, actor: Any, reason: str = "") -> Operation:
    """Skip the remaining bake, analysis and intermediate shares: go straight to the completing steps."""
    _require_manager(actor)
    with transaction.atomic():
        current = Operation.objects.select_for_update(no_key=True).get(pk=operation.pk)
        if not operation_can(current.status, "operation.promoted_now"):
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, operation_refusal(current, "operation.promoted_now"))
        skippable = [
            s
            for s in current.steps.filter(status__in=(StepStatus.PENDING, StepStatus.WAITING)).order_by("position")
            if s.parameters.get(SKIPPABLE)
        ]
        if not skippable:
            raise DomainError(ErrorCode.CONFLICT, f"Operation #{current.pk} has no waiting left to skip.")
        OperationStep.objects.filter(pk__in=[s.pk for s in skippable]).update(
            status=StepStatus.SKIPPED, finished_at=clock.now()
        )
        resumes = {"waiting_for": ""} if current.status == OperationStatus.PAUSED else {}  # promoting now resumes
        operation_transition(
            operation,
            "operation.promoted_now",
            actor=actor,
            reason=reason,
            audit_after={"skipped": [s.title for s in skippable]},
            **resumes,
        )
        engine.enqueue_operation(operation)
    return operation


def operation_rollback(*, operation: Operation, actor: Any, reason: str) -> Operation:
    """Abort: undo what the operation did (traffic to 0 %, swap back) and roll the release back."""
    _require_manager(actor)
    reason = reason.strip()
    if not reason:
        raise DomainError(
            ErrorCode.INVALID,
            "Say why you are rolling back; the reason is recorded.",
            fields={"reason": "The reason is recorded."},
        )
    if operation.kind != Operation.Kind.PROMOTE:
        raise DomainError(
            ErrorCode.TRANSITION_NOT_ALLOWED,
            f"Operation #{operation.pk} is a {operation.get_kind_display().lower()}: it puts production back, and "
            "undoing it would bring back what it took away. Let it finish; then promote what should run.",
        )
    error = f"Rolled back by {actor or 'the system'}: {reason}"
    with transaction.atomic():
        started = engine.compensate(operation_id=operation.pk, error=error, actor=actor, reason=reason)
        if started is None:  # decided under the lock: of concurrent callers exactly one starts the rollback
            operation.refresh_from_db()
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, operation_refusal(operation, "operation.rolling_back"))
        engine.enqueue_operation(started)
    return started


def application_rollback(*, application: Application, actor: Any, reason: str) -> Operation:
    """One click: abort the active operation, or swap the live release back for the previous one.

    The previous build must still be warm in the slot the live one came from (a blue-green or canary
    swap leaves it there); otherwise the rollback is refused with what to do instead.
    """
    _require_manager(actor)
    reason = reason.strip()
    if not reason:
        raise DomainError(
            ErrorCode.INVALID,
            "Say why you are rolling back; the reason is recorded.",
            fields={"reason": "The reason is recorded."},
        )
    running = active_operation(application)
    if running is not None:
        return operation_rollback(operation=running, actor=actor, reason=reason)
    _refuse_ring_conflicts(application, "")
    live = Release.objects.filter(application=application, status=ReleaseStatus.LIVE).first()
    if live is None:
        raise DomainError(ErrorCode.CONFLICT, f"{application.name} has no live release to roll back.")
    previous = (
        Release.objects.filter(application=application, status=ReleaseStatus.SUPERSEDED)
        .order_by("-status_changed_at", "-pk")
        .first()
    )
    if previous is None:
        raise DomainError(ErrorCode.CONFLICT, f"{live} has no previous release to return to.")
    environment = _production(live, None)
    promoted = live.operations.filter(kind=Operation.Kind.PROMOTE, status=OperationStatus.SUCCEEDED).first()
    swaps = [
        s
        for s in (promoted.steps.filter(kind="swap").order_by("position") if promoted else [])
        if s.status == StepStatus.SUCCEEDED and not s.parameters.get("undo")
    ]
    own = next((s for s in swaps if "application" not in s.parameters), None)
    source = own.parameters["source"] if own else (source_slot(live, environment) or environment.slot).name
    _require_warm(application, source, previous.version)
    # A rings promotion also swapped the build into its ring targets: those are swapped back too,
    # newest first, each only while the target's previous build is still warm in its staging slot.
    ring_swaps = compensation_for([s for s in swaps if "application" in s.parameters])
    for spec in ring_swaps:
        p = spec.parameters
        _require_warm(Application.objects.get(pk=p["application"]), p["source"], p["expect_version"])
    target = environment.slot.name
    steps = [
        StepSpec("check_health", f"Gate: {source} ({previous.version}) answers its health check", {"slot": source}),
        swap_step(
            source,
            target,
            expect=previous.version,
            before=live.version,
            title=f"Swap back: {target} returns to {previous.version}",
        ),
        *ring_swaps,
        StepSpec("set_traffic", f"Routing: 0 % to {source}", {"slot": source, "percent": 0}),
        StepSpec(
            "restore",
            f"Roll back {live.version}, restore {previous.version}",
            {"previous_release": previous.pk},
        ),
    ]
    try:
        with transaction.atomic():
            operation = Operation.objects.create(
                application=application,
                release=live,
                environment=environment,
                kind=Operation.Kind.ROLLBACK,
                reason=reason,
                started_by=actor if getattr(actor, "pk", None) else None,
                created_at=clock.now(),
            )
            OperationStep.objects.bulk_create(
                OperationStep(operation=operation, position=i, kind=s.kind, title=s.title, parameters=s.parameters)
                for i, s in enumerate(steps, start=1)
            )
            audit_record(
                actor=actor,
                action="operation.created",
                obj=operation,
                application=application,
                after={"kind": "rollback", "from": live.version, "to": previous.version},
                reason=reason,
            )
            engine.enqueue_operation(operation)
    except IntegrityError:
        raise _already_running(application) from None
    return operation


def _require_warm(application: Application, slot: str, version: str) -> None:
    try:
        states = {s.name: s for s in provider_for(application).slot_states(application)}
    except ProviderError as exc:
        raise DomainError(
            ErrorCode.PROVIDER_UNAVAILABLE, f"The provider could not say what {application.name}'s slots run: {exc}"
        ) from None
    warm = states.get(slot)
    if warm is None or warm.version != version:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"The previous release {version} is no longer warm in {application.name}'s {slot} (it runs "
            f"{warm.version if warm else 'nothing'}); deploy {version} to {slot} and promote it instead.",
        )


def auto_promote_due() -> list[tuple[int, str]]:
    """Start the promotion of each approved release whose auto-promote time has come (default strategy).

    A release that cannot start now (a freeze, another operation) is tried again on the next sweep;
    each attempt's outcome is returned, and a started one is audited by `operation_start`.
    """

    due = ApprovalRequest.objects.filter(
        status=ApprovalRequestStatus.APPROVED,
        auto_promote_after__lte=clock.now(),
        release__status=ReleaseStatus.APPROVED,
        environment__stage=Stage.PRODUCTION,
    ).select_related("release__application", "environment")
    outcomes = []
    for request in due:
        release = request.release
        try:
            operation = operation_start(
                release=release,
                strategy=release.application.default_strategy,
                parameters={},
                actor=None,
                environment=request.environment,
                reason=f"Auto-promote after approval request #{request.pk}",
            )
        except DomainError as exc:
            outcomes.append((release.pk, f"not yet: {exc}"))
        else:
            outcomes.append((release.pk, f"started operation #{operation.pk}"))
    return outcomes


# --- rings: their own approvals ------------------------------------------------------------------
def ring_waiting_for_approval(operation: Operation) -> OperationStep | None:
    """The ring approval step a paused rings operation waits on, if it does."""
    if operation.status != OperationStatus.PAUSED:
        return None
    return operation.steps.filter(status=StepStatus.WAITING, kind="approve_ring").first()


def ring_approval_ineligibility(user: Any, operation: Operation) -> str:
    """Why `user` may not approve or reject a ring of `operation`, in words; "" when they may.

    The production environment's policy decides who approves, as for the release itself; with
    self-approval forbidden, neither who registered the release nor who started the promotion may.
    """

    if not has_role(user, Role.APPROVER):
        return missing_role_message(user, Role.APPROVER)
    policy = policy_of(operation.environment)
    if policy is not None:
        named = policy.approver_users.filter(pk=user.pk).exists() or policy.approver_groups.filter(user=user).exists()
        if not named and (policy.approver_users.exists() or policy.approver_groups.exists()):
            return f"You are not an approver for {operation.environment.name} of {operation.application.name}."
        if policy.forbid_self_approval and user.pk in (operation.started_by_id, operation.release.created_by_id):
            return (
                "You registered this release or started its promotion; separation of duties means someone else "
                "must approve its rings."
            )
    return ""


def rings_waiting_for(user: Any, limit: int = 200) -> list[tuple[Operation, OperationStep]]:
    """The ring approvals `user` may decide now (for the approvals inbox and its count), oldest first."""
    if not has_role(user, Role.APPROVER):
        return []
    waiting = (
        OperationStep.objects.filter(
            kind="approve_ring", status=StepStatus.WAITING, operation__status=OperationStatus.PAUSED
        )
        .select_related("operation__application", "operation__release", "operation__environment")
        .order_by("operation__created_at")[:limit]
    )
    return [(step.operation, step) for step in waiting if not ring_approval_ineligibility(user, step.operation)]


def _ring_decision(operation: Operation, actor: Any) -> OperationStep:
    problem = ring_approval_ineligibility(actor, operation)
    if problem:
        raise DomainError(ErrorCode.APPROVAL_NOT_ELIGIBLE, problem)
    step = ring_waiting_for_approval(operation)
    if step is None:
        raise DomainError(ErrorCode.CONFLICT, f"Operation #{operation.pk} is not waiting for a ring's approval.")
    return step


def ring_approve(*, operation: Operation, actor: Any, comment: str = "") -> Operation:
    """Approve the ring the operation waits on; the operation goes on with it."""
    with transaction.atomic():
        operation = (
            Operation.objects.select_for_update(no_key=True)
            .select_related("environment", "release")
            .get(pk=operation.pk)
        )
        step = _ring_decision(operation, actor)
        approval = {"by": actor.get_username(), "at": clock.now().isoformat(), "comment": comment.strip()}
        OperationStep.objects.filter(pk=step.pk).update(detail={**step.detail, "approval": approval})
        operation_transition(
            operation,
            "operation.ring_approved",
            actor=actor,
            reason=comment.strip(),
            audit_after={"ring": step.parameters["ring_name"]},
            waiting_for="",
        )
        engine.enqueue_operation(operation)
    return operation


def ring_reject(*, operation: Operation, actor: Any, comment: str) -> Operation:
    """Reject the ring the operation waits on: the rings already done are rolled back, with the comment."""
    comment = comment.strip()
    if not comment:
        raise DomainError(
            ErrorCode.INVALID,
            "Say why you reject the ring; the comment is recorded and shown to the team.",
            fields={"comment": "The comment is recorded."},
        )
    with transaction.atomic():
        operation = (
            Operation.objects.select_for_update(no_key=True)
            .select_related("environment", "release")
            .get(pk=operation.pk)
        )
        step = _ring_decision(operation, actor)
        error = f"{step.parameters['ring_name']} was rejected by {actor.get_username()}: {comment}"
        OperationStep.objects.filter(pk=step.pk).update(
            detail={**step.detail, "rejection": {"by": actor.get_username(), "at": clock.now().isoformat()}}
        )
        started = engine.compensate(operation_id=operation.pk, error=error, actor=actor, reason=comment)
        if started is None:  # not reachable while we hold the lock and the ring waits; kept for the type
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, operation_refusal(operation, "operation.rolling_back"))
        engine.enqueue_operation(started)
    return started


# --- rings: configuration ------------------------------------------------------------------------
RING_AUDIT_FIELDS = ["position", "name", "kind", "traffic_percent", "bake_seconds", "analyse", "requires_approval"]


def _ring_snapshot(ring: Ring) -> dict[str, Any]:
    return {**snapshot(ring, RING_AUDIT_FIELDS), "targets": sorted(t.slug for t in ring.targets.all())}


def ring_save(*, ring: Ring, targets: list[Application], actor: Any) -> Ring:
    """Create or change a ring of an application (the caller validated it: `strategies.operations.forms.RingForm`)."""
    _require_manager(actor)
    with transaction.atomic():
        before = _ring_snapshot(Ring.objects.get(pk=ring.pk)) if ring.pk else None
        ring.save()
        ring.targets.set(targets)
        after = _ring_snapshot(ring)
        if after != before:
            audit_record(
                actor=actor,
                action="ring.created" if before is None else "ring.changed",
                obj=ring,
                application=ring.application,
                before=before,
                after=after,
            )
    return ring


def ring_delete(*, ring: Ring, actor: Any) -> None:
    _require_manager(actor)
    with transaction.atomic():
        before = _ring_snapshot(ring)
        audit_record(actor=actor, action="ring.deleted", obj=ring, application=ring.application, before=before)
        ring.delete()
