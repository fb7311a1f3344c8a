"""Every change of an experiment: create, start, stop, ship (decide), and catching up with approvals.

Each function runs in one transaction and writes its audit event (the experiment before and after)
in it. Starting writes the experiment's weighted split into the flag's targeting — a rule for the
segment at the top of the rules, or the fallthrough for everyone — so assignment is flagd's
consistent fractional bucketing on the targeting key. In an environment whose flag changes need
approval (`strategies.flags.approval.approval_required`), starting and shipping go through
`changes.propose`: the experiment waits ("pending approval") until the change is applied, and
`experiment_sync` moves it on (or back) once the change request is decided. Stopping never waits:
like the kill switch, ending exposure is the safety valve. Bad input raises `DefinitionError`
naming the field; a change the rules forbid raises `DomainError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, require_role
from releases.audit.services import audit_record
from strategies.experiments import stats
from strategies.experiments.analysis import analyse
from strategies.experiments.models import ACTIVE_STATUSES, Experiment
from strategies.flags import changes
from strategies.flags import services as flag_services
from strategies.flags.approval import approval_required
from strategies.flags.definitions import DefinitionError
from strategies.flags.models import DarkLaunch, Flag, FlagChangeRequest, Lifecycle, Segment

__all__ = ["DefinitionError", "DomainError"]

Status = Experiment.Status
METRIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
KINDS = ("conversion", "continuous")
DIRECTIONS = ("increase", "decrease")


def _require_manager(actor: Any) -> None:
    require_role(actor, Role.RELEASE_MANAGER)


def snapshot(experiment: Experiment) -> dict[str, Any]:
    """What the audit trail keeps of an experiment."""
    return {
        "key": experiment.key,
        "name": experiment.name,
        "flag": experiment.flag.key,
        "status": experiment.status,
        "allocation": experiment.allocation,
        "segment": experiment.segment.key if experiment.segment_id else None,
        "primary_metric": experiment.primary_metric,
        "guardrails": experiment.guardrails,
        "mde": experiment.mde,
        "mde_relative": experiment.mde_relative,
        "alpha": experiment.alpha,
        "power": experiment.power,
        "planned_users": experiment.planned_users,
        "tau2": experiment.tau2,
        "cuped": experiment.cuped,
        "pending_change": experiment.pending_change_id,
        "decision": {k: v for k, v in (experiment.decision or {}).items() if k != "analysis"} or None,
    }


# --- Checking input --------------------------------------------------------------------------------


def clean_metric(raw: Any, *, field_name: str, guardrail: bool) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise DefinitionError({field_name: ["A metric has a name, a kind and a desired direction."]})
    errors: list[str] = []
    name = str(raw.get("name") or "").strip()
    if not METRIC_NAME.match(name):
        errors.append(f"{name!r} is not a metric name (letters, digits, _ . -, up to 100).")
    kind = raw.get("kind")
    if kind not in KINDS:
        errors.append("The kind is conversion (did the user do it?) or continuous (how much?).")
    direction = raw.get("direction", "increase")
    if direction not in DIRECTIONS:
        errors.append("The desired direction is increase or decrease.")
    metric = {"name": name, "kind": kind, "direction": direction}
    if guardrail:
        tolerance = _finite(raw.get("tolerance", 0))
        if tolerance is None or not 0 <= tolerance <= 100:
            errors.append("The tolerated degradation is a percentage from 0 to 100.")
        metric["tolerance"] = tolerance
    if errors:
        raise DefinitionError({field_name: errors})
    return metric


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def clean_allocation(allocation: Any, flag: Flag) -> list[list[Any]]:
    """[[variant, percent], ...]: at least two of the flag's variants, control first, summing to 100."""
    if not isinstance(allocation, Sequence) or len(allocation) < 2:
        raise DefinitionError({"allocation": ["An experiment compares a control with at least one other variant."]})
    errors: list[str] = []
    cleaned: list[list[Any]] = []
    total = Decimal(0)
    for entry in allocation:
        if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 2:
            errors.append(f"{entry!r} is not [variant, percent].")
            continue
        variant, percent = str(entry[0]), _finite(entry[1])
        if variant not in flag.variants:
            errors.append(f"{variant!r} is not a variant of {flag.key} ({', '.join(flag.variants)}).")
        if variant in [v for v, _ in cleaned]:
            errors.append(f"{variant!r} appears twice.")
        if percent is None or not 0 < percent < 100:
            errors.append(f"The share of {variant!r} must be more than 0 and less than 100 %.")
            continue
        if Decimal(str(percent)) != Decimal(str(percent)).quantize(Decimal("0.01")):
            errors.append(f"The share of {variant!r} has more than two decimals.")
        percent = int(percent) if percent == int(percent) else percent
        total += Decimal(str(percent))
        cleaned.append([variant, percent])
    if not errors and total != 100:
        errors.append(f"The shares add up to {total:g} %, not 100 %.")
    if errors:
        raise DefinitionError({"allocation": errors})
    return cleaned


