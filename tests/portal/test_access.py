"""Who may open what: sign-in for every page, then a role per page, and the release pages' answers.

Every URL pattern is found by walking the resolver, so a new page cannot ship without a line in
`ACCESS` saying who may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from portal.core.roles import Role, roles_of
from releases.audit.models import AuditEvent
from releases.catalog.models import Release, ReleaseStatus
from tests.factories import (
    PASSWORD,
    ApiTokenFactory,
    ApplicationFactory,
    ApprovalRequestFactory,
    ReleaseFactory,
    add_simulated_site,
)

PUBLIC = "public"
SIGNED_IN = "signed in"  # any account, whatever its roles


@dataclass(frozen=True)
class Access:
    needs: Role | str
    method: str = "GET"
    api: bool = False  # the REST API: no sign-in page, a 401 problem document instead
    key: bool = False  # the flags' OFREP / sync / events APIs: a flag API key, or a 401 JSON answer
    anonymous_status: int = 200  # what a PUBLIC page answers an anonymous GET (tests/security covers the rest)


# Every named route of our own apps, and what it takes to use it.
ACCESS: dict[str, Access] = {
    "login": Access(PUBLIC),
    # Single sign-on (portal/oidc.py): public, they are how one signs in. Without OIDC_ISSUER (as here) the
    # first two answer "not configured" / "sign-in failed"; the logout is POST only. tests/security/test_oidc.py.
    "oidc_authentication_init": Access(PUBLIC, anonymous_status=404),
    "oidc_authentication_callback": Access(PUBLIC, anonymous_status=404),
    "oidc_logout": Access(PUBLIC, method="POST", anonymous_status=405),
    "logout": Access(SIGNED_IN, method="POST"),
    "healthz": Access(PUBLIC),
    "readyz": Access(PUBLIC),
    "prometheus_metrics": Access(PUBLIC),  # no sign-in: a bearer token, or loopback only (tests/deploy)
    "dashboard": Access(Role.VIEWER),
    "application_detail": Access(Role.VIEWER),
    "application_create": Access(Role.ADMIN),
    "application_connect": Access(Role.ADMIN),
    "application_refresh_slots": Access(Role.RELEASE_MANAGER, method="POST"),  # calls the provider
    "release_list": Access(Role.VIEWER),
    "release_compare": Access(Role.VIEWER),
    "release_register": Access(Role.RELEASE_MANAGER),
    "release_detail": Access(Role.VIEWER),
    "release_request_approval": Access(Role.RELEASE_MANAGER, method="POST"),
    "policy_edit": Access(Role.ADMIN),
    "approval_inbox": Access(Role.APPROVER),
    "approval_detail": Access(Role.VIEWER),
    "approval_decide": Access(Role.APPROVER, method="POST"),
    "approval_gates": Access(Role.APPROVER, method="POST"),  # calls the provider, records results
    "approval_override_freeze": Access(Role.ADMIN, method="POST"),
    "audit_list": Access(Role.VIEWER),
    "audit_export_csv": Access(Role.VIEWER),
    "audit_export_json": Access(Role.VIEWER),
    "delivery_metrics": Access(Role.VIEWER),
    "application_simulator": Access(Role.VIEWER),
    "api_application_simulator": Access(Role.VIEWER),
    "release_promote": Access(Role.RELEASE_MANAGER, method="POST"),
    "application_rollback": Access(Role.RELEASE_MANAGER, method="POST"),
    "application_drift_check": Access(Role.VIEWER, method="POST"),
    "application_drift_repair": Access(Role.RELEASE_MANAGER, method="POST"),
    "operation_detail": Access(Role.VIEWER),
    "operation_pause": Access(Role.RELEASE_MANAGER, method="POST"),
    "operation_resume": Access(Role.RELEASE_MANAGER, method="POST"),
    "operation_promote_now": Access(Role.RELEASE_MANAGER, method="POST"),
    "operation_rollback": Access(Role.RELEASE_MANAGER, method="POST"),
    "operation_ring_decide": Access(Role.APPROVER, method="POST"),
    "application_rings": Access(Role.VIEWER),
    "ring_edit": Access(Role.RELEASE_MANAGER),
    "ring_delete": Access(Role.RELEASE_MANAGER, method="POST"),
    "api_openapi": Access(PUBLIC),
    "api_docs": Access(SIGNED_IN),
    "api_tokens": Access(SIGNED_IN),
    "api_token_revoke": Access(SIGNED_IN, method="POST"),
    "api_application_list": Access(Role.VIEWER, api=True),
    "api_application_detail": Access(Role.VIEWER, api=True),
    "api_application_rollback": Access(Role.RELEASE_MANAGER, method="POST", api=True),
    "api_release_register": Access(Role.RELEASE_MANAGER, method="POST", api=True),
    "api_release_list": Access(Role.VIEWER, api=True),
    "api_release_detail": Access(Role.VIEWER, api=True),
    "api_release_approval": Access(Role.VIEWER, api=True),
    "api_release_request_approval": Access(Role.RELEASE_MANAGER, method="POST", api=True),
    "api_release_promote": Access(Role.RELEASE_MANAGER, method="POST", api=True),
    "api_operation_list": Access(Role.VIEWER, api=True),
    "api_operation_detail": Access(Role.VIEWER, api=True),
    "api_operation_pause": Access(Role.RELEASE_MANAGER, method="POST", api=True),
    "api_operation_resume": Access(Role.RELEASE_MANAGER, method="POST", api=True),
    "api_operation_promote_now": Access(Role.RELEASE_MANAGER, method="POST", api=True),
    "api_operation_rollback": Access(Role.RELEASE_MANAGER, method="POST", api=True),
    "api_audit_event_list": Access(Role.VIEWER, api=True),
    "sim_routed": Access(PUBLIC),
    "sim_slot": Access(PUBLIC),
    "sim_slot_healthz": Access(PUBLIC),
    # Feature flags: viewers see them; release managers (admins too) change them and hold the API keys.
    "flags_overview": Access(Role.VIEWER),
    "application_flags": Access(Role.VIEWER),
    "flag_create": Access(Role.RELEASE_MANAGER),
    "flag_detail": Access(Role.VIEWER),
    "flag_edit": Access(Role.RELEASE_MANAGER),
    "flag_rule_add": Access(Role.RELEASE_MANAGER, method="POST"),
    "flag_rule_remove": Access(Role.RELEASE_MANAGER, method="POST"),
    "flag_kill": Access(Role.RELEASE_MANAGER, method="POST"),
    "flag_lifecycle": Access(Role.RELEASE_MANAGER, method="POST"),
    "flag_schedule_create": Access(Role.RELEASE_MANAGER, method="POST"),
    "flag_schedule_cancel": Access(Role.RELEASE_MANAGER, method="POST"),
    "flag_change_decide": Access(Role.APPROVER, method="POST"),
    "flag_approval_toggle": Access(Role.ADMIN, method="POST"),
    "release_flag_declare": Access(Role.RELEASE_MANAGER, method="POST"),
    "release_flag_remove": Access(Role.RELEASE_MANAGER, method="POST"),
    "launch_create": Access(Role.RELEASE_MANAGER),
    "segment_create": Access(Role.RELEASE_MANAGER),
    "segment_edit": Access(Role.RELEASE_MANAGER),
    "segment_delete": Access(Role.RELEASE_MANAGER, method="POST"),
    "launch_detail": Access(Role.VIEWER),
    "launch_widen": Access(Role.RELEASE_MANAGER, method="POST"),
    "launch_rollout": Access(Role.RELEASE_MANAGER, method="POST"),
    "launch_kill": Access(Role.RELEASE_MANAGER, method="POST"),
    "flag_api_keys": Access(Role.RELEASE_MANAGER),
    "flag_api_key_revoke": Access(Role.RELEASE_MANAGER, method="POST"),
    "ofrep_evaluate_flag": Access(PUBLIC, method="POST", key=True),
    "ofrep_evaluate_flags": Access(PUBLIC, method="POST", key=True),
    "ofrep_configuration": Access(PUBLIC, key=True),
    "flagd_sync": Access(PUBLIC, key=True),
    "flag_events": Access(PUBLIC, method="POST", key=True),
    # Experiments: viewers read the results (and may recompute them); release managers create, start, stop, ship.
    "experiments_overview": Access(Role.VIEWER),
    "experiment_create": Access(Role.RELEASE_MANAGER),
    "experiment_power": Access(Role.RELEASE_MANAGER, method="POST"),
    "experiment_detail": Access(Role.VIEWER),
    "experiment_recompute": Access(Role.RELEASE_MANAGER, method="POST"),  # writes an analysis
    "experiment_start": Access(Role.RELEASE_MANAGER, method="POST"),
    "experiment_stop": Access(Role.RELEASE_MANAGER, method="POST"),
    "experiment_ship": Access(Role.RELEASE_MANAGER, method="POST"),
    "experiment_events": Access(PUBLIC, method="POST", key=True),
    # Outgoing webhooks: viewers see subscriptions and deliveries, release managers change them.
    "webhook_list": Access(Role.VIEWER),
    "webhook_create": Access(Role.RELEASE_MANAGER),
    "webhook_deliveries": Access(Role.VIEWER),
    "webhook_toggle": Access(Role.RELEASE_MANAGER, method="POST"),
    "webhook_rotate": Access(Role.RELEASE_MANAGER, method="POST"),
    "webhook_delete": Access(Role.RELEASE_MANAGER, method="POST"),
    "webhook_redeliver": Access(Role.RELEASE_MANAGER, method="POST"),
}

# Django's admin and the RQ dashboard: staff only, guarded by Django itself.
STAFF_ONLY_NAMESPACES = {"admin", "django_rq"}

# The roles each persona must hold, written out here rather than read from the groups under test.
PERSONA_ROLES: dict[str, set[Role]] = {
    "no_role_user": set(),
    "viewer": {Role.VIEWER},
    "approver": {Role.VIEWER, Role.APPROVER},
    "release_manager": {Role.VIEWER, Role.RELEASE_MANAGER},
    "admin_user": {Role.VIEWER, Role.APPROVER, Role.RELEASE_MANAGER, Role.ADMIN},
}


@dataclass(frozen=True)
class Route:
    route: str  # as ResolverMatch.route spells it
    namespace: str
    name: str | None
    pattern: URLPattern

    @property
    def label(self) -> str:
        return f"{self.namespace}:{self.name}" if self.namespace else str(self.name)


def _join(prefix: str, part: str) -> str:
    return prefix + part.removeprefix("^")  # as Django joins routes


def _walk(patterns: list, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            yield from _walk(entry.url_patterns, _join(prefix, str(entry.pattern)), inner)
        else:
            yield Route(_join(prefix, str(entry.pattern)), namespace, entry.name, entry)


ALL_ROUTES = list(_walk(get_resolver().url_patterns))
OUR_ROUTES = [r for r in ALL_ROUTES if r.namespace.split(":")[0] not in STAFF_ONLY_NAMESPACES]
STAFF_ROUTES = [r for r in ALL_ROUTES if r.namespace.split(":")[0] in STAFF_ONLY_NAMESPACES]

_CONVERTER_SAMPLES = {"int": "1", "str": "x", "path": "1", "slug": "x"}


def sample_path(route: Route) -> str:
    """A concrete path that this very pattern (and no earlier one) resolves."""
    path = re.sub(r"\(\?P<\w+>([^()]*)\)\??", lambda m: m.group(1).split("|")[0], route.route)  # regex groups
    path = re.sub(r"<(?:(\w+):)?\w+>", lambda m: _CONVERTER_SAMPLES[m.group(1) or "str"], path)  # converters
    path = path.replace("[\\w]+", "x").replace(".*", "x/").replace("/?", "/").replace("\\", "").rstrip("$")
    path = "/" + path
    assert resolve(path).route == route.route, f"No sample path for {route.label} ({route.route!r}); got {path!r}"
    return path


@pytest.fixture
def url_for(db: None) -> dict[str, str]:
    """The URL of each of our routes, pointing at real objects."""
    release = ReleaseFactory(status=ReleaseStatus.AWAITING_APPROVAL)
    add_simulated_site(release.application)
    approval = ApprovalRequestFactory(release=release)
    samples = {
        "slug": release.application.slug,
        "pk": release.pk,
        "slot": "staging",
        "request_id": approval.pk,
        "stage": "prod",
        "release_id": release.pk,
        "operation_id": release.pk,  # no such operation: a 404 past the access check is enough here
        "token_id": ApiTokenFactory().pk,
        "environment_id": release.application.environments.first().pk,
        "key": "x",
    }
    urls = {}
    for route in OUR_ROUTES:
        unknown = set(route.pattern.pattern.converters) - set(samples)
        assert not unknown, f"url_for has no sample value for {sorted(unknown)} of {route.label}: add one"
        if route.name is not None:
            urls[route.name] = reverse(route.name, kwargs={k: samples[k] for k in route.pattern.pattern.converters})
    return urls


# --- The table covers every URL --------------------------------------------------------------------


def test_every_url_of_our_apps_says_who_may_use_it() -> None:
    unnamed = [r.route for r in OUR_ROUTES if r.name is None]
    missing = sorted({str(r.name) for r in OUR_ROUTES} - set(ACCESS) - {"None"})
    stale = sorted(set(ACCESS) - {str(r.name) for r in OUR_ROUTES})

    assert not unnamed, f"Give these URL patterns a name so their access can be listed: {unnamed}"
    assert not missing, (
        f"New URL pattern(s) {missing} are not in ACCESS in {__file__}: add each with the role it needs "
        "(or PUBLIC / SIGNED_IN), then make sure the view enforces it."
    )
    assert not stale, f"ACCESS lists routes that no longer exist: {stale}"


def test_every_role_protected_view_declares_the_role_in_the_table() -> None:
    for route in OUR_ROUTES:
        access = ACCESS.get(str(route.name))
        if access is None:
            continue  # reported by test_every_url_of_our_apps_says_who_may_use_it
        declared = getattr(route.pattern.callback, "required_role", None)
        if isinstance(access.needs, Role):
            assert declared == access.needs, f"{route.label} is guarded by {declared}, the table says {access.needs}"
        else:
            assert declared is None, f"{route.label} is guarded by {declared}, the table says {access.needs}"


# --- Signing in ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", OUR_ROUTES, ids=lambda r: r.label)
@pytest.mark.django_db
def test_an_anonymous_visitor_is_sent_to_sign_in(route: Route, client: Client, url_for: dict[str, str]) -> None:
    access = ACCESS.get(str(route.name))
    assert access is not None, f"{route.label} is not in ACCESS; see test_every_url_of_our_apps_says_who_may_use_it"
    url = url_for[str(route.name)]

    response = client.generic(access.method, url) if access.api or access.key else client.get(url)

    if access.key:
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/json"
    elif access.api:
        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/problem+json"
    elif access.needs == PUBLIC:
        assert response.status_code == access.anonymous_status
    else:
        assert response.status_code == 302
        assert response.headers["Location"] == f"{reverse('login')}?next={quote(url)}"


@pytest.mark.parametrize("route", STAFF_ROUTES, ids=lambda r: f"{r.label} {r.route}")
@pytest.mark.django_db
def test_an_anonymous_visitor_is_sent_to_sign_in_for_every_staff_page(route: Route, client: Client) -> None:
    path = sample_path(route)

    response = client.get(path)

    if route.label == "admin:login":
        assert response.status_code == 200
        return
    # Which sign-in page depends on Django's wrapping: the admin site's own views carry the admin login,
    # ModelAdmin views and the RQ statistics do not, so the portal's LoginRequiredMiddleware answers.
    assert response.status_code == 302
    assert response.headers["Location"] in {
        f"{reverse('admin:login')}?next={quote(path)}",
        f"{reverse('login')}?next={quote(path)}",
    }


@pytest.mark.parametrize("persona", ["viewer", "admin_user"])
@pytest.mark.parametrize("path", ["/admin/", "/django-rq/"])
@pytest.mark.django_db
def test_a_portal_role_does_not_open_the_staff_pages(
    persona: str, path: str, client: Client, request: pytest.FixtureRequest
) -> None:
    client.force_login(request.getfixturevalue(persona))

    response = client.get(path)

    assert response.status_code == 302
    assert response.headers["Location"] == f"{reverse('admin:login')}?next={quote(path)}"


@pytest.mark.django_db
def test_signing_in_with_a_password_opens_the_dashboard(client: Client, viewer: User) -> None:
    response = client.post(reverse("login"), {"username": viewer.username, "password": PASSWORD})

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200


# --- Roles -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", sorted(PERSONA_ROLES))
@pytest.mark.django_db
def test_each_persona_holds_exactly_the_roles_of_its_group(persona: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(persona)

    assert set(roles_of(user)) == PERSONA_ROLES[persona]


def _role_checks() -> list[tuple[str, str, bool]]:
    return [
        (name, persona, access.needs in roles)
        for name, access in ACCESS.items()
        if isinstance(access.needs, Role)
        for persona, roles in sorted(PERSONA_ROLES.items())
    ]


@pytest.mark.parametrize(("name", "persona", "allowed"), _role_checks())
@pytest.mark.django_db
def test_each_page_is_refused_with_a_403_naming_the_role_it_needs(
    name: str, persona: str, allowed: bool, client: Client, url_for: dict[str, str], request: pytest.FixtureRequest
) -> None:
    access = ACCESS[name]
    assert isinstance(access.needs, Role)
    client.force_login(request.getfixturevalue(persona))

    response = client.generic(access.method, url_for[name])

    if allowed:
        assert response.status_code != 403
    else:
        assert response.status_code == 403
        assert f"needs the {access.needs.label} role" in response.text


@pytest.mark.django_db
def test_a_user_without_a_role_is_told_which_role_to_ask_for(client: Client, no_role_user: User) -> None:
    client.force_login(no_role_user)

    response = client.get(reverse("dashboard"))

    assert response.status_code == 403
    assert "needs the viewer role" in response.text
    assert "your account (nico-no-role) has no role" in response.text
    assert "“Viewer” group" in response.text


@pytest.mark.django_db
def test_a_signed_in_user_can_sign_out(client: Client, no_role_user: User) -> None:
    client.force_login(no_role_user)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302  # back to the sign-in page


# --- What a viewer sees ----------------------------------------------------------------------------


@pytest.fixture
def live_release(db: None) -> Release:
    application = ApplicationFactory(name="Checkout", slug="checkout", team="Payments")
    release = ReleaseFactory(application=application, version="7.3.0", status=ReleaseStatus.LIVE)
    AuditEvent.objects.create(
        created_at=release.created_at,
        actor_label="system",
        action="release.went_live",
        object_type="releases.release",
        object_id=str(release.pk),
        object_repr=str(release),
        application=application,
        reason="Cut-over finished",
    )
    return release


@pytest.mark.django_db
def test_a_viewer_sees_the_dashboard_with_every_application(
    client: Client, viewer: User, live_release: Release
) -> None:
    client.force_login(viewer)

    response = client.get(reverse("dashboard"))

    assert response.status_code == 200
    assert "Checkout" in response.text
    assert live_release.application.get_absolute_url() in response.text


@pytest.mark.django_db
def test_a_viewer_sees_an_application_with_its_slots_and_releases(
    client: Client, viewer: User, live_release: Release
) -> None:
    client.force_login(viewer)

    response = client.get(reverse("application_detail", args=["checkout"]))

    assert response.status_code == 200
    for slot in ("dev", "test", "staging", "production"):
        assert f"<code>{slot}</code>" in response.text
    assert live_release.get_absolute_url() in response.text
    assert "Register a release" not in response.text  # that needs the release manager role


@pytest.mark.django_db
def test_an_htmx_poll_of_an_application_gets_only_the_slots_and_is_told_to_stop(
    client: Client, viewer: User, live_release: Release
) -> None:
    client.force_login(viewer)

    response = client.get(reverse("application_detail", args=["checkout"]), headers={"HX-Request": "true"})

    assert response.status_code == 286  # nothing pending: htmx stops polling
    assert response.text.lstrip().startswith('<div id="slots"')
    assert "<html" not in response.text
    assert "<code>production</code>" in response.text
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.django_db
def test_a_viewer_sees_the_release_list_and_a_release_without_actions(
    client: Client, viewer: User, live_release: Release
) -> None:
    client.force_login(viewer)

    listing = client.get(reverse("release_list"))
    detail = client.get(live_release.get_absolute_url())

    assert listing.status_code == detail.status_code == 200
    assert "7.3.0" in listing.text
    assert "Checkout 7.3.0" in detail.text
    assert "Cut-over finished" in detail.text
    assert 'name="action"' not in detail.text


@pytest.mark.django_db
def test_a_viewer_sees_the_audit_trail(client: Client, viewer: User, live_release: Release) -> None:
    client.force_login(viewer)

    response = client.get(reverse("audit_list"))

    assert response.status_code == 200
    assert "release.went_live" in response.text
    assert "Cut-over finished" in response.text


@pytest.mark.django_db
def test_a_viewer_cannot_register_a_release(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    response = client.get(reverse("release_register"))

    assert response.status_code == 403
    assert "needs the release manager role" in response.text


@pytest.mark.django_db
def test_a_viewer_cannot_approve(client: Client, viewer: User) -> None:
    approval = ApprovalRequestFactory()
    client.force_login(viewer)

    response = client.post(reverse("approval_decide", args=[approval.pk]), {"verdict": "approve"})

    assert response.status_code == 403
    assert "needs the approver role" in response.text
    approval.release.refresh_from_db()
    assert approval.release.status == ReleaseStatus.AWAITING_APPROVAL
    assert not approval.decisions.exists()
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_viewer_is_refused_a_rejection_for_want_of_the_role_not_of_a_comment(client: Client, viewer: User) -> None:
    approval = ApprovalRequestFactory()
    client.force_login(viewer)

    response = client.post(reverse("approval_decide", args=[approval.pk]), {"verdict": "reject", "comment": ""})

    # The role decides first: someone who may not reject at all must not be asked for a comment.
    assert response.status_code == 403
    assert "needs the approver role" in response.text


@pytest.mark.django_db
def test_an_approver_cannot_request_approval(client: Client, approver: User) -> None:
    release = ReleaseFactory(status=ReleaseStatus.REGISTERED)
    client.force_login(approver)

    response = client.post(reverse("release_request_approval", args=[release.pk]))

    assert response.status_code == 403
    assert "needs the release manager role" in response.text
    release.refresh_from_db()
    assert release.status == ReleaseStatus.REGISTERED


# --- The release page and approval -----------------------------------------------------------------


@pytest.mark.django_db
def test_the_release_page_offers_no_direct_approval_any_more(client: Client, approver: User) -> None:
    approval = ApprovalRequestFactory()
    client.force_login(approver)

    response = client.get(approval.release.get_absolute_url())

    # Approving happens on the request's page, under its policy; the release page links to it.
    assert 'value="approve"' not in response.text
    assert reverse("approval_detail", args=[approval.pk]) in response.text
    assert "Request approval" not in response.text


@pytest.mark.django_db
def test_an_action_on_a_missing_release_is_a_404(client: Client, release_manager: User) -> None:
    client.force_login(release_manager)

    response = client.post(reverse("release_request_approval", args=[999_999]))

    assert response.status_code == 404


@pytest.mark.django_db
def test_a_decision_on_a_missing_request_is_a_404(client: Client, approver: User) -> None:
    client.force_login(approver)

    response = client.post(reverse("approval_decide", args=[999_999]), {"verdict": "approve"})

    assert response.status_code == 404


# --- Registering a release -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_release_manager_registers_a_release(client: Client, release_manager: User) -> None:
    application = ApplicationFactory(name="Checkout")
    staging = application.slots.get(name="staging")
    client.force_login(release_manager)

    response = client.post(
        reverse("release_register"),
        {"application": application.pk, "version": " 5.0.0 ", "deployed_slot": staging.pk, "branch": "main"},
    )

    release = Release.objects.get()
    assert response.status_code == 302
    assert response.headers["Location"] == release.get_absolute_url()
    assert (release.application, release.version, release.deployed_slot) == (application, "5.0.0", staging)
    assert release.created_by == release_manager
    assert AuditEvent.objects.get().action == "release.registered"


@pytest.mark.django_db
def test_the_registration_form_refuses_a_duplicate_version(client: Client, release_manager: User) -> None:
    existing = ReleaseFactory(application=ApplicationFactory(name="Checkout"), version="5.0.0")
    client.force_login(release_manager)

    response = client.post(reverse("release_register"), {"application": existing.application.pk, "version": "5.0.0"})

    assert response.status_code == 400
    assert "Checkout already has a release 5.0.0." in response.text
    assert response.context["form"].errors["version"] == ["Checkout already has a release 5.0.0."]
    assert Release.objects.count() == 1
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_the_registration_form_refuses_a_slot_of_another_application(client: Client, release_manager: User) -> None:
    application = ApplicationFactory(name="Checkout")
    foreign = ApplicationFactory(name="Billing").slots.get(name="staging")
    client.force_login(release_manager)

    response = client.post(
        reverse("release_register"),
        {"application": application.pk, "version": "5.0.0", "deployed_slot": foreign.pk},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["deployed_slot"] == ["staging is a slot of Billing, not Checkout."]
    assert "staging is a slot of Billing, not Checkout." in response.text
    assert Release.objects.count() == 0
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_the_registration_form_is_offered_to_a_release_manager(client: Client, release_manager: User) -> None:
    application = ApplicationFactory()
    client.force_login(release_manager)

    response = client.get(reverse("release_register"), {"application": application.pk})

    assert response.status_code == 200
    assert response.context["form"]["application"].value() == str(application.pk)
    assert Release.objects.count() == 0
