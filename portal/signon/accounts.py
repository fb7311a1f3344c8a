"""People's roles: set by an admin (in the Django admin's user form) or by single sign-on's group claims.

One writer for the role groups of a person, audited with before and after in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, has_role, missing_role_message
from releases.audit.services import audit_record

ROLE_GROUP_NAMES = [role.value for role in Role]


def roles_held(user: Any) -> set[str]:
    return set(user.groups.filter(name__in=ROLE_GROUP_NAMES).values_list("name", flat=True))


def role_groups_set(user: Any, wanted: set[str], *, actor: Any, action: str, reason: str) -> bool:
    """Make the person's role groups exactly `wanted` (other groups are left alone); audit a change."""
    with transaction.atomic():
        held = roles_held(user)
        if wanted == held:
            return False
        groups = {g.name: g for g in Group.objects.filter(name__in=wanted | held)}
        if missing := wanted - set(groups):
            raise DomainError(
                ErrorCode.INVALID, f"The role group(s) {sorted(missing)} do not exist (run the migrations)."
            )
        user.groups.remove(*(groups[name] for name in held - wanted))
        user.groups.add(*(groups[name] for name in wanted - held))
        for cache in ("_perm_cache", "_group_perm_cache", "_user_perm_cache"):
            user.__dict__.pop(cache, None)
        audit_record(
            actor=actor,
            action=action,
            obj=user,
            before={"roles": sorted(held)},
            after={"roles": sorted(wanted)},
            reason=reason,
        )
    return True


def user_roles_set(*, user: Any, roles: Iterable[str], actor: Any, reason: str = "") -> bool:
    """An admin gives a person exactly these roles. Nobody changes their own (ask another admin)."""
    if not has_role(actor, Role.ADMIN):
        raise DomainError(ErrorCode.FORBIDDEN, missing_role_message(actor, Role.ADMIN))
    wanted = set(roles)
    if unknown := wanted - set(ROLE_GROUP_NAMES):
        raise DomainError(ErrorCode.INVALID, f"Unknown role(s): {sorted(unknown)}.", fields={"roles": "Unknown role."})
    if getattr(actor, "pk", None) == user.pk and wanted != roles_held(user):
        raise DomainError(
            ErrorCode.FORBIDDEN, "You cannot change your own roles; another admin must.", fields={"roles": "Your own."}
        )
    return role_groups_set(user, wanted, actor=actor, action="user.roles_changed", reason=reason or "Set by an admin")
