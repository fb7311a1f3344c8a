"""The OpenFeature Remote Evaluation Protocol (OFREP) for any OpenFeature SDK, plus flagd sync and events.

- `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags` (bulk, with ETag /
  If-None-Match → 304), `GET /ofrep/v1/configuration`: bodies and status codes as the protocol's
  OpenAPI document has them (400/404 with errorCode and errorDetails, 401/403, 429 with Retry-After).
- `GET /flags/sync/<environment id>/flags.json`: the environment's raw flagd definitions, for a
  flagd daemon's HTTP sync (a key that may sync; ETag / If-None-Match → 304).
- `POST /flags/api/v1/environments/<environment id>/events`: outcomes reported by applications,
  folded into per-minute buckets for the dark-launch pages.

Every call authenticates with an environment's API key, in `Authorization: Bearer <key>` or
`X-API-Key: <key>`; one query finds the key, its environment and the environment's flag revision,
and evaluation then runs from the in-memory cache (evaluation.py). Plain Django views: no session,
no CSRF (a key is not a cookie), no sign-in redirect.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from portal.core import clock
from releases.catalog.models import Environment
from strategies.flags import evaluation, freshness, services
from strategies.flags.definitions import DefinitionError
from strategies.flags.models import FlagApiKey, FlagSet

log = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Caller:
    key_id: int
    environment_id: int
    can_evaluate: bool
    can_sync: bool
    revision: int | None
    last_used_at: datetime | None
    retry_after: int | None = None  # seconds, when the key has used up this minute's calls
    known: freshness.KnownKey | None = None


def _json(body: Any, status: int = 200, **headers: str) -> JsonResponse:
    response = JsonResponse(body, status=status, safe=False, json_dumps_params={"ensure_ascii": False})
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def error_answer(status: int, details: str, **headers: str) -> JsonResponse:
    return _json({"errorDetails": details}, status, **headers)


def _presented_key(request: HttpRequest) -> str:
    authorization = request.headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return request.headers.get("X-API-Key", "").strip()


def _lookup(key_hash: str) -> freshness.KnownKey | None:
    row = (
        FlagApiKey.objects.filter(key_hash=key_hash, revoked_at__isnull=True)
        .values("id", "environment_id", "can_evaluate", "can_sync", "last_used_at")
        .first()
    )
    if row is None:
        return None
    return freshness.KnownKey(
        key_id=row["id"],
        environment_id=row["environment_id"],
        can_evaluate=row["can_evaluate"],
        can_sync=row["can_sync"],
        last_used_at=row["last_used_at"],
    )


def _database_revision(environment_id: int) -> int | None:
    return FlagSet.objects.filter(environment_id=environment_id).values_list("revision", flat=True).first()


def _round_trip(key: freshness.KnownKey) -> tuple[bytes | None, int | None, int | None]:
    """One Redis round trip: the key epoch, the environment's revision, and this key's count in the window.

    Returns (epoch, revision, seconds to wait when over the rate limit, else None).
    """
    now = clock.now().timestamp()
    window = int(now // RATE_WINDOW_SECONDS)
    rate_key = f"slipway:flags:rate:{key.key_id}:{window}"
    pipe = freshness.connection().pipeline(transaction=False)
    pipe.get(freshness.EPOCH_KEY)
    pipe.get(freshness.revision_key(key.environment_id))
    pipe.incr(rate_key)
    pipe.expire(rate_key, RATE_WINDOW_SECONDS * 2)
    epoch, revision, count, _ = pipe.execute()
    wait = None
    if int(count) > settings.FLAGS_RATE_LIMIT_PER_MINUTE:
        wait = max(1, int((window + 1) * RATE_WINDOW_SECONDS - now + 0.999))
    return epoch, int(revision) if revision is not None else None, wait


def key_caller(request: HttpRequest) -> Caller | JsonResponse:
    """The caller's key, its environment's revision and its rate-limit state: from memory and one Redis
    round trip when this process knows the key (freshness.py), from the database otherwise."""
    secret = _presented_key(request)
    challenge = {"WWW_Authenticate": 'Bearer realm="slipway-flags"'}
    if not secret:
        return error_answer(
            401, "Send an API key of the environment in 'Authorization: Bearer <key>' or 'X-API-Key'.", **challenge
        )
    key_hash = services.key_hash(secret)
    try:
        key = freshness.known(key_hash)
        if key is not None:
            epoch, revision, wait = _round_trip(key)
            if not freshness.epoch_seen(epoch):
                key = None  # a key changed somewhere: look this one up again
        if key is None:
            epoch = freshness.connection().get(freshness.EPOCH_KEY)
            freshness.epoch_seen(epoch)
            key = _lookup(key_hash)
            if key is None:
                return error_answer(401, "This API key is unknown or has been revoked.", **challenge)
            freshness.remember(key_hash, key, epoch)
            _, revision, wait = _round_trip(key)
        if revision is None:
            revision = _database_revision(key.environment_id)
            if revision is not None:
                freshness.connection().set(
                    freshness.revision_key(key.environment_id), revision, nx=True, ex=freshness.REVISION_TTL_SECONDS
                )
    except redis.RedisError as exc:
        log.warning("Flag API key and revision read from the database, no rate limit (Redis: %s)", exc)
        key = _lookup(key_hash)
        if key is None:
            return error_answer(401, "This API key is unknown or has been revoked.", **challenge)
        revision, wait = _database_revision(key.environment_id), None
    return Caller(
        key_id=key.key_id,
        environment_id=key.environment_id,
        can_evaluate=key.can_evaluate,
        can_sync=key.can_sync,
        revision=revision,
        last_used_at=key.last_used_at,
        retry_after=wait,
        known=key,
    )


def calls_retry_after(caller: Caller) -> int | None:
    """Seconds to wait when the key has used up this minute's calls (a fixed window in Redis), else None."""
    return caller.retry_after


