"""The API tokens page: create a token (shown once), see your tokens, revoke one; admins for service accounts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.api.auth import token_hash
from portal.api.models import ApiToken
from releases.audit.models import AuditEvent
from tests.api.conftest import Call, forge, issue

pytestmark = pytest.mark.django_db

URL = "/account/tokens/"


def test_a_person_creates_a_token_and_sees_it_once(client: Client, release_manager: User) -> None:
    client.force_login(release_manager)

    response = client.post(URL, {"name": "laptop script", "scopes": ["read", "releases:write"], "expires": "30"})

    assert response.status_code == 200
    secret = response.context["issued"].secret
    token = ApiToken.objects.get(name="laptop script")
    assert secret in response.text and secret.startswith(f"slw_{token.prefix}_")
    assert token.secret_hash == token_hash(secret)
    assert (token.owner, token.scopes) == (release_manager, ["read", "releases:write"])
    assert token.expires_at is not None
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="api_token.created")
    assert (event.actor, event.after["prefix"], event.after["scopes"]) == (release_manager, token.prefix, token.scopes)
    assert secret not in str(event.after) and token.secret_hash not in str(event.after)

    again = client.get(URL)
    assert secret not in again.text
    assert token.prefix in again.text


def test_a_token_cannot_carry_a_scope_its_owners_role_does_not_allow(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    response = client.post(URL, {"name": "sneaky", "scopes": ["operations:write"], "expires": ""})

    assert response.status_code == 400
    assert "needs the release manager role" in response.text
    assert not ApiToken.objects.exists()


def test_a_token_needs_a_name_and_a_scope(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    response = client.post(URL, {"name": "", "scopes": []})

    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"name", "scopes"}


def test_an_admin_issues_a_token_for_the_service_account(
    client: Client, admin_user: User, pipeline: User, call: Call
) -> None:
    client.force_login(admin_user)

    response = client.post(URL, {"name": "deploy", "scopes": ["operations:write"], "owner": pipeline.pk})

    token = ApiToken.objects.get(name="deploy")
    assert token.owner == pipeline
    assert AuditEvent.objects.get(action="api_token.created").actor == admin_user
    secret = response.context["issued"].secret
    assert call("GET", "releases", secret).status_code == 200  # operations:write includes read


def test_only_an_admin_may_choose_the_owner(client: Client, release_manager: User, pipeline: User) -> None:
    client.force_login(release_manager)

    page = client.get(URL)
    client.post(URL, {"name": "mine", "scopes": ["read"], "owner": pipeline.pk})

    assert "owner" not in page.context["form"].fields
    assert ApiToken.objects.get(name="mine").owner == release_manager


def test_people_see_their_own_tokens_and_admins_see_all(
    client: Client, viewer: User, release_manager: User, admin_user: User
) -> None:
    issue(viewer, ["read"], name="viewer's")
    issue(release_manager, ["read"], name="manager's")

    client.force_login(viewer)
    mine = [t.name for t in client.get(URL).context["tokens"]]
    client.force_login(admin_user)
    everyone = [t.name for t in client.get(URL).context["tokens"]]

    assert mine == ["viewer's"]
    assert set(everyone) == {"viewer's", "manager's"}


def test_revoking_a_token_stops_it_at_once(client: Client, release_manager: User, call: Call, checkout) -> None:
    secret = issue(release_manager, ["read"], name="old laptop")
    token = ApiToken.objects.get(name="old laptop")
    client.force_login(release_manager)

    confirm = client.get(f"/account/tokens/{token.pk}/revoke")
    response = client.post(f"/account/tokens/{token.pk}/revoke", {"reason": "Laptop lost"})

    assert confirm.status_code == 200 and "stops working at once" in confirm.text
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert (event.actor, event.reason) == (release_manager, "Laptop lost")
    assert call("GET", "releases", secret).status_code == 401
    listing = client.get(URL)
    assert "revoked" in listing.text


def test_revoking_twice_says_so(client: Client, release_manager: User) -> None:
    issue(release_manager, ["read"], name="twice")
    token = ApiToken.objects.get(name="twice")
    client.force_login(release_manager)
    client.post(f"/account/tokens/{token.pk}/revoke")

    response = client.post(f"/account/tokens/{token.pk}/revoke", follow=True)

    assert "already revoked" in response.text
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1


def test_someone_elses_token_is_not_found_but_an_admin_may_revoke_it(
    client: Client, viewer: User, release_manager: User, admin_user: User
) -> None:
    _, token = forge(release_manager, ["read"])

    client.force_login(viewer)
    refused = client.post(f"/account/tokens/{token.pk}/revoke")
    client.force_login(admin_user)
    revoked = client.post(f"/account/tokens/{token.pk}/revoke", {"reason": "Left the team"})

    assert refused.status_code == 404
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_navigation_links_to_the_tokens_and_the_api_reference(client: Client, viewer: User) -> None:
    client.force_login(viewer)

    page = client.get("/").text

    assert 'href="/account/tokens/"' in page
    assert 'href="/api/v1/docs/"' in page