def planned_users(
    *,
    kind: str,
    mde: float,
    relative: bool,
    alpha: float,
    power: float,
    baseline_rate: float | None = None,
    baseline_mean: float | None = None,
    baseline_sd: float | None = None,
) -> int:
    """Users per variant for the primary metric (the power calculator); DefinitionError naming the field."""

    errors: dict[str, list[str]] = {}
    if not 0 < alpha < 0.5:
        errors["alpha"] = ["Alpha is the false-positive rate: more than 0 and less than 0.5 (usually 0.05)."]
    if not 0.5 <= power < 1:
        errors["power"] = ["Power is the chance to detect a real effect: from 0.5 to less than 1 (usually 0.8)."]
    if not mde > 0:
        errors["mde"] = ["The minimum detectable effect is more than 0."]
    if kind == "conversion":
        if baseline_rate is None or not 0 < baseline_rate < 1:
            errors["baseline_rate"] = ["The baseline conversion rate is between 0 and 1 (e.g. 0.10 for 10 %)."]
        elif not errors and not relative and not 0 < baseline_rate + mde < 1:
            errors["mde"] = ["The baseline rate plus the effect must stay below 1."]
        elif not errors and relative and not 0 < baseline_rate * (1 + mde) < 1:
            errors["mde"] = ["The baseline rate raised by the effect must stay below 1."]
    else:
        if baseline_sd is None or not baseline_sd > 0:
            errors["baseline_sd"] = ["The metric's standard deviation per user is more than 0."]
        if relative and (baseline_mean is None or baseline_mean == 0):
            errors["baseline_mean"] = ["A relative effect needs the metric's mean per user (not 0)."]
    if errors:
        raise DefinitionError(errors)
    if kind == "conversion":
        return int(
            stats.users_per_variant(baseline_rate=baseline_rate, mde=mde, relative=relative, alpha=alpha, power=power)
        )
    absolute = abs(mde * baseline_mean) if relative else mde
    return int(stats.users_per_variant_means(sd=baseline_sd, mde=absolute, alpha=alpha, power=power))


# --- Create ----------------------------------------------------------------------------------------


