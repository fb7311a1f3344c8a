"""`Idempotency-Key` on POST: a retried pipeline step gets the first answer instead of a second change.

The key is claimed by inserting an `IdempotencyKey` row *in the transaction of the change itself*,
before the endpoint runs, and the answer is written to that row before the transaction commits:

- a retry after the first call finished finds the row and replays its answer (`Idempotent-Replayed: true`);
- a retry while the first call still runs waits on the unique constraint (PostgreSQL blocks the second
  INSERT until the first transaction ends; SQLite serialises writing transactions), then replays;
- a first call that fails (a 4xx, or an error) rolls back, key included, so a retry runs afresh — the
  failure changed nothing, and the cause may have been fixed since (an approval that was missing);
- the same key with another body, method or path is refused (422): that is a bug in the caller.

Keys are remembered for `API_IDEMPOTENCY_KEY_HOURS` (24 h); an older one is forgotten when reused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse

from portal.api.auth import Principal
from portal.api.models import IdempotencyKey
from portal.api.problems import ApiProblem, field_error
from portal.core import clock

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as a UUID or a CI run id would be
STORED_HEADERS = ("Location",)


def fingerprint(request: HttpRequest) -> str:
    return hashlib.sha256(request.body).hexdigest()


def _replay(row: IdempotencyKey) -> HttpResponse:
    response = HttpResponse(
        json.dumps(row.response_body, ensure_ascii=False),
        status=row.response_status,
        content_type="application/json; charset=utf-8",
    )
    for name, value in (row.response_headers or {}).items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _owner_filter(principal: Principal) -> dict[str, object]:
    if principal.token is not None:
        return {"token": principal.token}
    return {"user": principal.user, "token__isnull": True}


def _existing(principal: Principal, key: str) -> IdempotencyKey | None:
    return IdempotencyKey.objects.filter(key=key, **_owner_filter(principal)).first()


def _check(row: IdempotencyKey, request: HttpRequest, body_hash: str) -> HttpResponse:
    """Answer a request whose key is already taken: replay, or say why not."""
    if (row.method, row.path, row.body_hash) != (request.method, request.path, body_hash):
        raise ApiProblem(
            "idempotency-key-reused",
            f"The Idempotency-Key {row.key!r} was first used for {row.method} {row.path} with another body; "
            "use a new key for a new request.",
            errors=[{"field": HEADER, "message": "Already used for a different request."}],
        )
    if row.response_status is None:  # pragma: no cover - rows are only committed with their answer
        raise ApiProblem(
            "in-progress",
            "A request with this Idempotency-Key is still running; retry shortly.",
            headers={"Retry-After": "1"},
        )
    return _replay(row)


def run(request: HttpRequest, principal: Principal, execute: Callable[[], HttpResponse]) -> HttpResponse:
    """Run `execute` once per key: the first call's answer is stored and replayed to every retry."""
    key = request.headers.get(HEADER)
    if key is None:
        return execute()
    if not KEY_PATTERN.match(key):
        raise field_error(HEADER, "Use 1 to 255 visible ASCII characters, such as a UUID.")
    body_hash = fingerprint(request)
    expired_before = clock.now() - timedelta(hours=settings.API_IDEMPOTENCY_KEY_HOURS)
    with transaction.atomic():
        row = _existing(principal, key)
        if row is not None and row.created_at < expired_before:
            row.delete()
            row = None
        if row is not None:
            return _check(row, request, body_hash)
        try:
            with transaction.atomic():  # a savepoint: a lost race must not poison the outer transaction
                row = IdempotencyKey.objects.create(
                    user=principal.user,
                    token=principal.token,
                    key=key,
                    method=request.method or "",
                    path=request.path[:500],
                    body_hash=body_hash,
                    created_at=clock.now(),
                )
        except IntegrityError:
            # Another request with this key committed while we looked: answer as it did.
            row = _existing(principal, key)
            if row is None:  # pragma: no cover - it was deleted in between
                raise ApiProblem(
                    "in-progress", "A request with this key just ended; retry.", headers={"Retry-After": "1"}
                ) from None
            return _check(row, request, body_hash)
        response = execute()  # raises on failure: the transaction rolls back and frees the key
        row.response_status = response.status_code
        row.response_body = json.loads(response.content)
        row.response_headers = {name: response[name] for name in STORED_HEADERS if name in response}
        row.save(update_fields=["response_status", "response_body", "response_headers"])
        return response
