"""Roles: four Django groups, each marked by one permission, checked on every view.

The groups and their permissions are created by the migration `releases/0002_roles`.
A role is granted by membership of its group (or by being a superuser).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import models
from django.http import HttpRequest, HttpResponse

from portal.core.errors import DomainError, ErrorCode


class Role(models.TextChoices):
    # value = the group's name; ordered from least to most powerful
    VIEWER = "Viewer", "viewer"
    APPROVER = "Approver", "approver"
    RELEASE_MANAGER = "Release manager", "release manager"
    ADMIN = "Admin", "admin"


# The permission that marks each role. Approver and release manager include viewing; admin includes all.
ROLE_PERMISSION: dict[Role, str] = {
    Role.VIEWER: "releases.view_release",
    Role.APPROVER: "releases.approve_release",
    Role.RELEASE_MANAGER: "releases.promote_release",
    Role.ADMIN: "releases.administer_portal",
}


def has_role(user: Any, role: Role) -> bool:
    return bool(user.is_authenticated and user.has_perm(ROLE_PERMISSION[role]))


def roles_of(user: Any) -> list[Role]:
    return [role for role in Role if has_role(user, role)]


def missing_role_message(user: Any, role: Role) -> str:
    held = ", ".join(r.label for r in roles_of(user)) or "no role"
    return (
        f"This needs the {role.label} role, and your account ({user.get_username()}) has {held}. "
        f"Ask a Slipway admin to add you to the “{role.value}” group."
    )


def require_role(user: Any, role: Role) -> None:
    if not has_role(user, role):
        raise DomainError(ErrorCode.FORBIDDEN, missing_role_message(user, role))


def role_required(role: Role) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """View decorator: 403 with a message naming the missing role (portal.errors_middleware renders it).

    Login is enforced globally.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            require_role(request.user, role)
            return view(request, *args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]  # read by the URL/role table test
        return wrapped

    return decorator


def roles_context(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_roles": []}
    roles = roles_of(user)
    return {
        "user_roles": roles,
        "is_approver": Role.APPROVER in roles,
        "is_release_manager": Role.RELEASE_MANAGER in roles,
        "is_portal_admin": Role.ADMIN in roles,
    }
