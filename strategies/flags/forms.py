"""Forms of the flag pages: plain fields that become structured targeting, never JSONLogic by hand.

Checking what the fields mean (types, splits, segments) is `definitions.py`'s job, reached through
the services; `add_definition_errors` puts its per-field messages back on the form.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from releases.catalog.models import Application
from strategies.flags.definitions import COMMON_ATTRIBUTES, OPERATORS, DefinitionError, format_split, parse_split
from strategies.flags.models import Flag, FlagType, Segment, flag_key_validator

CONDITION_ROWS = 3
ATTRIBUTE_HELP = (
    "A context attribute: " + ", ".join(f"{k} ({v})" for k, v in COMMON_ATTRIBUTES.items()) + ", or any other."
)
OP_CHOICES = [("", "—")] + [(k, op.label) for k, op in OPERATORS.items() if k != "in_segment"]


def add_definition_errors(form: forms.Form, exc: DefinitionError) -> None:
    """Each message on the field it names (or on the form, saying which field, when it has no such field)."""
    aliases: dict[str, str] = getattr(form, "error_fields", {})
    for name, messages in exc.errors.items():
        name = aliases.get(name, name)
        for message in messages:
            if name in form.fields:
                form.add_error(name, message)
            else:
                form.add_error(None, f"{name}: {message}")


def parse_variants(flag_type: str, text: str) -> dict[str, Any]:
    """'name = value' lines into variants, each value read as the flag's type would have it."""
    variants: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, raw = line.partition("=")
        if not sep or not name.strip():
            raise forms.ValidationError(f"Line {number} is not “name = value”.")
        name, raw = name.strip(), raw.strip()
        value: Any = raw
        if flag_type == FlagType.STRING:
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                value = json.loads(raw) if _is_json(raw) else raw[1:-1]
        else:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw  # reported as the wrong type by definitions.clean_variants
        if name in variants:
            raise forms.ValidationError(f"The variant {name!r} is listed twice.")
        variants[name] = value
    return variants


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def format_variants(flag_type: str, variants: dict[str, Any]) -> str:
    lines = []
    for name, value in variants.items():
        shown = value if flag_type == FlagType.STRING else json.dumps(value, ensure_ascii=False)
        lines.append(f"{name} = {shown}")
    return "\n".join(lines)


def _users(text: str) -> list[str]:
    return [u for u in re.split(r"[\s,]+", text or "") if u]


class _ConditionsMixin:
    """Up to CONDITION_ROWS rows of attribute / operator / value."""

    def _add_condition_fields(self) -> None:
        fields = self.fields  # type: ignore[attr-defined]
        for i in range(1, CONDITION_ROWS + 1):
            fields[f"attribute_{i}"] = forms.CharField(
                label=f"Condition {i}: attribute",
                required=False,
                max_length=100,
                help_text=ATTRIBUTE_HELP if i == 1 else "",
            )
            fields[f"op_{i}"] = forms.ChoiceField(label=f"Condition {i}: operator", choices=OP_CHOICES, required=False)
            fields[f"value_{i}"] = forms.CharField(
                label=f"Condition {i}: value",
                required=False,
                max_length=2000,
                help_text="Lists are comma-separated; versions like 2.4.0." if i == 1 else "",
            )

    def conditions(self) -> list[dict[str, Any]]:
        data = self.cleaned_data  # type: ignore[attr-defined]
        rows = []
        for i in range(1, CONDITION_ROWS + 1):
            attribute, op, value = data.get(f"attribute_{i}", ""), data.get(f"op_{i}", ""), data.get(f"value_{i}", "")
            if attribute or op or value:
                rows.append({"attribute": attribute, "op": op, "value": value})
        return rows


