"""Forms of the approval pages: the policy editor (with its freeze windows) and the decision form.

The rules themselves live in `releases.approvals.policy_problems`; the forms parse input and show
those problems next to the fields they concern.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from releases.approvals.freeze import WEEKDAYS, zone
from releases.approvals.models import ApprovalDecision, ApprovalPolicy, FreezeWindow
from releases.approvals.policies import PolicyProblems

WEEKDAY_CHOICES = [("", "—")] + [(str(i), name) for i, name in enumerate(WEEKDAYS)]


class PolicyForm(forms.Form):
    approvals_required = forms.IntegerField(
        min_value=0, max_value=10, help_text="N: how many distinct approvers must approve (0: no approval needed)."
    )
    approver_groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Members of these groups who hold the approver role may approve.",
    )
    approver_users = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        help_text="And these people (they need the approver role too).",
    )
    forbid_self_approval = forms.BooleanField(
        required=False, help_text="Whoever registered a release or asked for its approval may not approve it."
    )
    expiry_hours = forms.IntegerField(min_value=1, max_value=24 * 90, help_text="A pending request lapses after this.")
    reminder_hours = forms.IntegerField(
        min_value=0, help_text="Remind approvers this many hours before a request lapses (0: no reminder)."
    )
    auto_promote = forms.BooleanField(
        required=False, help_text="Once approved, promote in the next moment outside a freeze window."
    )
    require_healthy_slot = forms.BooleanField(
        required=False, help_text="Gate: the pre-production slot must pass its health check."
    )
    teams_webhook_url = forms.URLField(
        required=False,
        max_length=1000,
        assume_scheme="https",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        label="Microsoft Teams incoming webhook",
    )
    clear_teams_webhook = forms.BooleanField(required=False, label="Remove the Teams webhook")
    slack_webhook_url = forms.URLField(
        required=False,
        max_length=1000,
        assume_scheme="https",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        label="Slack incoming webhook",
    )
    clear_slack_webhook = forms.BooleanField(required=False, label="Remove the Slack webhook")

    def __init__(self, *args: Any, policy: ApprovalPolicy | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The URLs are credentials: never sent back to the browser. Empty keeps the current one.
        for name, label in (("teams_webhook_url", "Teams"), ("slack_webhook_url", "Slack")):
            current = getattr(policy, name, "") if policy else ""
            self.fields[name].help_text = (
                f"A {label} webhook is configured; leave this empty to keep it."
                if current
                else f"Optional: paste the {label} incoming-webhook URL to post requests to a channel."
            )

    def webhook(self, name: str) -> str | None:
        """The URL to save: None keeps the current one, "" removes it."""
        if self.cleaned_data[f"clear_{name}"]:
            return ""
        return self.cleaned_data[f"{name}_url"] or None


def policy_initial(policy: ApprovalPolicy | None) -> dict[str, Any]:
    if policy is None:
        return {
            "approvals_required": 1,
            "approver_groups": Group.objects.filter(name="Approver"),
            "forbid_self_approval": True,
            "expiry_hours": 72,
            "reminder_hours": 12,
            "require_healthy_slot": True,
        }
    return {
        "approvals_required": policy.approvals_required,
        "approver_groups": policy.approver_groups.all(),
        "approver_users": policy.approver_users.all(),
        "forbid_self_approval": policy.forbid_self_approval,
        "expiry_hours": policy.expiry_hours,
        "reminder_hours": policy.reminder_hours,
        "auto_promote": policy.auto_promote,
        "require_healthy_slot": policy.require_healthy_slot,
    }


class WallClockDateTimeField(forms.DateTimeField):
    """A date and time on the window's own clock: kept naive here; the form places it in the window's zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=None)
        try:
            result = parse_datetime(str(value).strip())
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if result is None:
            result = forms.BaseTemporalField.to_python(self, value)
        return result.replace(tzinfo=None)


class FreezeWindowForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=FreezeWindow.Kind.choices, initial=FreezeWindow.Kind.WEEKLY)
    timezone = forms.CharField(
        max_length=64, help_text="IANA name, e.g. Europe/London", widget=forms.TextInput(attrs={"list": "timezones"})
    )
    start_weekday = forms.TypedChoiceField(
        choices=WEEKDAY_CHOICES, coerce=int, empty_value=None, required=False, label="From (weekly)"
    )
    start_time = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    end_weekday = forms.TypedChoiceField(
        choices=WEEKDAY_CHOICES, coerce=int, empty_value=None, required=False, label="To (weekly)"
    )
    end_time = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    starts_at = WallClockDateTimeField(required=False, label="From (dated)")
    ends_at = WallClockDateTimeField(required=False, label="To (dated)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A new row starts in the viewer's zone; an untouched blank row then counts as unchanged.
        self.fields["timezone"].initial = timezone.get_current_timezone_name()

    def window(self) -> FreezeWindow:
        """The window as it would be saved (dated times placed in its zone, stored in UTC)."""
        data = self.cleaned_data
        window = FreezeWindow(name=data["name"].strip(), kind=data["kind"], timezone=data["timezone"].strip())
        if window.kind == FreezeWindow.Kind.WEEKLY:
            window.start_weekday, window.start_time = data["start_weekday"], data["start_time"]
            window.end_weekday, window.end_time = data["end_weekday"], data["end_time"]
        else:
            tz = zone(window.timezone)
            for name in ("starts_at", "ends_at"):
                value = data[name]
                setattr(window, name, value.replace(tzinfo=tz) if value is not None and tz is not None else value)
        return window


def window_initial(window: FreezeWindow) -> dict[str, Any]:
    tz = zone(window.timezone)
    initial: dict[str, Any] = {"name": window.name, "kind": window.kind, "timezone": window.timezone}
    if window.kind == FreezeWindow.Kind.WEEKLY:
        initial |= {
            "start_weekday": window.start_weekday,
            "start_time": window.start_time,
            "end_weekday": window.end_weekday,
            "end_time": window.end_time,
        }
    elif tz is not None and window.starts_at and window.ends_at:
        initial |= {
            "starts_at": window.starts_at.astimezone(tz).replace(tzinfo=None),
            "ends_at": window.ends_at.astimezone(tz).replace(tzinfo=None),
        }
    return initial


class BaseFreezeWindowFormSet(forms.BaseFormSet):
    def kept(self) -> list[FreezeWindowForm]:
        """The saved rows and the filled-in new ones, less those marked for removal, in order."""
        return [
            form
            for index, form in enumerate(self.forms)
            if (index < self.initial_form_count() or form.has_changed()) and not self._should_delete_form(form)
        ]


FreezeWindowFormSet = forms.formset_factory(
    FreezeWindowForm, formset=BaseFreezeWindowFormSet, extra=1, can_delete=True, max_num=20, validate_max=True
)


def show_problems(form: PolicyForm, window_forms: list[FreezeWindowForm], problems: PolicyProblems) -> None:
    """Put each problem next to the field it concerns."""
    for name, message in problems.fields.items():
        form.add_error(name if name in form.fields else None, message)
    for position, window_problems in problems.windows.items():
        window_form = window_forms[position]
        for name, message in window_problems.items():
            window_form.add_error(name if name in window_form.fields else None, message)


class DecisionForm(forms.Form):
    verdict = forms.ChoiceField(choices=ApprovalDecision.Verdict.choices)
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("verdict") == ApprovalDecision.Verdict.REJECT and not (data.get("comment") or "").strip():
            self.add_error("comment", "Say why you reject it; a rejection needs a comment.")
        return data


class OverrideForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why this release must go in during the freeze. Recorded in the audit trail.",
    )
