"""The delivery metrics page (/metrics/): the four DORA metrics, their trends and their definitions."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.cache import cache
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.views.decorators.http import require_GET

from portal.core import clock
from portal.core.roles import Role, role_required
from releases.catalog.models import Application
from releases.history.charts import Axis, Series, breakdown, chart, duration_label, percent_label, rate_label
from releases.history.delivery import DEFAULT_WINDOW, WINDOWS, DeliveryMetrics, delivery_metrics
from strategies.operations.models import Operation

WINDOW_CHOICES = [(days, f"Last {days} days") for days in WINDOWS]


class MetricsFilterForm(forms.Form):
    application = forms.ChoiceField(
        required=False,
        label="Application",
        error_messages={"invalid_choice": "There is no application with that name."},
    )
    days = forms.TypedChoiceField(choices=WINDOW_CHOICES, coerce=int, required=False, label="Window")

    def __init__(self, *args: Any, applications: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["application"].choices = [("", "All applications"), *applications]


@require_GET
@role_required(Role.VIEWER)
def delivery_metrics_page(request: HttpRequest) -> HttpResponse:
    # The select is written out in the template: with 200 applications Django's widget templates
    # would take longer to render than the metrics take to compute.
    applications = {slug: (pk, name) for pk, slug, name in Application.objects.values_list("pk", "slug", "name")}
    choices = sorted(((slug, name) for slug, (_pk, name) in applications.items()), key=lambda c: c[1])
    form = MetricsFilterForm(request.GET, applications=choices)
    valid = form.is_valid()  # a filter that does not parse falls back to its default, and says so
    days = form.cleaned_data.get("days") or DEFAULT_WINDOW
    slug = form.cleaned_data.get("application") or ""
    application = Application(pk=applications[slug][0], slug=slug, name=applications[slug][1]) if slug else None
    metrics = _cached_metrics(days=days, application=application)
    context = {
        "form": form,
        "metrics": metrics,
        "days": days,
        "application": application,
        "application_choices": choices,
        "window_choices": WINDOW_CHOICES,
    }
    context.update(_charts(metrics))
    context["application_rows"] = _application_rows(metrics, days)
    return render(request, "releases/metrics.html", context, status=200 if valid else 400)


METRICS_CACHE_SECONDS = 600


def _cached_metrics(*, days: int, application: Application | None) -> DeliveryMetrics:
    """The figures change only when an operation finishes (or a new day starts): computed once per
    such state and shared — a year of 200 applications takes half a second to compute."""
    now = clock.now()
    state = Operation.objects.aggregate(last=Max("id"), finished=Max("finished_at"), count=Count("finished_at"))
    zone = timezone.get_current_timezone_name()
    seen = f"{days}|{application.pk if application else ''}|{zone}|{timezone.localdate(now)}|{sorted(state.items())}"
    key = "delivery:" + hashlib.sha256(seen.encode()).hexdigest()[:40]
    metrics = cache.get(key)
    if metrics is None:
        metrics = delivery_metrics(days=days, application=application, now=now)
        cache.set(key, metrics, METRICS_CACHE_SECONDS)
    return metrics


def _application_rows(metrics: DeliveryMetrics, days: int) -> list[tuple[str, ...]]:
    """The by-application table's cells, formatted here: as template variables, 200 rows cost ~30 ms."""
    rows = []
    for row in metrics.by_application:
        f = row.figures
        rows.append(
            (
                f"?{urlencode({'application': row.application.slug, 'days': days})}",
                row.application.name,
                str(f.deployments),
                rate_label(f.per_week),
                duration_label(f.lead.median),
                f"{percent_label(f.change_failure_rate)}",
                f"({f.failures} of {f.changes})",
                duration_label(f.restore.median),
                f"{f.restore.unrestored} not restored yet" if f.restore.unrestored else "",
            )
        )
    return rows


def _charts(metrics: DeliveryMetrics) -> dict[str, Any]:
    """The SVG charts of the page, with a sentence each saying what they show."""
    window, overall = metrics.window, metrics.overall
    per = window.per
    labels = [date_format(b.start, "j M") for b in metrics.buckets]
    figures = [b.figures for b in metrics.buckets]
    period = f"per {per} over the last {window.days} days"
    subject = metrics.application.name if metrics.application else "all applications"

    busiest = max(metrics.buckets, key=lambda b: b.figures.deployments, default=None)
    deployments_desc = f"{overall.deployments} deployments of {subject} {period}." + (
        f" Most in the {per} of {date_format(busiest.start, 'j F')}: {busiest.figures.deployments}."
        if busiest and busiest.figures.deployments
        else ""
    )
    parts = overall.lead.parts
    lead_desc = (
        f"Median lead time {period}, from commit to production, with the median of each part stacked: "
        + "; ".join(f"{p.label.lower()} {duration_label(p.median)}" for p in parts)
        + f" over the window. Overall median {duration_label(overall.lead.median)}."
    )
    cfr_desc = (
        f"Share of production changes that failed, {period}: {overall.failures} of {overall.changes} "
        f"({percent_label(overall.change_failure_rate)}) over the window."
    )
    restore_desc = (
        f"Median time to restore {period}: {overall.restore.incidents} incidents, "
        f"median {duration_label(overall.restore.median)} over the window."
    )
    legend = [(p.label, p.median, p.key) for p in parts]
    return {
        "legend": legend,
        "chart_deployments": chart(
            chart_id="chart-deployments",
            title=f"Deployments per {per}",
            description=deployments_desc,
            labels=labels,
            axis=Axis("count"),
            bars=[Series("Deployments", [f.deployments for f in figures], "deploy")],
        ),
        "deployments_desc": deployments_desc,
        "chart_lead": chart(
            chart_id="chart-lead",
            title=f"Lead time for changes per {per}",
            description=lead_desc,
            labels=labels,
            axis=Axis("duration"),
            bars=[Series(p.label, [f.lead.parts[i].median for f in figures], p.key) for i, p in enumerate(parts)],
            line=Series("Median lead time", [f.lead.median for f in figures], "lead"),
        ),
        "lead_desc": lead_desc,
        "chart_breakdown": breakdown(
            chart_id="chart-breakdown",
            title="Where the lead time goes",
            description="The median of each part of the lead time over the window, as shares of their sum: "
            + "; ".join(f"{p.label.lower()} {duration_label(p.median)}" for p in parts)
            + ".",
            parts=legend,
        ),
        "chart_cfr": chart(
            chart_id="chart-cfr",
            title=f"Change failure rate per {per}",
            description=cfr_desc,
            labels=labels,
            axis=Axis("percent"),
            line=Series("Change failure rate", [f.change_failure_rate for f in figures], "cfr"),
        ),
        "cfr_desc": cfr_desc,
        "chart_restore": chart(
            chart_id="chart-restore",
            title=f"Time to restore per {per}",
            description=restore_desc,
            labels=labels,
            axis=Axis("duration"),
            bars=[Series("Median time to restore", [f.restore.median for f in figures], "restore")],
        ),
        "restore_desc": restore_desc,
    }
