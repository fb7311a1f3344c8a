"""Pages of operations: promote a release, follow an operation, pause / resume / promote now / roll back.

Views parse input, call a service of `strategies.operations.services`, render; nothing more.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from portal.core.errors import DomainError
from portal.core.htmx import partial_requested, stop_polling
from portal.core.roles import Role, require_role, role_required
from releases.catalog.models import Application, Release
from strategies.operations import reconcile, services
from strategies.operations.forms import PromoteForm, RingForm, RollbackForm
from strategies.operations.models import Operation, Ring
from strategies.operations.registry import strategy_for

LOG_TAIL_LINES = 12


def promote_form_for(release: Release) -> PromoteForm:
    """The empty promotion form of the release page, on the application's default strategy."""
    return PromoteForm(initial={"strategy": release.application.default_strategy})


@role_required(Role.RELEASE_MANAGER)
def release_promote(request: HttpRequest, pk: int) -> HttpResponse:
    """Preview the plan of a promotion (action=preview) or start it (action=start)."""
    release = get_object_or_404(Release.objects.select_related("application"), pk=pk)
    if request.method != "POST":
        return _promote_page(request, release, promote_form_for(release))
    form = PromoteForm(request.POST)
    if not form.is_valid():
        return _promote_page(request, release, form, status=400)
    strategy, parameters = form.cleaned_data["strategy"], form.parameters()
    try:
        strategy_for(strategy).clean(parameters)  # bad options are the asker's mistake: 400
    except DomainError as exc:
        form.add_error(None, str(exc))
        return _promote_page(request, release, form, status=400)
    try:
        if request.POST.get("action") == "start":
            operation = services.operation_start(
                release=release, strategy=strategy, parameters=parameters, actor=request.user
            )
        else:
            plan = services.operation_preview(release=release, strategy=strategy, parameters=parameters)
            return _promote_page(request, release, form, plan=plan)
    except DomainError as exc:  # blockers, another operation, the provider: 409
        if exc.forbidden:
            raise  # someone else must do it: the 403 page (portal.errors_middleware)
        form.add_error(None, str(exc))
        return _promote_page(request, release, form, status=409)
    messages.success(request, f"Started the promotion of {release} (operation #{operation.pk}).")
    return redirect("operation_detail", pk=operation.pk)


def _promote_page(
    request: HttpRequest, release: Release, form: PromoteForm, *, plan: list | None = None, status: int = 200
) -> HttpResponse:
    context = {"release": release, "promote_form": form, "plan": plan}
    return render(request, "operations/promote.html", context, status=status)


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request", "HX-Boosted")
def operation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_or_404(_operations(), pk=pk)
    if partial_requested(request):
        context = _detail_context(operation)
        response = render(request, "operations/detail.html#steps", context)
        if context["ring_step"] is not None and request.GET.get("seen") != operation.status:
            response["HX-Refresh"] = "true"  # the ring's approval form lives outside the polled part
        return response if operation.is_active else stop_polling(response)
    return _detail_page(request, operation)


def _operations() -> Any:
    return Operation.objects.select_related("application", "release", "environment", "started_by")


def steps_for_page(operation: Operation) -> list[Any]:
    """The operation's steps with what the steps table shows: the log's tail, the last analysis, checks."""
    steps = list(operation.steps.all())
    for step in steps:
        step.log_tail = "\n".join(step.log.splitlines()[-LOG_TAIL_LINES:])
        analyses = step.detail.get("analyses") or []
        step.analysis = analyses[-1] if analyses else None
        checks = step.detail.get("checks") or []
        # A list of checks, as the engine records them; demo databases seeded before the seeder ran the engine
        # (issue 15) hold a count instead, and their operation pages must still open.
        step.checks = checks if isinstance(checks, int) else len(checks)
    return steps


def _detail_context(operation: Operation, **extra: Any) -> dict[str, Any]:
    steps = steps_for_page(operation)
    ring_step = services.ring_waiting_for_approval(operation)
    return {
        "operation": operation,
        "steps": steps,
        "rollback_form": RollbackForm(),
        "ring_step": ring_step,
        **extra,
    }


def _detail_page(request: HttpRequest, operation: Operation, *, status: int = 200, **extra: Any) -> HttpResponse:
    context = _detail_context(operation, **extra)
    if context["ring_step"] is not None:
        context["ring_problem"] = services.ring_approval_ineligibility(request.user, operation)
    return render(request, "operations/detail.html", context, status=status)


def _act(request: HttpRequest, pk: int, service: Any, done: str) -> HttpResponse:
    operation = get_object_or_404(_operations(), pk=pk)
    try:
        service(operation=operation, actor=request.user)
    except DomainError as exc:
        if exc.forbidden:
            raise  # someone else must do it: the 403 page (portal.errors_middleware)
        messages.error(request, str(exc))
        operation.refresh_from_db()
        return _detail_page(request, operation, status=409)
    messages.success(request, f"Operation #{operation.pk} {done}.")
    return redirect("operation_detail", pk=operation.pk)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def operation_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.operation_pause, "will pause at the next step boundary")


@require_POST
@role_required(Role.RELEASE_MANAGER)
def operation_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.operation_resume, "resumed")


@require_POST
@role_required(Role.RELEASE_MANAGER)
def operation_promote_now(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.operation_promote_now, "skips the remaining waiting and promotes now")


