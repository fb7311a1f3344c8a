"""API tokens: creating one (its secret shown once) and revoking it, each audited.

A token is `slw_<prefix>_<secret>`: the prefix is public (shown in lists, logs and the audit trail),
the secret is 256 random bits, and only the SHA-256 of the whole token is stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from portal.api.auth import SCOPE_ROLES, TOKEN_MARK, token_hash
from portal.api.models import ApiToken
from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, has_role, missing_role_message
from releases.audit.services import audit_record


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the whole token; shown once, stored nowhere


def _snapshot(token: ApiToken) -> dict[str, Any]:
    return {
        "name": token.name,
        "owner": token.owner.get_username(),
        "prefix": token.prefix,
        "scopes": list(token.scopes),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def token_create(
    *, actor: Any, owner: Any, name: str, scopes: list[str], expires_at: datetime | None = None
) -> IssuedToken:
    """Issue a token for `owner` (yourself, or — for an admin — anyone, such as a service account).

    A scope the owner's role could not use is refused now rather than failing at every call later.
    """
    if owner.pk != actor.pk and not has_role(actor, Role.ADMIN):
        raise DomainError(ErrorCode.FORBIDDEN, missing_role_message(actor, Role.ADMIN))
    name = name.strip()
    if not name or len(name) > 100:
        raise DomainError(
            ErrorCode.INVALID,
            "Give the token a name of 1 to 100 characters, such as the pipeline that uses it.",
            fields={"name": "1 to 100 characters."},
        )
    unknown = sorted(set(scopes) - set(ApiToken.Scope.values))
    if unknown or not scopes:
        raise DomainError(
            ErrorCode.INVALID,
            f"Choose scopes among {', '.join(ApiToken.Scope.values)}.",
            fields={"scopes": f"Among {', '.join(ApiToken.Scope.values)}."},
        )
    if not owner.is_active:
        raise DomainError(
            ErrorCode.INVALID,
            f"{owner.get_username()} is deactivated; a token of theirs would not work.",
            fields={"owner": "Deactivated."},
        )
    for scope in sorted(set(scopes)):
        role = SCOPE_ROLES[scope]
        if not has_role(owner, role):
            raise DomainError(
                ErrorCode.INVALID,
                f"The {scope} scope needs the {role.label} role, which {owner.get_username()} does not hold.",
                fields={"scopes": f"{scope} needs the {role.label} role."},
            )
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise DomainError(ErrorCode.INVALID, "The expiry must be in the future.")
    if ApiToken.objects.filter(owner=owner, name=name).exists():
        raise DomainError(
            ErrorCode.INVALID,
            f"{owner.get_username()} already has a token named “{name}”; choose another name.",
            fields={"name": "Taken; choose another name."},
        )
    for _attempt in range(3):  # a prefix collision (1 in 4 billion per token) is simply tried again
        prefix = secrets.token_hex(4)
        raw = f"{TOKEN_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    name=name,
                    owner=owner,
                    prefix=prefix,
                    secret_hash=token_hash(raw),
                    scopes=sorted(set(scopes)),
                    created_at=now,
                    expires_at=expires_at,
                )
                audit_record(actor=actor, action="api_token.created", obj=token, after=_snapshot(token))
        except IntegrityError:
            if ApiToken.objects.filter(owner=owner, name=name).exists():
                raise DomainError(
                    ErrorCode.INVALID,
                    f"{owner.get_username()} already has a token named “{name}”.",
                    fields={"name": "Taken; choose another name."},
                ) from None
            continue
        return IssuedToken(token, raw)
    raise DomainError(ErrorCode.CONCURRENT_CHANGE, "Could not issue a token just now; try again.")  # pragma: no cover


def token_revoke(*, token: ApiToken, actor: Any, reason: str = "") -> ApiToken:
    """Revoke a token at once; its next call is refused (401). The owner or an admin may."""
    if token.owner_id != actor.pk and not has_role(actor, Role.ADMIN):
        raise DomainError(ErrorCode.FORBIDDEN, missing_role_message(actor, Role.ADMIN))
    with transaction.atomic():
        current = ApiToken.objects.select_for_update(no_key=True).select_related("owner").get(pk=token.pk)
        if current.revoked_at is not None:
            raise DomainError(
                ErrorCode.CONFLICT,
                f"The token {current.prefix} was already revoked on {current.revoked_at:%Y-%m-%d %H:%M}.",
            )
        before = _snapshot(current)
        ApiToken.objects.filter(pk=current.pk, revoked_at__isnull=True).update(revoked_at=clock.now())
        current.refresh_from_db()
        audit_record(
            actor=actor, action="api_token.revoked", obj=current, before=before, after=_snapshot(current), reason=reason
        )
    token.refresh_from_db()
    return token
