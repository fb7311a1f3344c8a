"""Single sign-on with OpenID Connect (Microsoft Entra ID first; any issuer by configuration).

Built on mozilla-django-oidc (its authorization-code flow, state, nonce and PKCE handling), with what Slipway
needs on top:

* the endpoints and signing keys come from the issuer's discovery document (`OIDC_ISSUER` +
  `/.well-known/openid-configuration`), fetched when first needed and cached, never at import;
* the ID token is checked in full: RS256 signature against the issuer's JWKS, issuer, audience (and `azp`
  when there are several), expiry and issued-at (with `OIDC_CLOCK_SKEW_SECONDS` of leeway), and nonce —
  the library alone checks neither audience nor issuer;
* users are matched by (issuer, `oid` or `sub`) stored on `releases.SsoIdentity`, never by e-mail;
* at every sign-in the group claim (`OIDC_GROUP_CLAIM`) is mapped through `OIDC_ROLE_MAP` onto the role
  groups, adding and removing them: for SSO users the identity provider is the source of truth. A change is
  audited (`user.roles_synced`, before/after) in the sign-in's transaction;
* a refused sign-in ends on a page that says so, with no session, nothing created, and one log line giving the
  reason — never a token, code or secret (portal.core.redaction masks them should one slip into a message anyway).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView, OIDCLogoutView

from portal.core import clock
from portal.core.errors import DomainError
from portal.core.roles import Role
from portal.signon.accounts import role_groups_set
from portal.signon.models import SsoIdentity
from releases.audit.services import audit_record

log = logging.getLogger("portal.signon.oidc")

ROLE_BY_NAME: dict[str, Role] = {
    "viewer": Role.VIEWER,
    "approver": Role.APPROVER,
    "release_manager": Role.RELEASE_MANAGER,
    "admin": Role.ADMIN,
}
SUBJECT_CLAIMS = ("oid", "sub")  # Entra ID's object id is stable across applications; `sub` is per application


class SignInFailed(Exception):
    """A refused single sign-on. `reason` is for the log: it never holds a token, code or secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def enabled() -> bool:
    return bool(settings.OIDC_ENABLED and settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


# --- Discovery ---------------------------------------------------------------------------------------------

_discovery_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_discovery_lock = threading.Lock()


def clear_discovery_cache() -> None:
    with _discovery_lock:
        _discovery_cache.clear()


def discovery() -> dict[str, Any]:
    """The configured issuer's discovery document, cached for OIDC_DISCOVERY_CACHE_SECONDS."""
    issuer = settings.OIDC_ISSUER.rstrip("/")
    with _discovery_lock:
        cached = _discovery_cache.get(issuer)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SignInFailed(f"the issuer's discovery document {url} could not be read ({type(exc).__name__})") from None
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        raise SignInFailed(f"the discovery document at {url} is not for the issuer {issuer}")
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(k)]
    if missing:
        raise SignInFailed(f"the discovery document at {url} lacks {', '.join(missing)}")
    with _discovery_lock:
        _discovery_cache[issuer] = (time.monotonic() + settings.OIDC_DISCOVERY_CACHE_SECONDS, document)
    return document


# --- The authentication backend ----------------------------------------------------------------------------


class SlipwayOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's code-flow backend, configured by discovery and validating the ID token in full."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds every backend for each authenticate() call, local sign-ins included: read no
        # endpoint here (the library would insist on settings we derive from discovery) and call nothing.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.OIDC_OP_TOKEN_ENDPOINT = self.OIDC_OP_JWKS_ENDPOINT = self.OIDC_OP_USER_ENDPOINT = ""
        self.UserModel = get_user_model()

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        # Only the callback view calls with a nonce; a password sign-in is never ours.
        if request is None or not enabled() or "nonce" not in kwargs or "password" in kwargs:
            return None
        document = discovery()
        self.issuer = str(document["issuer"]).rstrip("/")
        self.OIDC_OP_TOKEN_ENDPOINT = document["token_endpoint"]
        self.OIDC_OP_JWKS_ENDPOINT = document["jwks_uri"]
        try:
            return super().authenticate(request, **kwargs)
        except requests.HTTPError as exc:  # its message holds the token endpoint's whole answer: not logged
            status = exc.response.status_code if exc.response is not None else "no"
            raise SignInFailed(f"the token endpoint refused the code (HTTP {status})") from None
        except requests.RequestException as exc:
            raise SignInFailed(f"the issuer could not be reached ({type(exc).__name__})") from None
        except (SuspiciousOperation, KeyError, ValueError) as exc:
            raise SignInFailed(f"the issuer's answer was not usable ({type(exc).__name__}: {exc})") from None

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        answer = super().get_token(payload)
        if not isinstance(answer, dict) or not answer.get("id_token"):
            raise SignInFailed("the token endpoint answered without an ID token")
        return answer

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise SignInFailed("the ID token is not a JSON Web Token") from None
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SignInFailed(f"the ID token is signed with {header.get('alg')!r}, not {self.OIDC_RP_SIGN_ALGO}")
        if not header.get("kid"):
            raise SignInFailed("the ID token names no signing key (kid)")
        try:
            key = self.retrieve_matching_jwk(token)
        except SuspiciousOperation:
            raise SignInFailed(f"the issuer's JWKS has no key {header.get('kid')!r}") from None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.issuer,
                leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise SignInFailed("the ID token has expired") from None
        except jwt.InvalidAudienceError:
            raise SignInFailed("the ID token is for another audience (not this client id)") from None
        except jwt.InvalidIssuerError:
            raise SignInFailed("the ID token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise SignInFailed("the ID token's signature does not verify against the issuer's key") from None
        except jwt.PyJWTError as exc:
            raise SignInFailed(f"the ID token is not valid ({type(exc).__name__}: {exc})") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SignInFailed("the ID token has several audiences and was not issued to this client (azp)")
        nonce = kwargs.get("nonce")
        if not nonce or not hmac.compare_digest(str(claims.get("nonce", "")), str(nonce)):
            raise SignInFailed("the ID token's nonce is not the one this sign-in sent")
        return claims

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        # The validated ID token's claims. Entra ID sends groups only there (its userinfo has none).
        return payload

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if not subject_of(claims):
            raise SignInFailed("the ID token has neither an oid nor a sub claim")
        group_claim = settings.OIDC_GROUP_CLAIM
        if group_claim not in claims and group_claim in (claims.get("_claim_names") or {}):
            # Entra ID's "groups overage": too many groups to list. Roles would be guessed; refuse instead.
            raise SignInFailed(
                f"the ID token lists no {group_claim} (too many groups: assign groups to the application instead)"
            )
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(
            sso_identity__issuer=self.issuer, sso_identity__subject=subject_of(claims)
        ).select_related("sso_identity")

    def create_user(self, claims: dict[str, Any]) -> Any:

        user = self.UserModel(username=_free_username(claims), email=str(claims.get("email") or "")[:254])
        _copy_names(user, claims)
        user.set_unusable_password()  # signs in through the identity provider only
        user.save()
        now = clock.now()
        SsoIdentity.objects.create(
            user=user, issuer=self.issuer, subject=subject_of(claims), created_at=now, last_sign_in_at=now
        )
        audit_record(
            actor=None,
            action="user.created_by_sso",
            obj=user,
            after={"username": user.username, "email": user.email, "issuer": self.issuer},
            reason=f"First single sign-on from {self.issuer}",
        )
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        changed = _copy_names(user, claims)
        email = str(claims.get("email") or "")[:254]
        if email and email != user.email:
            user.email = email
            changed = True
        if changed:
            user.save(update_fields=["email", "first_name", "last_name"])
        user.sso_identity.last_sign_in_at = clock.now()
        user.sso_identity.save(update_fields=["last_sign_in_at"])
        return user

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        # One transaction: the account, its identity, its roles and their audit events land together or not at all.
        with transaction.atomic():
            user = super().get_or_create_user(access_token, id_token, payload)
            if user is not None:
                sync_roles(user, payload, issuer=self.issuer)
        return user


def subject_of(claims: dict[str, Any]) -> str:
    for name in SUBJECT_CLAIMS:
        if value := str(claims.get(name) or "").strip():
            return value[:255]
    return ""


def _free_username(claims: dict[str, Any]) -> str:
    User = get_user_model()
    wanted = str(claims.get("preferred_username") or claims.get("email") or claims.get("upn") or "").strip()
    base = (wanted or f"sso-{subject_of(claims)[:12]}")[:140]
    candidate, n = base, 1
    # A local account with the same name is never reused: that is how break-glass accounts stay local.
    while User.objects.filter(username__iexact=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _copy_names(user: Any, claims: dict[str, Any]) -> bool:
    first = str(claims.get("given_name") or "")[:150]
    last = str(claims.get("family_name") or "")[:150]
    if not (first or last) and claims.get("name"):
        first, _, last = str(claims["name"]).partition(" ")
        first, last = first[:150], last[:150]
    changed = (first, last) != (user.first_name, user.last_name)
    user.first_name, user.last_name = first, last
    return changed


def roles_from_claims(claims: dict[str, Any]) -> set[Role]:
    """The roles the group claim grants through OIDC_ROLE_MAP (by group id or by name, as the claim sends)."""
    groups = claims.get(settings.OIDC_GROUP_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    roles: set[Role] = set()
    for group in groups:
        for name in settings.OIDC_ROLE_MAP.get(str(group), ()):
            roles.add(ROLE_BY_NAME[name])
    return roles


def sync_roles(user: Any, claims: dict[str, Any], *, issuer: str) -> bool:
    """Make the user's role groups exactly those the claims grant; audit a change. Other groups are left alone."""

    wanted = {role.value for role in roles_from_claims(claims)}
    try:
        return role_groups_set(
            user, wanted, actor=None, action="user.roles_synced", reason=f"Group claims at single sign-on from {issuer}"
        )
    except DomainError as exc:
        raise SignInFailed(str(exc)) from None


# --- Views ---------------------------------------------------------------------------------------------------


def _failed(request: HttpRequest, reason: str, *, status: int = 403) -> HttpResponse:
    """End a refused sign-in: log why (no token), drop the session, and say so in words."""
    log.warning("Single sign-on refused: %s", reason)
    if hasattr(request, "session"):
        request.session.flush()  # no half-made session: state, nonce and any user are gone
    return render(
        request,
        "registration/sso_failed.html",
        {"label": settings.OIDC_BUTTON_LABEL, "sso_enabled": enabled()},
        status=status,
    )


class SignInView(LoginView):
    """The sign-in page: the single sign-on button (when configured) above the local form."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = enabled()
        context["sso_label"] = settings.OIDC_BUTTON_LABEL
        return context


class AuthenticateView(OIDCAuthenticationRequestView):
    """/oidc/authenticate/: to the identity provider, with state, nonce and a PKCE challenge in the session."""

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)  # the library's __init__ insists on endpoint settings we discover

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            return _failed(request, "single sign-on is not configured (OIDC_ISSUER)", status=404)
        try:
            document = discovery()
        except SignInFailed as exc:
            return _failed(request, exc.reason, status=502)
        self.OIDC_OP_AUTH_ENDPOINT = document["authorization_endpoint"]
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class CallbackView(OIDCAuthenticationCallbackView):
    """/oidc/callback/: the identity provider's answer; a signed-in session, or a page saying sign-in failed."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            return _failed(request, "single sign-on is not configured (OIDC_ISSUER)", status=404)
        if error := request.GET.get("error"):
            return _failed(request, f"the identity provider answered {error[:100]!r}")
        if "oidc_states" not in request.session or request.GET.get("state") not in request.session["oidc_states"]:
            return _failed(request, "the answer's state belongs to no sign-in started in this browser")
        try:
            return super().get(request)
        except SignInFailed as exc:
            return _failed(request, exc.reason)
        except SuspiciousOperation as exc:
            return _failed(request, str(exc))

    def login_failure(self) -> HttpResponse:
        return _failed(self.request, "the identity provider's answer did not sign anyone in (no or inactive account)")


class LogoutView(OIDCLogoutView):
    """/oidc/logout/ (POST): sign out here, then at the identity provider when it offers an end-session endpoint."""


def provider_logout_url(request: HttpRequest) -> str:
    """OIDC_OP_LOGOUT_URL_METHOD: the issuer's end_session_endpoint, coming back to the sign-in page."""
    back = request.build_absolute_uri(reverse(settings.LOGOUT_REDIRECT_URL))
    try:
        end_session = discovery().get("end_session_endpoint") if enabled() else None
    except SignInFailed:
        end_session = None
    if not end_session:
        return back
    return f"{end_session}?{urlencode({'client_id': settings.OIDC_RP_CLIENT_ID, 'post_logout_redirect_uri': back})}"


# Public: they are how one signs in (LoginRequiredMiddleware would send them to the sign-in page).
urlpatterns = [
    path("authenticate/", login_not_required(AuthenticateView.as_view()), name="oidc_authentication_init"),
    path("callback/", login_not_required(CallbackView.as_view()), name="oidc_authentication_callback"),
    path("logout/", login_not_required(LogoutView.as_view()), name="oidc_logout"),
]