@require_POST
@role_required(Role.RELEASE_MANAGER)
def operation_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_or_404(_operations(), pk=pk)
    form = RollbackForm(request.POST)
    if not form.is_valid():
        return _detail_page(request, operation, status=400, rollback_form=form)
    try:
        services.operation_rollback(operation=operation, actor=request.user, reason=form.cleaned_data["reason"])
    except DomainError as exc:
        if exc.forbidden:
            raise  # someone else must do it: the 403 page (portal.errors_middleware)
        messages.error(request, str(exc))
        operation.refresh_from_db()
        return _detail_page(request, operation, status=409, rollback_form=form)
    messages.warning(request, f"Rolling back operation #{operation.pk}.")
    return redirect("operation_detail", pk=operation.pk)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def application_rollback(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    form = RollbackForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            operation = services.application_rollback(
                application=application, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            if exc.forbidden:
                raise  # someone else must do it: the 403 page (portal.errors_middleware)
            form.add_error(None, str(exc))
            status = 409
        else:
            messages.warning(request, f"Rolling back production of {application.name} (operation #{operation.pk}).")
            return redirect("operation_detail", pk=operation.pk)
    context = {"application": application, "rollback_form": form}
    return render(request, "operations/application_rollback.html", context, status=status)


# --- drift ---------------------------------------------------------------------------------------
@require_POST
@role_required(Role.VIEWER)
def application_drift_check(request: HttpRequest, slug: str) -> HttpResponse:
    """Compare production with what Slipway believes now (anyone who may see the application may ask)."""
    application = get_object_or_404(Application, slug=slug)
    drift = reconcile.reconcile(application)
    if drift is None:
        messages.success(request, f"{application.name}: production is where Slipway says it is.")
    else:
        messages.warning(request, f"{application.name} has drifted: {drift.summary}")
    return redirect(application.get_absolute_url())


@require_POST
@role_required(Role.RELEASE_MANAGER)
def application_drift_repair(request: HttpRequest, slug: str) -> HttpResponse:
    """Put production back through the engine (a repair operation)."""
    application = get_object_or_404(Application, slug=slug)
    drift = reconcile.open_drift(application)
    if drift is None:
        messages.info(request, f"{application.name} has no drift to repair.")
        return redirect(application.get_absolute_url())
    try:
        operation = reconcile.drift_repair(drift=drift, actor=request.user)
    except DomainError as exc:
        if exc.forbidden:
            raise
        messages.error(request, str(exc))
        return redirect(application.get_absolute_url())
    messages.warning(request, f"Repairing production of {application.name} (operation #{operation.pk}).")
    return redirect("operation_detail", pk=operation.pk)


# --- rings ---------------------------------------------------------------------------------------
@role_required(Role.VIEWER)
def application_rings(request: HttpRequest, slug: str) -> HttpResponse:
    """The application's rings, and (release managers) a form to add one."""
    application = get_object_or_404(Application, slug=slug)
    form = RingForm(application=application)
    status = 200
    if request.method == "POST":
        require_role(request.user, Role.RELEASE_MANAGER)
        form = RingForm(request.POST, application=application)
        if form.is_valid():
            ring = services.ring_save(
                ring=form.save(commit=False), targets=form.cleaned_data["targets"], actor=request.user
            )
            messages.success(request, f"Added {ring} to {application.name}.")
            return redirect("application_rings", slug=slug)
        status = 400
    return _rings_page(request, application, form, status=status)


def _rings_page(request: HttpRequest, application: Application, form: RingForm, *, status: int = 200) -> HttpResponse:
    rings = application.rings.prefetch_related("targets").order_by("position")
    context = {"application": application, "rings": rings, "form": form}
    return render(request, "operations/rings.html", context, status=status)


@role_required(Role.RELEASE_MANAGER)
def ring_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    ring = get_object_or_404(Ring, pk=pk, application=application)
    form = RingForm(request.POST or None, instance=ring, application=application)
    if request.method == "POST":
        if form.is_valid():
            services.ring_save(ring=form.save(commit=False), targets=form.cleaned_data["targets"], actor=request.user)
            messages.success(request, f"Saved {ring}.")
            return redirect("application_rings", slug=slug)
        return render(
            request, "operations/ring_edit.html", {"application": application, "ring": ring, "form": form}, status=400
        )
    return render(request, "operations/ring_edit.html", {"application": application, "ring": ring, "form": form})


@require_POST
@role_required(Role.RELEASE_MANAGER)
def ring_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    ring = get_object_or_404(Ring, pk=pk, application__slug=slug)
    services.ring_delete(ring=ring, actor=request.user)
    messages.success(request, f"Deleted {ring}.")
    return redirect("application_rings", slug=slug)


@require_POST
@role_required(Role.APPROVER)
def operation_ring_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve (decision=approve) or reject the ring a rings promotion waits on, with a comment."""
    operation = get_object_or_404(_operations(), pk=pk)
    comment = request.POST.get("comment", "")
    approve = request.POST.get("decision") == "approve"
    try:
        if approve:
            services.ring_approve(operation=operation, actor=request.user, comment=comment)
        else:
            services.ring_reject(operation=operation, actor=request.user, comment=comment)
    except DomainError as exc:
        if exc.forbidden:
            raise  # someone else must do it: the 403 page (portal.errors_middleware)
        messages.error(request, str(exc))
        operation.refresh_from_db()
        return _detail_page(request, operation, status=409, ring_comment=comment)
    if approve:
        messages.success(request, f"Approved the ring; operation #{operation.pk} goes on.")
    else:
        messages.warning(request, f"Rejected the ring; operation #{operation.pk} rolls back the rings already done.")
    return redirect("operation_detail", pk=operation.pk)
