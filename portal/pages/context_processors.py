"""Template context for every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from portal.core.roles import Role, has_role
from portal.pages import selectors


def approvals_waiting(request: HttpRequest) -> dict[str, Any]:
    """The navigation's inbox count: one COUNT query, made only when a template shows it, only for approvers."""
    user = getattr(request, "user", None)
    if user is None or not has_role(user, Role.APPROVER):
        return {"approvals_waiting": 0}
    return {"approvals_waiting": SimpleLazyObject(lambda: selectors.inbox_count(user))}
