"""The release history, the compare view and the audit trail with its exports.

Lists are paged with a cursor (`keyset`), never counted. With `HX-Request` the filter form and the
pager swap only the results (the `results` partial); htmx swaps 2xx answers only, so a bad filter
answers the partial with its message and 200 to htmx, and the whole page with 400 otherwise.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from portal.core import clock
from portal.core.htmx import partial_requested
from portal.core.roles import Role, role_required
from releases.audit import selectors as audit_selectors
from releases.audit.chain import chain_status
from releases.catalog import selectors
from releases.catalog.models import Application
from releases.history import export
from releases.history import selectors as history_selectors
from releases.history.forms import AuditFilterForm, HistoryFilterForm
from releases.history.keyset import Cursor, InvalidCursor, KeysetPage, keyset_page

# How many releases in between the compare view lists (their notes); more are summarised, not counted.
COMPARE_LIMIT = 200


def _cursor(request: HttpRequest) -> tuple[Cursor | None, bool]:
    """The page's cursor, and whether one was given but is not valid (then the newest page is shown)."""
    token = request.GET.get("cursor", "")
    if not token:
        return None, False
    try:
        return Cursor.decode(token), False
    except InvalidCursor:
        return None, True


def _page_links(request: HttpRequest, page: KeysetPage[Any]) -> dict[str, str]:
    """URLs (query strings) of the newer, older and newest pages, keeping the filters."""
    query = request.GET.copy()
    query.pop("cursor", None)

    def with_cursor(cursor: Cursor | None) -> str:
        if cursor is None:
            return ""
        q = query.copy()
        q["cursor"] = cursor.encode()
        return f"?{q.urlencode()}"

    return {
        "newer_url": with_cursor(page.newer),
        "older_url": with_cursor(page.older),
        "newest_url": f"?{query.urlencode()}",
    }


def _filters_query(request: HttpRequest) -> str:
    """The current filters as a query string, without the cursor (for the export links)."""
    query: QueryDict = request.GET.copy()
    query.pop("cursor", None)
    return query.urlencode()


def _render_list(request: HttpRequest, template: str, context: dict[str, Any], *, invalid: bool) -> HttpResponse:
    if partial_requested(request):
        return render(request, f"{template}#results", context)
    return render(request, template, context, status=400 if invalid else 200)


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request", "HX-Boosted")
def release_list(request: HttpRequest) -> HttpResponse:
    """Every release, newest first, filtered by application, environment, status, person and dates."""
    form = HistoryFilterForm(request.GET)
    cursor, bad_cursor = _cursor(request)
    context: dict[str, Any] = {"form": form, "bad_cursor": bad_cursor, "page": None}
    if form.is_valid():
        page = keyset_page(history_selectors.release_history(**form.selector_kwargs()), cursor)
        context.update(page=page, filtered=any(form.cleaned_data.values()), **_page_links(request, page))
    return _render_list(request, "releases/release_list.html", context, invalid=not form.is_valid())


@require_GET
@role_required(Role.VIEWER)
def release_compare(request: HttpRequest) -> HttpResponse:
    """Two releases of one application side by side, and what lies between them (notes, commits)."""
    to_id, from_id = request.GET.get("to", ""), request.GET.get("from", "")
    if not to_id.isdigit() or not (from_id.isdigit() or from_id == "live"):
        return _compare_problem(request, "Pick two releases to compare: a “from” and a “to” release in the history.")
    newer = get_object_or_404(selectors.releases_for(), pk=int(to_id))
    if from_id == "live":
        older = selectors.live_release_of(newer.application)
        if older is None:
            return _compare_problem(
                request, f"Nothing of {newer.application.name} is live yet, so there is nothing to compare with."
            )
    else:
        older = get_object_or_404(selectors.releases_for(), pk=int(from_id))
    if older.pk == newer.pk:
        return _compare_problem(request, f"{newer} is the same release on both sides: pick two different releases.")
    if older.application_id != newer.application_id:
        return _compare_problem(
            request,
            f"{older} and {newer} belong to different applications; only releases of one application can be compared.",
        )
    if (older.created_at, older.pk) > (newer.created_at, newer.pk):
        older, newer = newer, older
    between = selectors.releases_between(older, newer, limit=COMPARE_LIMIT)
    return render(
        request,
        "releases/release_compare.html",
        {
            "older": older,
            "newer": newer,
            "between": between[:COMPARE_LIMIT],
            "more_between": len(between) > COMPARE_LIMIT,
            "limit": COMPARE_LIMIT,
            "commits": [r.commit_sha[:8] for r in between[:COMPARE_LIMIT] if r.commit_sha],
        },
    )


def _compare_problem(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "releases/release_compare.html", {"problem": message}, status=400)


def _audit_form(request: HttpRequest) -> AuditFilterForm:
    applications = list(Application.objects.order_by("name").values_list("slug", "name"))
    return AuditFilterForm(request.GET, applications=applications)


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request", "HX-Boosted")
def audit_list(request: HttpRequest) -> HttpResponse:
    """Every audit event, newest first: filters, full-text search on the reason, exports."""
    form = _audit_form(request)
    cursor, bad_cursor = _cursor(request)
    context: dict[str, Any] = {"form": form, "bad_cursor": bad_cursor, "page": None}
    if not partial_requested(request):
        context["integrity"] = chain_status()  # the chain head row only: never walks the chain
    if form.is_valid():
        page = keyset_page(audit_selectors.audit_events(**form.selector_kwargs()), cursor)
        context.update(
            page=page,
            filtered=any(form.cleaned_data.values()),
            object_filter=form.cleaned_data["object"],
            export_query=_filters_query(request),
            **_page_links(request, page),
        )
    return _render_list(request, "releases/audit_list.html", context, invalid=not form.is_valid())


def _export(request: HttpRequest, kind: str) -> HttpResponse:
    form = _audit_form(request)
    if not form.is_valid():
        problems = "; ".join(f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponse(f"The filters are not valid: {problems}\n", status=400, content_type="text/plain")
    events = audit_selectors.audit_events(**form.selector_kwargs()).order_by("-created_at", "-id")
    rows = events.iterator(chunk_size=export.CHUNK_SIZE)
    if kind == "csv":
        response = StreamingHttpResponse(export.csv_lines(rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(export.json_array(rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="slipway-audit-{clock.now():%Y-%m-%d}.{kind}"'
    return response


@require_GET
@role_required(Role.VIEWER)
def audit_export_csv(request: HttpRequest) -> HttpResponse:
    """The filtered trail as CSV with a header row, streamed."""
    return _export(request, "csv")


@require_GET
@role_required(Role.VIEWER)
def audit_export_json(request: HttpRequest) -> HttpResponse:
    """The filtered trail as one JSON array of events, streamed element by element."""
    return _export(request, "json")
