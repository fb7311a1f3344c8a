"""The subscription form: a URL and the events to send to it."""

from __future__ import annotations

from django import forms

from releases.webhooks.events import EVENT_TYPES
from releases.webhooks.services import url_problem


class SubscriptionForm(forms.Form):
    url = forms.URLField(
        label="Payload URL",
        max_length=500,
        assume_scheme="https",
        help_text="HTTPS only (plain HTTP only to localhost, for development).",
    )
    events = forms.MultipleChoiceField(
        label="Events",
        choices=list(EVENT_TYPES.items()),
        widget=forms.CheckboxSelectMultiple,
        help_text="Slipway POSTs a signed JSON document to the URL when one of these happens.",
    )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if problem := url_problem(url):
            raise forms.ValidationError(problem)
        return url
