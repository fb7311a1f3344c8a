"""What the OFREP hot path knows without asking the database: API keys, and each environment's revision.

An evaluation request must not query the database (the issue's target is ≥ 1,500 evaluations/s on
two cores). Each web process keeps the API keys it has seen valid in memory, and the one Redis
round trip a request makes anyway (the rate limit) also reads:

- `slipway:flags:revision:<environment id>` — the environment's flag revision; the compiled flag set
  for that revision is cached in memory (evaluation.py). Written by `revision_changed()` after the
  publishing transaction commits (plain SET), filled by readers from the database when missing
  (SET NX, so a reader that read an older revision can never overwrite a newer one), and expiring
  after `REVISION_TTL_SECONDS`, which bounds how long a lost write can leave a stale revision.
- `slipway:flags:keys-epoch` — a random value replaced when a key is created, changed, revoked or deleted; a process
  that sees a new epoch forgets every key it knew and looks each up again.

Both are also touched *inside* the changing transaction (the revision key deleted, the epoch
bumped), so a reader never trusts its memory across a change in flight: it falls back to the
database, which is right before the commit and after it (and under tests, whose transactions never
commit). The after-commit write then makes the new state the cached one.

When Redis does not answer, every request looks up its key and revision in the database: slower,
never wrong.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from strategies.flags.models import FlagApiKey

log = logging.getLogger(__name__)

REVISION_TTL_SECONDS = 60
EPOCH_KEY = "slipway:flags:keys-epoch"


def revision_key(environment_id: int) -> str:
    return f"slipway:flags:revision:{environment_id}"


_redis: redis.Redis | None = None


def connection() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _redis


# --- Writers (the flag and key services) ------------------------------------------------------------


def revision_changed(environment_id: int, revision: int) -> None:
    """Call inside the transaction that published `revision` of the environment's flags."""
    key = revision_key(environment_id)
    try:
        connection().delete(key)
    except redis.RedisError as exc:
        log.warning("Flag revision %s of environment %s not announced (Redis: %s)", revision, environment_id, exc)
        return

    def announce() -> None:
        try:
            connection().set(key, revision, ex=REVISION_TTL_SECONDS)
        except redis.RedisError as exc:
            log.warning("Flag revision %s of environment %s not announced (Redis: %s)", revision, environment_id, exc)

    transaction.on_commit(announce)


def _bump_epoch() -> None:
    # A fresh random value rather than a counter: after a Redis restart a counter would start again
    # and could meet a value a process remembers, with different keys behind it.
    try:
        connection().set(EPOCH_KEY, uuid.uuid4().hex)
    except redis.RedisError as exc:
        log.warning("Flag API key change not announced (Redis: %s)", exc)


def keys_changed(**_: object) -> None:
    """Signal receiver: any saved or deleted API key makes every process look its keys up again."""
    _bump_epoch()
    transaction.on_commit(_bump_epoch)


def connect_signals() -> None:

    post_save.connect(keys_changed, sender=FlagApiKey, dispatch_uid="flag-api-key-saved")
    post_delete.connect(keys_changed, sender=FlagApiKey, dispatch_uid="flag-api-key-deleted")


# --- Reader (the OFREP views) -------------------------------------------------------------------------


@dataclass
class KnownKey:
    key_id: int
    environment_id: int
    can_evaluate: bool
    can_sync: bool
    last_used_at: datetime | None


_known: dict[str, KnownKey] = {}
_known_epoch: bytes | None = None
_lock = threading.Lock()


def known(key_hash: str) -> KnownKey | None:
    return _known.get(key_hash)


def remember(key_hash: str, key: KnownKey, epoch: bytes | None) -> None:
    """Keep a key found valid in the database, under the epoch read before the lookup."""
    with _lock:
        if epoch == _known_epoch:
            _known[key_hash] = key


def epoch_seen(epoch: bytes | None) -> bool:
    """Record the epoch a request read; False (and memory cleared) when it differs from the one known."""
    global _known_epoch
    if epoch == _known_epoch:
        return True
    with _lock:
        _known.clear()
        _known_epoch = epoch
    return False


def forget() -> None:
    """Drop every remembered key (tests)."""
    global _known_epoch
    with _lock:
        _known.clear()
        _known_epoch = None
