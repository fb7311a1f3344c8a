"""Pages of feature flags: overview and stale flags, an application's flags and segments, a flag,
its dark launch, and the environments' API keys.

Viewers see everything but the keys; release managers (and admins, who hold that role too) change
flags, segments and launches and issue and revoke API keys. Views parse a form, call a service of
`strategies.flags.services`, render.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from portal.core.errors import DomainError, ErrorCode
from portal.core.htmx import partial_requested
from portal.core.roles import Role, require_role, role_required
from releases.catalog.models import Application
from strategies.flags import changes, selectors, services
from strategies.flags.approval import approval_required
from strategies.flags.definitions import DefinitionError, describe_condition, format_split, pretty
from strategies.flags.forms import (
    ApiKeyForm,
    CohortForm,
    FlagForm,
    LaunchForm,
    RolloutForm,
    RuleForm,
    SegmentForm,
    add_definition_errors,
)
from strategies.flags.models import (
    DarkLaunch,
    Flag,
    FlagApiKey,
    FlagApprovalSetting,
    FlagChangeRequest,
    FlagSet,
    Lifecycle,
    Segment,
)
from strategies.flags.safety_forms import ScheduleForm


def flag_or_404(slug: str, pk: int) -> Flag:
    return get_object_or_404(
        Flag.objects.select_related("environment__application", "owner"), pk=pk, environment__application__slug=slug
    )


@role_required(Role.VIEWER)
def flags_overview(request: HttpRequest) -> HttpResponse:
    """Every application's flags in numbers, and the stale flags to clean up."""
    applications = Application.objects.order_by("name")
    counts: dict[int, int] = {}
    for app_id in Flag.objects.exclude(lifecycle=Lifecycle.ARCHIVED).values_list(
        "environment__application_id", flat=True
    ):
        counts[app_id] = counts.get(app_id, 0) + 1
    launches = DarkLaunch.objects.filter(status=DarkLaunch.Status.ACTIVE).select_related(
        "flag__environment__application"
    )
    context = {
        "applications": [(app, counts.get(app.pk, 0)) for app in applications],
        "stale": selectors.stale_flags(),
        "launches": launches,
    }
    return render(request, "flags/overview.html", context)


