"""Forms of scheduled changes, change decisions and flags declared by a release."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from portal.core import clock
from strategies.flags.models import Flag, FlagSchedule

RELATIVE = re.compile(r"^\+(\d+)\s*([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_when(text: str, now: datetime) -> datetime:
    """'now', '+30m', '+6h', '+2d', or a date and time ('2026-12-01 09:00', in the portal's time zone)."""
    text = text.strip().lower()
    if text == "now":
        return now
    if match := RELATIVE.match(text):
        return now + timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"“{text}” is not a time: write now, +6h, +2d or 2026-12-01 09:00") from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class ScheduleForm(forms.Form):
    kind = forms.ChoiceField(choices=FlagSchedule.Kind.choices)
    when = forms.CharField(required=False, max_length=40, help_text="Turn on / off: now, +6h, +2d or 2026-12-01 09:00.")
    variant = forms.ChoiceField(required=False, help_text="Ramp: the variant rolled out to everyone else.")
    steps = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Ramp: one step a line, a time then a percentage: “now 10”, “+2d 50”, “+4d 100”.",
    )

    def __init__(self, *args: Any, flag: Flag, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["variant"].choices = [(v, v) for v in flag.variants if v != flag.default_variant]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        now = clock.now()
        parsed: list[tuple[datetime, int | None]] = []
        try:
            if data.get("kind") == FlagSchedule.Kind.RAMP:
                for number, line in enumerate((data.get("steps") or "").splitlines(), start=1):
                    if not line.strip():
                        continue
                    when, _, percent = line.strip().rpartition(" ")
                    if not when or not percent.rstrip("%").strip().isdigit():
                        raise ValueError(f"Line {number}: a time then a percentage, like “+2d 50”")
                    parsed.append((parse_when(when, now), int(percent.rstrip("%"))))
                if not parsed:
                    self.add_error("steps", "Give the ramp's steps.")
            elif data.get("kind"):
                parsed.append((parse_when(data.get("when") or "", now), None))
        except ValueError as exc:
            self.add_error("steps" if data.get("kind") == FlagSchedule.Kind.RAMP else "when", str(exc))
        data["parsed_steps"] = parsed
        return data


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("decision") == "reject" and not (data.get("comment") or "").strip():
            self.add_error("comment", "Say why you reject the change.")
        return data


class ReleaseFlagForm(forms.Form):
    flag_key = forms.CharField(max_length=100, label="Flag key")
    note = forms.CharField(max_length=300, required=False)