class FlagForm(forms.Form):
    """Creating a flag (with `environment` and `key`) or editing one (without)."""

    error_fields = {"fallthrough": "everyone_else", "flag_type": "flag_type"}

    environment = forms.ModelChoiceField(queryset=None, empty_label=None)
    key = forms.CharField(
        max_length=100,
        validators=[flag_key_validator],  # the model's rule, as a field error here rather than a 500 in the service
        help_text="How the code asks for the flag, e.g. new-checkout.",
    )
    flag_type = forms.ChoiceField(label="Type", choices=FlagType.choices, initial=FlagType.BOOLEAN)
    variants = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="One “name = value” a line. Boolean flags may leave this empty (on = true, off = false); "
        "numbers as 3 or 2.5; objects as JSON.",
    )
    default_variant = forms.CharField(
        max_length=100,
        initial="off",
        help_text="Served when no rule matches, and to everyone while the flag is killed.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    owner = forms.ModelChoiceField(queryset=None, required=False, help_text="Who answers for this flag.")
    planned_removal = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="When a temporary flag should be gone.",
    )
    everyone_else = forms.CharField(
        label="Everyone else (percentage rollout)",
        required=False,
        max_length=500,
        help_text="Empty: the default variant. Or a split such as “on = 10, off = 90”; raising the first share keeps "
        "everyone who had it.",
    )
    bucket_by = forms.CharField(
        required=False, max_length=100, help_text="Context attribute splits are bucketed by (empty: targetingKey)."
    )
    targeting_override = forms.CharField(
        label="Targeting in JSONLogic (experts only)",
        widget=forms.Textarea(attrs={"rows": 6, "class": "code"}),
        required=False,
        help_text='flagd targeting written by hand; when set it replaces the rules. Segments: {"$ref": "key"}.',
    )

    def __init__(self, *args: Any, application: Application, flag: Flag | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flag = flag
        self.fields["owner"].queryset = get_user_model().objects.filter(is_active=True).order_by("username")
        if flag is None:
            self.fields["environment"].queryset = application.environments.order_by("position")
            del self.fields["everyone_else"], self.fields["bucket_by"], self.fields["targeting_override"]
        else:
            del self.fields["environment"], self.fields["key"], self.fields["flag_type"]
            if not self.is_bound:
                self.initial.update(
                    {
                        "variants": format_variants(flag.flag_type, flag.variants),
                        "default_variant": flag.default_variant,
                        "description": flag.description,
                        "owner": flag.owner_id,
                        "planned_removal": flag.planned_removal,
                        "everyone_else": format_split(flag.rules["fallthrough"]["split"])
                        if (flag.rules or {}).get("fallthrough")
                        else "",
                        "bucket_by": (flag.rules or {}).get("bucket_by", ""),
                        "targeting_override": json.dumps(flag.targeting_override, indent=2)
                        if flag.targeting_override is not None
                        else "",
                    }
                )

    @property
    def flag_type_value(self) -> str:
        return self.flag.flag_type if self.flag else self.cleaned_data.get("flag_type", FlagType.BOOLEAN)

    def clean_variants(self) -> dict[str, Any]:
        flag_type = self.flag.flag_type if self.flag else self.data.get(self.add_prefix("flag_type"), FlagType.BOOLEAN)
        variants = parse_variants(flag_type, self.cleaned_data["variants"])
        if not variants and flag_type != FlagType.BOOLEAN:
            raise forms.ValidationError("A string, number or object flag lists its variants.")
        return variants

    def clean_everyone_else(self) -> dict[str, Any] | None:
        text = self.cleaned_data.get("everyone_else", "").strip()
        if not text:
            return None
        try:
            return {"split": parse_split(text)}
        except ValueError as exc:
            raise forms.ValidationError(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None

    def clean_targeting_override(self) -> dict[str, Any] | None:
        text = self.cleaned_data.get("targeting_override", "").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not JSON: {exc}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Targeting is a JSON object, such as {"if": [...]}.')
        return value

    def rules(self) -> dict[str, Any]:
        """The flag's structured rules with this form's fallthrough and bucketing (rules themselves kept)."""
        current = dict(self.flag.rules or {}) if self.flag else {}
        current.pop("fallthrough", None)
        current.pop("bucket_by", None)
        if self.cleaned_data.get("everyone_else"):
            current["fallthrough"] = self.cleaned_data["everyone_else"]
        if self.cleaned_data.get("bucket_by"):
            current["bucket_by"] = self.cleaned_data["bucket_by"]
        return current


class RuleForm(_ConditionsMixin, forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="For people, e.g. “Beta customers on 2.x”.")
    match = forms.ChoiceField(choices=Segment.Match.choices, initial=Segment.Match.ALL, label="Match")
    segments = forms.MultipleChoiceField(required=False, help_text="Users in any of these segments match too.")
    users = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="User ids (targetingKey) that match."
    )
    serve = forms.CharField(max_length=500, help_text="A variant (“on”) or a split (“on = 20, off = 80”).")

    def __init__(self, *args: Any, flag: Flag, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flag = flag
        self._add_condition_fields()
        self.fields["segments"].choices = [
            (s.key, s.name) for s in Segment.objects.filter(application_id=flag.environment.application_id)
        ]
        self.order_fields(
            ["name", "match", *[f"{p}_{i}" for i in range(1, CONDITION_ROWS + 1) for p in ("attribute", "op", "value")]]
        )

    def clean_serve(self) -> dict[str, Any]:
        text = self.cleaned_data["serve"].strip()
        if re.search(r"[=,:]", text) or re.search(r"\s\d", text):
            try:
                return {"split": parse_split(text)}
            except ValueError as exc:
                raise forms.ValidationError(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
        return {"variant": text}

    def rule(self) -> dict[str, Any]:
        conditions = self.conditions()
        segment_conditions = [
            {"attribute": "", "op": "in_segment", "value": key} for key in self.cleaned_data["segments"]
        ]
        users = _users(self.cleaned_data["users"])
        user_conditions = [{"attribute": "targetingKey", "op": "one_of", "value": users}] if users else []
        return {
            "name": self.cleaned_data["name"],
            "match": self.cleaned_data["match"],
            "conditions": conditions + segment_conditions + user_conditions,
            "serve": self.cleaned_data["serve"],
        }


class SegmentForm(_ConditionsMixin, forms.ModelForm):
    users_text = forms.CharField(
        label="Users",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="User ids (targetingKey) always in the segment, separated by spaces, commas or lines.",
    )

    class Meta:
        model = Segment
        fields = ["key", "name", "description", "match"]
        help_texts = {"key": 'Referred to from targeting as {"$ref": "key"}; lower-case, digits and hyphens.'}

    def __init__(self, *args: Any, application: Application, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.application = application
        self._add_condition_fields()
        if self.instance.pk:
            self.fields["key"].disabled = True
            if not self.is_bound:
                self.initial["users_text"] = "\n".join(self.instance.users)
                for i, condition in enumerate(self.instance.conditions[:CONDITION_ROWS], start=1):
                    value = condition["value"]
                    self.initial[f"attribute_{i}"] = condition["attribute"]
                    self.initial[f"op_{i}"] = condition["op"]
                    self.initial[f"value_{i}"] = ", ".join(value) if isinstance(value, list) else value

    def validate_unique(self) -> None:
        """The service says so in words (naming the key), in the same transaction as the save."""

    def segment(self) -> Segment:
        segment = self.instance
        for name in ("key", "name", "description", "match"):
            if name in self.cleaned_data:
                setattr(segment, name, self.cleaned_data[name])
        segment.conditions = self.conditions()
        segment.users = _users(self.cleaned_data["users_text"])
        return segment


class CohortForm(forms.Form):
    """Who a dark launch reaches: segments, explicit users, and/or a small percentage."""

    segments = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    users = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="User ids (targetingKey)."
    )
    percent = forms.DecimalField(
        required=False,
        min_value=0,
        max_value=100,
        decimal_places=2,
        help_text="A share (of the segments and users, or of everyone when none is picked), e.g. 1.",
    )

    def __init__(self, *args: Any, flag: Flag, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flag = flag
        self.fields["segments"].choices = [
            (s.key, f"{s.name} ({s.key})")
            for s in Segment.objects.filter(application_id=flag.environment.application_id)
        ]

    def cohort(self) -> dict[str, Any]:
        percent = self.cleaned_data.get("percent")
        if percent is not None:
            percent = int(percent) if percent == percent.to_integral_value() else float(percent)
        return {
            "segments": self.cleaned_data["segments"],
            "users": _users(self.cleaned_data["users"]),
            "percent": percent,
        }


class LaunchForm(CohortForm):
    variant = forms.ChoiceField(help_text="What the cohort gets; everyone else keeps the default.")
    reason = forms.CharField(max_length=500, required=False)

    def __init__(self, *args: Any, flag: Flag, **kwargs: Any) -> None:
        super().__init__(*args, flag=flag, **kwargs)
        self.fields["variant"].choices = [(v, v) for v in flag.variants if v != flag.default_variant]
        self.order_fields(["variant", "segments", "users", "percent", "reason"])


class RolloutForm(forms.Form):
    percent = forms.IntegerField(min_value=1, max_value=100, help_text="Share of everyone else; 100 ends the launch.")


class ApiKeyForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=100, help_text="Who uses it, e.g. “checkout backend”.")
    can_evaluate = forms.BooleanField(required=False, initial=True, label="Evaluate flags (OFREP) and report events")
    can_sync = forms.BooleanField(required=False, label="Read the raw flag definitions (flagd sync)")

    def __init__(self, *args: Any, application: Application, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = application.environments.order_by("position")
