from __future__ import annotations

import uuid

from django import forms

from releases.catalog.models import Application, Provider, Release, Slot, Stage


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
        from portal.core import clock

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


class ApplicationCreateForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = [
            "name",
            "slug",
            "team",
            "description",
            "provider",
            "azure_subscription_id",
            "azure_resource_group",
            "azure_site_name",
            "azure_credential",
            "health_check_path",
            "default_strategy",
        ]
        labels = {
            "azure_subscription_id": "Azure subscription ID",
            "azure_resource_group": "Resource group",
            "azure_site_name": "App Service site name",
            "azure_credential": "Credential",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def clean_health_check_path(self) -> str:
        path = self.cleaned_data["health_check_path"].strip()
        if not path.startswith("/"):
            raise forms.ValidationError("Start the path with “/”, e.g. /healthz.")
        return path

    def clean(self) -> dict:
        data = super().clean()
        if data.get("provider") == Provider.AZURE:
            for name in ("azure_subscription_id", "azure_resource_group", "azure_site_name"):
                if not (data.get(name) or "").strip():
                    self.add_error(name, "Needed for an Azure application.")
            subscription = (data.get("azure_subscription_id") or "").strip()
            if subscription:
                try:
                    uuid.UUID(subscription)
                except ValueError:
                    self.add_error(
                        "azure_subscription_id", "A subscription ID looks like 00000000-0000-0000-0000-000000000000."
                    )
        return data


class SlotMappingForm(forms.Form):
    """One choice per stage among the slots the provider discovered."""

    def __init__(self, *args: object, slot_names: list[str], initial_mapping: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "— not used —")] + [(name, name) for name in slot_names]
        for stage in Stage:
            self.fields[stage.value] = forms.ChoiceField(
                label=stage.label, choices=choices, required=False, initial=initial_mapping.get(stage.value, "")
            )

    def mapping(self) -> dict[str, str]:
        return {stage.value: self.cleaned_data.get(stage.value, "") for stage in Stage}
