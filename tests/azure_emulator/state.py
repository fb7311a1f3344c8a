"""The emulated cloud: sites, their slots, swaps in flight, faults. Plain data guarded by one lock."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PRODUCTION = "production"
VERSION_SETTING = "SLIPWAY_VERSION"


@dataclass
class MinuteMetrics:
    """What one slot serves each minute, for Azure Monitor answers (Requests, Http5xx, HttpResponseTime)."""

    requests: int = 0
    errors: int = 0
    response_time_ms: float = 0.0


@dataclass
class EmulatedSlot:
    name: str
    app_settings: dict[str, str] = field(default_factory=dict)
    healthy: bool = True  # what the deployed code answers on the health path: swaps with the content
    state: str = "Running"
    host: str = ""  # "127.0.0.1:PORT": each slot's own loopback web server
    site_config: dict[str, Any] = field(default_factory=dict)
    metrics: MinuteMetrics = field(default_factory=MinuteMetrics)
    restarts: int = 0

    @property
    def version(self) -> str:
        return self.app_settings.get(VERSION_SETTING, "")


@dataclass
class SwapOperation:
    id: str
    slots: tuple[str, str]
    started: float = field(default_factory=time.monotonic)
    polls: int = 0
    status: str = "InProgress"  # InProgress | Succeeded | Failed
    error: tuple[str, str] | None = None


@dataclass
class Preview:
    """A swap with preview after phase 1: `source` runs with `target`'s sticky settings."""

    source: str
    target: str
    saved_sticky: dict[str, str]  # the source's own sticky settings, restored on reset or after the swap


@dataclass
class EmulatedSite:
    subscription: str
    resource_group: str
    name: str
    slots: dict[str, EmulatedSlot] = field(default_factory=dict)
    sticky_app_settings: list[str] = field(default_factory=list)
    sticky_connection_strings: list[str] = field(default_factory=list)
    health_path: str = "/healthz"
    location: str = "West Europe"
    # Swap behaviour (tests change these):
    swap_polls: int = 2  # status polls answered 202 before the swap finishes
    swap_seconds: float = 0.0  # and at least this long after it started
    hold_swap: bool = False  # True: stays in progress until set back to False
    swap_failure: tuple[str, str] | None = None  # (code, message): the swap fails with this ARM error
    lro_style: str = "location"  # or "azure-async-operation" (both headers, status in the body)
    poll_base_url: str | None = None  # send the Location/Azure-AsyncOperation elsewhere (the http-refusal test)
    retry_after: int | None = None  # Retry-After (seconds) on 202 answers; None: leave polling to the client
    page_size: int = 50  # slots per page of the slot list (nextLink beyond)
    # Content that breaks depending on where it runs (tests append): a slot for which any of these says True
    # answers its health path 503, e.g. `lambda slot: slot.version == "1.1.0" and slot.name == "production"`
    # (a build that fails only with production's traffic or settings). Judged on every health request.
    health_faults: list[Callable[[EmulatedSlot], bool]] = field(default_factory=list)
    # Live state:
    operations: dict[str, SwapOperation] = field(default_factory=dict)
    current: SwapOperation | None = None
    preview: Preview | None = None
    slot_swap_status: dict[str, str] | None = None

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Web/sites/{self.name}"
        )

    def slot_id(self, slot: str) -> str:
        return self.id if slot == PRODUCTION else f"{self.id}/slots/{slot}"

    @property
    def production(self) -> EmulatedSlot:
        return self.slots[PRODUCTION]

    def slot(self, name: str) -> EmulatedSlot:
        return self.slots[name]

    def answers_healthy(self, slot: EmulatedSlot) -> bool:
        """What the slot's app answers on its health path now: its content's health, unless a health fault hits."""
        return slot.healthy and not any(fault(slot) for fault in self.health_faults)

    # -- swaps --
    def start_swap(self, a: str, b: str) -> SwapOperation:
        operation = SwapOperation(id=str(uuid.uuid4()), slots=(a, b))
        self.operations[operation.id] = operation
        self.current = operation
        return operation

    def advance(self, operation: SwapOperation) -> None:
        """One status poll: finish the swap once enough polls and time have passed (and it is not held)."""
        if operation.status != "InProgress":
            return
        operation.polls += 1
        if self.hold_swap or operation.polls < self.swap_polls:
            return
        if time.monotonic() - operation.started < self.swap_seconds:
            return
        if self.swap_failure:
            operation.status, operation.error = "Failed", self.swap_failure
        else:
            self._exchange(*operation.slots)
            operation.status = "Succeeded"
        self.current = None

    def _sticky(self, slot: str) -> dict[str, str]:
        if self.preview and self.preview.source == slot:
            return dict(self.preview.saved_sticky)
        settings = self.slots[slot].app_settings
        return {name: settings[name] for name in self.sticky_app_settings if name in settings}

    def _loose(self, slot: str) -> dict[str, str]:
        sticky = set(self.sticky_app_settings)
        return {name: value for name, value in self.slots[slot].app_settings.items() if name not in sticky}

    def _exchange(self, a: str, b: str) -> None:
        """Swap content: non-sticky settings (the version among them), health and traffic profile move;
        sticky settings and host names stay with their slot."""
        slot_a, slot_b = self.slots[a], self.slots[b]
        sticky_a, sticky_b = self._sticky(a), self._sticky(b)
        loose_a, loose_b = self._loose(a), self._loose(b)
        slot_a.app_settings = {**loose_b, **sticky_a}
        slot_b.app_settings = {**loose_a, **sticky_b}
        slot_a.healthy, slot_b.healthy = slot_b.healthy, slot_a.healthy
        slot_a.metrics, slot_b.metrics = slot_b.metrics, slot_a.metrics
        self.preview = None
        self.slot_swap_status = {
            "timestampUtc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sourceSlotName": a,
            "destinationSlotName": b,
        }

    # -- swap with preview --
    def apply_preview(self, source: str, target: str) -> None:
        saved = self._sticky(source)
        target_sticky = self._sticky(target)
        self.slots[source].app_settings = {**self._loose(source), **target_sticky}
        self.preview = Preview(source=source, target=target, saved_sticky=saved)

    def reset_preview(self, source: str) -> None:
        if self.preview and self.preview.source == source:
            saved = self.preview.saved_sticky
            self.preview = None
            self.slots[source].app_settings = {**self._loose(source), **saved}


@dataclass
class Fault:
    """The next `remaining` requests to `route` (on `site`, if given) answer `status` with this ARM error."""

    route: str
    status: int | None
    remaining: int
    code: str = ""
    message: str = ""
    site: str | None = None
    delay_s: float = 0.0  # wait this long first (status None: then answer normally)
    headers: dict[str, str] = field(default_factory=dict)


DEFAULT_ERRORS = {
    400: ("BadRequest", "The request is invalid."),
    401: ("InvalidAuthenticationToken", "The access token is invalid."),
    403: (
        "AuthorizationFailed",
        "The client 'slipway' with object id '00000000-0000-0000-0000-0000000000aa' does not have authorization "
        "to perform this action, or the scope is invalid. If access was recently granted, please refresh your "
        "credentials.",
    ),
    404: ("ResourceNotFound", "The resource was not found."),
    409: (
        "Conflict",
        "Cannot modify this site because another operation is in progress. Details: OperationName: SwapSiteSlots",
    ),
    429: (
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type - Write.",
    ),
    500: ("InternalServerError", "An error has occurred."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry."),
}


@dataclass
class Record:
    """One request the emulator received."""

    server: str  # arm | login | site
    method: str
    path: str
    route: str
    status: int
    site: str = ""
    slot: str = ""
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
