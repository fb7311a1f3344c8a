"""The API object, the `endpoint` decorator every endpoint is declared with, and the OpenAPI document.

`endpoint()` registers a function with Django Ninja together with what it needs: the scope and role
(checked by `auth` before the body is read), the rate limit, the problem responses, the audit origin
(`via=api` and the token's prefix on every event the call writes) and, for POST, `Idempotency-Key`.
The endpoint itself parses nothing and builds no response: it calls a service and returns the
resource (or a `Reply` with another status), which is serialised through its declared schema.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.params.models import Query as QueryParam
from ninja.parser import Parser

from portal.api import idempotency
from portal.api.auth import RateLimit, auth_for
from portal.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, ApiProblem, Problem, install
from portal.core.roles import Role
from releases.audit import services as audit

API_ROOT = "/api/v1"
READ_ERRORS = frozenset({401, 403, 404, 422, 429})
WRITE_ERRORS = READ_ERRORS | {400, 409, 413, 502}  # 502: the hosting provider did not answer

DESCRIPTION = """\
Slipway's API for pipelines: register the build you deployed to pre-production, ask for approval, wait
for it, promote with a strategy, and follow (or pause, resume, hurry or roll back) the operation.

**Authentication.** Send an API token as `Authorization: Bearer slw_<prefix>_<secret>`; create one on
the API tokens page (it is shown once). A token carries scopes — `read`; `releases:write` (register,
request approval); `operations:write` (promote, pause, resume, promote now, roll back) — and each write
scope includes `read`. A token never does more than its owner's role allows at the time of the call.
The portal's own pages may call the API with the session cookie and the `X-CSRFToken` header.

**Errors** are `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`, `code`, and
for bad input `errors: [{field, message}]`. Match on `code` (stable: `promotion_blocked`,
`operation_active`, `transition_not_allowed`, `invalid`, ...; `type` ends in `#problem-<code>` with
dashes), never on `detail`, whose words may change. Unknown fields are refused.

**Lists** are newest first, `limit` items a page (at most 100); follow `next` for the next page.

**Retries.** Send `Idempotency-Key: <unique value>` with every POST: a retry with the same key and
body gets the first answer again (`Idempotent-Replayed: true`) instead of doing it twice. Registering
a version that exists answers 200 with the existing release (201 when it is new).

**Rate limit.** Each token may make a limited number of calls a minute; beyond it the API answers 429
with `Retry-After`.
"""


class StrictJSONParser(Parser):
    """JSON bodies only as RFC 8259 has them: no NaN or Infinity, and no lone surrogates."""

    def parse_body(self, request: HttpRequest) -> Any:
        def refuse(constant: str) -> Any:
            raise ValueError(f"{constant} is not JSON")

        data = json.loads(request.body, parse_constant=refuse)
        _check_text(data)
        return data


def _check_text(value: Any) -> None:
    """Refuse lone surrogates ("\\ud800") anywhere, keys included: no database or answer can encode them.

    (Control characters such as NUL are refused by each field's pattern, which names the field.)
    """
    if isinstance(value, str):
        value.encode()  # UnicodeEncodeError (a ValueError) on a lone surrogate
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


@dataclass(frozen=True)
class Reply:
    """An endpoint's answer when it is not a plain 200 with the resource."""

    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    method: str
    path: str
    scope: str
    role: Role
    responses: dict[int, type[Schema]]
    summary: str
    tag: str


ENDPOINTS: dict[str, EndpointSpec] = {}


class SlipwayAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: Any = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=API_ROOT if path_prefix is None else path_prefix)
        return _decorate(schema)


api = SlipwayAPI(
    title="Slipway API",
    version="1",
    description=DESCRIPTION,
    openapi_url=None,  # served by portal.api.views (public), beside the server-rendered reference
    docs_url=None,  # Ninja's Swagger page loads from a CDN and runs inline scripts: not under our CSP
    urls_namespace="api-v1",
    throttle=RateLimit(),
    parser=StrictJSONParser(),
)
install(api)


def _render(spec: EndpointSpec, result: dict[str, Any] | Reply) -> HttpResponse:
    reply = result if isinstance(result, Reply) else Reply(result)
    schema = spec.responses[reply.status]
    data = schema.model_validate(reply.body).model_dump(mode="json")
    response = HttpResponse(
        json.dumps(data, ensure_ascii=False), status=reply.status, content_type="application/json; charset=utf-8"
    )
    for name, value in reply.headers.items():
        response[name] = value
    return response


