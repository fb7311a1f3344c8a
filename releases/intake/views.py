"""The register-a-release page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from portal.core.errors import DomainError
from portal.core.roles import Role, role_required
from releases.intake import services as intake
from releases.intake.forms import ReleaseRegisterForm


@role_required(Role.RELEASE_MANAGER)
def release_register(request: HttpRequest) -> HttpResponse:
    form = ReleaseRegisterForm(request.POST or None, initial={"application": request.GET.get("application")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            release = intake.release_register(
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
