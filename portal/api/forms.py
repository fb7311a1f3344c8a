"""The API tokens page's forms: a new token (an admin may pick its owner), and revoking one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from portal.api.models import ApiToken
from portal.core import clock

EXPIRY_CHOICES = [("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year"), ("", "Never")]


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What uses it, e.g. “checkout-web deploy pipeline”. Unique per owner."
    )
    scopes = forms.MultipleChoiceField(
        choices=[(scope.value, f"{scope.value}: {scope.label}") for scope in ApiToken.Scope],
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiToken.Scope.READ],
        help_text="Each write scope includes read. The owner's role still limits what the token may do.",
    )
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90", required=False, label="Expires")

    def __init__(self, *args: Any, may_choose_owner: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if may_choose_owner:
            self.fields["owner"] = forms.ModelChoiceField(
                queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
                required=False,
                empty_label="Me",
                help_text="Admins may issue tokens for a service account (such as ci-pipeline) or anyone else.",
            )

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires")
        return clock.now() + timedelta(days=int(days)) if days else None


class TokenRevokeForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=500, help_text="Optional; recorded in the audit trail (e.g. “leaked in a log”)."
    )
