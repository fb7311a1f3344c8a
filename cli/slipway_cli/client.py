"""HTTP to Slipway's REST API v1 with the standard library: a bearer token, JSON bodies, problem+json errors
as `SlipwayError`, and retries (connection errors, 5xx, 429 with Retry-After) that reuse the request's
`Idempotency-Key`, so a retried POST is answered with the first result instead of doing it twice."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from . import __version__

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 60.0


class SlipwayError(Exception):
    """The API refused a request (a problem document), or could not be reached."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        kind: str = "",
        errors: list[dict[str, str]] | None = None,
        blockers: list[str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.kind = kind
        self.errors = errors or []
        self.blockers = blockers or []
        self.body = body or {"detail": detail, "status": status}

    @classmethod
    def from_response(cls, status: int, raw: bytes, reason: str = "") -> SlipwayError:
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (ValueError, UnicodeDecodeError):
            body = {}
        if not isinstance(body, dict):
            body = {}
        detail = str(body.get("detail") or body.get("title") or f"HTTP {status} {reason}".strip())
        kind = str(body.get("type") or "").rpartition("#problem-")[2]
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        blockers = [str(b) for b in body.get("blockers") or []]
        return cls(detail, status=status, kind=kind, errors=errors, blockers=blockers, body=body or None)


class Client:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        log: Any = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Slipway's URL must be http(s), not {url!r}")
        self.base = url.rstrip("/")
        if not self.base.endswith("/api/v1"):
            self.base += "/api/v1"
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.log = log  # a callable given a line when a request is retried

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        path = path.removeprefix("/api/v1")
        url = f"{self.base}/{path.lstrip('/')}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return url

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, query=query)[1]

    def post(self, path: str, body: Any = None, *, idempotency_key: str | None = None) -> tuple[int, Any]:
        return self.request("POST", path, body=body, idempotency_key=idempotency_key)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, Any]:
        """(status, JSON body) of a 2xx answer; raises SlipwayError for anything else, after the retries."""
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json, application/problem+json",
            "User-Agent": f"slipway-cli/{__version__}",
        }
        data = None
        if method != "GET":
            data = json.dumps(body if body is not None else {}).encode("utf-8")
            headers["Content-Type"] = "application/json"
            if idempotency_key:
                headers["Idempotency-Key"] = idempotency_key
        url = self.url(path, query)
        attempt = 0
        while True:
            attempt += 1
            wait = self.backoff * 2 ** (attempt - 1)
            try:
                # http(s) only: the base URL's scheme is checked in __init__.
                request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    raw = response.read()
                    return response.status, (json.loads(raw.decode("utf-8")) if raw else None)
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                error = SlipwayError.from_response(exc.code, raw, exc.reason or "")
                # A concurrent request with the same key is still running: its answer will be replayed.
                retryable = exc.code in RETRY_STATUSES or error.kind == "in-progress"
                if not retryable or attempt > self.retries:
                    raise error from None
                retry_after = _retry_after(exc.headers.get("Retry-After"))
                if retry_after is not None:
                    wait = min(retry_after, MAX_RETRY_AFTER)
                self._note(f"{method} {url}: HTTP {exc.code}, retrying in {wait:g} s")
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt > self.retries:
                    raise SlipwayError(f"Could not reach Slipway at {self.base}: {reason}") from None
                self._note(f"{method} {url}: {reason}, retrying in {wait:g} s")
            time.sleep(wait)

    def _note(self, line: str) -> None:
        if self.log is not None:
            self.log(line)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
