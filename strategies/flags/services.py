"""Every change to flags, segments, dark launches and flag API keys.

Each function takes keyword-only arguments, runs in one transaction, recompiles the flag's flagd
definition, republishes the environment's document with a new revision (`_publish`, which the
evaluation cache compares) and writes its audit event — with the flag's before/after, so the trail
shows a diff of the definition — in that same transaction. Bad input raises `DefinitionError`
naming the field; a change the rules forbid raises `DomainError`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, require_role
from releases.audit.services import audit_record
from releases.catalog.models import Environment
from strategies.flags import freshness
from strategies.flags.approval import approval_required
from strategies.flags.definitions import (
    DefinitionError,
    FlagSpec,
    clean_flag,
    clean_segment,
    document,
    evaluation_hints,
    flag_definition,
    segment_logic,
    validate_document,
)
from strategies.flags.models import DarkLaunch, Flag, FlagApiKey, FlagEventBucket, FlagSet, FlagType, Lifecycle, Segment

__all__ = ["DefinitionError", "DomainError"]

API_KEY_MARK = "slwf"
LATENCY_SAMPLES_PER_BUCKET = 20
MAX_EVENTS_PER_BATCH = 1000


def require_manager(actor: Any) -> None:
    require_role(actor, Role.RELEASE_MANAGER)


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


# --- Compiling and publishing ----------------------------------------------------------------------


def segment_keys(environment: Environment) -> set[str]:
    return set(Segment.objects.filter(application_id=environment.application_id).values_list("key", flat=True))


def _spec(flag: Flag) -> FlagSpec:
    return FlagSpec(
        key=flag.key,
        flag_type=flag.flag_type,
        variants=dict(flag.variants),
        default_variant=flag.default_variant,
        enabled=flag.enabled,
        rules=dict(flag.rules or {}),
        targeting_override=flag.targeting_override,
        metadata={"type": flag.flag_type, "lifecycle": flag.lifecycle},
    )


def compile_flag(flag: Flag) -> None:
    """Check the flag and store its flagd definition on it (DefinitionError naming the field)."""
    spec = clean_flag(_spec(flag), segments=segment_keys(flag.environment))
    flag.variants, flag.rules = spec.variants, spec.rules
    flag.definition = flag_definition(spec)


def _publish(environment: Environment) -> FlagSet:
    """Rebuild the environment's flagd document, validate it against flagd's schema, bump its revision."""
    now = clock.now()
    flag_set, _ = FlagSet.objects.select_for_update(no_key=True).get_or_create(
        environment=environment, defaults={"updated_at": now}
    )
    flags = list(environment.flags.exclude(lifecycle=Lifecycle.ARCHIVED).order_by("key"))
    launches = {
        launch.flag_id: {"id": launch.pk, "variant": launch.variant}
        for launch in DarkLaunch.objects.filter(flag__environment=environment, status=DarkLaunch.Status.ACTIVE)
    }
    evaluators = {
        s.key: segment_logic(s.conditions, s.users, s.match)
        for s in Segment.objects.filter(application_id=environment.application_id).order_by("key")
    }
    revision = flag_set.revision + 1
    doc = document(
        {flag.key: flag.definition for flag in flags},
        evaluators,
        {"flagSetId": f"{environment.application.slug}/{environment.stage}", "version": str(revision)},
    )
    validate_document(doc)
    flag_set.document = doc
    flag_set.hints = {
        flag.key: {**evaluation_hints(_spec(flag)), "enabled": flag.enabled, "launch": launches.get(flag.pk)}
        for flag in flags
    }
    flag_set.revision = revision
    flag_set.updated_at = now
    flag_set.save()
    freshness.revision_changed(environment.pk, revision)
    return flag_set


def flag_snapshot(flag: Flag) -> dict[str, Any]:
    """What the audit trail keeps of a flag: its served definition, flattened, and its bookkeeping."""
    definition = flag.definition or {}
    return {
        "key": flag.key,
        "type": flag.flag_type,
        "description": flag.description,
        "owner": _username(flag.owner),
        "lifecycle": flag.lifecycle,
        "planned_removal": flag.planned_removal.isoformat() if flag.planned_removal else None,
        "state": definition.get("state"),
        "defaultVariant": definition.get("defaultVariant"),
        "variants": definition.get("variants"),
        "targeting": definition.get("targeting"),
    }


def flag_locked(flag: Flag) -> Flag:
    return (
        Flag.objects.select_for_update(no_key=True, of=("self",))
        .select_related("environment__application", "owner")
        .get(pk=flag.pk)
    )


def flag_save(
    flag: Flag, *, actor: Any, action: str, before: dict[str, Any] | None, obj: Any = None, reason: str = ""
) -> Flag:
    compile_flag(flag)
    flag.updated_at = clock.now()
    flag.save()
    _publish(flag.environment)
    after = flag_snapshot(flag)
    audit_record(
        actor=actor,
        action=action,
        obj=obj or flag,
        application=flag.environment.application,
        before=before,
        after=after,
        reason=reason,
    )
    return flag


# --- Flags -----------------------------------------------------------------------------------------


BOOLEAN_VARIANTS = {"on": True, "off": False}


def flag_create(
    *,
    environment: Environment,
    key: str,
    flag_type: str,
    variants: Mapping[str, Any] | None = None,
    default_variant: str,
    actor: Any,
    description: str = "",
    owner: Any = None,
    planned_removal: date | None = None,
    rules: Mapping[str, Any] | None = None,
    targeting_override: Mapping[str, Any] | None = None,
    enabled: bool = True,
) -> Flag:
    require_manager(actor)
    key = key.strip()
    if flag_type == FlagType.BOOLEAN and not variants:
        variants = BOOLEAN_VARIANTS
    with transaction.atomic():
        if Flag.objects.filter(environment=environment, key=key).exists():
            raise DefinitionError({"key": [f"{environment} already has a flag {key!r}."]})
        now = clock.now()
        flag = Flag(
            environment=environment,
            key=key,
            flag_type=flag_type,
            variants=dict(variants or {}),
            default_variant=default_variant,
            description=description,
            owner=owner,
            planned_removal=planned_removal,
            rules=dict(rules or {}),
            targeting_override=dict(targeting_override) if targeting_override is not None else None,
            enabled=enabled,
            created_at=now,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        flag.full_clean(exclude=["definition", "updated_at", "variants", "rules"])
        return flag_save(flag, actor=actor, action="flag.created", before=None)


EDITABLE_FIELDS = {
    "description",
    "owner",
    "variants",
    "default_variant",
    "planned_removal",
    "rules",
    "targeting_override",
}


def flag_update(*, flag: Flag, actor: Any, reason: str = "", approved: bool = False, **changes: Any) -> Flag:
    """Change any of EDITABLE_FIELDS; a change that makes no difference writes nothing. Where the environment's
    flag changes need approval, only an approved change request (`changes`) passes `approved`."""
    require_manager(actor)
    _direct_change_allowed(flag.environment, approved)
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"flag_update cannot change {sorted(unknown)}")
    with transaction.atomic():
        flag = flag_locked(flag)
        before = flag_snapshot(flag)
        old = {name: getattr(flag, name) for name in changes}
        if "rules" in changes:
            changes["rules"] = keep_launch_rule(flag, dict(changes["rules"] or {}))
        for name, value in changes.items():
            setattr(flag, name, value)
        if all(old[name] == getattr(flag, name) for name in changes):
            return flag
        return flag_save(flag, actor=actor, action="flag.updated", before=before, reason=reason)


def keep_launch_rule(flag: Flag, rules: dict[str, Any]) -> dict[str, Any]:
    """An edit of the rules never drops an active launch's cohort rule: that is the launch page's job."""
    launch_rules = [r for r in (flag.rules or {}).get("rules", []) if r.get("launch")]
    others = [r for r in rules.get("rules", []) if not r.get("launch")]
    return {**rules, "rules": launch_rules + others}


def flag_kill(*, flag: Flag, actor: Any, reason: str = "") -> Flag:
    """The kill switch: the flag is DISABLED, and everyone gets its default variant at once."""
    require_manager(actor)
    with transaction.atomic():
        flag = flag_locked(flag)
        if not flag.enabled:
            raise DomainError(ErrorCode.CONFLICT, f"{flag.key} is already killed.")
        before = flag_snapshot(flag)
        flag.enabled = False
        return flag_save(flag, actor=actor, action="flag.killed", before=before, reason=reason)


def flag_enable(*, flag: Flag, actor: Any, reason: str = "", approved: bool = False) -> Flag:
    """Serve a killed flag again: exposure, so approved where the environment asks (the kill switch never waits)."""
    require_manager(actor)
    _direct_change_allowed(flag.environment, approved)
    with transaction.atomic():
        flag = flag_locked(flag)
        if flag.enabled:
            raise DomainError(ErrorCode.CONFLICT, f"{flag.key} is already on.")
        if flag.lifecycle == Lifecycle.ARCHIVED:
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, f"{flag.key} is archived; it is no longer served.")
        before = flag_snapshot(flag)
        flag.enabled = True
        return flag_save(flag, actor=actor, action="flag.enabled", before=before, reason=reason)


# Lifecycle: new → active → permanent | stale → archived (and back from stale to active).
LIFECYCLE_EDGES: dict[str, set[str]] = {
    Lifecycle.NEW: {Lifecycle.ACTIVE, Lifecycle.STALE},
    Lifecycle.ACTIVE: {Lifecycle.PERMANENT, Lifecycle.STALE},
    Lifecycle.PERMANENT: {Lifecycle.STALE},
    Lifecycle.STALE: {Lifecycle.ACTIVE, Lifecycle.ARCHIVED},
    Lifecycle.ARCHIVED: set(),
}


def lifecycle_check(flag: Flag, to: str) -> None:
    """Refuse a move the lifecycle does not have (DomainError saying where the flag may go)."""
    if to not in LIFECYCLE_EDGES.get(flag.lifecycle, set()):
        allowed = ", ".join(Lifecycle(t).label.lower() for t in sorted(LIFECYCLE_EDGES.get(flag.lifecycle, ())))
        raise DomainError(
            ErrorCode.TRANSITION_NOT_ALLOWED,
            f"{flag.key} is {Lifecycle(flag.lifecycle).label.lower()}; it can become {allowed or 'nothing else'}, "
            f"not {to}.",
        )
    if to == Lifecycle.ARCHIVED and flag.launches.filter(status=DarkLaunch.Status.ACTIVE).exists():
        raise DomainError(
            ErrorCode.CONFLICT, f"{flag.key} has an active dark launch; roll it out or kill it before archiving."
        )


def flag_set_lifecycle(*, flag: Flag, to: str, actor: Any, reason: str = "", approved: bool = False) -> Flag:
    """Move a flag along its lifecycle. Archiving stops serving it: approved where the environment asks; the
    other moves are bookkeeping and never wait."""
    require_manager(actor)
    if to == Lifecycle.ARCHIVED:
        _direct_change_allowed(flag.environment, approved)
    with transaction.atomic():
        flag = flag_locked(flag)
        lifecycle_check(flag, to)
        before = flag_snapshot(flag)
        flag.lifecycle = to
        if to == Lifecycle.PERMANENT:
            flag.planned_removal = None
        return flag_save(flag, actor=actor, action=f"flag.{to}", before=before, reason=reason)


def flag_rule_add(*, flag: Flag, rule: Mapping[str, Any], actor: Any, approved: bool = False) -> Flag:
    """Append a targeting rule (after an active launch's cohort rule, which stays first)."""
    require_manager(actor)
    _direct_change_allowed(flag.environment, approved)
    with transaction.atomic():
        flag = flag_locked(flag)
        before = flag_snapshot(flag)
        rules = dict(flag.rules or {})
        rules["rules"] = [*rules.get("rules", []), {**rule, "launch": False}]
        flag.rules = rules
        return flag_save(flag, actor=actor, action="flag.rule_added", before=before)


def flag_rule_remove(*, flag: Flag, index: int, actor: Any, approved: bool = False) -> Flag:
    require_manager(actor)
    _direct_change_allowed(flag.environment, approved)
    with transaction.atomic():
        flag = flag_locked(flag)
        rules = dict(flag.rules or {})
        current = list(rules.get("rules", []))
        if not 0 <= index < len(current):
            raise DomainError(ErrorCode.NOT_FOUND, f"{flag.key} has no rule {index + 1}.")
        if current[index].get("launch"):
            raise DomainError(
                ErrorCode.CONFLICT,
                "That rule is the cohort of an active dark launch: kill or roll out the launch instead.",
            )
        before = flag_snapshot(flag)
        del current[index]
        rules["rules"] = current
        flag.rules = rules
        return flag_save(flag, actor=actor, action="flag.rule_removed", before=before)


# --- Segments --------------------------------------------------------------------------------------


def segment_snapshot(segment: Segment) -> dict[str, Any]:
    return {
        "key": segment.key,
        "name": segment.name,
        "description": segment.description,
        "match": segment.match,
        "conditions": segment.conditions,
        "users": segment.users,
    }


def segment_gated_flags(segment: Segment) -> list[Flag]:
    """The flags the segment feeds in environments whose flag changes need approval (editing it changes them)."""
    if not segment.pk:
        return []
    key = Segment.objects.filter(pk=segment.pk).values_list("key", flat=True).first() or segment.key
    flags = Flag.objects.filter(environment__application_id=segment.application_id).select_related("environment")
    gated = []
    for flag in flags.order_by("environment__position", "key"):
        conditions = [c for r in (flag.rules or {}).get("rules", []) for c in r.get("conditions", [])]
        in_rules = any(c.get("op") == "in_segment" and c.get("value") == key for c in conditions)
        in_override = f'"$ref": "{key}"' in str(flag.targeting_override or "").replace("'", '"')
        if (in_rules or in_override) and approval_required(flag.environment):
            gated.append(flag)
    return gated


def segment_save(*, segment: Segment, actor: Any, approved: bool = False) -> Segment:
    """Create or change a segment; every environment of its application is republished. A segment that feeds a
    flag where changes need approval changes only through an approved change request (`approved`)."""
    require_manager(actor)
    if not approved and (gated := segment_gated_flags(segment)):
        used = ", ".join(f"{f.environment.name}: {f.key}" for f in gated)
        raise DomainError(
            ErrorCode.APPROVAL_REQUIRED,
            f"The segment {segment.key} feeds flags whose changes need approval ({used}): propose the change "
            "and an approver decides it.",
        )
    conditions, users = clean_segment(
        key=segment.key, conditions=segment.conditions, users=segment.users, match=segment.match
    )
    with transaction.atomic():
        before = None
        if segment.pk:
            before = segment_snapshot(Segment.objects.select_for_update(no_key=True).get(pk=segment.pk))
        elif Segment.objects.filter(application=segment.application, key=segment.key).exists():
            raise DefinitionError({"key": [f"{segment.application} already has a segment {segment.key!r}."]})
        now = clock.now()
        segment.conditions, segment.users = conditions, users
        segment.updated_at = now
        if not segment.pk:
            segment.created_at = now
        segment.full_clean(exclude=["conditions", "users"])
        segment.save()
        for environment in segment.application.environments.all():
            _publish(environment)
        after = segment_snapshot(segment)
        if after != before:
            audit_record(
                actor=actor,
                action="segment.created" if before is None else "segment.changed",
                obj=segment,
                application=segment.application,
                before=before,
                after=after,
            )
    return segment


def segment_users(segment: Segment) -> list[str]:
    """The flags that refer to the segment, as `environment: key`."""
    used = []
    flags = Flag.objects.filter(environment__application_id=segment.application_id).select_related("environment")
    for flag in flags:
        conditions = [c for r in (flag.rules or {}).get("rules", []) for c in r.get("conditions", [])]
        in_rules = any(c.get("op") == "in_segment" and c.get("value") == segment.key for c in conditions)
        in_override = f'"$ref": "{segment.key}"' in str(flag.targeting_override or "").replace("'", '"')
        if in_rules or in_override:
            used.append(f"{flag.environment.name}: {flag.key}")
    return used


def segment_delete(*, segment: Segment, actor: Any) -> None:
    require_manager(actor)
    with transaction.atomic():
        used = segment_users(segment)
        if used:
            raise DomainError(
                ErrorCode.CONFLICT, f"The segment {segment.key} is used by {', '.join(used)}; remove it there first."
            )
        before = segment_snapshot(segment)
        audit_record(actor=actor, action="segment.deleted", obj=segment, application=segment.application, before=before)
        segment.delete()
        for environment in segment.application.environments.all():
            _publish(environment)


# --- API keys --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedKey:
    key: FlagApiKey
    secret: str  # the whole key; shown once, stored nowhere


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(
    *,
    environment: Environment,
    name: str,
    actor: Any,
    can_evaluate: bool = True,
    can_sync: bool = False,
    secret: str | None = None,
) -> IssuedKey:
    """Issue an environment's API key. `secret` is for the demo's documented key only."""
    require_manager(actor)
    name = name.strip()
    if not name or len(name) > 100:
        raise DefinitionError({"name": ["Give the key a name of 1 to 100 characters, such as the service using it."]})
    if not (can_evaluate or can_sync):
        raise DefinitionError({"can_evaluate": ["A key must at least evaluate flags or read the definitions."]})
    prefix = f"{API_KEY_MARK}_{secrets.token_hex(4)}"
    secret = secret or f"{prefix}_{secrets.token_urlsafe(32)}"
    prefix = secret[: len(prefix)]
    with transaction.atomic():
        key = FlagApiKey.objects.create(
            environment=environment,
            name=name,
            prefix=prefix,
            key_hash=key_hash(secret),
            can_evaluate=can_evaluate,
            can_sync=can_sync,
            created_at=clock.now(),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            actor=actor,
            action="flag_api_key.created",
            obj=key,
            application=environment.application,
            after={
                "name": name,
                "prefix": prefix,
                "environment": environment.name,
                "evaluate": can_evaluate,
                "sync": can_sync,
            },
        )
    return IssuedKey(key, secret)


def api_key_revoke(*, key: FlagApiKey, actor: Any, reason: str = "") -> FlagApiKey:
    require_manager(actor)
    with transaction.atomic():
        key = (
            FlagApiKey.objects.select_for_update(no_key=True).select_related("environment__application").get(pk=key.pk)
        )
        if key.revoked_at is not None:
            raise DomainError(ErrorCode.CONFLICT, f"{key} is already revoked.")
        key.revoked_at = clock.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="flag_api_key.revoked",
            obj=key,
            application=key.environment.application,
            before={"revoked_at": None},
            after={"revoked_at": key.revoked_at.isoformat()},
            reason=reason,
        )
    return key