def experiment_create(
    *,
    flag: Flag,
    key: str,
    name: str,
    actor: Any,
    allocation: Sequence[Sequence[Any]],
    primary_metric: Mapping[str, Any],
    mde: float,
    hypothesis: str = "",
    segment: Segment | None = None,
    guardrails: Sequence[Mapping[str, Any]] = (),
    mde_relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    baseline_rate: float | None = None,
    baseline_mean: float | None = None,
    baseline_sd: float | None = None,
    tau2: float | None = None,
    cuped: bool = False,
) -> Experiment:
    _require_manager(actor)
    key = key.strip()
    errors: dict[str, list[str]] = {}
    if not re.match(r"^[a-z0-9][a-z0-9-]{0,59}$", key):
        errors["key"] = ["Use lower-case letters, digits and hyphens (up to 60), starting with a letter or digit."]
    elif Experiment.objects.filter(environment_id=flag.environment_id, key=key).exists():
        errors["key"] = [f"{flag.environment} already has an experiment {key!r}."]
    if not name.strip() or len(name) > 200:
        errors["name"] = ["Give the experiment a name of 1 to 200 characters."]
    if segment is not None and segment.application_id != flag.environment.application_id:
        errors["segment"] = ["That segment belongs to another application."]
    if tau2 is not None and not (math.isfinite(tau2) and tau2 > 0):
        errors["tau2"] = ["The mixing variance is more than 0 (leave it empty for the default)."]
    cleaned: dict[str, Any] = {}
    for field_name, check in (
        ("allocation", lambda: clean_allocation(allocation, flag)),
        ("primary_metric", lambda: clean_metric(primary_metric, field_name="primary_metric", guardrail=False)),
        (
            "guardrails",
            lambda: [clean_metric(g, field_name="guardrails", guardrail=True) for g in guardrails],
        ),
    ):
        try:
            cleaned[field_name] = check()
        except DefinitionError as exc:
            for name_, messages in exc.errors.items():
                errors.setdefault(name_, []).extend(messages)
    names = [m["name"] for m in [cleaned.get("primary_metric") or {}, *cleaned.get("guardrails", [])] if m]
    if len(names) != len(set(names)):
        errors.setdefault("guardrails", []).append("Each metric appears once (the primary metric is not a guardrail).")
    planned = 0
    if "primary_metric" in cleaned:
        try:
            planned = planned_users(
                kind=cleaned["primary_metric"]["kind"],
                mde=mde,
                relative=mde_relative,
                alpha=alpha,
                power=power,
                baseline_rate=baseline_rate,
                baseline_mean=baseline_mean,
                baseline_sd=baseline_sd,
            )
        except DefinitionError as exc:
            for name_, messages in exc.errors.items():
                errors.setdefault(name_, []).extend(messages)
    if errors:
        raise DefinitionError(errors)
    with transaction.atomic():
        experiment = Experiment.objects.create(
            environment_id=flag.environment_id,
            flag=flag,
            key=key,
            name=name.strip(),
            hypothesis=hypothesis.strip(),
            allocation=cleaned["allocation"],
            segment=segment,
            primary_metric=cleaned["primary_metric"],
            guardrails=cleaned["guardrails"],
            mde=mde,
            mde_relative=mde_relative,
            alpha=alpha,
            power=power,
            baseline_rate=baseline_rate,
            baseline_mean=baseline_mean,
            baseline_sd=baseline_sd,
            planned_users=planned,
            tau2=tau2,
            cuped=cuped,
            created_at=clock.now(),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            actor=actor,
            action="experiment.created",
            obj=experiment,
            application=flag.environment.application,
            after=snapshot(experiment),
        )
    return experiment


# --- The flag's targeting --------------------------------------------------------------------------


def hosting_problem(flag: Flag, experiment: Experiment) -> str:
    """Why `flag` cannot host `experiment` now, in words; "" when it can."""
    if flag.lifecycle == Lifecycle.ARCHIVED:
        return f"{flag.key} is archived; it is no longer served."
    if not flag.enabled:
        return f"{flag.key} is killed; turn it back on before starting an experiment."
    if flag.targeting_override is not None:
        return f"{flag.key} has hand-written targeting; an experiment needs the structured rules."
    if DarkLaunch.objects.filter(flag=flag, status=DarkLaunch.Status.ACTIVE).exists():
        return f"{flag.key} has an active dark launch; roll it out or kill it before starting an experiment."
    other = Experiment.objects.filter(flag=flag, status__in=ACTIVE_STATUSES).exclude(pk=experiment.pk).first()
    if other is not None:
        return f"{flag.key} already hosts the experiment {other.key!r} ({other.get_status_display().lower()})."
    missing = [v for v in experiment.variants if v not in flag.variants]
    if missing:
        return f"{flag.key} no longer has the variant(s) {', '.join(missing)}."
    if experiment.segment_id is None and "split" in ((flag.rules or {}).get("fallthrough") or {}):
        return f"{flag.key} already serves a percentage split to everyone; finish that rollout first."
    return ""


def _rules_with_split(flag: Flag, experiment: Experiment) -> dict[str, Any]:
    rules = dict(flag.rules or {})
    split = {"split": [list(entry) for entry in experiment.allocation]}
    others = [r for r in rules.get("rules", []) if r.get("name") != experiment.rule_name]
    if experiment.segment_id:
        rule = {
            "name": experiment.rule_name,
            "match": "any",
            "conditions": [{"attribute": "", "op": "in_segment", "value": experiment.segment.key}],
            "serve": split,
        }
        rules["rules"] = [rule, *others]
    else:
        rules["rules"] = others
        rules["fallthrough"] = split
    return rules


def _rules_without_split(flag: Flag, experiment: Experiment) -> dict[str, Any]:
    rules = dict(flag.rules or {})
    rules["rules"] = [r for r in rules.get("rules", []) if r.get("name") != experiment.rule_name]
    if experiment.segment_id is None and (rules.get("fallthrough") or {}).get("split") == experiment.allocation:
        rules.pop("fallthrough", None)
    return rules