def keyed(
    *, methods: set[str], permission: str
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Method check, API-key authentication, permission (evaluate / sync), rate limit, body size."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @login_not_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return error_answer(405, f"Use {' or '.join(sorted(methods))}.", Allow=", ".join(sorted(methods)))
            caller = key_caller(request)
            if isinstance(caller, JsonResponse):
                return caller
            if permission == "evaluate" and not caller.can_evaluate:
                return error_answer(403, "This API key may read the flag definitions but not evaluate flags.")
            if permission == "sync" and not caller.can_sync:
                return error_answer(403, "This API key may evaluate flags but not read their definitions.")
            wait = caller.retry_after
            if wait is not None:
                return error_answer(429, f"Too many calls with this key; retry in {wait} s.", Retry_After=str(wait))
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.API_MAX_BODY_BYTES:
                return error_answer(413, f"The body is larger than {settings.API_MAX_BODY_BYTES} bytes.")
            response = view(request, caller, *args, **kwargs)
            touched = services.api_key_touch(caller.key_id, caller.last_used_at)
            if touched is not None and caller.known is not None:
                caller.known.last_used_at = touched
            return response

        return wrapped

    return decorator


def _body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object (an empty body is an empty object); ValueError in words."""
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("The body is not JSON.") from None
    if not isinstance(body, dict):
        raise ValueError('The body is a JSON object such as {"context": {"targetingKey": "user-1"}}.')
    return body


def _context(request: HttpRequest) -> Any:
    return evaluation.parse_context(_body(request).get("context"))


def _etag(payload: bytes) -> str:
    return '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'


def _not_modified(request: HttpRequest, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",") if tag.strip()}
    return etag in tags or "*" in tags


def _cacheable(request: HttpRequest, payload: bytes, content_type: str = "application/json") -> HttpResponse:
    etag = _etag(payload)
    if _not_modified(request, etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(payload, content_type=content_type)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


# --- OFREP ---------------------------------------------------------------------------------------------


STATUS_OF_ERROR = {"FLAG_NOT_FOUND": 404, "GENERAL": 500}


@keyed(methods={"POST"}, permission="evaluate")
def ofrep_evaluate_flag(request: HttpRequest, caller: Caller, key: str) -> HttpResponse:
    try:
        context = _context(request)
    except ValueError as exc:  # ContextError included
        return _json({"key": key, "errorCode": "INVALID_CONTEXT", "errorDetails": str(exc)}, 400)
    flag_set = evaluation.compiled(caller.environment_id, caller.revision)
    result = evaluation.evaluate(flag_set, key, context)
    if not result.ok:
        if result.error_code == "GENERAL":
            return error_answer(500, result.error_details)
        return _json(result.ofrep(), STATUS_OF_ERROR.get(result.error_code or "", 400))
    evaluation.record_exposures(flag_set, [result])
    return _json(result.ofrep())


@keyed(methods={"POST"}, permission="evaluate")
def ofrep_evaluate_flags(request: HttpRequest, caller: Caller) -> HttpResponse:
    try:
        context = _context(request)
    except ValueError as exc:
        return _json({"errorCode": "INVALID_CONTEXT", "errorDetails": str(exc)}, 400)
    # The answer is a function of the environment's revision and the context, so its ETag is known
    # before evaluating: an unchanged client gets its 304 without an evaluation (nor an exposure:
    # it was counted when it got the answer).
    seen = json.dumps(_body(request).get("context"), sort_keys=True, separators=(",", ":"), default=str)
    etag = _etag(f"{caller.environment_id}:{caller.revision}:{seen}".encode())
    if _not_modified(request, etag):
        response = HttpResponse(status=304)
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        return response
    flag_set = evaluation.compiled(caller.environment_id, caller.revision)
    results = evaluation.evaluate_all(flag_set, context)
    evaluation.record_exposures(flag_set, results)
    payload = json.dumps({"flags": [r.ofrep() for r in results]}, ensure_ascii=False, sort_keys=True).encode()
    response = HttpResponse(payload, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


@keyed(methods={"GET"}, permission="evaluate")
def ofrep_configuration(request: HttpRequest, caller: Caller) -> HttpResponse:
    body = {
        "name": "Slipway",
        "capabilities": {
            "cacheInvalidation": {"polling": {"enabled": True, "minPollingIntervalMs": 10_000}},
            "flagEvaluation": {"supportedTypes": ["boolean", "string", "int", "float", "object"]},
        },
    }
    return _cacheable(request, json.dumps(body, sort_keys=True).encode())


# --- flagd sync ------------------------------------------------------------------------------------------


@keyed(methods={"GET"}, permission="sync")
def flagd_sync(request: HttpRequest, caller: Caller, environment_id: int) -> HttpResponse:
    if environment_id != caller.environment_id:
        return error_answer(403, "This API key belongs to another environment.")
    row = FlagSet.objects.filter(environment_id=environment_id).values("document").first()
    doc = row["document"] if row else {"flags": {}}
    return _cacheable(request, json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode())


# --- Reported events --------------------------------------------------------------------------------------


def _events(body: dict[str, Any]) -> list[services.Event]:
    raw = body.get("events")
    if not isinstance(raw, list):
        raise DefinitionError({"events": ['Send {"events": [{"flag", "variant", "ok", "latency_ms"}, ...]}.']})
    events = []
    for i, item in enumerate(raw):
        where = f"events[{i}]"
        if not isinstance(item, dict):
            raise DefinitionError({where: ["must be an object"]})
        flag, variant, ok, latency = item.get("flag"), item.get("variant"), item.get("ok"), item.get("latency_ms")
        if not isinstance(flag, str) or not 0 < len(flag) <= 100:
            raise DefinitionError({f"{where}.flag": ["must be a flag key"]})
        if not isinstance(variant, str) or not 0 < len(variant) <= 100:
            raise DefinitionError({f"{where}.variant": ["must be the variant the flag served"]})
        if not isinstance(ok, bool):
            raise DefinitionError({f"{where}.ok": ["must be true or false"]})
        if latency is not None and (isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0):
            raise DefinitionError({f"{where}.latency_ms": ["must be a number of milliseconds, 0 or more"]})
        key = item.get("targetingKey")
        if key is not None and not isinstance(key, str):
            raise DefinitionError({f"{where}.targetingKey": ["must be a string"]})
        events.append(services.Event(flag, variant, ok, float(latency) if latency is not None else None))
    return events


@keyed(methods={"POST"}, permission="evaluate")
def flag_events(request: HttpRequest, caller: Caller, environment_id: int) -> HttpResponse:
    if environment_id != caller.environment_id:
        return error_answer(403, "This API key belongs to another environment.")
    try:
        events = _events(_body(request))
        environment = Environment.objects.get(pk=environment_id)
        services.events_record(environment=environment, events=events)
    except DefinitionError as exc:
        return error_answer(400, str(exc))
    except ValueError as exc:
        return error_answer(400, str(exc))
    return _json({"accepted": len(events)}, 202)