def api_key_touch(key_id: int, last_used_at: datetime | None) -> datetime | None:
    """Record use at most once a minute (no write per request); the time written, or None."""
    now = clock.now()
    if last_used_at is None or now - last_used_at >= timedelta(minutes=1):
        FlagApiKey.objects.filter(pk=key_id).update(last_used_at=now)
        return now
    return None


# --- Dark launches ---------------------------------------------------------------------------------


def _direct_change_allowed(environment: Environment, approved: bool) -> None:
    """Where flag changes need approval, a dark-launch step only comes from an approved change request."""

    if not approved and approval_required(environment):
        raise DomainError(
            ErrorCode.APPROVAL_REQUIRED,
            f"Changes to flags in {environment.name} need approval: propose this and an approver decides it.",
        )


def _launch_rule(flag: Flag, launch: DarkLaunch) -> dict[str, Any]:
    cohort = launch.cohort
    conditions: list[dict[str, Any]] = [
        {"attribute": "", "op": "in_segment", "value": key} for key in cohort.get("segments", [])
    ]
    if cohort.get("users"):
        conditions.append({"attribute": "targetingKey", "op": "one_of", "value": list(cohort["users"])})
    percent = cohort.get("percent")
    if not conditions and launch.rollout_percent:
        # A cohort that is a share of everyone is rolled out by raising that share.
        percent = max(percent or 0, launch.rollout_percent)
    if percent is not None and percent < 100:
        # The launched variant first: raising the share only ever adds users (see definitions.py).
        serve: dict[str, Any] = {"split": [[launch.variant, percent], [flag.default_variant, 100 - percent]]}
    else:
        serve = {"variant": launch.variant}
    return {"name": "Dark launch cohort", "match": "any", "conditions": conditions, "serve": serve, "launch": True}