def _locked(experiment: Experiment) -> Experiment:
    return (
        Experiment.objects.select_for_update(no_key=True, of=("self",))
        .select_related("environment__application", "flag", "segment", "pending_change")
        .get(pk=experiment.pk)
    )


def _apply_to_flag(flag: Flag, *, actor: Any, changes_: dict[str, Any], summary: str) -> FlagChangeRequest | None:
    """Change the flag now, or propose the change when the environment needs approval (returned)."""
    if approval_required(flag.environment):
        return changes.propose(flag=flag, actor=actor, changes=changes_, summary=summary)
    before = flag_services.flag_snapshot(flag)
    for name, value in changes_.items():
        setattr(flag, name, value)
    flag_services.flag_save(flag, actor=actor, action="flag.updated", before=before, reason=summary[:500])
    return None


def _audit(experiment: Experiment, *, actor: Any, action: str, before: dict[str, Any], reason: str = "") -> None:
    audit_record(
        actor=actor,
        action=action,
        obj=experiment,
        application=experiment.environment.application,
        before=before,
        after=snapshot(experiment),
        reason=reason[:500],
    )


# --- Start, stop, ship -----------------------------------------------------------------------------


def experiment_start(*, experiment: Experiment, actor: Any, reason: str = "") -> Experiment:
    """Write the split into the flag (or propose it for approval); the experiment runs (or waits)."""
    _require_manager(actor)
    try:
        with transaction.atomic():
            experiment = _locked(experiment)
            if experiment.status != Status.DRAFT:
                raise DomainError(
                    ErrorCode.TRANSITION_NOT_ALLOWED,
                    f"{experiment.key} is {experiment.get_status_display().lower()}; only a draft starts.",
                )
            flag = flag_services.flag_locked(experiment.flag)
            experiment.flag = flag
            if problem := hosting_problem(flag, experiment):
                raise DomainError(ErrorCode.CONFLICT, problem)
            before = snapshot(experiment)
            split = ", ".join(f"{v} {p:g} %" for v, p in experiment.allocation)
            request = _apply_to_flag(
                flag,
                actor=actor,
                changes_={"rules": _rules_with_split(flag, experiment)},
                summary=f"Start experiment {experiment.key}: {split}",
            )
            if request is None:
                experiment.status, experiment.started_at = Status.RUNNING, clock.now()
                action = "experiment.started"
            else:
                experiment.status, experiment.pending_change = Status.STARTING, request
                action = "experiment.start_proposed"
            experiment.save()
            _audit(experiment, actor=actor, action=action, before=before, reason=reason)
    except IntegrityError:
        raise DomainError(ErrorCode.CONFLICT, f"{experiment.flag.key} already hosts a running experiment.") from None
    return experiment


def _latest_analysis(experiment: Experiment) -> dict[str, Any]:

    return analyse(experiment)


def experiment_recompute(*, experiment: Experiment, actor: Any) -> None:
    """Analyse now rather than at the next periodic pass (it writes an analysis): a release manager asks."""
    _require_manager(actor)
    if experiment.status == Status.DRAFT:
        raise DomainError(ErrorCode.CONFLICT, "A draft has no data to analyse: start it first.")
    analyse(experiment)


def experiment_stop(*, experiment: Experiment, actor: Any, reason: str = "") -> Experiment:
    """End exposure: the split comes out of the flag at once (everyone gets control). Never waits for approval."""
    _require_manager(actor)
    with transaction.atomic():
        experiment = _locked(experiment)
        if experiment.status != Status.RUNNING:
            raise DomainError(
                ErrorCode.TRANSITION_NOT_ALLOWED,
                f"{experiment.key} is {experiment.get_status_display().lower()}; only a running one stops.",
            )
        analysis = _latest_analysis(experiment)
        flag = flag_services.flag_locked(experiment.flag)
        before = snapshot(experiment)
        flag_before = flag_services.flag_snapshot(flag)
        old = (flag.rules, flag.default_variant)
        flag.rules = _rules_without_split(flag, experiment)
        if experiment.segment_id is None:
            flag.default_variant = experiment.control
        if (flag.rules, flag.default_variant) != old:
            flag_services.flag_save(
                flag,
                actor=actor,
                action="flag.updated",
                before=flag_before,
                reason=f"Experiment {experiment.key} stopped",
            )
        now = clock.now()
        experiment.status, experiment.stopped_at = Status.STOPPED, now
        experiment.decision = {
            "action": "stop",
            "variant": experiment.control,
            "by": actor.get_username() if getattr(actor, "pk", None) else "system",
            "at": now.isoformat(),
            "reason": reason[:500],
            "analysis": analysis,
        }
        experiment.save()
        _audit(experiment, actor=actor, action="experiment.stopped", before=before, reason=reason)
    return experiment


