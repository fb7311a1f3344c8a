"""The filter forms of the history and audit trail pages (GET forms: a bad value is shown beside its field)."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from releases.catalog.models import Application, ReleaseStatus, Stage

# Object types the audit trail records (AuditEvent.object_type is the model's `app_label.model_name`).
OBJECT_TYPES: list[tuple[str, str]] = [
    ("releases.release", "Release"),
    ("releases.operation", "Operation"),
    ("releases.application", "Application"),
    ("releases.approvalrequest", "Approval request"),
    ("releases.approvalpolicy", "Approval policy"),
    ("releases.freezeoverride", "Freeze override"),
    ("releases.slot", "Slot"),
    ("releases.ring", "Ring"),
    ("releases.apitoken", "API token"),
    ("releases.simulatorslot", "Simulator slot"),
    ("releases.simulatorsite", "Simulator site"),
    ("releases.simulatorversionprofile", "Simulator version profile"),
]

STAGE_FILTERS: list[tuple[str, str]] = [
    ("", "Any environment"),
    (Stage.DEV, "Deployed to development"),
    (Stage.TEST, "Deployed to test"),
    (Stage.PREPRODUCTION, "Deployed to pre-production"),
    (Stage.PRODUCTION, "Reached production"),
]

_OBJECT = re.compile(r"^(?:(?P<app>[a-z_]+)\.)?(?P<model>[a-z_]+):(?P<id>[\w-]{1,64})$")


class DateInput(forms.DateInput):
    input_type = "date"


class _DateRangeForm(forms.Form):
    since = forms.DateField(label="From (UTC)", required=False, widget=DateInput)
    until = forms.DateField(label="To (UTC)", required=False, widget=DateInput, help_text="Both days included.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "The end date is before the start date.")
        return data


class HistoryFilterForm(_DateRangeForm):
    application = forms.ModelChoiceField(
        queryset=Application.objects.only("name", "slug").order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="All applications",
        error_messages={"invalid_choice": "There is no application with that name."},
    )
    stage = forms.ChoiceField(
        label="Environment",
        choices=STAGE_FILTERS,
        required=False,
        help_text="Development, test, pre-production: the slot the build was deployed to when registered. "
        "Production: it went live at some point, even if it has since been replaced.",
    )
    status = forms.ChoiceField(label="Status", choices=[("", "Any status"), *ReleaseStatus.choices], required=False)
    person = forms.CharField(
        label="Person",
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "username", "autocomplete": "off"}),
        help_text="Who registered the release, decided an approval of it, or started an operation on it.",
    )
    field_order = ["application", "stage", "status", "person", "since", "until"]

    def selector_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "application": data["application"],
            "stage": data["stage"],
            "status": data["status"],
            "person": data["person"].strip(),
            "since": data["since"],
            "until": data["until"],
        }


class AuditFilterForm(_DateRangeForm):
    q = forms.CharField(
        label="Search reasons",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. rollback timeout"}),
        help_text='Words in the reason or the object\'s name; "quoted phrase", or, -word.',
    )
    application = forms.ChoiceField(label="Application", required=False)
    action = forms.CharField(
        label="Action",
        max_length=80,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. release. or release.approved"}),
        help_text="The start of an action name.",
    )
    actor = forms.CharField(
        label="Who",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "username, token or system", "autocomplete": "off"}),
    )
    object_type = forms.ChoiceField(label="Object type", choices=[("", "Any object"), *OBJECT_TYPES], required=False)
    object = forms.CharField(
        label="Object",
        max_length=130,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. release:42"}),
        help_text="One object's trail: type:id.",
    )
    field_order = ["q", "application", "action", "actor", "object_type", "object", "since", "until"]

    def __init__(self, *args: Any, applications: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["application"].choices = [("", "All applications"), *applications]

    def clean_object(self) -> tuple[str, str] | None:
        value = self.cleaned_data["object"].strip()
        if not value:
            return None
        match = _OBJECT.match(value)
        if match is None:
            raise forms.ValidationError("Write the object as type:id, for example release:42.")
        return f"{match['app'] or 'releases'}.{match['model']}", match["id"]

    def selector_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        object_type, object_id = data["object"] or (data["object_type"], "")
        return {
            "application": data["application"],
            "action": data["action"].strip(),
            "actor": data["actor"].strip(),
            "text": data["q"],
            "object_type": object_type,
            "object_id": object_id,
            "since": data["since"],
            "until": data["until"],
        }
