"""Single sign-on, end to end: the portal against a real OpenID Connect issuer on loopback (tests/oidc_issuer.py).

The browser's part is played by Django's test client (the portal) and `requests` (the issuer's authorize page);
the portal's own calls to the issuer (discovery, token, JWKS) are real HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from portal.core.roles import Role, roles_of
from portal.signon import oidc
from portal.signon.models import SsoIdentity
from releases.audit.models import AuditEvent
from tests.factories import UserFactory
from tests.oidc_issuer import LoopbackIssuer

APPROVERS = "6f1c2a3e-0000-4000-8000-approvers000"  # Entra sends group object ids
RELEASE_MANAGERS = "9b8d7c6e-0000-4000-8000-releasemgr00"
BETA_TESTERS = "Slipway beta testers"  # a Django group that is not a role: single sign-on leaves it alone


@pytest.fixture(scope="module")
def issuer_server() -> Iterator[LoopbackIssuer]:
    server = LoopbackIssuer().start()
    yield server
    server.stop()


@pytest.fixture
def issuer(issuer_server: LoopbackIssuer, settings, db: None) -> Iterator[LoopbackIssuer]:
    issuer_server.misbehave()
    issuer_server.sign_in_as("oid-0001", groups=[])
    settings.OIDC_ENABLED = True
    settings.OIDC_ISSUER = issuer_server.url
    settings.OIDC_RP_CLIENT_ID = issuer_server.client_id
    settings.OIDC_RP_CLIENT_SECRET = issuer_server.client_secret
    settings.OIDC_BUTTON_LABEL = "Sign in with Contoso"
    settings.OIDC_ROLE_MAP = {
        APPROVERS: frozenset({"approver"}),
        RELEASE_MANAGERS: frozenset({"release_manager"}),
        "Slipway Viewers": frozenset({"viewer"}),
    }
    oidc.clear_discovery_cache()
    yield issuer_server
    oidc.clear_discovery_cache()


def sign_in(client: Client, issuer: LoopbackIssuer, next_url: str = "") -> object:
    """The whole code flow: portal → issuer's authorize page → back to the portal's callback."""
    start = client.get(reverse("oidc_authentication_init") + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start.content
    assert start.headers["Location"].startswith(f"{issuer.url}/authorize?")
    sent = parse_qs(urlsplit(start.headers["Location"]).query)
    assert sent["client_id"] == [issuer.client_id]
    assert sent["code_challenge_method"] == ["S256"] and sent["nonce"] and sent["state"]

    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert (back.netloc, back.path) == ("testserver", "/oidc/callback/")
    return client.get(f"{back.path}?{back.query}")


def sso_user(issuer: LoopbackIssuer, subject: str) -> User:
    return User.objects.get(sso_identity__issuer=issuer.url, sso_identity__subject=subject)


def role_groups(user: User) -> set[str]:
    return set(user.groups.filter(name__in=[r.value for r in Role]).values_list("name", flat=True))


def signed_in_sessions() -> list[dict]:
    return [data for s in Session.objects.all() if "_auth_user_id" in (data := s.get_decoded())]


# --- Signing in ------------------------------------------------------------------------------------------------


def test_the_sign_in_page_offers_single_sign_on_above_the_local_form(client: Client, issuer: LoopbackIssuer) -> None:
    page = client.get(reverse("login") + "?next=/releases/").text

    assert "Sign in with Contoso" in page
    assert f'href="{reverse("oidc_authentication_init")}?next=/releases/"' in page
    assert page.index("Sign in with Contoso") < page.index('name="password"')


@pytest.mark.django_db
def test_without_configuration_there_is_no_single_sign_on(client: Client) -> None:
    assert "oidc/authenticate" not in client.get(reverse("login")).text

    response = client.get(reverse("oidc_authentication_init"))

    assert response.status_code == 404
    assert "Sign-in failed" in response.text


def test_a_first_sign_in_creates_the_account_with_the_roles_of_its_groups(
    client: Client, issuer: LoopbackIssuer
) -> None:
    issuer.sign_in_as("oid-ada", groups=[APPROVERS, "some-group-slipway-does-not-map"], name="Ada Lovelace")

    response = sign_in(client, issuer, next_url="/releases/")

    assert response.status_code == 302
    assert response.headers["Location"] == "/releases/"
    user = sso_user(issuer, "oid-ada")
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "oid-ada@example.com",
        "oid-ada@example.com",
        "Ada",
        "Lovelace",
    )
    assert not user.has_usable_password()  # signs in through the identity provider only
    assert role_groups(user) == {Role.APPROVER.value}
    assert set(roles_of(user)) == {Role.VIEWER, Role.APPROVER}
    assert client.get(reverse("approval_inbox")).status_code == 200  # the session is real
    synced = AuditEvent.objects.get(action="user.roles_synced", object_id=str(user.pk))
    assert (synced.before, synced.after) == ({"roles": []}, {"roles": ["Approver"]})
    assert issuer.url in synced.reason
    assert AuditEvent.objects.filter(action="user.created_by_sso", object_id=str(user.pk)).exists()
    # The code was exchanged with the client's secret and the PKCE verifier.
    exchange = issuer.token_requests[-1]
    assert exchange["client_secret"] == issuer.client_secret and len(exchange["code_verifier"]) >= 43


def test_the_identity_provider_is_the_source_of_truth_for_roles(client: Client, issuer: LoopbackIssuer) -> None:
    issuer.sign_in_as("oid-rita", groups=[APPROVERS, RELEASE_MANAGERS])
    sign_in(client, issuer)
    user = sso_user(issuer, "oid-rita")
    user.groups.add(Group.objects.create(name=BETA_TESTERS))
    assert role_groups(user) == {Role.APPROVER.value, Role.RELEASE_MANAGER.value}

    # Removed from the approvers in the identity provider; an admin had also granted Admin by hand.
    user.groups.add(Group.objects.get(name=Role.ADMIN.value))
    issuer.sign_in_as("oid-rita", groups=[RELEASE_MANAGERS])
    response = sign_in(Client(), issuer)

    assert response.status_code == 302
    user = User.objects.get(pk=user.pk)
    assert role_groups(user) == {Role.RELEASE_MANAGER.value}
    assert set(user.groups.values_list("name", flat=True)) == {Role.RELEASE_MANAGER.value, BETA_TESTERS}
    last = AuditEvent.objects.filter(action="user.roles_synced", object_id=str(user.pk)).order_by("-id").first()
    assert last.before == {"roles": ["Admin", "Approver", "Release manager"]}
    assert last.after == {"roles": ["Release manager"]}

    # Nothing changed: nothing to audit.
    sign_in(Client(), issuer)
    assert AuditEvent.objects.filter(action="user.roles_synced", object_id=str(user.pk)).count() == 2


def test_group_names_map_too_and_no_mapped_group_means_no_role(client: Client, issuer: LoopbackIssuer) -> None:
    issuer.sign_in_as("oid-vera", groups=["Slipway Viewers"])
    sign_in(client, issuer)
    assert set(roles_of(sso_user(issuer, "oid-vera"))) == {Role.VIEWER}

    issuer.sign_in_as("oid-vera", groups=[])
    sign_in(Client(), issuer)
    assert roles_of(sso_user(issuer, "oid-vera")) == []


def test_accounts_are_matched_by_subject_never_by_email(client: Client, issuer: LoopbackIssuer) -> None:
    local_admin = UserFactory(username="ada@example.com", email="ada@example.com", roles=[Role.ADMIN])
    issuer.sign_in_as("oid-intruder", groups=[], preferred_username="ada@example.com", email="ada@example.com")

    sign_in(client, issuer)

    newcomer = sso_user(issuer, "oid-intruder")
    assert newcomer.pk != local_admin.pk
    assert newcomer.username == "ada@example.com-2"  # the local (break-glass) account keeps its name
    assert not hasattr(User.objects.get(pk=local_admin.pk), "sso_identity")
    assert roles_of(newcomer) == []
    assert int(client.session["_auth_user_id"]) == newcomer.pk


def test_the_same_subject_signs_into_the_same_account(client: Client, issuer: LoopbackIssuer) -> None:
    issuer.sign_in_as("oid-same", groups=[], email="old@example.com")
    sign_in(client, issuer)
    issuer.sign_in_as("oid-same", groups=[], email="new@example.com")
    sign_in(Client(), issuer)

    assert SsoIdentity.objects.filter(subject="oid-same").count() == 1
    assert sso_user(issuer, "oid-same").email == "new@example.com"


def test_local_accounts_still_sign_in_with_a_password(client: Client, issuer: LoopbackIssuer, viewer: User) -> None:
    from tests.factories import PASSWORD

    response = client.post(reverse("login"), {"username": viewer.username, "password": PASSWORD})

    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == viewer.pk


# --- Refused -----------------------------------------------------------------------------------------------------

REFUSALS = {
    "audience": "another audience",
    "expired": "has expired",
    "other_key": "signature does not verify",
    "issuer": "another issuer",
    "nonce": "nonce is not the one this sign-in sent",
    "token_error": "token endpoint refused the code (HTTP 400)",
}


@pytest.mark.parametrize("fault", sorted(REFUSALS))
def test_a_bad_answer_from_the_issuer_is_refused_and_logged_without_secrets(
    fault: str, client: Client, issuer: LoopbackIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.sign_in_as("oid-mallory", groups=[APPROVERS])
    issuer.misbehave(fault)
    users, audit = User.objects.count(), AuditEvent.objects.count()

    with caplog.at_level(logging.INFO):
        response = sign_in(client, issuer)

    assert response.status_code == 403
    assert "Sign-in failed" in response.text
    assert "you are not signed in" in response.text
    assert signed_in_sessions() == []
    assert client.get(reverse("dashboard")).status_code == 302  # to the sign-in page
    assert (User.objects.count(), AuditEvent.objects.count(), SsoIdentity.objects.count()) == (users, audit, 0)
    refusals = [r for r in caplog.records if r.name == "portal.signon.oidc"]
    assert [r.levelno for r in refusals] == [logging.WARNING]
    assert REFUSALS[fault] in refusals[0].getMessage()
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in [*issuer.issued_tokens, *issuer.codes, issuer.client_secret]:
        assert secret not in logged


def test_an_answer_for_a_sign_in_this_browser_did_not_start_is_refused(
    client: Client, issuer: LoopbackIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.sign_in_as("oid-replay", groups=[APPROVERS])
    start = client.get(reverse("oidc_authentication_init"))
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    back = urlsplit(answer.headers["Location"])

    response = Client().get(f"{back.path}?{back.query}")  # another browser, with the stolen redirect

    assert response.status_code == 403
    assert "Sign-in failed" in response.text
    assert "state belongs to no sign-in" in caplog.text
    assert not SsoIdentity.objects.exists()


def test_the_identity_providers_refusal_ends_on_the_failure_page(client: Client, issuer: LoopbackIssuer) -> None:
    client.get(reverse("oidc_authentication_init"))

    response = client.get(reverse("oidc_authentication_callback") + "?error=access_denied&state=x")

    assert response.status_code == 403
    assert "Sign-in failed" in response.text
    assert signed_in_sessions() == []


def test_a_role_sync_that_fails_rolls_the_whole_sign_in_back(client: Client, issuer: LoopbackIssuer) -> None:
    Group.objects.filter(name=Role.APPROVER.value).delete()
    issuer.sign_in_as("oid-halfway", groups=[APPROVERS])
    users = User.objects.count()

    response = sign_in(client, issuer)

    assert response.status_code == 403
    assert User.objects.count() == users  # the account made before the role sync failed is gone too
    assert not SsoIdentity.objects.exists()
    assert not AuditEvent.objects.filter(action="user.created_by_sso").exists()


def test_signing_out_ends_at_the_issuers_end_session_endpoint(client: Client, issuer: LoopbackIssuer) -> None:
    issuer.sign_in_as("oid-leaving", groups=[])
    sign_in(client, issuer)

    response = client.post(reverse("oidc_logout"))

    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{issuer.url}/logout?")
    assert parse_qs(urlsplit(response.headers["Location"]).query)["post_logout_redirect_uri"] == [
        "http://testserver/login/"
    ]
    assert signed_in_sessions() == []
