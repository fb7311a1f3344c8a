"""Pages of the approval workflow: the inbox, a request, deciding, gates, the freeze override, policies."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from portal.core import clock
from portal.core.errors import DomainError
from portal.core.htmx import partial_requested
from portal.core.pages import page_render
from portal.core.roles import Role, has_role, role_required
from releases.approvals import freeze, workflow
from releases.approvals.common import policy_of
from releases.approvals.forms import (
    DecisionForm,
    FreezeWindowFormSet,
    OverrideForm,
    PolicyForm,
    policy_initial,
    show_problems,
    window_initial,
)
from releases.approvals.gates import active_override, freeze_override, freeze_state, gates_refresh, latest_gate_results
from releases.approvals.models import ApprovalRequest, ApprovalRequestStatus
from releases.approvals.policies import approvers_for, eligible_approvers, ineligibility, policy_problems, policy_update
from releases.approvals.workflow import approval_request_open, source_slot
from releases.audit import selectors as audit_selectors
from releases.catalog import selectors
from releases.catalog.models import Environment, Provider, Release, Slot


def _approval_or_404(request_id: int) -> ApprovalRequest:
    return get_object_or_404(
        ApprovalRequest.objects.select_related(
            "release__application", "release__created_by", "release__deployed_slot", "environment", "requested_by"
        ),
        pk=request_id,
    )


def slot_link(release: Release, slot: Slot | None) -> str:
    """Where approvers see the build running: the simulator's page of the slot, or the slot's own host."""
    if slot is None:
        return ""
    if release.application.provider == Provider.SIMULATOR:
        return reverse("sim_slot", args=[release.application.slug, slot.name])
    return f"https://{slot.hostname}/" if slot.hostname else ""


def _approval_context(request: HttpRequest, approval: ApprovalRequest, **forms: Any) -> dict[str, Any]:
    release, environment = approval.release, approval.environment
    now = clock.now()
    decisions = list(approval.decisions.select_related("approver"))
    pending = approval.status == ApprovalRequestStatus.PENDING
    lapsed = pending and approval.expires_at <= now  # the sweep may not have run yet
    mine = next((d for d in decisions if d.approver_id == request.user.pk), None)
    why_not = ""
    if pending and not lapsed and mine is None and has_role(request.user, Role.APPROVER):
        why_not = ineligibility(request.user, approval)
    slot = source_slot(release, environment)
    policy = policy_of(environment)
    eligible = list(approvers_for(approval))
    decided = {d.approver_id for d in decisions}
    undecided = [person for person in eligible if person.pk not in decided]
    given = sum(d.verdict == "approve" for d in decisions)
    return {
        "approval": approval,
        "release": release,
        "environment": environment,
        "policy": policy,
        "decisions": decisions,
        "approvals_given": given,
        "pending": pending and not lapsed,
        "lapsed": lapsed,
        "my_decision": mine,
        "can_decide": pending and not lapsed and mine is None and has_role(request.user, Role.APPROVER) and not why_not,
        "why_not": why_not,
        "eligible": eligible,
        "undecided": undecided,
        "short_of_approvers": pending and not lapsed and given + len(undecided) < approval.approvals_required,
        "slot": slot,
        "slot_url": slot_link(release, slot),
        "changes": selectors.releases_since_live(release),
        "gates": latest_gate_results(release, environment),
        "freezes": freeze_state(environment, now),
        "override": active_override(release, environment, now),
        "overrides": release.freeze_overrides.filter(environment=environment).select_related("created_by"),
        "deliveries": approval.deliveries.all(),
        "events": audit_selectors.audit_trail_of(approval),
        "decision_form": forms.get("decision_form") or DecisionForm(),
        "override_form": forms.get("override_form") or OverrideForm(),
    }


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request", "HX-Boosted")
def approval_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    approval = _approval_or_404(request_id)
    context = _approval_context(request, approval)
    if context["pending"] and not partial_requested(request):
        # What approvers are told is checked as the page renders (not on every poll of its status): the slot
        # they will open must run the build they are asked about.
        problem = workflow.build_problem(approval.release, approval.environment)
        context["stale_facts"] = str(problem) if problem else ""
    if partial_requested(request):
        response = render(request, "approvals/approval_detail.html#status", context)
        if context["pending"]:
            return response
        stop = HttpResponseStopPolling(response.content)  # settled or lapsed: nothing more will change
        stop["Content-Type"] = response["Content-Type"]
        return stop
    return render(request, "approvals/approval_detail.html", context)


@require_POST
@role_required(Role.APPROVER)
def approval_decide(request: HttpRequest, request_id: int) -> HttpResponse:
    approval = _approval_or_404(request_id)
    form = DecisionForm(request.POST)
    # Decided from the release page: errors and the outcome are shown there, in place.
    on_release_page = request.POST.get("return_to") == "release"
    if not form.is_valid():
        if on_release_page:
            return _release_page(request, approval.release, status=400, decision_form=form)
        context = _approval_context(request, approval, decision_form=form)
        return render(request, "approvals/approval_detail.html", context, status=400)
    try:
        workflow.approval_decide(
            request=approval,
            actor=request.user,
            verdict=form.cleaned_data["verdict"],
            comment=form.cleaned_data["comment"],
        )
    except DomainError as exc:
        if exc.forbidden:
            raise  # someone else must do it: the 403 page (portal.errors_middleware)
        approval.refresh_from_db()
        if on_release_page:
            form.add_error(None, str(exc))
            return _release_page(request, approval.release, status=409, decision_form=form)
        messages.error(request, str(exc))
        context = _approval_context(request, approval, decision_form=form)
        return render(request, "approvals/approval_detail.html", context, status=409)
    verdict = "approved" if form.cleaned_data["verdict"] == "approve" else "rejected"
    messages.success(request, f"You {verdict} {approval.release}. {_outcome(approval)}")
    if on_release_page:
        return redirect(f"{approval.release.get_absolute_url()}#approval")
    return redirect("approval_detail", request_id=approval.pk)


def _release_page(request: HttpRequest, release: Any, **kwargs: Any) -> HttpResponse:
    return page_render("release", request, release, **kwargs)  # portal.pages composes it (portal/core/pages.py)


def _outcome(approval: ApprovalRequest) -> str:
    if approval.status == ApprovalRequestStatus.APPROVED:
        return f"The request is approved: {approval.release} may go to {approval.environment.name}."
    if approval.status == ApprovalRequestStatus.REJECTED:
        return "The request is rejected."
    given = approval.decisions.filter(verdict="approve").count()
    return f"{given} of {approval.approvals_required} approvals so far."


@require_POST
@role_required(Role.APPROVER)
@vary_on_headers("HX-Request", "HX-Boosted")
def approval_gates(request: HttpRequest, request_id: int) -> HttpResponse:
    """Evaluate the gates now (records the results); htmx swaps the gates table in place."""
    approval = _approval_or_404(request_id)
    gates_refresh(release=approval.release, environment=approval.environment, actor=request.user)
    if partial_requested(request):
        context = _approval_context(request, approval)
        return render(request, "approvals/approval_detail.html#gates", context)
    messages.info(request, "Gates evaluated just now.")
    return redirect("approval_detail", request_id=approval.pk)


@require_POST
@role_required(Role.ADMIN)
def approval_override_freeze(request: HttpRequest, request_id: int) -> HttpResponse:
    approval = _approval_or_404(request_id)
    form = OverrideForm(request.POST)
    if not form.is_valid():
        context = _approval_context(request, approval, override_form=form)
        return render(request, "approvals/approval_detail.html", context, status=400)
    try:
        override = freeze_override(
            release=approval.release,
            environment=approval.environment,
            actor=request.user,
            reason=form.cleaned_data["reason"],
        )
    except DomainError as exc:
        if exc.forbidden:
            raise  # someone else must do it: the 403 page (portal.errors_middleware)
        messages.error(request, str(exc))
        context = _approval_context(request, approval, override_form=form)
        return render(request, "approvals/approval_detail.html", context, status=409)
    messages.warning(
        request,
        f"Freeze overridden for {approval.release} into {approval.environment.name} until "
        f"{override.expires_at:%d %b %Y %H:%M} UTC. This is recorded in the audit trail.",
    )
    return redirect("approval_detail", request_id=approval.pk)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def release_request_approval(request: HttpRequest, pk: int) -> HttpResponse:
    release = get_object_or_404(selectors.releases_for(), pk=pk)
    try:
        approval = approval_request_open(release=release, actor=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect(release)
    messages.success(request, f"Asked for approval of {release} into {approval.environment.name}.")
    return redirect("approval_detail", request_id=approval.pk)


@role_required(Role.ADMIN)
def policy_edit(request: HttpRequest, slug: str, stage: str) -> HttpResponse:
    environment = get_object_or_404(
        Environment.objects.select_related("application", "slot"), application__slug=slug, stage=stage
    )
    policy = policy_of(environment)
    status = 200
    if request.method == "POST":
        data = request.POST.copy()
        adding = "add_window" in data
        if adding:  # one more blank row, nothing saved; works without JavaScript
            data["windows-TOTAL_FORMS"] = str(int(data.get("windows-TOTAL_FORMS") or 0) + 1)
        form = PolicyForm(data, policy=policy)
        formset = FreezeWindowFormSet(data, prefix="windows")
        if not adding:
            saved = _save_policy(request, environment, form, formset)
            if saved is not None:
                return saved
            status = 400
    else:
        form = PolicyForm(initial=policy_initial(policy), policy=policy)
        windows = list(policy.freeze_windows.order_by("id")) if policy else []
        formset = FreezeWindowFormSet(prefix="windows", initial=[window_initial(w) for w in windows] or None)
    now = clock.now()
    windows = list(policy.freeze_windows.order_by("id")) if policy else []
    schedule = [
        (window, freeze.describe(window), next(freeze.occurrences(window, now, now + 60 * freeze.WEEK), None))
        for window in windows
    ]
    context = {
        "environment": environment,
        "application": environment.application,
        "policy": policy,
        "form": form,
        "formset": formset,
        "schedule": schedule,
        "frozen": freeze.active_freezes(windows, now),
        "eligible": list(eligible_approvers(groups=policy.approver_groups.all(), users=policy.approver_users.all()))
        if policy
        else [],
        "timezones": sorted(available_timezones()),
    }
    return render(request, "approvals/policy_edit.html", context, status=status)


def _save_policy(request: HttpRequest, environment: Environment, form: PolicyForm, formset: Any) -> HttpResponse | None:
    if not (form.is_valid() and formset.is_valid()):
        return None
    window_forms = formset.kept()
    windows = [window_form.window() for window_form in window_forms]
    data = form.cleaned_data
    problems = policy_problems(
        approvals_required=data["approvals_required"],
        approver_groups=data["approver_groups"],
        approver_users=data["approver_users"],
        expiry_hours=data["expiry_hours"],
        reminder_hours=data["reminder_hours"],
        freeze_windows=windows,
        teams_webhook_url=data["teams_webhook_url"],
        slack_webhook_url=data["slack_webhook_url"],
    )
    if problems:
        show_problems(form, window_forms, problems)
        return None
    try:
        policy_update(
            environment=environment,
            actor=request.user,
            approvals_required=data["approvals_required"],
            approver_groups=data["approver_groups"],
            approver_users=data["approver_users"],
            forbid_self_approval=data["forbid_self_approval"],
            expiry_hours=data["expiry_hours"],
            reminder_hours=data["reminder_hours"],
            auto_promote=data["auto_promote"],
            require_healthy_slot=data["require_healthy_slot"],
            freeze_windows=windows,
            teams_webhook_url=form.webhook("teams_webhook"),
            slack_webhook_url=form.webhook("slack_webhook"),
        )
    except DomainError as exc:
        form.add_error(None, str(exc))
        return None
    messages.success(request, f"Saved the approval policy of {environment}.")
    return redirect("policy_edit", slug=environment.application.slug, stage=environment.stage)