def endpoint(
    method: str,
    path: str,
    *,
    name: str,
    scope: str,
    role: Role,
    response: type[Schema] | dict[int, type[Schema]],
    summary: str,
    tag: str,
) -> Callable[[Callable[..., Any]], Callable[..., HttpResponse]]:
    """Declare an endpoint: `path` under /api/v1, the scope and role it needs, what it answers."""
    responses = response if isinstance(response, dict) else {200: response}

    def decorator(func: Callable[..., Any]) -> Callable[..., HttpResponse]:
        spec = EndpointSpec(name, method, path, scope, role, responses, summary, tag)
        known_query = _query_parameters(func)

        @wraps(func)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            principal = request.auth  # type: ignore[attr-defined]  # set by auth_for's callables
            unknown = sorted(set(request.GET) - known_query)
            if unknown:  # a misspelt filter must not quietly return everything
                takes = ", ".join(sorted(known_query)) or "no query parameters"
                raise ApiProblem(
                    "validation",
                    f"Unknown query parameter: {', '.join(unknown)}. This endpoint takes {takes}.",
                    errors=[{"field": name, "message": "Unknown query parameter."} for name in unknown],
                )

            def execute() -> HttpResponse:
                return _render(spec, func(request, *args, **kwargs))

            with audit.origin(**{**audit.current_origin(), **principal.origin()}):
                if method == "POST":
                    return idempotency.run(request, principal, execute)
                return execute()

        errors = WRITE_ERRORS if method == "POST" else READ_ERRORS
        register = getattr(api, method.lower())
        register(
            path,
            auth=auth_for(scope=str(scope), role=role),
            response={**responses, errors: Problem},
            url_name=name,
            operation_id=name,
            summary=summary,
            description=inspect.getdoc(func),
            tags=[tag],
            openapi_extra={"x-slipway-scope": str(scope), "x-slipway-role": str(role.label)},
        )(view)
        ENDPOINTS[name] = spec
        return view

    return decorator


def _query_parameters(func: Callable[..., Any]) -> set[str]:
    """The query parameters an endpoint takes: the fields of its `Query[Schema]` argument."""
    names: set[str] = set()
    for hint in typing.get_type_hints(func, include_extras=True).values():
        if typing.get_origin(hint) is typing.Annotated:
            model, *markers = typing.get_args(hint)
            if any(isinstance(marker, QueryParam) for marker in markers):
                names |= set(model.model_fields)
    return names


# --- the OpenAPI document ----------------------------------------------------------------------------

_HEADER_DOCS = {
    "Retry-After": "Seconds to wait before trying again.",
    "WWW-Authenticate": "How to authenticate: a Bearer token.",
    "Location": "The URL of the created resource.",
    idempotency.REPLAYED_HEADER: "`true` when this is the stored answer to an earlier request with the same key.",
}


def _header(name: str) -> dict[str, Any]:
    return {"description": _HEADER_DOCS[name], "schema": {"type": "string"}}


def _decorate(schema: dict[str, Any]) -> dict[str, Any]:
    """Add what Ninja does not know: problem+json errors, scopes, headers, idempotency keys."""
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            for status, answer in operation.get("responses", {}).items():
                code = int(status)
                content = answer.get("content", {})
                if code >= 400 and "application/json" in content:
                    content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
                    answer["description"] = _problem_description(code)
                headers = {}
                if code == 429:
                    headers["Retry-After"] = _header("Retry-After")
                if code == 401:
                    headers["WWW-Authenticate"] = _header("WWW-Authenticate")
                if code == 201:
                    headers["Location"] = _header("Location")
                if method == "post" and code < 300:
                    headers[idempotency.REPLAYED_HEADER] = _header(idempotency.REPLAYED_HEADER)
                if headers:
                    answer["headers"] = headers
            for parameter in operation.get("parameters", []):
                # A parameter is absent rather than null: Ninja's Optional becomes "anyOf [T, null]".
                parameter["schema"] = _without_null(parameter.get("schema", {}))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                body["schema"] = _without_null(body["schema"])
            scope = operation.get("x-slipway-scope")
            operation["security"] = [{"TokenAuth": [scope] if scope else []}, {"SessionAuth": []}]
            if method == "post":
                operation.setdefault("parameters", []).append(
                    {
                        "name": idempotency.HEADER,
                        "in": "header",
                        "required": False,
                        "description": "Any unique value (a UUID): retries with the same key and body are answered "
                        f"once. Keys are kept for {settings.API_IDEMPOTENCY_KEY_HOURS} hours.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
                    }
                )
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["TokenAuth"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token, `slw_<prefix>_<secret>`, from the API tokens page.",
    }
    schemes["SessionAuth"] = {
        "type": "apiKey",
        "in": "cookie",
        "name": "sessionid",
        "description": "The portal's own browser session; unsafe methods need the X-CSRFToken header.",
    }
    return schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    options = [option for option in schema.get("anyOf", []) if option != {"type": "null"}]
    if len(options) != 1 or len(options) == len(schema.get("anyOf", [])):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**options[0], **rest}


def _problem_description(code: int) -> str:
    titles = sorted({title for status, title in PROBLEM_TYPES.values() if status == code})
    return "; ".join(titles) or "Problem"