@role_required(Role.VIEWER)
def application_flags(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    flags = list(selectors.flags_of(application.pk))
    environments = []
    flag_sets = {fs.environment_id: fs for fs in FlagSet.objects.filter(environment__application=application)}
    approval_settings = dict(
        FlagApprovalSetting.objects.filter(environment__application=application).values_list(
            "environment_id", "changes_need_approval"
        )
    )
    for environment in application.environments.order_by("position"):
        environments.append(
            {
                "environment": environment,
                "flags": [f for f in flags if f.environment_id == environment.pk],
                "flag_set": flag_sets.get(environment.pk),
                "approval": approval_settings.get(environment.pk, False),
                "approval_effective": approval_required(environment),
            }
        )
    context = {
        "application": application,
        "environments": environments,
        "segments": application.flag_segments.order_by("key"),
    }
    return render(request, "flags/application.html", context)


@role_required(Role.RELEASE_MANAGER)
def flag_create(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    form = FlagForm(request.POST or None, application=application, initial=request.GET.dict() or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            flag = services.flag_create(
                environment=data["environment"],
                key=data["key"],
                flag_type=data["flag_type"],
                variants=data["variants"],
                default_variant=data["default_variant"].strip(),
                description=data["description"],
                owner=data["owner"],
                planned_removal=data["planned_removal"],
                actor=request.user,
            )
        except DefinitionError as exc:
            add_definition_errors(form, exc)
        else:
            messages.success(request, f"Created the flag {flag.key} in {flag.environment.name}.")
            return redirect(flag.get_absolute_url())
    status = 400 if request.method == "POST" else 200
    return render(request, "flags/flag_form.html", {"application": application, "form": form}, status=status)


def flag_page(request: HttpRequest, flag: Flag, *, status: int = 200, **forms: Any) -> HttpResponse:
    rules = []
    for index, rule in enumerate((flag.rules or {}).get("rules", [])):
        serve = rule["serve"]
        rules.append(
            {
                "index": index,
                "name": rule.get("name") or f"Rule {index + 1}",
                "launch": rule.get("launch", False),
                "match": rule.get("match", "all"),
                "conditions": [describe_condition(c) for c in rule.get("conditions", [])] or ["everyone"],
                "serve": serve.get("variant") or format_split(serve["split"]),
            }
        )
    fallthrough = (flag.rules or {}).get("fallthrough")
    context = {
        "application": flag.environment.application,
        "flag": flag,
        "rules": rules,
        "fallthrough": format_split(fallthrough["split"]) if fallthrough else None,
        "definition": pretty({flag.key: flag.definition}),
        "history": selectors.flag_history(flag),
        "launch": flag.launches.filter(status=DarkLaunch.Status.ACTIVE).first(),
        "past_launches": flag.launches.exclude(status=DarkLaunch.Status.ACTIVE)[:5],
        "lifecycle_moves": sorted(services.LIFECYCLE_EDGES.get(flag.lifecycle, ())),
        "rule_form": forms.get("rule_form") or RuleForm(flag=flag),
        "schedule_form": forms.get("schedule_form")
        or ScheduleForm(flag=flag, initial={"steps": "now 10\n+2d 50\n+4d 100"}),
        "schedules": flag.schedules.select_related("created_by")[:20],
        "needs_approval": approval_required(flag.environment),
        "pending_changes": changes.pending_for(flag, request.user),
        "past_changes": flag.change_requests.exclude(status="pending").select_related("proposed_by", "decided_by")[:5],
    }
    return render(request, "flags/flag_detail.html", context, status=status)


@role_required(Role.VIEWER)
def flag_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return flag_page(request, flag_or_404(slug, pk))


@role_required(Role.RELEASE_MANAGER)
def flag_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    flag = flag_or_404(slug, pk)
    form = FlagForm(request.POST or None, application=flag.environment.application, flag=flag)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        edits = {
            "description": data["description"],
            "owner": data["owner"],
            "variants": data["variants"] or flag.variants,
            "default_variant": data["default_variant"].strip(),
            "planned_removal": data["planned_removal"],
            "rules": form.rules(),
            "targeting_override": data["targeting_override"],
        }
        try:
            if approval_required(flag.environment):
                changes.propose(flag=flag, actor=request.user, changes=edits, summary=f"edit {flag.key}")
                messages.success(request, f"Proposed the edit of {flag.key}: it applies once approved.")
            else:
                services.flag_update(flag=flag, actor=request.user, **edits)
                messages.success(request, f"Saved {flag.key}.")
        except DefinitionError as exc:
            add_definition_errors(form, exc)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect(flag.get_absolute_url())
    status = 400 if request.method == "POST" else 200
    context = {"application": flag.environment.application, "form": form, "flag": flag}
    return render(request, "flags/flag_form.html", context, status=status)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def flag_rule_add(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    flag = flag_or_404(slug, pk)
    form = RuleForm(request.POST, flag=flag)
    if form.is_valid():
        try:
            if approval_required(flag.environment):
                rules = dict(flag.rules or {})
                rules["rules"] = [*rules.get("rules", []), {**form.rule(), "launch": False}]
                changes.propose(flag=flag, actor=request.user, changes={"rules": rules}, summary="add a rule")
                messages.success(request, f"Proposed a new rule for {flag.key}: it applies once approved.")
            else:
                services.flag_rule_add(flag=flag, rule=form.rule(), actor=request.user)
                messages.success(request, f"Added a rule to {flag.key}.")
        except DefinitionError as exc:
            add_definition_errors(form, exc)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect(flag.get_absolute_url())
    return flag_page(request, flag, status=400, rule_form=form)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def flag_rule_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    flag = flag_or_404(slug, pk)
    try:
        index = int(request.POST.get("index", ""))
        if approval_required(flag.environment):
            rules = dict(flag.rules or {})
            current = list(rules.get("rules", []))
            if not 0 <= index < len(current) or current[index].get("launch"):
                raise DomainError(ErrorCode.NOT_FOUND, f"{flag.key} has no rule {index + 1} that can be removed here.")
            rules["rules"] = current[:index] + current[index + 1 :]
            changes.propose(flag=flag, actor=request.user, changes={"rules": rules}, summary=f"remove rule {index + 1}")
            messages.success(request, f"Proposed removing rule {index + 1} of {flag.key}: it applies once approved.")
        else:
            services.flag_rule_remove(flag=flag, index=index, actor=request.user)
            messages.success(request, f"Removed rule {index + 1} of {flag.key}.")
    except ValueError:
        messages.error(request, "Say which rule to remove.")
    except DomainError as exc:
        messages.error(request, str(exc))
    return redirect(flag.get_absolute_url())


@require_POST
@role_required(Role.RELEASE_MANAGER)
def flag_kill(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """The one-click kill switch (and, with state=on, turning the flag back on)."""
    flag = flag_or_404(slug, pk)
    reason = request.POST.get("reason", "")[:500]
    try:
        if request.POST.get("state") == "on" and approval_required(flag.environment):
            if flag.enabled:
                raise DomainError(ErrorCode.CONFLICT, f"{flag.key} is already on.")
            changes.propose(flag=flag, actor=request.user, changes={"enabled": True}, summary=reason or "turn back on")
            messages.success(request, f"Proposed turning {flag.key} back on: it applies once approved.")
        elif request.POST.get("state") == "on":
            services.flag_enable(flag=flag, actor=request.user, reason=reason)
            messages.success(request, f"{flag.key} is on again.")
        else:
            services.flag_kill(flag=flag, actor=request.user, reason=reason)
            messages.success(request, f"Killed {flag.key}: everyone gets “{flag.default_variant}”.")
    except DomainError as exc:
        messages.error(request, str(exc))
    return redirect(flag.get_absolute_url())


@require_POST
@role_required(Role.RELEASE_MANAGER)
def flag_lifecycle(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    flag = flag_or_404(slug, pk)
    to = request.POST.get("to", "")
    try:
        if to == Lifecycle.ARCHIVED and approval_required(flag.environment):
            proposal = changes.propose(flag=flag, actor=request.user, changes={"lifecycle": to}, summary="archive")
            messages.success(request, _proposed(proposal))
        else:
            services.flag_set_lifecycle(flag=flag, to=to, actor=request.user)
            messages.success(request, f"{flag.key} is now {to}.")
    except DomainError as exc:
        messages.error(request, str(exc))
    return redirect(flag.get_absolute_url())


# --- Segments ---------------------------------------------------------------------------------------


@role_required(Role.RELEASE_MANAGER)
def segment_edit(request: HttpRequest, slug: str, pk: int | None = None) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    segment = get_object_or_404(Segment, pk=pk, application=application) if pk else None
    form = SegmentForm(request.POST or None, instance=segment, application=application)
    if request.method == "POST" and form.is_valid():
        try:
            edited = form.segment()
            if services.segment_gated_flags(edited):
                proposal = changes.propose_segment(segment=edited, actor=request.user)
                messages.success(request, _proposed(proposal))
            else:
                saved = services.segment_save(segment=edited, actor=request.user)
                messages.success(request, f"Saved the segment {saved.name}.")
        except DefinitionError as exc:
            add_definition_errors(form, exc)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("application_flags", slug=slug)
    status = 400 if request.method == "POST" else 200
    context = {"application": application, "form": form, "segment": segment}
    return render(request, "flags/segment_form.html", context, status=status)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def segment_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk, application__slug=slug)
    try:
        services.segment_delete(segment=segment, actor=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Deleted the segment {segment.name}.")
    return redirect("application_flags", slug=slug)


# --- Dark launches ----------------------------------------------------------------------------------


@role_required(Role.RELEASE_MANAGER)
def launch_create(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    flag = flag_or_404(slug, pk)
    form = LaunchForm(request.POST or None, flag=flag)
    if request.method == "POST" and form.is_valid():
        arguments = {"variant": form.cleaned_data["variant"], "reason": form.cleaned_data["reason"], **form.cohort()}
        try:
            if approval_required(flag.environment):
                proposal = changes.propose_action(
                    flag=flag,
                    actor=request.user,
                    action=FlagChangeRequest.Action.LAUNCH_START,
                    arguments=arguments,
                    summary=f"dark-launch {flag.key} = {arguments['variant']}",
                )
                messages.success(request, _proposed(proposal))
                return redirect(flag.get_absolute_url())
            launch = services.launch_start(flag=flag, actor=request.user, **arguments)
        except DefinitionError as exc:
            add_definition_errors(form, exc)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"Dark-launched {flag.key} = {launch.variant} to {selectors.cohort_summary(launch)}."
            )
            return redirect(launch.get_absolute_url())
    status = 400 if request.method == "POST" else 200
    context = {"application": flag.environment.application, "flag": flag, "form": form}
    return render(request, "flags/launch_form.html", context, status=status)


def _proposed(proposal: FlagChangeRequest) -> str:
    environment = proposal.flag.environment
    return (
        f"Changes to flags in {environment.name} need approval: proposed as change #{proposal.pk} "
        f"({proposal.summary}); it is applied when approved."
    )


def _launch(slug: str, pk: int) -> DarkLaunch:
    return get_object_or_404(
        DarkLaunch.objects.select_related("flag__environment__application", "started_by"),
        pk=pk,
        flag__environment__application__slug=slug,
    )


# Both forms of the launch page have a "percent": distinct ids, so that each label names its own input.
WIDEN_ID, ROLLOUT_ID = "widen_%s", "rollout_%s"


def _launch_page(request: HttpRequest, launch: DarkLaunch, *, status: int = 200, **forms: Any) -> HttpResponse:
    context = {
        "application": launch.flag.environment.application,
        "launch": launch,
        "flag": launch.flag,
        "cohort": selectors.cohort_summary(launch),
        "figures": selectors.launch_figures(launch),
        "widen_form": forms.get("widen_form") or CohortForm(flag=launch.flag, auto_id=WIDEN_ID),
        "rollout_form": forms.get("rollout_form")
        or RolloutForm(initial={"percent": min(100, max(10, launch.rollout_percent * 2 or 10))}, auto_id=ROLLOUT_ID),
    }
    if partial_requested(request):
        return render(request, "flags/launch_detail.html#figures", context, status=status)
    return render(request, "flags/launch_detail.html", context, status=status)


@vary_on_headers("HX-Request")
@role_required(Role.VIEWER)
def launch_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    return _launch_page(request, _launch(slug, pk))


@require_POST
@role_required(Role.RELEASE_MANAGER)
def launch_widen(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    launch = _launch(slug, pk)
    form = CohortForm(request.POST, flag=launch.flag, auto_id=WIDEN_ID)
    if form.is_valid():
        try:
            if approval_required(launch.flag.environment):
                proposal = changes.propose_action(
                    flag=launch.flag,
                    actor=request.user,
                    action=FlagChangeRequest.Action.LAUNCH_WIDEN,
                    arguments=form.cohort(),
                    summary=f"widen the dark launch of {launch.flag.key}",
                )
                messages.success(request, _proposed(proposal))
                return redirect(launch.get_absolute_url())
            launch = services.launch_widen(launch=launch, actor=request.user, **form.cohort())
        except DefinitionError as exc:
            add_definition_errors(form, exc)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Widened the launch: {selectors.cohort_summary(launch)}.")
            return redirect(launch.get_absolute_url())
    return _launch_page(request, launch, status=400, widen_form=form)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def launch_rollout(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    launch = _launch(slug, pk)
    form = RolloutForm(request.POST, auto_id=ROLLOUT_ID)
    if form.is_valid():
        percent = form.cleaned_data["percent"]
        try:
            if approval_required(launch.flag.environment):
                proposal = changes.propose_action(
                    flag=launch.flag,
                    actor=request.user,
                    action=FlagChangeRequest.Action.LAUNCH_ROLLOUT,
                    arguments={"percent": percent},
                    summary=f"roll {launch.flag.key} = {launch.variant} out to {percent} % of everyone",
                )
                messages.success(request, _proposed(proposal))
                return redirect(launch.get_absolute_url())
            launch = services.launch_rollout(launch=launch, percent=percent, actor=request.user)
        except DefinitionError as exc:
            add_definition_errors(form, exc)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            if launch.status == DarkLaunch.Status.ROLLED_OUT:
                messages.success(request, f"{launch.flag.key} = {launch.variant} is now everyone's default.")
            else:
                messages.success(request, f"{launch.variant} now reaches {launch.rollout_percent} % of everyone.")
            return redirect(launch.get_absolute_url())
    return _launch_page(request, launch, status=400, rollout_form=form)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def launch_kill(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    launch = _launch(slug, pk)
    try:
        services.launch_kill(launch=launch, actor=request.user, reason=request.POST.get("reason", "")[:500])
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Killed the launch: everyone gets {launch.flag.default_variant} again.")
    return redirect(launch.get_absolute_url())


# --- API keys ---------------------------------------------------------------------------------------


@role_required(Role.RELEASE_MANAGER)
def flag_api_keys(request: HttpRequest, slug: str) -> HttpResponse:
    """The environments' flag API keys; issuing one shows its secret once."""
    application = get_object_or_404(Application, slug=slug)
    form = ApiKeyForm(request.POST or None, application=application)
    issued = None
    status = 200
    if request.method == "POST":
        require_role(request.user, Role.RELEASE_MANAGER)
        if form.is_valid():
            try:
                issued = services.api_key_create(
                    environment=form.cleaned_data["environment"],
                    name=form.cleaned_data["name"],
                    can_evaluate=form.cleaned_data["can_evaluate"],
                    can_sync=form.cleaned_data["can_sync"],
                    actor=request.user,
                )
            except DefinitionError as exc:
                add_definition_errors(form, exc)
                status = 400
            else:
                form = ApiKeyForm(application=application)
        else:
            status = 400
    keys = FlagApiKey.objects.filter(environment__application=application).select_related("environment", "created_by")
    context = {
        "application": application,
        "form": form,
        "keys": keys,
        "issued": issued,
        "curl_body": json.dumps({"context": {"targetingKey": "user-1"}}),
    }
    return render(request, "flags/api_keys.html", context, status=status)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def flag_api_key_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    key = get_object_or_404(FlagApiKey, pk=pk, environment__application__slug=slug)
    try:
        services.api_key_revoke(key=key, actor=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Revoked {key}.")
    return redirect("flag_api_keys", slug=slug)
