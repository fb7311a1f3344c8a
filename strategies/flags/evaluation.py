"""Evaluating flags with openfeature-flagd-core, from an in-memory cache of each environment's flags.

`compiled(environment_id, revision)` keeps one `FlagdCore` per environment in process memory, keyed
by the environment's `FlagSet.revision`: the caller reads the revision with the API key in the one
query a request makes, and the definitions are loaded again only when it has moved (every change
bumps it, in the change's transaction). Evaluation itself never touches the database and never
raises: every failure is an `Evaluation` with an OFREP error code.

Exposures of dark launches are counted in Redis (one pipelined round trip per request), never in
the database per evaluation.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode, OpenFeatureError
from openfeature.flag_evaluation import Reason

from strategies.flags.definitions import normalise_version
from strategies.flags.models import FlagSet

log = logging.getLogger(__name__)

# flagd-core logs an ERROR for every fractional evaluation without a bucketing key; we answer
# TARGETING_KEY_MISSING before it gets there, and do not want the rest in the portal's log.
logging.getLogger("openfeature.contrib").setLevel(logging.CRITICAL)

# The OFREP error codes of an evaluation failure (the protocol's evaluationFailure enum) and of a missing flag.
OFREP_FAILURE_CODES = {"PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"}


class ContextError(ValueError):
    """The evaluation context itself is unusable (INVALID_CONTEXT), whatever the flag."""


@dataclass(frozen=True)
class Evaluation:
    key: str
    value: Any = None
    has_value: bool = False
    variant: str | None = None
    reason: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_details: str = ""

    @property
    def ok(self) -> bool:
        return self.error_code is None

    def ofrep(self) -> dict[str, Any]:
        """The OFREP body: evaluationSuccess, or evaluationFailure / flagNotFound."""
        if self.error_code:
            return {"key": self.key, "errorCode": self.error_code, "errorDetails": self.error_details}
        body: dict[str, Any] = {"key": self.key, "reason": self.reason, "variant": self.variant or ""}
        if self.has_value:
            body["value"] = self.value
        body["metadata"] = dict(self.metadata)
        return body


@dataclass
class CompiledFlagSet:
    environment_id: int
    revision: int
    core: FlagdCore
    hints: dict[str, dict[str, Any]]
    metadata: dict[str, Any]

    @property
    def keys(self) -> list[str]:
        return sorted(self.hints)


_cache: dict[int, CompiledFlagSet] = {}
_cache_lock = threading.Lock()


def compiled(environment_id: int, revision: int | None) -> CompiledFlagSet:
    """The environment's flags, compiled once per revision (no query while `revision` is the cached one)."""
    entry = _cache.get(environment_id)
    if entry is not None and revision is not None and entry.revision == revision:
        return entry
    with _cache_lock:
        entry = _cache.get(environment_id)
        if entry is not None and revision is not None and entry.revision == revision:
            return entry
        row = FlagSet.objects.filter(environment_id=environment_id).values("revision", "document", "hints").first()
        core = FlagdCore()
        if row is None:
            entry = CompiledFlagSet(environment_id, 0, core, {}, {})
        else:
            # flagd-core rewrites the dicts it is given: hand it a copy.
            core.set_flags(copy.deepcopy(row["document"]))
            entry = CompiledFlagSet(
                environment_id, row["revision"], core, dict(row["hints"]), dict(row["document"].get("metadata", {}))
            )
        _cache[environment_id] = entry
        return entry


def forget(environment_id: int | None = None) -> None:
    """Drop cached flag sets (tests; the revision check makes this unnecessary in normal running)."""
    with _cache_lock:
        if environment_id is None:
            _cache.clear()
        else:
            _cache.pop(environment_id, None)


def parse_context(raw: Any) -> EvaluationContext:
    """An OFREP request's `context` as an OpenFeature context; ContextError when it cannot be one."""
    if raw is None:
        return EvaluationContext()
    if not isinstance(raw, dict):
        raise ContextError("The context must be a JSON object of attributes.")
    attributes = dict(raw)
    targeting_key = attributes.pop("targetingKey", None)
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise ContextError("targetingKey must be a string.")
    for name in attributes:
        if name.startswith("$flagd"):
            raise ContextError(f"{name!r} is reserved for the evaluation engine.")
    return EvaluationContext(targeting_key=targeting_key or None, attributes=attributes)


_RESOLVERS = {
    "boolean": "resolve_boolean_value",
    "string": "resolve_string_value",
    "integer": "resolve_integer_value",
    "float": "resolve_float_value",
    "object": "resolve_object_value",
}


def _failure(key: str, code: str, details: str) -> Evaluation:
    return Evaluation(key=key, error_code=code, error_details=details)


