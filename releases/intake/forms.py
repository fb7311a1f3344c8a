"""The release registration form."""

from __future__ import annotations

from django import forms

from portal.core import clock
from releases.catalog.models import Application, Release, Slot


class ReleaseRegisterForm(forms.ModelForm):
    application = forms.ModelChoiceField(queryset=Application.objects.all())
    deployed_slot = forms.ModelChoiceField(
        queryset=Slot.objects.select_related("application"),
        required=False,
        help_text="The slot the pipeline deployed this build to (usually pre-production).",
    )

    class Meta:
        model = Release
        fields = [
            "application",
            "version",
            "build_id",
            "commit_sha",
            "committed_at",
            "branch",
            "artifact_url",
            "deployed_slot",
            "notes",
        ]
        widgets = {
            "notes": forms.Textarea(attrs={"rows": 5}),
            "committed_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }
        labels = {"committed_at": "Commit time (UTC)"}

    def clean_version(self) -> str:
        return self.cleaned_data["version"].strip()

    def clean_committed_at(self) -> object:

        committed_at = self.cleaned_data["committed_at"]
        if committed_at is not None and committed_at > clock.now():
            raise forms.ValidationError("The commit time is in the future; give the time the commit was made.")
        return committed_at

    def clean(self) -> dict:
        data = super().clean()
        application, slot = data.get("application"), data.get("deployed_slot")
        if application and slot and slot.application_id != application.pk:
            self.add_error(
                "deployed_slot", f"{slot.name} is a slot of {slot.application.name}, not {application.name}."
            )
        version = data.get("version")
        if application and version and Release.objects.filter(application=application, version=version).exists():
            self.add_error("version", f"{application.name} already has a release {version}.")
        return data

    def validate_unique(self) -> None:
        # Uniqueness is reported by clean() in words, and enforced again by the database in the service.
        pass
