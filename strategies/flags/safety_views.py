"""Pages of the flags' safety features: scheduled changes, approval of changes, flags a release declares.

Views parse a form, call a service (`schedules`, `changes`, `release_links`), redirect with a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from portal.core.errors import DomainError
from portal.core.roles import Role, role_required
from releases.catalog.models import Environment, Release
from strategies.flags import changes, release_links, schedules
from strategies.flags.approval import approval_required
from strategies.flags.definitions import DefinitionError
from strategies.flags.models import FlagChangeRequest, FlagSchedule, ReleaseFlag
from strategies.flags.safety_forms import DecisionForm, ReleaseFlagForm, ScheduleForm
from strategies.flags.views import flag_or_404, flag_page


def _errors(exc: DefinitionError) -> str:
    return " ".join(f"{m}" for ms in exc.errors.values() for m in ms)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def flag_schedule_create(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    flag = flag_or_404(slug, pk)
    if request.method != "POST":
        return redirect(flag.get_absolute_url())
    form = ScheduleForm(request.POST, flag=flag)
    if form.is_valid():
        data = form.cleaned_data
        arguments = {"kind": data["kind"], "variant": data.get("variant") or "", "steps": data["parsed_steps"]}
        gated = data["kind"] != FlagSchedule.Kind.DISABLE_AT and approval_required(flag.environment)
        try:
            if gated:
                proposal = changes.propose_action(
                    flag=flag,
                    actor=request.user,
                    action=FlagChangeRequest.Action.SCHEDULE,
                    arguments=arguments,
                    summary=f"schedule: {schedules.describe_plan(flag, **arguments)}",
                )
            else:
                schedule = schedules.schedule_create(flag=flag, actor=request.user, **arguments)
        except DefinitionError as exc:
            form.add_error(None, _errors(exc))
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            if gated:
                messages.success(request, f"Proposed for approval (change #{proposal.pk}): {proposal.summary}.")
            else:
                messages.success(request, f"Scheduled: {schedules.describe(schedule)}.")
            return redirect(flag.get_absolute_url())
    return flag_page(request, flag, status=400, schedule_form=form)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def flag_schedule_cancel(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    schedule = get_object_or_404(
        FlagSchedule.objects.select_related("flag__environment__application"),
        pk=pk,
        flag__environment__application__slug=slug,
    )
    if request.method == "POST":
        try:
            schedules.schedule_cancel(schedule=schedule, actor=request.user)
        except DomainError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Cancelled: {schedules.describe(schedule)}.")
    return redirect(schedule.flag.get_absolute_url())


@require_POST
@role_required(Role.APPROVER)
def flag_change_decide(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    change = get_object_or_404(
        FlagChangeRequest.objects.select_related("flag__environment__application"),
        pk=pk,
        flag__environment__application__slug=slug,
    )
    if request.method != "POST":
        return redirect(change.flag.get_absolute_url())
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
        return redirect(change.flag.get_absolute_url())
    approve = form.cleaned_data["decision"] == "approve"
    try:
        change = changes.decide(
            request=change, actor=request.user, approve=approve, comment=form.cleaned_data["comment"]
        )
    except DomainError as exc:  # not eligible (another approver must decide) included
        messages.error(request, str(exc))
    else:
        if change.status == FlagChangeRequest.Status.APPLIED:
            messages.success(request, f"Approved and applied: {change.summary}.")
        elif change.status == FlagChangeRequest.Status.FAILED:
            messages.error(request, "Approved, but the flag changed since it was proposed: not applied.")
        elif change.status == FlagChangeRequest.Status.REJECTED:
            messages.success(request, f"Rejected: {change.summary}.")
        else:
            messages.success(request, "Approved; more approvals are needed before it applies.")
    return redirect(change.flag.get_absolute_url())


@require_POST
@role_required(Role.ADMIN)
def flag_approval_toggle(request: HttpRequest, slug: str, environment_id: int) -> HttpResponse:
    environment = get_object_or_404(Environment, pk=environment_id, application__slug=slug)
    if request.method == "POST":
        on = request.POST.get("on") == "1"
        changes.set_approval(environment=environment, on=on, actor=request.user)
        if on and not approval_required(environment):
            messages.warning(
                request,
                f"Saved, but {environment.name}'s approval policy asks for no approvals, "
                "so changes still apply at once.",
            )
        else:
            state = "need approval" if on else "apply at once"
            messages.success(request, f"Flag changes in {environment.name} now {state}.")
    return redirect("application_flags", slug=slug)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def release_flag_declare(request: HttpRequest, pk: int) -> HttpResponse:
    release = get_object_or_404(Release.objects.select_related("application"), pk=pk)
    if request.method == "POST":
        form = ReleaseFlagForm(request.POST)
        if form.is_valid():
            try:
                release_links.declare(
                    release=release,
                    flag_key=form.cleaned_data["flag_key"],
                    note=form.cleaned_data["note"],
                    actor=request.user,
                )
            except DefinitionError as exc:
                messages.error(request, _errors(exc))
            else:
                messages.success(request, f"{release} introduces {form.cleaned_data['flag_key']}.")
        else:
            messages.error(request, "Give the key of the flag the release introduces.")
    return redirect(release.get_absolute_url() + "#release-flags")


@require_POST
@role_required(Role.RELEASE_MANAGER)
def release_flag_remove(request: HttpRequest, pk: int) -> HttpResponse:
    link_id = request.POST.get("link", "")
    link = get_object_or_404(
        ReleaseFlag.objects.select_related("release__application"),
        pk=int(link_id) if link_id.isdigit() else 0,
        release_id=pk,
    )
    if request.method == "POST":
        release_links.remove(link=link, actor=request.user)
        messages.success(request, f"Removed {link.flag_key} from {link.release}.")
    return redirect(link.release.get_absolute_url() + "#release-flags")
