"""Forms for fault injection on the simulator; the API validates its JSON with the same forms."""

from __future__ import annotations

from typing import Any

from django import forms

from releases.catalog.models import SimulatorSite


class SlotFaultForm(forms.Form):
    healthy = forms.BooleanField(required=False, label="Health check passes")
    running = forms.BooleanField(required=False, label="Running")
    fail_swap = forms.BooleanField(required=False, label="Swaps fail")
    hang_swap = forms.BooleanField(required=False, label="Swaps hang")


class VersionProfileForm(forms.Form):
    version = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"list": "known-versions"}))
    error_rate = forms.FloatField(
        min_value=0.0, max_value=1.0, help_text="Share of requests answered with HTTP 500, from 0 to 1."
    )
    latency_ms_median = forms.FloatField(min_value=0.0, label="Median latency (ms)")
    latency_ms_p95 = forms.FloatField(min_value=0.0, label="95th percentile latency (ms)")
    healthy = forms.BooleanField(required=False, initial=True, label="Health check passes")

    def clean_version(self) -> str:
        version = self.cleaned_data["version"].strip()
        if not version:
            raise forms.ValidationError("Name the version the profile is for.")
        return version

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        median, p95 = data.get("latency_ms_median"), data.get("latency_ms_p95")
        if median is not None and p95 is not None and p95 < median:
            self.add_error("latency_ms_p95", f"The 95th percentile cannot be below the median ({median:g} ms).")
        return data


class SyntheticLoadForm(forms.Form):
    synthetic_rpm = forms.IntegerField(
        min_value=0,
        max_value=SimulatorSite.MAX_SYNTHETIC_RPM,
        label="Synthetic load (requests per minute)",
        help_text="Made-up visitors of the production URL, split between slots by the traffic share.",
    )