def _with_launch(flag: Flag, launch: DarkLaunch | None) -> None:
    """Put (or take out) the launch's cohort rule at the top of the flag's rules, and its rollout split."""
    rules = dict(flag.rules or {})
    others = [r for r in rules.get("rules", []) if not r.get("launch")]
    rules["rules"] = ([_launch_rule(flag, launch)] if launch is not None else []) + others
    cohort_of_some = launch is not None and (launch.cohort.get("segments") or launch.cohort.get("users"))
    if launch is not None and launch.rollout_percent and cohort_of_some:
        p = launch.rollout_percent
        rules["fallthrough"] = {"split": [[launch.variant, p], [flag.default_variant, 100 - p]]}
    else:
        previous = (launch.cohort if launch is not None else {}).get("previous_fallthrough")
        if previous:
            rules["fallthrough"] = previous
        else:
            rules.pop("fallthrough", None)
    flag.rules = rules


def _clean_cohort(
    flag: Flag, *, segments: Iterable[str], users: Iterable[str], percent: float | int | None
) -> dict[str, Any]:
    known = segment_keys(flag.environment)
    segment_list = sorted({s.strip() for s in segments if s.strip()})
    unknown = [s for s in segment_list if s not in known]
    errors: dict[str, list[str]] = {}
    if unknown:
        errors["segments"] = [f"Unknown segment {', '.join(repr(s) for s in unknown)}."]
    user_list = sorted({u.strip() for u in users if u.strip()})
    if percent is not None and not 0 < percent <= 100:
        errors["percent"] = ["The share of the cohort must be more than 0 and at most 100 %."]
    if not segment_list and not user_list and percent is None and not errors:
        errors["segments"] = ["Pick a cohort: a segment, some users, or a small percentage of everyone."]
    if errors:
        raise DefinitionError(errors)
    return {"segments": segment_list, "users": user_list, "percent": percent}


