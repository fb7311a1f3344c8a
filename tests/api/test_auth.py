"""Who may call the API: tokens and their scopes, the owner's role at call time, revoked and expired
tokens, the browser's session with CSRF, and the rate limit per token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings

from portal.api.auth import token_hash
from portal.api.models import ApiToken
from portal.core import clock
from portal.core.roles import Role
from releases.catalog.models import Application, Release, ReleaseStatus
from tests.api.conftest import ALL_SCOPES, Call, assert_problem, forge, issue
from tests.factories import ReleaseFactory, UserFactory

pytestmark = pytest.mark.django_db

REGISTER = {"application": "checkout", "version": "2.0.0", "deployed_slot": "staging"}


def test_a_token_is_stored_only_as_a_hash(pipeline: User) -> None:
    secret = issue(pipeline, ["read"], name="hash me")

    stored = ApiToken.objects.get(name="hash me")
    assert secret.startswith(f"slw_{stored.prefix}_")
    assert stored.secret_hash == token_hash(secret)
    assert secret not in str(ApiToken.objects.filter(pk=stored.pk).values().get())


def test_a_read_token_reads_but_cannot_post(call: Call, read_token: str, checkout: Application) -> None:
    assert call("GET", "releases", read_token).status_code == 200

    response = call("POST", "releases", read_token, REGISTER)

    body = assert_problem(response, 403, kind="forbidden")
    assert "needs a token with the releases:write scope" in body["detail"]
    assert not Release.objects.filter(version="2.0.0").exists()


def test_a_releases_write_token_registers_but_cannot_promote(call: Call, pipeline: User, checkout: Application) -> None:
    secret = issue(pipeline, ["releases:write"])
    approved = ReleaseFactory(application=checkout, version="1.1.0", status=ReleaseStatus.APPROVED)

    registered = call("POST", "releases", secret, REGISTER)
    read = call("GET", f"releases/{approved.pk}", secret)  # a write scope includes read
    promoted = call("POST", f"releases/{approved.pk}/promote", secret, {"strategy": "blue_green"})

    assert registered.status_code == 201
    assert read.status_code == 200
    body = assert_problem(promoted, 403)
    assert "operations:write scope" in body["detail"]
    assert approved.operations.count() == 0


def test_a_viewers_token_with_operations_write_still_cannot_promote(
    call: Call, viewer: User, checkout: Application
) -> None:
    secret, _ = forge(viewer, ["operations:write"])  # the service would refuse to issue it
    approved = ReleaseFactory(application=checkout, version="1.1.0", status=ReleaseStatus.APPROVED)

    response = call("POST", f"releases/{approved.pk}/promote", secret, {"strategy": "blue_green"})

    body = assert_problem(response, 403)
    assert "needs the release manager role" in body["detail"]
    assert "vera-viewer" in body["detail"]
    assert approved.operations.count() == 0


def test_a_token_loses_what_its_owner_loses(call: Call, release_manager: User, checkout: Application) -> None:
    secret = issue(release_manager, ALL_SCOPES)
    assert call("POST", "releases", secret, REGISTER).status_code == 201

    release_manager.groups.remove(Group.objects.get(name=Role.RELEASE_MANAGER.value))
    release_manager = User.objects.get(pk=release_manager.pk)  # no cached permissions
    response = call("POST", "releases", secret, {**REGISTER, "version": "2.0.1"})

    assert_problem(response, 403)
    assert "needs the release manager role" in response.json()["detail"]


def test_the_service_refuses_a_scope_the_owners_role_cannot_use(viewer: User) -> None:
    from portal.core.errors import DomainError

    with pytest.raises(DomainError, match="operations:write scope needs the release manager role"):
        issue(viewer, ["operations:write"])


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"revoked_at": clock.now}, "was revoked on"),
        ({"expires_at": lambda: clock.now() - timedelta(seconds=1)}, "expired on"),
    ],
    ids=["revoked", "expired"],
)
def test_a_revoked_or_expired_token_is_refused_with_401(
    call: Call, pipeline: User, checkout: Application, state: dict, message: str
) -> None:
    secret, token = forge(pipeline, ALL_SCOPES, **{key: make() for key, make in state.items()})

    response = call("GET", "releases", secret)

    body = assert_problem(response, 401, kind="unauthenticated")
    assert message in body["detail"] and token.prefix in body["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_that_expires_later_works(call: Call, pipeline: User, checkout: Application) -> None:
    secret, _ = forge(pipeline, ["read"], expires_at=clock.now() + timedelta(days=1))

    assert call("GET", "releases", secret).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["Bearer slw_deadbeef_notarealsecret", "Bearer not-a-token", "Bearer "],
    ids=["unknown", "malformed", "empty"],
)
def test_an_unknown_or_malformed_token_is_refused_with_401(
    client: Client, checkout: Application, authorization: str
) -> None:
    response = client.get("/api/v1/releases", headers={"Authorization": authorization})

    assert_problem(response, 401)


def test_no_credentials_get_401_not_the_sign_in_page(client: Client) -> None:
    response = client.post("/api/v1/releases", data="{}", content_type="application/json")

    body = assert_problem(response, 401)
    assert "Authorization: Bearer" in body["detail"]


def test_a_deactivated_owners_token_is_refused(call: Call, pipeline: User, token: str, checkout: Application) -> None:
    pipeline.is_active = False
    pipeline.save()

    response = call("GET", "releases", token)

    assert "deactivated" in assert_problem(response, 401)["detail"]


def test_last_used_is_written_at_most_once_a_minute(
    call: Call, pipeline: User, token: str, checkout: Application
) -> None:
    stored = ApiToken.objects.get(owner=pipeline)
    assert stored.last_used_at is None

    start = clock.now()
    with clock.frozen(start):
        call("GET", "releases", token)
    first = ApiToken.objects.get(pk=stored.pk).last_used_at
    with clock.frozen(start + timedelta(seconds=30)):
        call("GET", "releases", token)
    second = ApiToken.objects.get(pk=stored.pk).last_used_at
    with clock.frozen(start + timedelta(seconds=61)):
        call("GET", "releases", token)
    third = ApiToken.objects.get(pk=stored.pk).last_used_at

    assert (first, second, third) == (start, start, start + timedelta(seconds=61))


# --- the browser's session ----------------------------------------------------------------------------


def test_a_signed_in_person_reads_with_the_session(client: Client, viewer: User, checkout: Application) -> None:
    client.force_login(viewer)

    response = client.get("/api/v1/applications/checkout")

    assert response.status_code == 200
    assert response.json()["slug"] == "checkout"


def test_a_session_post_without_the_csrf_token_is_refused(release_manager: User, checkout: Application) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(release_manager)

    response = browser.post("/api/v1/releases", data=REGISTER, content_type="application/json")

    assert "CSRF" in assert_problem(response, 403)["detail"]
    assert not Release.objects.filter(version="2.0.0").exists()


def test_a_session_post_with_the_csrf_token_is_accepted(release_manager: User, checkout: Application) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(release_manager)
    browser.get("/api/v1/docs/")  # any page sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value

    response = browser.post(
        "/api/v1/releases", data=REGISTER, content_type="application/json", headers={"X-CSRFToken": csrf}
    )

    assert response.status_code == 201, response.content
    assert response.json()["created_by"] == "rita-release-manager"


def test_a_session_needs_the_role_too(client: Client, viewer: User, checkout: Application) -> None:
    client.force_login(viewer)

    response = client.post("/api/v1/releases", data=REGISTER, content_type="application/json")

    assert "needs the release manager role" in assert_problem(response, 403)["detail"]


# --- rate limit --------------------------------------------------------------------------------------------


@override_settings(API_RATE_LIMIT_PER_MINUTE=3)
def test_a_token_over_its_rate_limit_gets_429_with_retry_after(
    call: Call, pipeline: User, checkout: Application
) -> None:
    secret = issue(pipeline, ["read"])
    other = issue(UserFactory(roles=[Role.VIEWER]), ["read"])

    minute = clock.now().replace(second=0, microsecond=0)

    with clock.frozen(minute + timedelta(seconds=45)):
        answers = [call("GET", "releases", secret).status_code for _ in range(3)]
        refused = call("GET", "releases", secret)
        someone_else = call("GET", "releases", other)
    with clock.frozen(minute + timedelta(seconds=60)):
        next_minute = call("GET", "releases", secret)

    assert answers == [200, 200, 200]
    body = assert_problem(refused, 429, kind="rate-limited")
    assert "too many requests" in body["detail"]
    assert refused["Retry-After"] == "15"
    assert someone_else.status_code == 200  # per token, not for everyone
    assert next_minute.status_code == 200
