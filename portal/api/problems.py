"""Errors of the API as problem documents (RFC 9457, `application/problem+json`).

Every refusal — bad input, no or a bad token, a missing scope or role, a rule of the domain, too
many requests — answers with one shape: `type`, `title`, `status`, `detail`, `code` (stable, for
programs: `type` ends in `#problem-<code>` with dashes), and, for bad input, `errors: [{field,
message}]` naming each field. `install()` puts the handlers on the API, so an endpoint only
raises (`ApiProblem`, `DomainError`, `Http404`) and never builds an error response itself.

A `DomainError` is mapped here and only here, by its `ErrorCode`: the status is the code's
`api_status`, the type and `code` come from the code, `errors` from its `fields`, and a blocked
promotion's `blockers` from its details. Nothing reads the message to decide.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from pydantic import Field

from portal.core.errors import DomainError, ErrorCode

if TYPE_CHECKING:
    from ninja import NinjaAPI

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
# `type` is a URI reference to the section of the API reference page that explains the problem.
DOCS_PATH = "/api/v1/docs/"

# The domain's codes (portal.core.errors.ErrorCode) as the API titles them.
DOMAIN_TITLES: dict[ErrorCode, str] = {
    ErrorCode.INVALID: "A value is not acceptable",
    ErrorCode.NOT_FOUND: "Not found",
    ErrorCode.FORBIDDEN: "Not allowed",
    ErrorCode.APPROVAL_NOT_ELIGIBLE: "Not eligible to decide this approval",
    ErrorCode.CONFLICT: "The request conflicts with the current state",
    ErrorCode.TRANSITION_NOT_ALLOWED: "The status does not allow this",
    ErrorCode.CONCURRENT_CHANGE: "Changed by someone else meanwhile",
    ErrorCode.OPERATION_ACTIVE: "Another operation is running",
    ErrorCode.PROMOTION_BLOCKED: "Promotion is blocked",
    ErrorCode.APPROVAL_REQUIRED: "This needs an approval first",
    ErrorCode.PROVIDER_UNAVAILABLE: "The hosting provider did not answer",
}


def slug(code: str) -> str:
    """A code as it ends the problem's `type`: `promotion_blocked` → `promotion-blocked`."""
    return code.replace("_", "-")


# slug → (status, title): the kinds of problem the API answers with, listed on the reference page.
# The API's own (reading the request, authentication, limits), then every code of the domain.
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request could not be read"),
    "unauthenticated": (401, "Authentication needed"),
    "method-not-allowed": (405, "Method not allowed"),
    "in-progress": (409, "A request with this Idempotency-Key is in progress"),
    "payload-too-large": (413, "The request body is too large"),
    "validation": (422, "The request is not valid"),
    "idempotency-key-reused": (422, "The Idempotency-Key was used for a different request"),
    "rate-limited": (429, "Too many requests"),
    "server-error": (500, "Something went wrong on our side"),
} | {slug(code): (int(code.api_status), DOMAIN_TITLES[code]) for code in ErrorCode}


class FieldProblem(Schema):
    field: str = Field(description="The field at fault: a body field as a dotted path, a query parameter or a header.")
    message: str


class Problem(Schema):
    """An error, as RFC 9457 describes it."""

    type: str = Field(description="A link to this kind of problem on the API reference page.")
    title: str
    status: int
    detail: str = Field(description="What went wrong, in words a person can act on.")
    code: str = Field(
        description="What kind of problem, stable for programs to match: `type` ends in `#problem-<code>` "
        "(with dashes). Domain codes: " + ", ".join(f"`{code}`" for code in ErrorCode) + "."
    )
    errors: list[FieldProblem] | None = Field(None, description="Each field at fault (bad input only).")
    blockers: list[str] | None = Field(None, description="What stops the promotion (blocked promotions only).")


class ApiProblem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        **extra: Any,
    ) -> None:
        self.kind = kind
        self.status = status or PROBLEM_TYPES[kind][0]
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail)

    def response(self) -> HttpResponse:
        return problem_response(
            self.kind, self.detail, errors=self.errors, headers=self.headers, status=self.status, **self.extra
        )


def field_error(field: str, message: str) -> ApiProblem:
    """Bad input in one field (422)."""
    return ApiProblem("validation", f"{field}: {message}", errors=[{"field": field, "message": message}])


