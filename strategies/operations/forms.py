"""Forms of the operation pages: the promotion's strategy and its few options, and a rollback's reason."""

from __future__ import annotations

from typing import Any

from django import forms

from releases.catalog.models import Application
from strategies.operations.models import Ring
from strategies.operations.registry import STRATEGIES


def strategy_choices() -> list[tuple[str, str]]:
    return [(str(kind), module.LABEL) for kind, module in STRATEGIES.items()]


class PromoteForm(forms.Form):
    strategy = forms.ChoiceField(choices=strategy_choices)
    shares = forms.CharField(
        required=False,
        label="Canary shares (%)",
        help_text="Comma-separated, rising: 5, 25, 50, 100. Empty for the default.",
    )
    bake_seconds = forms.FloatField(
        required=False, min_value=0, label="Canary bake (seconds)", help_text="Empty for the default (300 s)."
    )
    preview = forms.BooleanField(required=False, label="Blue-green: swap with preview")
    verify_seconds = forms.FloatField(
        required=False,
        min_value=0,
        label="Verify production after the swap for (seconds)",
        help_text="Health, error rate and latency against before the swap. Empty for the default (60 s).",
    )

    def clean_shares(self) -> list[int] | None:
        text = self.cleaned_data["shares"].strip()
        if not text:
            return None
        try:
            return [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise forms.ValidationError("Give whole percentages separated by commas, like 5, 25, 50, 100.") from None

    def parameters(self) -> dict[str, Any]:
        """The options of the chosen strategy only; what is left empty keeps the strategy's default."""
        data = self.cleaned_data
        parameters: dict[str, Any] = {}
        if data["strategy"] == "canary":
            if data["shares"] is not None:
                parameters["shares"] = data["shares"]
            if data["bake_seconds"] is not None:
                parameters["bake_seconds"] = data["bake_seconds"]
        elif data["strategy"] == "blue_green":
            parameters["preview"] = data["preview"]
        if data["strategy"] in ("canary", "blue_green", "rings") and data["verify_seconds"] is not None:
            parameters["verify_seconds"] = data["verify_seconds"]
        return parameters


class RollbackForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Why roll back?",
        help_text="Recorded in the audit trail.",
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why you are rolling back; the reason is recorded.")
        return reason


class RingForm(forms.ModelForm):
    """A ring of one application: a traffic share, or other applications that take the build first."""

    class Meta:
        model = Ring
        fields = [
            "position",
            "name",
            "kind",
            "traffic_percent",
            "targets",
            "bake_seconds",
            "analyse",
            "requires_approval",
        ]
        widgets = {"targets": forms.CheckboxSelectMultiple}

    def __init__(self, *args: Any, application: Application, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.application = application
        self.instance.application = application
        self.fields["targets"].queryset = Application.objects.exclude(pk=application.pk).order_by("name")
        self.fields["targets"].required = False
        if self.instance.pk is None and not self.is_bound:
            last = application.rings.order_by("-position").values_list("position", flat=True).first()
            self.initial.setdefault("position", 0 if last is None else last + 1)

    def _others(self) -> Any:
        return self.application.rings.exclude(pk=self.instance.pk)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if self._others().filter(name__iexact=name).exists():
            raise forms.ValidationError(f"{self.application.name} already has a ring named “{name}”.")
        return name

    def clean_position(self) -> int:
        position = self.cleaned_data["position"]
        taken = self._others().filter(position=position).first()
        if taken is not None:
            raise forms.ValidationError(f"Position {position} is taken by “{taken.name}”; choose another.")
        return position

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind, percent, targets = data.get("kind"), data.get("traffic_percent"), data.get("targets")
        if kind == Ring.Kind.TRAFFIC:
            if percent is None:
                self.add_error("traffic_percent", "A traffic ring needs the share of traffic it routes (1 to 99 %).")
            if targets:
                self.add_error("targets", "A traffic ring has no target applications; choose “Other applications”.")
        elif kind == Ring.Kind.TARGETS:
            if not targets:
                self.add_error("targets", "Choose at least one application that takes the build in this ring.")
            data["traffic_percent"] = None
        return data
