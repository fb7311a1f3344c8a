"""Who is calling the API, and what they may do: tokens, browser sessions, scopes, roles, rate limits.

A call is made either with an API token (`Authorization: Bearer slw_<prefix>_<secret>`) or from a
signed-in browser (the session cookie, with Django's CSRF check on unsafe methods). Each endpoint
names a scope and a role: a token must carry the scope (`releases:write` and `operations:write`
include `read`), and whoever holds it — the token's owner, or the signed-in person — must hold the
role *now*, so a token never does more than its owner may. Every check runs before the body is read.

Only the SHA-256 of a token is stored; a token is found by that hash (an index lookup, so no secret
is compared byte by byte in Python), and `last_used_at` is written at most once a minute.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer
from ninja.throttling import BaseThrottle
from ninja.utils import check_csrf

from portal.api.models import ApiToken
from portal.api.problems import ApiProblem, unauthenticated
from portal.core import clock
from portal.core.roles import Role, has_role, missing_role_message

log = logging.getLogger(__name__)

Scope = ApiToken.Scope
TOKEN_MARK = "slw"  # noqa: S105 - the tokens' public marker, not a secret
# A write scope includes reading: a pipeline that registers a release also follows it.
IMPLIED_SCOPES: dict[str, set[str]] = {
    Scope.READ: {Scope.READ},
    Scope.RELEASES_WRITE: {Scope.RELEASES_WRITE, Scope.READ},
    Scope.OPERATIONS_WRITE: {Scope.OPERATIONS_WRITE, Scope.READ},
}
# The role a person needs before a token of theirs may carry the scope.
SCOPE_ROLES: dict[str, Role] = {
    Scope.READ: Role.VIEWER,
    Scope.RELEASES_WRITE: Role.RELEASE_MANAGER,
    Scope.OPERATIONS_WRITE: Role.RELEASE_MANAGER,
}
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def granted_scopes(scopes: list[str]) -> set[str]:
    return set().union(*(IMPLIED_SCOPES.get(scope, set()) for scope in scopes))


@dataclass(frozen=True)
class Principal:
    """The caller: a person (the token's owner, or the signed-in user) and the token used, if any."""

    user: AbstractBaseUser
    token: ApiToken | None = None

    @property
    def scopes(self) -> set[str]:
        return granted_scopes(self.token.scopes) if self.token else set(Scope.values)

    @property
    def rate_key(self) -> str:
        return f"token:{self.token.prefix}" if self.token else f"user:{self.user.pk}"

    def origin(self) -> dict[str, str]:
        """What the audit trail records about how the call came in (beside the request id, IP, agent)."""
        if self.token is None:
            return {"via": "api", "auth": "session"}
        return {"via": "api", "auth": "token", "token": self.token.prefix, "token_name": self.token.name}


def _authorize(principal: Principal, *, scope: str, role: Role) -> Principal:
    if principal.token is not None and scope not in principal.scopes:  # a session holds every scope
        held = ", ".join(sorted(principal.token.scopes)) or "none"
        raise ApiProblem(
            "forbidden",
            f"This needs a token with the {scope} scope; the token {principal.token.prefix} has {held}. "
            "Create a token with that scope on your API tokens page.",
        )
    if not has_role(principal.user, role):
        raise ApiProblem("forbidden", missing_role_message(principal.user, role))
    return principal


def authenticate_token(raw: str) -> ApiToken:
    """The live token for `raw`, or an `ApiProblem` (401) saying why not."""
    mark, _, rest = raw.strip().partition("_")
    if mark != TOKEN_MARK or "_" not in rest:
        raise unauthenticated("That is not a Slipway API token; they look like slw_<prefix>_<secret>.")
    token = ApiToken.objects.select_related("owner").filter(secret_hash=token_hash(raw.strip())).first()
    if token is None:
        raise unauthenticated("This API token is not known; it may have been mistyped or deleted.")
    now = clock.now()
    if token.revoked_at is not None:
        raise unauthenticated(f"The API token {token.prefix} was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC.")
    if token.expires_at is not None and token.expires_at <= now:
        raise unauthenticated(f"The API token {token.prefix} expired on {token.expires_at:%Y-%m-%d %H:%M} UTC.")
    if not token.owner.is_active:
        raise unauthenticated(f"The account that owns the API token {token.prefix} is deactivated.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # Bookkeeping, not a change anyone acts on: no audit event, and at most one write a minute.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


class TokenAuth(HttpBearer):
    """`Authorization: Bearer slw_…`, for pipelines and scripts."""

    def __init__(self, *, scope: str, role: Role) -> None:
        self.scope, self.role = scope, role
        super().__init__()

    def authenticate(self, request: HttpRequest, token: str) -> Principal:
        found = authenticate_token(token)
        return _authorize(Principal(found.owner, found), scope=self.scope, role=self.role)


class SessionAuth(APIKeyCookie):
    """The signed-in browser's own calls; unsafe methods must pass Django's CSRF check."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self, *, scope: str, role: Role) -> None:
        self.scope, self.role = scope, role
        super().__init__(csrf=True)

    def __call__(self, request: HttpRequest) -> Principal | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if check_csrf(request) is not None:
            raise ApiProblem(
                "forbidden",
                "The CSRF check failed: a browser call needs the X-CSRFToken header. Scripts should use a token.",
            )
        return self.authenticate(request, None)

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal:
        return _authorize(Principal(request.user), scope=self.scope, role=self.role)


def auth_for(*, scope: str, role: Role) -> list[Any]:
    return [TokenAuth(scope=scope, role=role), SessionAuth(scope=scope, role=role)]


# --- rate limiting -----------------------------------------------------------------------------------


_redis: redis.Redis | None = None


def _connection() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _redis


class RateLimit(BaseThrottle):
    """A fixed one-minute window per token (or per signed-in person), counted in Redis.

    Redis being down lets calls through (logged): an outage of the counter should not stop releases.
    """

    WINDOW_SECONDS = 60

    def __init__(self) -> None:
        self._local = threading.local()  # one instance serves every request; the wait is per request

    def allow_request(self, request: HttpRequest) -> bool:
        principal = getattr(request, "auth", None)
        if not isinstance(principal, Principal):
            return True
        now = clock.now().timestamp()
        window = int(now // self.WINDOW_SECONDS)
        key = f"slipway:api:rate:{principal.rate_key}:{window}"
        try:
            pipe = _connection().pipeline()
            pipe.incr(key)
            pipe.expire(key, self.WINDOW_SECONDS * 2)
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            log.warning("API rate limit not checked (Redis: %s)", exc)
            return True
        if int(count) <= settings.API_RATE_LIMIT_PER_MINUTE:
            return True
        self._local.wait = (window + 1) * self.WINDOW_SECONDS - now
        return False

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)
