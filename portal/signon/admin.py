"""People in the Django admin: accounts and passwords as Django offers them; roles only through
`accounts.user_roles_set` (checked and audited); superuser, staff and raw groups or permissions read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied

from portal.core.admin import ReadOnlyAdmin
from portal.core.errors import DomainError
from portal.core.roles import Role
from portal.signon.accounts import roles_held, user_roles_set


class RolesForm(UserChangeForm):
    roles = forms.MultipleChoiceField(
        choices=[(role.value, role.value) for role in Role],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Changed through Slipway's roles service: recorded in the audit trail. You cannot change your own.",
    )

    class Meta(UserChangeForm.Meta):
        model = User
        fields = ["username", "password", "first_name", "last_name", "email", "is_active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["roles"].initial = sorted(roles_held(self.instance))


class SlipwayUserAdmin(UserAdmin):
    form = RolesForm
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Roles", {"fields": ("roles", "is_active")}),
        ("Set outside the admin", {"fields": ("is_staff", "is_superuser", "groups", "last_login", "date_joined")}),
    )
    readonly_fields = ["is_staff", "is_superuser", "groups", "last_login", "date_joined"]
    list_filter = ["is_active", "groups"]
    filter_horizontal: tuple[str, ...] = ()

    def save_model(self, request: Any, obj: User, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if "roles" in form.cleaned_data:
            try:
                user_roles_set(user=obj, roles=form.cleaned_data["roles"], actor=request.user)
            except DomainError as exc:
                if exc.forbidden:
                    raise PermissionDenied(str(exc)) from None
                messages.error(request, str(exc))

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        for formset in formsets:  # groups and permissions are not in the form: only inlines, if any
            self.save_formset(request, form, formset, change=change)


admin.site.unregister(User)
admin.site.register(User, SlipwayUserAdmin)
admin.site.unregister(Group)


@admin.register(Group)
class RoleGroupAdmin(ReadOnlyAdmin, GroupAdmin):
    """The four role groups come from a migration; who holds them is set on each person."""