def evaluate(flag_set: CompiledFlagSet, key: str, context: EvaluationContext) -> Evaluation:
    """One flag, as OFREP answers it. Never raises."""
    try:
        return _evaluate(flag_set, key, context)
    except Exception as exc:  # the protocol promises an answer, not a stack trace
        log.exception("Evaluating flag %r of environment %s failed", key, flag_set.environment_id)
        return _failure(key, "GENERAL", f"The flag could not be evaluated ({type(exc).__name__}).")


def _evaluate(flag_set: CompiledFlagSet, key: str, context: EvaluationContext) -> Evaluation:
    hint = flag_set.hints.get(key)
    if hint is None:
        return _failure(key, "FLAG_NOT_FOUND", f"No flag {key!r} in this environment.")
    if hint.get("enabled", True):
        bucket_by = hint.get("bucketBy")
        if bucket_by == "targetingKey" and not context.targeting_key:
            return _failure(
                key, "TARGETING_KEY_MISSING", f"{key!r} serves a percentage split, which needs a targetingKey."
            )
        if bucket_by and bucket_by != "targetingKey":
            bucket_value = context.attributes.get(bucket_by)
            if bucket_value is None or bucket_value == "" or isinstance(bucket_value, dict | list):
                return _failure(
                    key, "TARGETING_KEY_MISSING", f"{key!r} buckets users by {bucket_by!r}, which the context lacks."
                )
        for attribute in hint.get("semver", []):
            raw = context.targeting_key if attribute == "targetingKey" else context.attributes.get(attribute)
            if raw is None:
                continue
            try:
                normalise_version(str(raw))
            except ValueError:
                return _failure(key, "INVALID_CONTEXT", f"{attribute} {raw!r} is not a semantic version.")
    resolver = getattr(flag_set.core, _RESOLVERS[hint["type"]])
    try:
        details = resolver(key, hint["defaultValue"], context)
    except OpenFeatureError as exc:
        code = exc.error_code.value if isinstance(exc.error_code, ErrorCode) else str(exc.error_code)
        if code == "FLAG_NOT_FOUND":
            return _failure(key, code, exc.error_message or f"No flag {key!r}.")
        return _failure(key, code if code in OFREP_FAILURE_CODES else "GENERAL", exc.error_message or code)
    reason = details.reason.value if isinstance(details.reason, Reason) else str(details.reason or "UNKNOWN")
    variant = details.variant
    if reason == Reason.DISABLED:
        # The kill switch: the flag's default variant, said to be DISABLED (flagd-core hands back our default).
        variant = hint["defaultVariant"]
    return Evaluation(
        key=key,
        value=details.value,
        has_value=True,
        variant=variant,
        reason=reason,
        metadata=dict(details.flag_metadata or {}),
    )


def evaluate_all(flag_set: CompiledFlagSet, context: EvaluationContext) -> list[Evaluation]:
    return [evaluate(flag_set, key, context) for key in flag_set.keys]


# --- Exposures of dark launches (Redis) -------------------------------------------------------------

_redis: redis.Redis | None = None
EXPOSURE_MINUTES_KEPT = 60 * 48


def _connection() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _redis


def _exposure_keys(launch_id: int, minute: int) -> tuple[str, str]:
    return f"slipway:flags:launch:{launch_id}:exposures", f"slipway:flags:launch:{launch_id}:minute:{minute}"


def record_exposures(flag_set: CompiledFlagSet, evaluations: Iterable[Evaluation]) -> None:
    """Count the evaluations that served an active dark launch its launched variant (one round trip)."""
    counts: dict[int, int] = {}
    for evaluation in evaluations:
        launch = flag_set.hints.get(evaluation.key, {}).get("launch")
        if launch and evaluation.ok and evaluation.variant == launch["variant"]:
            counts[launch["id"]] = counts.get(launch["id"], 0) + 1
    if not counts:
        return
    minute = int(time.time() // 60)
    try:
        pipe = _connection().pipeline(transaction=False)
        for launch_id, n in counts.items():
            total_key, minute_key = _exposure_keys(launch_id, minute)
            pipe.incrby(total_key, n)
            pipe.incrby(minute_key, n)
            pipe.expire(minute_key, EXPOSURE_MINUTES_KEPT * 60)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("Dark-launch exposures not counted (Redis: %s)", exc)


def exposures(launch_id: int, *, last_minutes: int = 60) -> tuple[int | None, int | None]:
    """(all exposures of the launch, those of the last `last_minutes`); None when Redis does not answer."""
    minute = int(time.time() // 60)
    total_key, _ = _exposure_keys(launch_id, minute)
    keys = [_exposure_keys(launch_id, m)[1] for m in range(minute - last_minutes + 1, minute + 1)]
    try:
        values = _connection().mget([total_key, *keys])
    except redis.RedisError as exc:
        log.warning("Dark-launch exposures not read (Redis: %s)", exc)
        return None, None
    total = int(values[0] or 0)
    return total, sum(int(v or 0) for v in values[1:])