def domain_problem(error: DomainError) -> ApiProblem:
    """The one mapping of a domain refusal to a problem document: all of it comes from the code."""
    errors = [{"field": name, "message": message} for name, messages in error.fields.items() for message in messages]
    blockers = error.details.get("blockers") if error.code == ErrorCode.PROMOTION_BLOCKED else None
    return ApiProblem(slug(error.code), error.message, errors=errors or None, blockers=blockers)


def problem_body(kind: str, detail: str, *, status: int | None = None, **extra: Any) -> dict[str, Any]:
    default_status, title = PROBLEM_TYPES[kind]
    body: dict[str, Any] = {
        "type": f"{DOCS_PATH}#problem-{kind}",
        "title": title,
        "status": status or default_status,
        "detail": detail,
        "code": kind.replace("-", "_"),
    }
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


def problem_response(
    kind: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
    **extra: Any,
) -> HttpResponse:
    body = problem_body(kind, detail, status=status, errors=errors, **extra)
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False), status=body["status"], content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


# --- turning Ninja's and the domain's exceptions into problems ----------------------------------------


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """Ninja's error location → the field as the caller spelled it.

    ("body", "payload", "parameters", "shares", 0) → "parameters.shares.0"; ("query", "limit") → "limit";
    ("header", "Idempotency-Key") → "Idempotency-Key". The whole body is "body".
    """
    source, *rest = [str(part) for part in loc] or ["body"]
    if source == "body":
        rest = rest[1:]  # the endpoint's parameter name, which the caller never sees
    return ".".join(rest) or source


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "Unknown field: this endpoint does not take it."
    if error.get("type") == "missing":
        return "This field is required."
    return str(error.get("msg", "Not valid."))


def validation_problem(errors: list[dict[str, Any]]) -> ApiProblem:
    fields = [{"field": _field_name(e.get("loc", ())), "message": _message(e)} for e in errors]
    named = ", ".join(dict.fromkeys(f["field"] for f in fields))
    return ApiProblem("validation", f"Some fields are not valid: {named}.", errors=fields)


def install(api: NinjaAPI) -> None:
    """Answer every exception an endpoint (or Ninja) raises with a problem document."""

    def on_problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
        return exc.response()

    def on_validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        return validation_problem(exc.errors).response()

    def on_authentication(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return unauthenticated("Send an API token as `Authorization: Bearer slw_…`, or sign in.").response()

    def on_throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        wait = max(1, int(exc.wait or 1))
        return problem_response(
            "rate-limited",
            f"This token made too many requests this minute; try again in {wait} s.",
            headers={"Retry-After": str(wait)},
        )

    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        if exc.status_code == 400:  # Ninja could not parse the body
            return problem_response(
                "bad-request",
                "The body is not valid JSON.",
                errors=[{"field": "body", "message": "Send a JSON object (Content-Type: application/json)."}],
            )
        kind = {401: "unauthenticated", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "bad-request"
        )
        return problem_response(kind, str(exc), status=exc.status_code)

    def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return problem_response("not-found", str(exc) or "There is nothing at this address.")

    def on_forbidden(request: HttpRequest, exc: Exception) -> HttpResponse:  # Django's own PermissionDenied
        return problem_response("forbidden", str(exc) or "You may not do this.")

    def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
        return domain_problem(exc).response()

    def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return too_large().response()

    def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        log.exception("API error on %s %s", request.method, request.path, exc_info=exc)
        return problem_response(
            "server-error", "Slipway failed to answer this request; it is logged. Try again, or tell an admin."
        )

    api.add_exception_handler(Exception, on_unexpected)
    api.add_exception_handler(ApiProblem, on_problem)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(AuthenticationError, on_authentication)
    api.add_exception_handler(Throttled, on_throttled)
    api.add_exception_handler(Http404, on_not_found)
    api.add_exception_handler(PermissionDenied, on_forbidden)
    api.add_exception_handler(DomainError, on_domain_error)
    api.add_exception_handler(RequestDataTooBig, on_too_big)


def unauthenticated(detail: str) -> ApiProblem:
    return ApiProblem("unauthenticated", detail, headers={"WWW-Authenticate": 'Bearer realm="slipway"'})


def too_large() -> ApiProblem:
    from django.conf import settings

    return ApiProblem(
        "payload-too-large",
        f"The body is larger than the {settings.API_MAX_BODY_BYTES} bytes the API reads.",
        errors=[{"field": "body", "message": f"At most {settings.API_MAX_BODY_BYTES} bytes."}],
    )