def _launch_action(
    launch: DarkLaunch, *, actor: Any, action: str, flag_before: dict[str, Any], reason: str = ""
) -> None:
    flag = launch.flag
    compile_flag(flag)
    flag.updated_at = clock.now()
    flag.save()
    _publish(flag.environment)
    audit_record(
        actor=actor,
        action=action,
        obj=launch,
        application=flag.environment.application,
        before=flag_before,
        after=flag_snapshot(flag),
        reason=reason,
    )


def launch_start(
    *,
    flag: Flag,
    variant: str,
    actor: Any,
    segments: Iterable[str] = (),
    users: Iterable[str] = (),
    percent: float | int | None = None,
    reason: str = "",
    approved: bool = False,
) -> DarkLaunch:
    """Serve `variant` to a cohort only (segments, explicit users, and/or a percentage)."""
    require_manager(actor)
    with transaction.atomic():
        flag = flag_locked(flag)
        _direct_change_allowed(flag.environment, approved)
        if variant not in flag.variants:
            raise DefinitionError({"variant": [f"{variant!r} is not a variant of {flag.key}."]})
        if variant == flag.default_variant:
            raise DefinitionError({"variant": [f"{variant!r} is what everyone gets already (the default)."]})
        if not flag.enabled:
            raise DomainError(ErrorCode.CONFLICT, f"{flag.key} is killed; turn it back on before launching.")
        if flag.lifecycle == Lifecycle.ARCHIVED:
            raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, f"{flag.key} is archived.")
        if flag.targeting_override is not None:
            raise DomainError(
                ErrorCode.CONFLICT, f"{flag.key} has hand-written targeting; a launch needs the structured rules."
            )
        if flag.launches.filter(status=DarkLaunch.Status.ACTIVE).exists():
            raise DomainError(ErrorCode.CONFLICT, f"{flag.key} already has an active dark launch.")
        cohort = _clean_cohort(flag, segments=segments, users=users, percent=percent)
        previous = (flag.rules or {}).get("fallthrough")
        if previous:
            cohort["previous_fallthrough"] = previous
        before = flag_snapshot(flag)
        launch = DarkLaunch.objects.create(
            flag=flag,
            variant=variant,
            cohort=cohort,
            started_at=clock.now(),
            started_by=actor if getattr(actor, "pk", None) else None,
        )
        if flag.lifecycle == Lifecycle.NEW:
            flag.lifecycle = Lifecycle.ACTIVE
        _with_launch(flag, launch)
        _launch_action(launch, actor=actor, action="dark_launch.started", flag_before=before, reason=reason)
    return launch


