"""The Django admin is a window, not a door: every governed model is shown read-only there.

Each change to an application, release, policy, approval, operation, token or audit event goes through the
service that owns it — which checks its rules (approvals, freezes, lifecycles) and writes its audit event in the
same transaction. A form in the admin would do neither, so none is offered: views, the REST API and the CLI are
the ways in. (People's roles are the one thing admins set here, through `portal.signon.accounts`.)
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists, searches and shows; never adds, changes or deletes (a POST is refused with 403)."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
