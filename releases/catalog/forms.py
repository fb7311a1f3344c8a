from __future__ import annotations

import uuid

from django import forms

from releases.catalog.models import Application, Provider, Stage


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