def experiment_ship(*, experiment: Experiment, variant: str, actor: Any, reason: str = "") -> Experiment:
    """Decide: roll the flag to 100 % `variant` (its default, the split removed), through approval if needed."""
    _require_manager(actor)
    with transaction.atomic():
        experiment = _locked(experiment)
        if experiment.status not in (Status.RUNNING, Status.STOPPED):
            raise DomainError(
                ErrorCode.TRANSITION_NOT_ALLOWED,
                f"{experiment.key} is {experiment.get_status_display().lower()}; decide a running or stopped one.",
            )
        if variant not in experiment.variants:
            raise DefinitionError({"variant": [f"{variant!r} is not a variant of this experiment."]})
        analysis = _latest_analysis(experiment)
        flag = flag_services.flag_locked(experiment.flag)
        if variant not in flag.variants:
            raise DomainError(ErrorCode.CONFLICT, f"{flag.key} no longer has the variant {variant!r}.")
        before = snapshot(experiment)
        new_rules = _rules_without_split(flag, experiment)
        wanted: dict[str, Any] = {}
        if new_rules != (flag.rules or {}):
            wanted["rules"] = new_rules
        if flag.default_variant != variant:
            wanted["default_variant"] = variant
        now = clock.now()
        experiment.decision = {
            "action": "ship",
            "variant": variant,
            "by": actor.get_username() if getattr(actor, "pk", None) else "system",
            "at": now.isoformat(),
            "reason": reason[:500],
            "from_status": experiment.status,
            "analysis": analysis,
        }
        request = None
        if wanted:
            request = _apply_to_flag(
                flag, actor=actor, changes_=wanted, summary=f"Ship {variant} to everyone (experiment {experiment.key})"
            )
        if request is None:
            experiment.status, experiment.decided_at, experiment.decided_by = Status.DECIDED, now, actor
            if experiment.stopped_at is None:
                experiment.stopped_at = now
            action = "experiment.shipped"
        else:
            experiment.status, experiment.pending_change = Status.SHIPPING, request
            action = "experiment.ship_proposed"
        experiment.save()
        _audit(experiment, actor=actor, action=action, before=before, reason=reason)
    return experiment


def experiment_sync(experiment: Experiment) -> Experiment:
    """Move an experiment waiting for approval on once its flag change is decided (audited as the system)."""
    if experiment.status not in (Status.STARTING, Status.SHIPPING) or experiment.pending_change_id is None:
        return experiment
    with transaction.atomic():
        experiment = _locked(experiment)
        request = experiment.pending_change
        if experiment.status not in (Status.STARTING, Status.SHIPPING) or request is None:
            return experiment
        if request.status == FlagChangeRequest.Status.PENDING:
            return experiment
        before = snapshot(experiment)
        applied = request.status == FlagChangeRequest.Status.APPLIED
        when = request.decided_at or clock.now()
        if experiment.status == Status.STARTING:
            if applied:
                experiment.status, experiment.started_at, action = Status.RUNNING, when, "experiment.started"
            else:
                experiment.status, action = Status.DRAFT, "experiment.start_refused"
        elif applied:
            experiment.status, experiment.decided_at, action = Status.DECIDED, when, "experiment.shipped"
            experiment.decided_by = request.decided_by
            experiment.stopped_at = experiment.stopped_at or when
        else:
            experiment.status = (experiment.decision or {}).get("from_status", Status.RUNNING)
            experiment.decision = {**(experiment.decision or {}), "refused": request.status}
            action = "experiment.ship_refused"
        experiment.pending_change = None
        experiment.save()
        _audit(
            experiment,
            actor=None,
            action=action,
            before=before,
            reason=f"Flag change #{request.pk} {request.get_status_display().lower()}",
        )
    return experiment


def sync_pending() -> int:
    """Catch up every experiment waiting for a decided flag change (the periodic job); returns how many moved."""
    moved = 0
    waiting = Experiment.objects.filter(status__in=(Status.STARTING, Status.SHIPPING)).exclude(
        pending_change__status=FlagChangeRequest.Status.PENDING
    )
    for experiment in waiting:
        if experiment_sync(experiment).status not in (Status.STARTING, Status.SHIPPING):
            moved += 1
    return moved
