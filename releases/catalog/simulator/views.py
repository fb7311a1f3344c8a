"""The simulator on the web: the slots' own pages (the customer's app), and fault injection (page and API).

The slot pages are public, as a customer's web app would be: `/sim/<app>/` is the production URL,
routed by the traffic share with App Service's `x-ms-routing-name` cookie; `/sim/<app>/<slot>/`
is one slot's own address and `/sim/<app>/<slot>/healthz` its health check. Each page served
counts as a request of that slot for the metrics: it fails with HTTP 500 at the version's error
rate, and records a latency drawn from the version's profile (the page sleeps for it only when
`SIMULATOR_TIMINGS["serve_sleep_max_ms"]` allows, capped there; by default it only records it).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal.core.errors import DomainError
from portal.core.roles import Role, has_role, missing_role_message, require_role, role_required
from releases.catalog.models import Application, Provider, SimulatorSlot
from releases.catalog.providers import PRODUCTION_SLOT, NotFoundError
from releases.catalog.providers.simulator import SimulatorProvider, slot_health
from releases.catalog.providers.simulator_load import Served, choose_slot, serve
from releases.catalog.simulator import services as sim
from releases.catalog.simulator.forms import SlotFaultForm, SyntheticLoadForm, VersionProfileForm

ROUTING_COOKIE = "x-ms-routing-name"  # App Service's name; "self" means the production slot


# --- the simulated slots' pages (public) -----------------------------------------------------------
def _simulated(slug: str) -> Application:
    return get_object_or_404(Application, slug=slug, provider=Provider.SIMULATOR)


def _answer(
    request: HttpRequest, application: Application, served: Served, slots: list[SimulatorSlot], *, routed: bool
) -> HttpResponse:
    cap = settings.SIMULATOR_TIMINGS["serve_sleep_max_ms"]
    if cap > 0:
        time.sleep(min(served.latency_ms, cap) / 1000)
    context = {
        "application": application,
        "served": served,
        "slot": served.slot,
        "routed": routed,
        "health": slot_health(application, served.slot, served.profile),
        "other_slots": sorted(s.slot_name for s in slots if s.slot_name != PRODUCTION_SLOT),
        "cookie_name": ROUTING_COOKIE,
    }
    response = render(request, "releases/sim_page.html", context, status=served.status)
    response["X-Served-By-Slot"] = served.slot.slot_name
    response["X-Served-Version"] = served.version
    return response


@login_not_required
@never_cache
@require_safe
def sim_routed(request: HttpRequest, slug: str) -> HttpResponse:
    """The site's production URL: a pinned visitor stays on their slot, a new one is routed by the share."""
    application = _simulated(slug)
    slots = {s.slot_name: s for s in SimulatorSlot.objects.filter(application=application)}
    if PRODUCTION_SLOT not in slots:
        raise Http404("This simulated site has no production slot.")
    asked = request.GET.get(ROUTING_COOKIE)
    pinned = asked if asked is not None else request.COOKIES.get(ROUTING_COOKIE, "")
    slot = slots.get(PRODUCTION_SLOT if pinned == "self" else pinned)
    if slot is None:
        slot = choose_slot(list(slots.values()), random.random())  # noqa: S311 - simulated routing
    response = _answer(request, application, serve(application, slot), list(slots.values()), routed=True)
    response.set_cookie(
        ROUTING_COOKIE,
        "self" if slot.slot_name == PRODUCTION_SLOT else slot.slot_name,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
    return response


@login_not_required
@never_cache
@require_safe
def sim_slot(request: HttpRequest, slug: str, slot: str) -> HttpResponse:
    """One slot's own address (App Service: https://<site>-<slot>.azurewebsites.net)."""
    application = _simulated(slug)
    slots = list(SimulatorSlot.objects.filter(application=application))
    row = next((s for s in slots if s.slot_name == slot), None)
    if row is None:
        raise Http404(f"The slot '{slot}' of site '{application.slug}' was not found.")
    return _answer(request, application, serve(application, row), slots, routed=False)


@login_not_required
@never_cache
@require_safe
def sim_slot_healthz(request: HttpRequest, slug: str, slot: str) -> HttpResponse:
    """The slot's health check: what `SimulatorProvider.check_health` says, as 200, 503 or 403."""
    application = _simulated(slug)
    try:
        health = SimulatorProvider().check_health(application, slot)
    except NotFoundError as exc:
        raise Http404(str(exc)) from None
    status = health.status_code or (200 if health.healthy else 503)
    return HttpResponse(f"{health.detail}\n", status=status, content_type="text/plain; charset=utf-8")


# --- fault injection: the page ---------------------------------------------------------------------
@role_required(Role.VIEWER)
def application_simulator(request: HttpRequest, slug: str) -> HttpResponse:
    """See the simulated site; a release manager (or admin) changes its faults and load here."""
    application = get_object_or_404(Application, slug=slug, provider=Provider.SIMULATOR)
    bound: dict[str, Any] = {}
    if request.method == "POST":
        require_role(request.user, Role.RELEASE_MANAGER)  # the role first: a missing role is not a form error
        kind = request.POST.get("form", "")
        done = _post_simulator_form(request, application, kind, bound)
        if done is not None:
            messages.success(request, done)
            return redirect("application_simulator", slug=application.slug)
    return _simulator_page(request, application, bound, status=400 if bound else 200)


def _post_simulator_form(request: HttpRequest, application: Application, kind: str, bound: dict) -> str | None:
    """Validate and apply one of the page's forms; returns what was done, or None with the form in `bound`."""
    form: Any
    if kind == "slot":
        slot_name = request.POST.get("slot", "")
        form = SlotFaultForm(request.POST, prefix=slot_name)
        bound[f"slot:{slot_name}"] = form
        if form.is_valid():
            try:
                sim.simulator_set_slot_faults(
                    application=application, actor=request.user, slot_name=slot_name, **form.cleaned_data
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                return f"Faults of slot {slot_name} saved."
    elif kind == "version":
        form = VersionProfileForm(request.POST)
        bound["version"] = form
        if form.is_valid():
            try:
                profile = sim.simulator_set_version_profile(
                    application=application, actor=request.user, **form.cleaned_data
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                return f"Profile of version {profile.version} saved."
    elif kind == "load":
        form = SyntheticLoadForm(request.POST)
        bound["load"] = form
        if form.is_valid():
            try:
                sim.simulator_set_synthetic_load(
                    application=application,
                    actor=request.user,
                    requests_per_minute=form.cleaned_data["synthetic_rpm"],
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                return f"Synthetic load set to {form.cleaned_data['synthetic_rpm']} requests a minute."
    else:
        bound["unknown"] = True
        messages.error(request, "Unknown form; reload the page and try again.")
    return None


def _simulator_page(request: HttpRequest, application: Application, bound: dict, *, status: int) -> HttpResponse:
    state = sim.simulator_state(application)
    slot_rows = []
    for name, slot in state["slots"].items():
        form = bound.get(f"slot:{name}") or SlotFaultForm(
            prefix=name, initial={field: slot[field] for field in sim.SLOT_FAULT_FIELDS}
        )
        slot_rows.append({"name": name, **slot, "form": form})
    shown = {f"slot:{row['name']}" for row in slot_rows}
    stray_errors = [
        error
        for key, form in bound.items()
        if key.startswith("slot:") and key not in shown
        for error in form.non_field_errors()
    ]
    versions = sorted({s["version"] for s in state["slots"].values() if s["version"]} | set(state["versions"]))
    version_form = bound.get("version")
    if version_form is None:
        first = next((s["version"] for s in state["slots"].values() if s["version"]), "")
        initial = {"version": first, **sim.simulator_profile_values(application, first)}
        version_form = VersionProfileForm(initial=initial)
    load_form = bound.get("load") or SyntheticLoadForm(initial={"synthetic_rpm": state["synthetic_rpm"]})
    context = {
        "application": application,
        "state": state,
        "slot_rows": slot_rows,
        "stray_errors": stray_errors,
        "known_versions": versions,
        "version_form": version_form,
        "load_form": load_form,
        "can_change": has_role(request.user, Role.RELEASE_MANAGER),
    }
    return render(request, "releases/application_simulator.html", context, status=status)


# --- fault injection: the API ----------------------------------------------------------------------
def _json(status: int, body: dict[str, Any]) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


def api_role_required(role: Role) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Like `role_required`, but the 403 is JSON with the same message."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, role):
                return _json(403, {"error": missing_role_message(request.user, role)})
            return view(request, *args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]  # read by the URL/role table test
        return wrapped

    return decorator


@never_cache
@api_role_required(Role.VIEWER)
def api_application_simulator(request: HttpRequest, slug: str) -> HttpResponse:
    """GET the simulated world of an application; PUT faults, version profiles and load (release manager)."""
    if request.method not in ("GET", "HEAD", "PUT"):
        response = _json(405, {"error": f"{request.method} is not allowed here; use GET or PUT."})
        response["Allow"] = "GET, HEAD, PUT"
        return response
    if request.method == "PUT" and not has_role(request.user, Role.RELEASE_MANAGER):
        return _json(403, {"error": missing_role_message(request.user, Role.RELEASE_MANAGER)})
    application = Application.objects.filter(slug=slug).first()
    if application is None:
        return _json(404, {"error": f"There is no application {slug!r}."})
    if application.provider != Provider.SIMULATOR:
        return _json(404, {"error": f"{application.name} does not run on the simulator."})
    if request.method == "PUT":
        try:
            body = json.loads(request.body or b"null")
        except ValueError as exc:
            return _json(400, {"error": f"The body is not valid JSON: {exc}."})
        changes, errors = _parse_changes(application, body)
        if errors:
            return _json(400, {"error": "Some fields are not valid; nothing was changed.", "fields": errors})
        try:
            sim.simulator_configure(application=application, actor=request.user, changes=changes)
        except DomainError as exc:
            return _json(400, {"error": str(exc)})
    state = sim.simulator_state(application)
    state["links"] = {"page": reverse("application_simulator", args=[application.slug])}
    return _json(200, state)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_changes(application: Application, body: object) -> tuple[sim.SimulatorChanges, dict[str, list[str]]]:
    """Check the PUT body field by field; errors are keyed by the path of the bad field."""
    changes = sim.SimulatorChanges(slots={}, versions={})
    errors: dict[str, list[str]] = {}
    if not isinstance(body, dict):
        return changes, {"": ["The body must be a JSON object."]}
    for key in sorted(set(body) - {"slots", "versions", "synthetic_rpm"}):
        errors[key] = ["Unknown field; expected slots, versions or synthetic_rpm."]

    slot_names = set(SimulatorSlot.objects.filter(application=application).values_list("slot_name", flat=True))
    slots = body.get("slots", {})
    if not isinstance(slots, dict):
        errors["slots"] = ["Must be an object of slot name → faults."]
        slots = {}
    for name, faults in slots.items():
        where = f"slots.{name}"
        if name not in slot_names:
            errors[where] = [f"The simulated site has no slot named {name!r}."]
            continue
        if not isinstance(faults, dict):
            errors[where] = ["Must be an object of faults."]
            continue
        for key, value in faults.items():
            if key not in SlotFaultForm.base_fields:
                errors[f"{where}.{key}"] = [f"Unknown fault; expected one of {', '.join(SlotFaultForm.base_fields)}."]
            elif not isinstance(value, bool):
                errors[f"{where}.{key}"] = ["Must be true or false."]
        changes.slots[name] = {k: v for k, v in faults.items() if k in SlotFaultForm.base_fields}

    versions = body.get("versions", {})
    if not isinstance(versions, dict):
        errors["versions"] = ["Must be an object of version → profile."]
        versions = {}
    for version, values in versions.items():
        where = f"versions.{version}"
        if not isinstance(values, dict):
            errors[where] = ["Must be an object with error_rate, latency_ms_median, latency_ms_p95, healthy."]
            continue
        fields = [f for f in VersionProfileForm.base_fields if f != "version"]
        typed = True
        for key, value in values.items():
            if key not in fields:
                errors[f"{where}.{key}"] = [f"Unknown field; expected one of {', '.join(fields)}."]
                typed = False
            elif key == "healthy" and not isinstance(value, bool):
                errors[f"{where}.{key}"] = ["Must be true or false."]
                typed = False
            elif key != "healthy" and not _is_number(value):
                errors[f"{where}.{key}"] = ["Must be a number."]
                typed = False
        if not typed:
            continue
        form = VersionProfileForm({**sim.simulator_profile_values(application, version), **values, "version": version})
        if not form.is_valid():
            for field, messages_ in form.errors.items():
                errors[where if field in ("version", "__all__") else f"{where}.{field}"] = list(messages_)
            continue
        changes.versions[form.cleaned_data["version"]] = {k: v for k, v in form.cleaned_data.items() if k != "version"}

    if "synthetic_rpm" in body:
        value = body["synthetic_rpm"]
        form = SyntheticLoadForm({"synthetic_rpm": value})
        if not (isinstance(value, int) and not isinstance(value, bool)):
            errors["synthetic_rpm"] = ["Must be a whole number of requests per minute."]
        elif not form.is_valid():
            errors["synthetic_rpm"] = list(form.errors["synthetic_rpm"])
        else:
            changes.synthetic_rpm = form.cleaned_data["synthetic_rpm"]
    return changes, errors