def _active(launch: DarkLaunch) -> DarkLaunch:
    launch = DarkLaunch.objects.select_for_update(no_key=True).get(pk=launch.pk)
    if launch.status != DarkLaunch.Status.ACTIVE:
        raise DomainError(
            ErrorCode.TRANSITION_NOT_ALLOWED,
            f"This dark launch is {launch.get_status_display().lower()}; nothing more can change.",
        )
    launch.flag = flag_locked(launch.flag)
    return launch


def launch_widen(
    *,
    launch: DarkLaunch,
    actor: Any,
    segments: Iterable[str] = (),
    users: Iterable[str] = (),
    percent: float | int | None = None,
    approved: bool = False,
) -> DarkLaunch:
    """Add segments or users to the cohort, or raise its percentage (never lower: that would move users out)."""
    require_manager(actor)
    with transaction.atomic():
        launch = _active(launch)
        flag = launch.flag
        _direct_change_allowed(flag.environment, approved)
        current = dict(launch.cohort)
        added = _clean_cohort(flag, segments=segments, users=users, percent=percent)
        if percent is not None and current.get("percent") is not None and percent <= current["percent"]:
            raise DefinitionError({"percent": [f"Widening raises the share above {current['percent']:g} %."]})
        cohort = {
            **current,
            "segments": sorted(set(current.get("segments", [])) | set(added["segments"])),
            "users": sorted(set(current.get("users", [])) | set(added["users"])),
        }
        if percent is not None:
            cohort["percent"] = None if percent >= 100 else percent
        if cohort == current:
            raise DomainError(ErrorCode.CONFLICT, "That cohort is already in the launch.")
        before = flag_snapshot(flag)
        launch.cohort = cohort
        launch.save(update_fields=["cohort"])
        _with_launch(flag, launch)
        _launch_action(launch, actor=actor, action="dark_launch.widened", flag_before=before)
    return launch


