"""Pages of experiments: the list, the form with its live power calculator, the results page and its actions.

Viewers read; release managers create, start, stop and decide (ship). Views parse a form, call a
service of `strategies.experiments.services`, render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.core.errors import DomainError
from portal.core.htmx import partial_requested
from portal.core.roles import Role, has_role, role_required
from releases.catalog.models import Application
from strategies.experiments import selectors, services, stats
from strategies.experiments.forms import ExperimentForm, PowerForm, ShipForm
from strategies.experiments.models import Experiment
from strategies.flags.definitions import DefinitionError
from strategies.flags.forms import add_definition_errors


def _experiment(slug: str, pk: int) -> Experiment:
    return get_object_or_404(
        Experiment.objects.select_related("environment__application", "flag", "segment", "pending_change"),
        pk=pk,
        environment__application__slug=slug,
    )


@role_required(Role.VIEWER)
def experiments_overview(request: HttpRequest) -> HttpResponse:
    experiments = Experiment.objects.select_related("environment__application", "flag").order_by(
        "environment__application__name", "-created_at"
    )
    return render(
        request,
        "experiments/overview.html",
        {"experiments": experiments, "applications": Application.objects.order_by("name")},
    )


@role_required(Role.RELEASE_MANAGER)
def experiment_create(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    initial = {"allocation": "off = 50, on = 50", **request.GET.dict()}
    form = ExperimentForm(request.POST or None, application=application, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            experiment = services.experiment_create(
                flag=data["flag"],
                key=data["key"],
                name=data["name"],
                hypothesis=data["hypothesis"],
                allocation=data["allocation"],
                segment=data["segment"],
                primary_metric={
                    "name": data["primary_name"].strip(),
                    "kind": data["primary_kind"],
                    "direction": data["primary_direction"],
                },
                guardrails=data["guardrails"],
                mde=data["mde"],
                mde_relative=data["mde_relative"],
                alpha=data["alpha"],
                power=data["power"],
                baseline_rate=data["baseline_rate"],
                baseline_mean=data["baseline_mean"],
                baseline_sd=data["baseline_sd"],
                tau2=data["tau2"],
                cuped=data["cuped"],
                actor=request.user,
            )
        except DefinitionError as exc:
            add_definition_errors(form, exc)
        else:
            messages.success(request, f"Created the experiment {experiment.key} (a draft: start it when ready).")
            return redirect(experiment.get_absolute_url())
    status = 400 if request.method == "POST" else 200
    context = {"application": application, "form": form, "power": _power(form.data if form.is_bound else None)}
    return render(request, "experiments/experiment_form.html", context, status=status)


def _power(data: Any) -> dict[str, Any]:
    """The power calculator's answer for the submitted numbers (or the form's initial ones)."""
    form = PowerForm(data) if data is not None else PowerForm(initial={})
    if data is None:
        values = {name: field.initial for name, field in form.fields.items()}
    elif form.is_valid():
        values = form.cleaned_data
    else:
        return {"error": "Fill in the effect, alpha, power and the baseline to see the sample size."}
    try:
        n = services.planned_users(
            kind=values["primary_kind"],
            mde=values["mde"],
            relative=bool(values["mde_relative"]),
            alpha=values["alpha"],
            power=values["power"],
            baseline_rate=values.get("baseline_rate"),
            baseline_mean=values.get("baseline_mean"),
            baseline_sd=values.get("baseline_sd"),
        )
    except (DefinitionError, ValueError) as exc:
        messages_ = exc.errors.values() if isinstance(exc, DefinitionError) else [[str(exc)]]
        return {"error": " ".join(m for ms in messages_ for m in ms)}
    return {"users": n}


@role_required(Role.RELEASE_MANAGER)
@require_POST
def experiment_power(request: HttpRequest, slug: str) -> HttpResponse:
    get_object_or_404(Application, slug=slug)
    return render(request, "experiments/experiment_form.html#power", {"power": _power(request.POST)})


def _detail_context(request: HttpRequest, experiment: Experiment, **extra: Any) -> dict[str, Any]:
    results = selectors.latest(experiment)
    chart, series, labels = selectors.over_time(experiment)
    return {
        "application": experiment.environment.application,
        "experiment": experiment,
        "flag": experiment.flag,
        "results": selectors.present(experiment, results),
        "over_time": chart,
        "over_time_series": series,
        "over_time_labels": labels,
        "decision": selectors.present(experiment, (experiment.decision or {}).get("analysis")),
        "ship_form": extra.pop("ship_form", None) or ShipForm(variants=experiment.variants),
        "is_release_manager": has_role(request.user, Role.RELEASE_MANAGER),
        "hosting_problem": services.hosting_problem(experiment.flag, experiment)
        if experiment.status == Experiment.Status.DRAFT
        else "",
        "default_tau": stats.DEFAULT_TAU_STANDARDIZED,
        **extra,
    }


@role_required(Role.VIEWER)
def experiment_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    experiment = _experiment(slug, pk)
    if experiment.status in (Experiment.Status.STARTING, Experiment.Status.SHIPPING):
        experiment = _experiment(slug, services.experiment_sync(experiment).pk)
    return render(request, "experiments/experiment_detail.html", _detail_context(request, experiment))


@role_required(Role.RELEASE_MANAGER)
@require_POST
def experiment_recompute(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    experiment = _experiment(slug, pk)
    try:
        services.experiment_recompute(experiment=experiment, actor=request.user)
    except DomainError as exc:
        if exc.forbidden:
            raise
        messages.error(request, str(exc))
    if partial_requested(request):
        return render(request, "experiments/experiment_detail.html#results", _detail_context(request, experiment))
    return redirect(experiment.get_absolute_url())


def _act(
    request: HttpRequest, experiment: Experiment, action: Any, done: Callable[[Experiment], str], **kwargs: Any
) -> HttpResponse:
    try:
        experiment = action(experiment=experiment, actor=request.user, **kwargs)
    except DefinitionError as exc:
        messages.error(request, str(exc))
    except DomainError as exc:
        context = _detail_context(request, experiment, problem=str(exc))
        return render(request, "experiments/experiment_detail.html", context, status=409)
    else:
        messages.success(request, done(experiment))
    return redirect(experiment.get_absolute_url())


@role_required(Role.RELEASE_MANAGER)
@require_POST
def experiment_start(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    experiment = _experiment(slug, pk)
    reason = request.POST.get("reason", "")[:500]
    return _act(
        request,
        experiment,
        services.experiment_start,
        lambda e: f"Experiment {e.key}: {e.get_status_display().lower()}.",
        reason=reason,
    )


@role_required(Role.RELEASE_MANAGER)
@require_POST
def experiment_stop(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    experiment = _experiment(slug, pk)
    reason = request.POST.get("reason", "")[:500]
    return _act(
        request,
        experiment,
        services.experiment_stop,
        lambda e: f"Stopped {e.key}: everyone gets the control again.",
        reason=reason,
    )


@role_required(Role.RELEASE_MANAGER)
@require_POST
def experiment_ship(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    experiment = _experiment(slug, pk)
    form = ShipForm(request.POST, variants=experiment.variants)
    if not form.is_valid():
        context = _detail_context(request, experiment, ship_form=form)
        return render(request, "experiments/experiment_detail.html", context, status=400)
    return _act(
        request,
        experiment,
        services.experiment_ship,
        lambda e: (
            f"Shipped {form.cleaned_data['variant']} of {e.flag.key} to everyone; {e.key} is decided."
            if e.status == Experiment.Status.DECIDED
            else f"{e.key}: {e.get_status_display().lower()} (the flag change waits for an approver)."
        ),
        variant=form.cleaned_data["variant"],
        reason=form.cleaned_data["reason"],
    )
