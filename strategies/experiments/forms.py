"""The experiment form: flag, variants and weights, population, metrics, and the power calculator's inputs."""

from __future__ import annotations

from typing import Any

from django import forms

from releases.catalog.models import Application
from strategies.flags.definitions import parse_split
from strategies.flags.models import Flag, Lifecycle, Segment

KIND_CHOICES = [("conversion", "Conversion (did the user do it?)"), ("continuous", "Continuous (how much?)")]
DIRECTION_CHOICES = [("increase", "Higher is better"), ("decrease", "Lower is better")]


def parse_guardrails(text: str) -> list[dict[str, Any]]:
    """One per line: "name, kind, direction, tolerated %" → dicts; ValueError in words."""
    guardrails = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            raise ValueError(
                f"Line {number}: write “name, kind, direction, tolerated %”, e.g. “latency_ms, continuous, decrease, 5”"
            )
        name, kind, direction, tolerance = parts
        try:
            tolerated = float(tolerance.rstrip("%").strip())
        except ValueError:
            raise ValueError(f"Line {number}: the tolerated degradation {tolerance!r} is not a number.") from None
        guardrails.append({"name": name, "kind": kind, "direction": direction, "tolerance": tolerated})
    return guardrails


class PowerForm(forms.Form):
    """The numbers the power calculator needs (also part of the experiment form)."""

    primary_kind = forms.ChoiceField(choices=KIND_CHOICES, initial="conversion", label="Primary metric kind")
    mde = forms.FloatField(
        initial=0.1, label="Minimum detectable effect", help_text="0.1 = 10 % relative (or absolute, below)."
    )
    mde_relative = forms.BooleanField(required=False, initial=True, label="The effect is relative to the baseline")
    alpha = forms.FloatField(initial=0.05, label="Alpha (false-positive rate)")
    power = forms.FloatField(initial=0.8, label="Power")
    baseline_rate = forms.FloatField(
        required=False, initial=0.1, label="Baseline conversion rate", help_text="Conversion metrics: 0.10 = 10 %."
    )
    baseline_mean = forms.FloatField(required=False, label="Baseline mean per user", help_text="Continuous metrics.")
    baseline_sd = forms.FloatField(
        required=False, label="Baseline standard deviation per user", help_text="Continuous metrics."
    )


class ExperimentForm(PowerForm):
    error_fields = {"primary_metric": "primary_name", "allocation": "allocation"}
    field_order = [
        "flag",
        "key",
        "name",
        "hypothesis",
        "allocation",
        "segment",
        "primary_name",
        "primary_kind",
        "primary_direction",
        "guardrails",
        "mde",
        "mde_relative",
        "alpha",
        "power",
        "baseline_rate",
        "baseline_mean",
        "baseline_sd",
        "tau2",
        "cuped",
    ]

    flag = forms.ModelChoiceField(queryset=Flag.objects.none(), label="Flag")
    key = forms.CharField(max_length=60, help_text="Lower-case letters, digits and hyphens; events name it.")
    name = forms.CharField(max_length=200)
    hypothesis = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="We believe that … will …, because …"
    )
    allocation = forms.CharField(
        max_length=500,
        label="Variants and weights",
        help_text="Control first: “blue = 50, green = 50”. The flag's consistent split assigns users.",
    )
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.none(), required=False, empty_label="Everyone", label="Population"
    )
    primary_name = forms.CharField(max_length=100, label="Primary metric", initial="purchase")
    primary_direction = forms.ChoiceField(choices=DIRECTION_CHOICES, initial="increase", label="Desired direction")
    guardrails = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        label="Guardrail metrics",
        help_text="One per line: name, kind, direction, tolerated % (“latency_ms, continuous, decrease, 5”)",
    )
    tau2 = forms.FloatField(
        required=False,
        label="mSPRT mixing variance τ²",
        help_text="Empty: (0.1 times the metric's standard deviation)².",
    )
    cuped = forms.BooleanField(required=False, label="CUPED: reduce variance with the pre-period covariate")

    def __init__(self, *args: Any, application: Application, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["flag"].queryset = (
            Flag.objects.filter(environment__application=application)
            .exclude(lifecycle=Lifecycle.ARCHIVED)
            .select_related("environment")
            .order_by("environment__position", "key")
        )
        self.fields["flag"].label_from_instance = lambda f: f"{f.key} ({f.environment.name})"
        self.fields["segment"].queryset = Segment.objects.filter(application=application).order_by("key")

    def clean_allocation(self) -> list[list[Any]]:
        try:
            return parse_split(self.cleaned_data["allocation"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_guardrails(self) -> list[dict[str, Any]]:
        try:
            return parse_guardrails(self.cleaned_data.get("guardrails") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class ShipForm(forms.Form):
    variant = forms.ChoiceField(choices=[])
    reason = forms.CharField(max_length=500, required=False)

    def __init__(self, *args: Any, variants: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["variant"].choices = [(v, v) for v in variants]