def launch_rollout(*, launch: DarkLaunch, percent: int, actor: Any, approved: bool = False) -> DarkLaunch:
    """Serve the variant to `percent` % of everyone else; at 100 % it becomes the default and the launch ends."""
    require_manager(actor)
    with transaction.atomic():
        launch = _active(launch)
        flag = launch.flag
        _direct_change_allowed(flag.environment, approved)
        if not 0 < percent <= 100 or percent <= launch.rollout_percent:
            raise DefinitionError(
                {"percent": [f"Roll out to more than {launch.rollout_percent} % and at most 100 % of everyone."]}
            )
        before = flag_snapshot(flag)
        if percent == 100:
            launch.status, launch.ended_at, launch.rollout_percent = DarkLaunch.Status.ROLLED_OUT, clock.now(), 100
            launch.save(update_fields=["status", "ended_at", "rollout_percent"])
            flag.default_variant = launch.variant
            _with_launch(flag, None)
            previous = launch.cohort.get("previous_fallthrough")
            if previous:
                flag.rules = {**flag.rules, "fallthrough": previous}
            action = "dark_launch.rolled_out"
        else:
            launch.rollout_percent = percent
            launch.save(update_fields=["rollout_percent"])
            _with_launch(flag, launch)
            action = "dark_launch.rollout_raised"
        _launch_action(launch, actor=actor, action=action, flag_before=before)
    return launch


