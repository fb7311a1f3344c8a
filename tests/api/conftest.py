"""The API's test world: Checkout on the simulator with 1.0.0 live and production needing one approval,
people with tokens, and `call()`, which sends a JSON request the way a pipeline would."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from portal.api.auth import token_hash
from portal.api.models import ApiToken
from portal.api.tokens import token_create
from portal.core.roles import Role
from releases.catalog.models import Application, ReleaseStatus
from tests.factories import (
    ApiTokenFactory,
    ApplicationFactory,
    ApprovalPolicyFactory,
    ReleaseFactory,
    UserFactory,
    add_simulated_site,
    production_environment,
)

ALL_SCOPES = ["read", "releases:write", "operations:write"]
# Blue-green in hundredths of a second on the simulator.
FAST_BLUE_GREEN = {"verify_seconds": 0.05, "verify_interval_seconds": 0.02}

Call = Callable[..., Any]


@pytest.fixture
def checkout(db: None) -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application, {"production": "1.0.0", "staging": "1.0.0", "test": "1.0.0", "dev": "1.0.0"})
    ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    ApprovalPolicyFactory(
        environment=production_environment(application),
        approvals_required=1,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
    )
    return application


@pytest.fixture
def pipeline(db: None) -> User:
    """A service account, as `ci-pipeline` is in the demo: a release manager who cannot sign in."""
    user = UserFactory(username="ci-pipeline", roles=[Role.RELEASE_MANAGER])
    user.set_unusable_password()
    user.save()
    return user


def issue(owner: User, scopes: list[str], *, name: str | None = None, actor: User | None = None) -> str:
    """A real token from the real service, as the tokens page issues it."""
    issued = token_create(
        actor=actor or owner, owner=owner, name=name or f"token-{secrets.token_hex(3)}", scopes=scopes
    )
    return issued.secret


def forge(owner: User, scopes: list[str], **fields: Any) -> tuple[str, ApiToken]:
    """A token written straight to the table: for states the service would not create (past expiry, a scope
    the owner's role no longer allows)."""
    prefix = secrets.token_hex(4)
    raw = f"slw_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiTokenFactory(owner=owner, prefix=prefix, secret_hash=token_hash(raw), scopes=scopes, **fields)
    return raw, token


@pytest.fixture
def token(pipeline: User) -> str:
    """The pipeline's token with every scope."""
    return issue(pipeline, ALL_SCOPES, name="deploy")


@pytest.fixture
def read_token(viewer: User) -> str:
    return issue(viewer, ["read"], name="dashboard")


@pytest.fixture
def call(client: Client) -> Call:
    def send(
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        *,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        url = path if path.startswith("/") else f"/api/v1/{path}"
        return client.generic(method, url, data=data, content_type="application/json", headers=all_headers)

    return send


def assert_problem(response: Any, status: int, *, field: str | None = None, kind: str | None = None) -> dict:
    """The response is a problem document with this status (naming `field`, of type `kind`)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"].startswith("/api/v1/docs/#problem-")
    if field is not None:
        assert field in [e["field"] for e in body.get("errors") or []], body
    if kind is not None:
        assert body["type"].endswith(f"#problem-{kind}"), body
    return body
