"""Pages of the portal. Views parse input, call a service or selector, render; nothing more."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.http import quote_etag
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from portal.core import clock
from portal.core.htmx import partial_requested
from portal.core.roles import Role, has_role, role_required
from releases.approvals.forms import DecisionForm
from releases.approvals.models import ApprovalRequestStatus
from releases.approvals.policies import ineligibility
from releases.approvals.workflow import may_request
from releases.catalog import selectors, services
from releases.catalog.forms import ApplicationCreateForm, ReleaseRegisterForm, SlotMappingForm
from releases.catalog.jobs import enqueue_slots_refresh
from releases.catalog.models import Application, Release, ReleaseStatus
from releases.catalog.services import DomainError
from releases.catalog.timeline import release_timeline
from strategies.operations.views import promote_form_for

DASHBOARD_POLL_LIVE = "every 2s"  # while an operation runs or slots are being refreshed
DASHBOARD_POLL_IDLE = "every 10s"  # otherwise only to notice the next one; answered 304 when unchanged


DASHBOARD_GRID_CACHE_SECONDS = 60  # a rendered grid is reused by everyone until its fingerprint changes


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request", "HX-Boosted")
def dashboard(request: HttpRequest) -> HttpResponse:
    """The grid of applications by environments.

    The grid is the same for everyone who may see it, so it is rendered once per state (the
    fingerprint of three aggregate queries) and reused from the cache; a poll whose ETag matches the
    state is answered 304 without even that.
    """
    team = request.GET.get("team", "")
    search = request.GET.get("q", "").strip()[:100]
    state = hashlib.sha256(f"{selectors.dashboard_fingerprint(team=team)}|{team}|{search}".encode()).hexdigest()[:32]
    etag = quote_etag(f"{state}-{request.user.pk}")
    if partial_requested(request) and etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()
        response["ETag"] = etag
        return response
    key = f"dashboard-grid:{state}"
    grid = cache.get(key)
    if grid is None:
        stages, rows = selectors.dashboard_rows(team=team, search=search)
        live = selectors.dashboard_is_live(rows)
        context = {
            "stages": stages,
            "rows": rows,
            "team": team,
            "search": search,
            "query": urlencode({k: v for k, v in (("team", team), ("q", search)) if v}),
            "poll": DASHBOARD_POLL_LIVE if live else DASHBOARD_POLL_IDLE,
            "live": live,
        }
        grid = render_to_string("releases/dashboard.html#grid", context)
        cache.set(key, grid, DASHBOARD_GRID_CACHE_SECONDS)
    if partial_requested(request):
        response = HttpResponse(grid)
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"  # the browser keeps it and revalidates every poll
        return response
    context = {"grid": grid, "team": team, "search": search, "teams": selectors.teams()}
    return render(request, "releases/dashboard.html", context)


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request", "HX-Boosted")
def application_detail(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    environments = list(application.environments.select_related("slot", "slot__current_release"))
    context = {
        "application": application,
        "environments": environments,
        "traffic": selectors.traffic_split(environments),
    }
    if partial_requested(request):
        response = render(request, "releases/application_detail.html#slots", context)
        # Stop polling once the refresh the page asked for has landed.
        return response if application.slots_refresh_pending else _stop_polling(response)
    context["releases"] = selectors.releases_for(application=application)[:20]
    context["events"] = application.audit_events.all()[:20]
    context["rings"] = application.rings.prefetch_related("targets").order_by("position")
    return render(request, "releases/application_detail.html", context)


def _stop_polling(response: HttpResponse) -> HttpResponse:
    stop = HttpResponseStopPolling(response.content)
    stop["Content-Type"] = response["Content-Type"]
    return stop


@require_POST
@role_required(Role.VIEWER)
def application_refresh_slots(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    with transaction.atomic():
        Application.objects.filter(pk=application.pk).update(slots_refresh_requested_at=clock.now())
        enqueue_slots_refresh(application)  # sent to Redis on commit
    messages.info(request, f"Refreshing the slots of {application.name} in the background.")
    return redirect(application)


@role_required(Role.RELEASE_MANAGER)
def release_register(request: HttpRequest) -> HttpResponse:
    form = ReleaseRegisterForm(request.POST or None, initial={"application": request.GET.get("application")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            release = services.release_register(
                application=data["application"],
                version=data["version"],
                actor=request.user,
                build_id=data["build_id"],
                commit_sha=data["commit_sha"],
                committed_at=data["committed_at"],
                branch=data["branch"],
                notes=data["notes"],
                artifact_url=data["artifact_url"],
                deployed_slot=data["deployed_slot"],
            )
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Registered {release}.")
            return redirect(release)
    return render(request, "releases/release_register.html", {"form": form}, status=400 if form.errors else 200)


@require_GET
@role_required(Role.VIEWER)
def release_detail(request: HttpRequest, pk: int) -> HttpResponse:
    release = get_object_or_404(selectors.releases_for(), pk=pk)
    return release_page(request, release)


def release_page(request: HttpRequest, release: Release, *, status: int = 200, **forms: Any) -> HttpResponse:
    """The release page: its timeline and, in place, what the viewer may do now (decide, promote, steer).

    Also rendered by the approval decision and promotion views when a form they got from this page
    has errors, so the errors show where the person typed.
    """
    from strategies.operations.forms import RollbackForm
    from strategies.operations.services import active_operation
    from strategies.operations.views import steps_for_page

    requests = list(selectors.approval_requests_of(release))
    current = requests[0] if requests else None
    can_decide, why_not, mine = False, "", None
    pending = current is not None and current.status == ApprovalRequestStatus.PENDING
    if current is not None and has_role(request.user, Role.APPROVER):
        mine = current.decisions.filter(approver=request.user).first()
        if pending and mine is None:
            why_not = ineligibility(request.user, current)
            can_decide = not why_not and current.expires_at > clock.now()
    running = active_operation(release.application)
    running = running if running is not None and running.release_id == release.pk else None
    context = {
        "release": release,
        "approval_requests": requests,
        "current_request": current,
        "can_decide": can_decide,
        "my_decision": mine,
        "why_not": why_not,
        "decision_form": forms.get("decision_form") or DecisionForm(),
        "request_target": may_request(request.user, release),
        "overrides": release.freeze_overrides.select_related("created_by", "environment"),
        "timeline": release_timeline(release),
        "operations": release.operations.all(),
        "running": running,
        "running_steps": steps_for_page(running) if running else [],
        "rollback_form": RollbackForm(),
        "promote_form": forms.get("promote_form")
        or (promote_form_for(release) if release.status == ReleaseStatus.APPROVED else None),
    }
    return render(request, "releases/release_detail.html", context, status=status)


@role_required(Role.ADMIN)
def application_create(request: HttpRequest) -> HttpResponse:
    form = ApplicationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            application = services.application_create(actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Added {application.name}. Now test the connection and bind its slots.")
            return redirect("application_connect", slug=application.slug)
    return render(request, "releases/application_create.html", {"form": form}, status=400 if form.errors else 200)


@role_required(Role.ADMIN)
@vary_on_headers("HX-Request", "HX-Boosted")
def application_connect(request: HttpRequest, slug: str) -> HttpResponse:
    """Test the connection to the provider and bind the discovered slots to stages."""
    application = get_object_or_404(Application, slug=slug)
    current = {env.stage: env.slot.name for env in application.environments.select_related("slot")}
    context: dict = {"application": application, "current": current, "report": None, "form": None}
    status = 200
    if request.method == "POST":
        # The slot list always comes fresh from the provider, never from the browser.
        report = services.application_test_connection(application=application)
        context["report"] = report
        if report.ok:
            names = [s.name for s in report.slots]
            initial = current or _suggested_mapping(names)
            is_save = request.POST.get("action") == "save"
            form = SlotMappingForm(request.POST if is_save else None, slot_names=names, initial_mapping=initial)
            context["form"] = form
            if is_save and form.is_valid():
                try:
                    services.application_map_slots(
                        application=application, actor=request.user, mapping=form.mapping(), slots=report.slots
                    )
                except DomainError as exc:
                    form.add_error(None, str(exc))
                    status = 409
                else:
                    messages.success(request, f"Saved how {application.name}'s slots serve each stage.")
                    enqueue_slots_refresh(application)
                    return redirect(application)
            elif is_save:
                status = 400
    template = "releases/application_connect.html"
    if partial_requested(request):
        template += "#connection"
    return render(request, template, context, status=status)


def _suggested_mapping(slot_names: list[str]) -> dict[str, str]:
    """App Service habits: production → production, staging → pre-production, test/dev by name."""
    wanted = {"prod": "production", "preprod": "staging", "test": "test", "dev": "dev"}
    return {stage: name for stage, name in wanted.items() if name in slot_names}
