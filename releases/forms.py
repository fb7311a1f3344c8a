from __future__ import annotations

from django import forms

from .models import Application, Release, Slot


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
            "branch",
            "artifact_url",
            "deployed_slot",
            "notes",
        ]
        widgets = {"notes": forms.Textarea(attrs={"rows": 5})}

    def clean_version(self) -> str:
        return self.cleaned_data["version"].strip()

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


class ReleaseActionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("request_approval", "Request approval"), ("approve", "Approve"), ("reject", "Reject")]
    )
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("action") == "reject" and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why you reject it; a rejection needs a comment.")
        return data
