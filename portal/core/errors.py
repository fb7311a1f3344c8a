"""The one error type of the domain: `DomainError(code, message, *, fields=None, **details)`.

A service refuses a change by raising `DomainError` with a stable `ErrorCode` and a sentence a
person can act on. The code says what the caller must do differently; its HTTP status is kept here,
beside it, so the API (portal/api/problems.py) and the pages (portal/errors_middleware.py) map
errors to responses in one way and never by reading the message. This is the lowest layer: it
imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from http import HTTPStatus
from typing import Any


class ErrorCode(StrEnum):
    """Stable codes, grouped by what a caller must do differently. Never rename one: clients match them."""

    status: HTTPStatus
    summary: str

    def __new__(cls, value: str, status: HTTPStatus, summary: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.summary = summary
        return member

    # Fix the request.
    INVALID = "invalid", HTTPStatus.BAD_REQUEST, "The input is not valid: fix the fields named in `fields`."
    NOT_FOUND = "not_found", HTTPStatus.NOT_FOUND, "What the request names does not exist."
    # Someone else must do it.
    FORBIDDEN = "forbidden", HTTPStatus.FORBIDDEN, "The person lacks the role this needs: ask an admin for it."
    APPROVAL_NOT_ELIGIBLE = (
        "approval_not_eligible",
        HTTPStatus.FORBIDDEN,
        "The person may not decide this approval (separation of duties, not a named approver): another must.",
    )
    # The current state refuses it: look at the state, then act differently or later.
    CONFLICT = (
        "conflict",
        HTTPStatus.CONFLICT,
        "The current state does not allow it: done already, in use, a duplicate.",
    )
    TRANSITION_NOT_ALLOWED = (
        "transition_not_allowed",
        HTTPStatus.CONFLICT,
        "The object's status does not allow this step of its lifecycle.",
    )
    CONCURRENT_CHANGE = (
        "concurrent_change",
        HTTPStatus.CONFLICT,
        "Someone changed it while this request ran: reload and try again.",
    )
    OPERATION_ACTIVE = (
        "operation_active",
        HTTPStatus.CONFLICT,
        "Another operation runs on the application (or its ring target): wait for it to finish.",
    )
    PROMOTION_BLOCKED = (
        "promotion_blocked",
        HTTPStatus.CONFLICT,
        "A gate or the approval blocks the promotion; `blockers` lists each reason.",
    )
    APPROVAL_REQUIRED = (
        "approval_required",
        HTTPStatus.CONFLICT,
        "This needs an approval first: propose the change, or wait for the approver.",
    )
    # Not the caller's fault: try again later.
    PROVIDER_UNAVAILABLE = (
        "provider_unavailable",
        HTTPStatus.BAD_GATEWAY,
        "The hosting provider did not answer what Slipway asked it: try again later.",
    )

    @property
    def api_status(self) -> HTTPStatus:
        """The status in the API, where 400 means a body that could not be read and bad input is 422."""
        return HTTPStatus.UNPROCESSABLE_CONTENT if self.status == HTTPStatus.BAD_REQUEST else self.status


Fields = Mapping[str, str | Sequence[str]]


class DomainError(Exception):
    """A change the rules do not allow. `str(error)` is the message shown to the person who asked.

    `fields` maps each input field at fault to its messages (bad input); `details` carries what a
    caller may act on besides the message, such as a blocked promotion's `blockers`.
    """

    def __init__(self, code: ErrorCode, message: str, *, fields: Fields | None = None, **details: Any) -> None:
        if not isinstance(code, ErrorCode):
            raise TypeError(f"DomainError needs an ErrorCode first, not {code!r}")
        self.code = code
        self.message = message
        self.fields: dict[str, list[str]] = {
            name: [messages] if isinstance(messages, str) else list(messages)
            for name, messages in (fields or {}).items()
            if messages
        }
        self.details = details
        super().__init__(message)

    @property
    def status(self) -> HTTPStatus:
        return self.code.status

    @property
    def forbidden(self) -> bool:
        """Someone else must do it: views that show other refusals in place let these reach the 403 page."""
        return self.code.status == HTTPStatus.FORBIDDEN

    def __reduce__(self) -> Any:  # picklable (RQ stores a job's exception), keeping the code and fields
        return (_rebuild, (type(self), self.code, self.message, self.fields, self.details))


def _rebuild(cls: type[DomainError], code: ErrorCode, message: str, fields: Any, details: Any) -> DomainError:
    error = DomainError.__new__(cls)
    DomainError.__init__(error, code, message, fields=fields, **details)
    return error