def launch_kill(*, launch: DarkLaunch, actor: Any, reason: str = "") -> DarkLaunch:
    """End the launch: the cohort (and any rollout share) goes back to the default variant at once."""
    require_manager(actor)
    with transaction.atomic():
        launch = _active(launch)
        flag = launch.flag
        before = flag_snapshot(flag)
        launch.status, launch.ended_at = DarkLaunch.Status.KILLED, clock.now()
        launch.save(update_fields=["status", "ended_at"])
        _with_launch(flag, None)
        previous = launch.cohort.get("previous_fallthrough")
        if previous:
            flag.rules = {**flag.rules, "fallthrough": previous}
        _launch_action(launch, actor=actor, action="dark_launch.killed", flag_before=before, reason=reason)
    return launch


# --- Reported events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    flag: str
    variant: str
    ok: bool
    latency_ms: float | None


def events_record(*, environment: Environment, events: list[Event], at: datetime | None = None) -> int:
    """Add a batch of reported outcomes to the per-minute buckets; returns how many buckets it touched.

    The batch is folded per (flag, variant) first, then each bucket row is locked and added to, so
    concurrent batches never lose counts; reads sum the buckets in the database (selectors.py).
    """
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise DefinitionError({"events": [f"At most {MAX_EVENTS_PER_BATCH} events per batch."]})
    minute = (at or clock.now()).replace(second=0, microsecond=0)
    folded: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"count": 0, "errors": 0, "latency_count": 0, "sum": 0.0, "sumsq": 0.0, "samples": []}
    )
    for event in events:
        bucket = folded[(event.flag, event.variant)]
        bucket["count"] += 1
        bucket["errors"] += 0 if event.ok else 1
        if event.latency_ms is not None:
            bucket["latency_count"] += 1
            bucket["sum"] += event.latency_ms
            bucket["sumsq"] += event.latency_ms**2
            bucket["samples"].append(event.latency_ms)
    with transaction.atomic():
        for (flag_key, variant), add in sorted(folded.items()):
            row, _ = FlagEventBucket.objects.select_for_update(no_key=True).get_or_create(
                environment=environment, flag_key=flag_key, variant=variant, minute=minute
            )
            row.count += add["count"]
            row.errors += add["errors"]
            row.latency_count += add["latency_count"]
            row.latency_sum += add["sum"]
            row.latency_sumsq += add["sumsq"]
            room = LATENCY_SAMPLES_PER_BUCKET - len(row.latency_samples)
            if room > 0:
                row.latency_samples = [*row.latency_samples, *add["samples"][:room]]
            row.save()
    return len(folded)


def stale_filter(today: date) -> Q:
    """Flags to clean up: marked stale, or still temporary after their planned removal date."""
    return Q(lifecycle=Lifecycle.STALE) | Q(lifecycle__in=[Lifecycle.NEW, Lifecycle.ACTIVE], planned_removal__lt=today)
