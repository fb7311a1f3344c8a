"""Keeping secrets out of log lines and audit payloads.

Two layers, both on by default:

* every log record is redacted when it is made (`install_log_redaction`, called from `PortalConfig.ready`):
  its message, its arguments and a traceback's text — whatever handler or formatter then writes it;
* `audit_record` passes an event's before/after, reason and object text through `redact_data`.

What is masked: `Authorization`/`X-API-Key` header values (also as `HTTP_AUTHORIZATION`/`HTTP_X_API_KEY`),
Slipway's API tokens and flag API keys by their shape (`slw_<prefix>_<secret>`, `slwf_<prefix>_<secret>`: the
public prefix stays), JSON Web Tokens (OIDC ID and access tokens), `key=value` / `"key": "value"` pairs whose key
names a secret (`client_secret`, `password`, `access_token`, ...), credentials in URLs (`user:password@`), and
OAuth parameters in query strings (`code=`, `code_verifier=`, ...). Secrets with no shape of their own (a
webhook's signing secret) are kept out by the code that holds them; tests/security prove both.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "[redacted]"

# Keys (in dicts, JSON, key=value text) whose values are secrets. Compared lower-case, "-" read as "_".
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "code_verifier",
        "authorization",
        "http_authorization",
        "api_key",
        "x_api_key",
        "http_x_api_key",
        "secret_hash",
        "key_hash",
        "signing_secret",
    }
)
_KEY_NAMES = "|".join(sorted((re.escape(k) for k in SECRET_KEYS), key=len, reverse=True))

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Slipway's own credentials by shape; the prefix is public (lists, audit), the rest is not.
    (re.compile(r"\b(slw[tf]?_[0-9a-f]{8})_[A-Za-z0-9_\-]{6,}"), rf"\1_{MASK}"),
    # JSON Web Tokens: header.payload.signature, each base64url; headers and payloads start "eyJ" ('{"').
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"), MASK),
    # Header lines and header dicts: "Authorization: Bearer x", "'HTTP_X_API_KEY': 'x'", "X-Api-Key=x".
    (
        re.compile(
            r"""(?i)\b((?:http_)?(?:authorization|x[-_]api[-_]key|proxy[-_]authorization)['"]?\s*[:=]\s*['"]?)"""
            r"""(?:(?:bearer|basic|token)\s+)?[^\s'",;}&]+"""
        ),
        rf"\1{MASK}",
    ),
    # key=value, key: value, "key": "value" for the secret key names above.
    (
        re.compile(rf"""(?i)(?<![A-Za-z0-9_])((?:{_KEY_NAMES})['"]?\s*[:=]\s*['"]?)(?!\[redacted\])[^\s'",;}}&]+"""),
        rf"\1{MASK}",
    ),
    # Query-string OAuth parameters: the authorization code and its verifier, tokens, signatures.
    (
        re.compile(
            r"(?i)([?&](?:code|code_verifier|client_secret|access_token|id_token|token|sig|signature)=)[^&\s#'\"]+"
        ),
        rf"\1{MASK}",
    ),
    # Credentials inside URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^/\s@]+@"), rf"\1{MASK}@"),
]


# Every pattern above needs one of these (lower-cased) in the text. Most log lines and audit strings have none,
# and a few substring searches cost far less than running each pattern (bench/redaction.py).
# (tests/security/test_redaction.py checks that every name in SECRET_KEYS contains one.)
TRIGGERS = (
    *("slw", "eyj", "authoriz", "api-key", "api_key", "://"),
    *("code", "sig", "pass", "secret", "token", "key_hash"),
)


def redact_text(text: str) -> str:
    """`text` with every secret-shaped part masked."""
    if not text:
        return text
    lowered = text.lower()
    if not any(trigger in lowered for trigger in TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like value with secret-named keys masked and secret-shaped strings redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: (MASK if _is_secret_key(k) and v not in (None, "") else redact_data(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact a log record in place: its message is formatted now, with its arguments, and masked."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: keep what there is rather than lose the record  # noqa: BLE001
        message = f"{record.msg} {record.args!r}"
    record.msg, record.args = redact_text(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    return record


_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """The handler's layer (LOG_FILTERS in settings): the message again, and the fields added to a record after
    it was made (`extra=`, the observability context: path, user, ...), which the record factory cannot see."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        for name, value in list(record.__dict__.items()):
            if name in _STANDARD_ATTRIBUTES:
                continue
            if _is_secret_key(name) and value not in (None, ""):
                record.__dict__[name] = MASK
            elif isinstance(value, str | dict | list | tuple):
                record.__dict__[name] = redact_data(value)
        return True


_installed = False


def install_log_redaction() -> None:
    """Make every log record of the process pass through `redact_record` as it is made (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
