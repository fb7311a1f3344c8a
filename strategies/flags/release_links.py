"""Flags a release introduces, and their state in each environment of its application."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from portal.core import clock
from releases.audit.services import audit_record
from releases.catalog.models import Release
from strategies.flags import services
from strategies.flags.definitions import DefinitionError
from strategies.flags.models import DarkLaunch, Flag, ReleaseFlag, flag_key_validator


def declare(*, release: Release, flag_key: str, actor: Any, note: str = "") -> ReleaseFlag:
    services.require_manager(actor)
    flag_key = flag_key.strip()
    try:
        flag_key_validator(flag_key)
    except ValidationError:
        raise DefinitionError({"flag_key": [f"{flag_key!r} is not a flag key."]}) from None
    with transaction.atomic():
        if ReleaseFlag.objects.filter(release=release, flag_key=flag_key).exists():
            raise DefinitionError({"flag_key": [f"{release} declares {flag_key} already."]})
        link = ReleaseFlag.objects.create(
            release=release,
            flag_key=flag_key,
            note=note.strip()[:300],
            created_at=clock.now(),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            actor=actor,
            action="release.flag_declared",
            obj=release,
            application=release.application,
            after={"flag": flag_key, "note": link.note},
        )
    return link


def remove(*, link: ReleaseFlag, actor: Any) -> None:
    services.require_manager(actor)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="release.flag_removed",
            obj=link.release,
            application=link.release.application,
            before={"flag": link.flag_key, "note": link.note},
        )
        link.delete()


def _rollout(flag: Flag, launch: DarkLaunch | None) -> int | None:
    """The share of everyone else getting a non-default variant, when a percentage rollout is under way."""
    if launch is not None and launch.rollout_percent:
        return launch.rollout_percent
    fallthrough = (flag.rules or {}).get("fallthrough") or {}
    if "split" in fallthrough:
        return int(sum(w for v, w in fallthrough["split"] if v != flag.default_variant))
    if fallthrough.get("variant") and fallthrough["variant"] != flag.default_variant:
        return 100
    return None


def state_of(flag: Flag | None, launch: DarkLaunch | None = None) -> dict[str, Any]:
    if flag is None:
        return {"state": "absent"}
    if not flag.enabled:
        state = "killed"
    else:
        targeted = bool((flag.rules or {}).get("rules") or (flag.rules or {}).get("fallthrough"))
        targeted = targeted or flag.targeting_override is not None
        default_value = flag.variants.get(flag.default_variant)
        state = "on" if (flag.flag_type != "boolean" or default_value is True or targeted) else "off"
    return {
        "state": state,
        "flag": flag,
        "default_variant": flag.default_variant,
        "rollout": _rollout(flag, launch),
        "lifecycle": flag.lifecycle,
    }


def release_flag_states(release: Release) -> dict[str, Any]:
    """{environments, rows: [{link, cells: [state per environment]}]} for the release page (few queries)."""
    links = list(release.declared_flags.all())
    environments = list(release.application.environments.order_by("position"))
    keys = [link.flag_key for link in links]
    flags = {
        (f.environment_id, f.key): f
        for f in Flag.objects.filter(environment__in=environments, key__in=keys).select_related("environment")
    }
    launches = {
        launch.flag_id: launch
        for launch in DarkLaunch.objects.filter(flag__in=flags.values(), status=DarkLaunch.Status.ACTIVE)
    }
    rows = []
    for link in links:
        cells = []
        for environment in environments:
            flag = flags.get((environment.pk, link.flag_key))
            cells.append({"environment": environment, **state_of(flag, launches.get(flag.pk) if flag else None)})
        rows.append({"link": link, "cells": cells})
    return {"environments": environments, "rows": rows}
