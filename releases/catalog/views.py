"""Pages of the portal. Views parse input, call a service or selector, render; nothing more."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from portal.core.errors import DomainError
from portal.core.htmx import partial_requested
from portal.core.roles import Role, role_required
from releases.catalog import services
from releases.catalog.forms import ApplicationCreateForm, SlotMappingForm
from releases.catalog.jobs import enqueue_slots_refresh, slots_refresh_ask
from releases.catalog.models import Application


@require_POST
@role_required(Role.RELEASE_MANAGER)
def application_refresh_slots(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    slots_refresh_ask(application=application, actor=request.user)
    messages.info(request, f"Refreshing the slots of {application.name} in the background.")
    return redirect(application)


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
