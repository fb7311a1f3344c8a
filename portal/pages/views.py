"""Pages that show several concepts at once: the dashboard, the application page and the release page."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils.http import quote_etag
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from portal.core import clock
from portal.core.htmx import partial_requested, stop_polling
from portal.core.roles import Role, has_role, role_required
from portal.pages import selectors as page_selectors
from releases.approvals import selectors as approval_selectors
from releases.approvals.forms import (
    DecisionForm,
)
from releases.approvals.models import ApprovalRequestStatus
from releases.approvals.policies import ineligibility
from releases.approvals.workflow import may_request
from releases.catalog import selectors
from releases.catalog.models import Application, Release, ReleaseStatus
from releases.catalog.timeline import release_timeline
from strategies.flags import changes as flag_changes
from strategies.operations.forms import RollbackForm
from strategies.operations.reconcile import open_drift
from strategies.operations.services import active_operation, rings_waiting_for
from strategies.operations.views import promote_form_for, steps_for_page

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
    state = hashlib.sha256(f"{page_selectors.dashboard_fingerprint(team=team)}|{team}|{search}".encode()).hexdigest()[
        :32
    ]
    etag = quote_etag(f"{state}-{request.user.pk}")
    if partial_requested(request) and etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()
        response["ETag"] = etag
        return response
    key = f"dashboard-grid:{state}"
    grid = cache.get(key)
    if grid is None:
        stages, rows = page_selectors.dashboard_rows(team=team, search=search)
        live = page_selectors.dashboard_is_live(rows)
        context = {
            "drifts": (drifts := page_selectors.open_drifts([row.application for row in rows])),
            "drifted": {d.application_id for d in drifts},
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
        return response if application.slots_refresh_pending else stop_polling(response)
    context["releases"] = selectors.releases_for(application=application)[:20]
    context["events"] = application.audit_events.all()[:20]
    context["rings"] = application.rings.prefetch_related("targets").order_by("position")
    context["drift"] = open_drift(application)
    return render(request, "releases/application_detail.html", context)


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

    requests = list(approval_selectors.approval_requests_of(release))
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


@require_GET
@role_required(Role.APPROVER)
def approval_inbox(request: HttpRequest) -> HttpResponse:

    page = Paginator(approval_selectors.inbox_for(request.user), 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "flag_changes": flag_changes.inbox_for(request.user),
        "rings": rings_waiting_for(request.user),
    }
    return render(request, "approvals/inbox.html", context)
