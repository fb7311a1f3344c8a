"""Pages of operations: promote a release, follow an operation, pause / resume / promote now / roll back.

Views parse input, call a service of `strategies.services`, render; nothing more.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from portal.roles import Role, role_required
from releases.approvals import ApprovalForbidden
from releases.models import Application, Operation, Release
from releases.services import DomainError

from . import services
from .forms import PromoteForm, RollbackForm
from .registry import strategy_for

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
    except ApprovalForbidden as exc:
        raise PermissionDenied(str(exc)) from None
    except DomainError as exc:  # blockers, another operation, the provider: 409
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
@vary_on_headers("HX-Request")
def operation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_or_404(_operations(), pk=pk)
    if request.htmx:
        response = render(request, "operations/detail.html#steps", _detail_context(operation))
        return response if operation.is_active else _stop_polling(response)
    return _detail_page(request, operation)


def _operations() -> Any:
    return Operation.objects.select_related("application", "release", "environment", "started_by")


def _detail_context(operation: Operation, **extra: Any) -> dict[str, Any]:
    steps = list(operation.steps.all())
    for step in steps:
        step.log_tail = "\n".join(step.log.splitlines()[-LOG_TAIL_LINES:])
        analyses = step.detail.get("analyses") or []
        step.analysis = analyses[-1] if analyses else None
        step.checks = len(step.detail.get("checks") or [])
    return {"operation": operation, "steps": steps, "rollback_form": RollbackForm(), **extra}


def _detail_page(request: HttpRequest, operation: Operation, *, status: int = 200, **extra: Any) -> HttpResponse:
    return render(request, "operations/detail.html", _detail_context(operation, **extra), status=status)


def _stop_polling(response: HttpResponse) -> HttpResponse:
    """HTTP 286 with the same content: htmx swaps it in and stops polling."""
    stop = HttpResponseStopPolling(response.content)
    stop["Content-Type"] = response["Content-Type"]
    return stop


def _act(request: HttpRequest, pk: int, service: Any, done: str) -> HttpResponse:
    operation = get_object_or_404(_operations(), pk=pk)
    try:
        service(operation=operation, actor=request.user)
    except ApprovalForbidden as exc:
        raise PermissionDenied(str(exc)) from None
    except DomainError as exc:
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
    except ApprovalForbidden as exc:
        raise PermissionDenied(str(exc)) from None
    except DomainError as exc:
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
        except ApprovalForbidden as exc:
            raise PermissionDenied(str(exc)) from None
        except DomainError as exc:
            form.add_error(None, str(exc))
            status = 409
        else:
            messages.warning(request, f"Rolling back production of {application.name} (operation #{operation.pk}).")
            return redirect("operation_detail", pk=operation.pk)
    context = {"application": application, "rollback_form": form}
    return render(request, "operations/application_rollback.html", context, status=status)
