"""Hosting providers: where an application's slots actually run.

One interface (`HostingProvider`), two implementations: the built-in simulator (`simulator.py`,
state in the database) and Azure App Service (`azure.py`, through azure-mgmt-web). Strategies and
jobs only ever talk to this interface, obtained with `provider_for(application)`.

Naming follows App Service: a site has a main slot called "production" and deployment slots such
as "staging". "Traffic share" is the percentage of production traffic routed to a deployment slot
(App Service ramp-up rules); the production slot takes the rest.

Long-running calls (slot swaps) return a `SwapHandle` whose `resume_token` can be persisted; a new
process passes it to `resume_swap` and keeps polling the same swap instead of starting another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from releases.catalog.models import Application

PRODUCTION_SLOT = "production"


# --- errors ------------------------------------------------------------------------------------
class ProviderError(Exception):
    """A provider call failed. `str(error)` is the provider's own message (plus our context)."""

    retryable = False

    def __init__(
        self, message: str, *, status: int | None = None, code: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status  # HTTP status where there was one
        self.code = code  # the provider's error code, e.g. "Conflict", "ResourceNotFound"
        self.retry_after = retry_after  # seconds the provider asked us to wait (Retry-After), if it said


class TransientError(ProviderError):
    """Worth retrying with backoff: throttling (429), server errors (5xx), timeouts, lost connections."""

    retryable = True


class ConflictError(ProviderError):
    """Another operation is in progress on the site (HTTP 409). Retry later."""

    retryable = True


class NotFoundError(ProviderError):
    """The site, slot or resource does not exist (or the credential cannot see it)."""


class AuthError(ProviderError):
    """The credential was refused (401) or lacks permission (403)."""


class PermanentError(ProviderError):
    """The provider refused the request for good (bad request, failed swap, ...)."""


# --- values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotState:
    name: str
    version: str  # "" when the provider cannot tell
    healthy: bool | None  # None: the provider could not tell
    traffic_percent: int
    hostname: str = ""
    state: str = "Running"  # App Service: Running / Stopped
    detail: str = ""


@dataclass(frozen=True)
class HealthResult:
    healthy: bool
    status_code: int | None
    detail: str
    latency_ms: float | None = None


@dataclass(frozen=True)
class MetricsSample:
    """Requests served by one slot in a window: for canary analysis."""

    requests: int
    errors: int  # HTTP 5xx
    latencies_ms: list[float] = field(default_factory=list)  # a sample, not necessarily every request

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class SwapHandle(Protocol):
    """A slot swap in flight. Poll with `done()`; `result()` raises the provider's error if it failed.

    `result(timeout)` raises the built-in `TimeoutError` when the swap is still running after `timeout`
    seconds: the swap goes on, and the caller keeps `resume_token` to poll it later. A failed *poll*
    (e.g. TransientError) is retried with `resume_swap(resume_token)`, never with a second `begin_swap`.
    """

    @property
    def resume_token(self) -> str: ...

    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> None: ...


# --- the interface -----------------------------------------------------------------------------
@runtime_checkable
class HostingProvider(Protocol):
    def slot_states(self, application: Application, *, probe: bool = True) -> list[SlotState]:
        """Every slot of the site (production included) with version, health, traffic share, hostname.

        `probe=False` reads what runs where without calling each slot's health check (`healthy` is None):
        for the drift check, which must not load the application or count against its health faults."""
        ...

    def check_health(self, application: Application, slot: str) -> HealthResult:
        """GET the slot's health-check path now. Never raises for an unhealthy or unreachable app:
        that is an unhealthy result with the reason in `detail`."""
        ...

    def begin_swap(self, application: Application, source: str, target: str = PRODUCTION_SLOT) -> SwapHandle:
        """Start swapping `source` into `target` (a long-running operation)."""
        ...

    def resume_swap(self, application: Application, resume_token: str) -> SwapHandle:
        """Continue polling a swap started earlier (possibly by another process) without starting a new one."""
        ...

    def apply_swap_preview(self, application: Application, source: str, target: str = PRODUCTION_SLOT) -> None:
        """Swap with preview, phase 1: apply `target`'s settings to `source` so it can be verified."""
        ...

    def cancel_swap_preview(self, application: Application, source: str) -> None:
        """Swap with preview, abandon: restore `source`'s own settings."""
        ...

    # Completing a swap with preview is `begin_swap` with the same slots.

    def get_traffic(self, application: Application) -> dict[str, int]:
        """Share of production traffic (%) routed to each deployment slot; slots at 0 % may be absent."""
        ...

    def set_traffic(self, application: Application, slot: str, percent: int) -> None:
        """Route `percent` of production traffic to `slot` (0 removes the rule). Idempotent."""
        ...

    def get_app_settings(self, application: Application, slot: str) -> dict[str, str]: ...

    def update_app_settings(self, application: Application, slot: str, changes: dict[str, str | None]) -> None:
        """Merge `changes` into the slot's app settings; a value of None deletes the setting."""
        ...

    def get_sticky_settings(self, application: Application) -> list[str]:
        """Names of app settings that stay with their slot in a swap."""
        ...

    def set_sticky_settings(self, application: Application, names: list[str]) -> None: ...

    def restart(self, application: Application, slot: str) -> None: ...

    def metrics(self, application: Application, slot: str, *, minutes: int = 5) -> MetricsSample:
        """Requests, errors and latencies the slot served in the last `minutes`."""
        ...


# --- retries -----------------------------------------------------------------------------------
@dataclass
class Attempt:
    number: int
    error: str  # "" when it succeeded
    waited_s: float


def call_with_retry[T](
    call: Callable[[], T],
    *,
    deadline_s: float = 120.0,
    base_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
    on_attempt: Callable[[Attempt], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`, retrying transient and conflict errors with exponential backoff until `deadline_s`.

    Every attempt is reported to `on_attempt` (the engine records them on the operation step).
    Non-retryable errors, and the last retryable one once the deadline has passed, are raised.
    """
    started = time.monotonic()
    number, delay = 0, base_delay_s
    while True:
        number += 1
        try:
            result = call()
        except ProviderError as exc:
            elapsed = time.monotonic() - started
            wait = max(delay, min(exc.retry_after or 0.0, max_delay_s))  # honour Retry-After, capped
            give_up = not exc.retryable or elapsed + wait > deadline_s
            if on_attempt:
                on_attempt(Attempt(number, f"{exc.__class__.__name__}: {exc}", 0.0 if give_up else wait))
            if give_up:
                raise
            sleep(wait)
            delay = min(delay * 2, max_delay_s)
            continue
        if on_attempt:
            on_attempt(Attempt(number, "", 0.0))
        return result
