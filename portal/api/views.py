"""Pages around the API: the OpenAPI document, its human-readable reference, and the API tokens page."""

from __future__ import annotations

import json
import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.api import tokens
from portal.api.auth import IMPLIED_SCOPES, SCOPE_ROLES
from portal.api.forms import TokenCreateForm, TokenRevokeForm
from portal.api.models import ApiToken
from portal.api.problems import PROBLEM_TYPES, problem_response
from portal.api.routing import API_ROOT, api
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role, has_role

CODE_SUMMARIES = {str(code): code.summary for code in ErrorCode}


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The site's 404 (portal/urls.py `handler404`): a problem document under /api/, the page elsewhere."""
    if request.path.startswith(f"{API_ROOT}/"):
        return problem_response("not-found", f"There is no endpoint {request.path}; see {API_ROOT}/docs/.")
    return defaults.page_not_found(request, exception)


@login_not_required
@require_GET
def openapi_json(request: HttpRequest) -> HttpResponse:
    """The OpenAPI 3.1 document, public like any API description (it holds no data)."""
    return JsonResponse(api.get_openapi_schema(), json_dumps_params={"ensure_ascii": False})


# --- the reference page -----------------------------------------------------------------------------------

EXAMPLE_VALUES: dict[str, Any] = {
    "application": "checkout-web",
    "version": "2.14.0",
    "build_id": "20261126.3",
    "commit_sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "branch": "main",
    "notes": "Faster basket totals.",
    "artifact_url": "https://ci.example.com/builds/20261126.3",
    "deployed_slot": "staging",
    "strategy": "canary",
    "parameters": {"shares": [5, 25, 100], "bake_seconds": 300},
    "reason": "Error rate doubled after the swap",
    "environment": "prod",
    "slug": "checkout-web",
    "release_id": "42",
    "operation_id": "17",
}
EXAMPLE_SKIP = {"notes"}  # kept out of the one-line examples


def _inline_markdown(text: str) -> SafeString:
    """`code` and **bold** of the API description, as HTML paragraphs (everything else escaped)."""
    paragraphs = []
    for block in text.strip().split("\n\n"):
        html = str(escape(" ".join(block.split())))
        html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
        html = re.sub(r"`(.+?)`", r"<code>\1</code>", html)
        paragraphs.append(f"<p>{html}</p>")
    return mark_safe("\n".join(paragraphs))  # noqa: S308 - built from escaped text above


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        return document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def _type_of(schema: dict[str, Any], document: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        kinds = [_type_of(s, document) for s in schema["anyOf"]]
        return " or ".join(dict.fromkeys(kinds))
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {_type_of(schema.get('items', {}), document)}"
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type", "any JSON")
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    for option in [schema, *schema.get("anyOf", [])]:
        if "minLength" in option and option["minLength"] > 0:
            parts.append(f"at least {option['minLength']} character{'s' if option['minLength'] != 1 else ''}")
        if "maxLength" in option:
            parts.append(f"at most {option['maxLength']} characters")
        if "minimum" in option:
            parts.append(f"≥ {option['minimum']}")
        if "maximum" in option:
            parts.append(f"≤ {option['maximum']}")
    if "default" in schema and schema["default"] not in (None, "", {}, []):
        parts.append(f"default {schema['default']}")
    return ", ".join(parts)


def _fields(schema: dict[str, Any], document: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, document)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": _type_of(details, document),
            "required": name in required,
            "description": details.get("description", ""),
            "constraints": _constraints(details),
        }
        for name, details in schema.get("properties", {}).items()
    ]


def _curl(method: str, path: str, body_fields: list[dict[str, Any]], base: str) -> str:
    url = re.sub(r"\{(\w+)\}", lambda m: str(EXAMPLE_VALUES.get(m.group(1), m.group(1))), path)
    lines = [f'curl -sS -X {method} "{base}{url}" \\', '  -H "Authorization: Bearer $SLIPWAY_TOKEN"']
    if method == "POST":
        body = {
            f["name"]: EXAMPLE_VALUES[f["name"]]
            for f in body_fields
            if f["name"] in EXAMPLE_VALUES and f["name"] not in EXAMPLE_SKIP
        }
        lines[-1] += " \\"
        lines += ['  -H "Idempotency-Key: $(uuidgen)" \\', '  -H "Content-Type: application/json" \\']
        lines.append(f"  -d '{json.dumps(body, ensure_ascii=False)}'")
    return "\n".join(lines)


def reference(document: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """The document's operations, grouped by tag, as the reference page lists them."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            body_schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            body = _fields(body_schema, document) if body_schema else []
            parameters = [
                {
                    "name": p["name"],
                    "in": p["in"],
                    "required": p.get("required", False),
                    "type": _type_of(p.get("schema", {}), document),
                    "description": p.get("description") or p.get("schema", {}).get("description", ""),
                    "constraints": _constraints(p.get("schema", {})),
                }
                for p in operation.get("parameters", [])
            ]
            responses = []
            for status, answer in sorted(operation.get("responses", {}).items()):
                content = answer.get("content", {})
                media, schema = next(iter(content.items()), ("", {}))
                responses.append(
                    {
                        "status": status,
                        "description": answer.get("description", ""),
                        "media": media,
                        "schema": _type_of(schema.get("schema", {}), document) if schema else "",
                    }
                )
            groups.setdefault((operation.get("tags") or ["Other"])[0], []).append(
                {
                    "id": operation["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": _inline_markdown(operation.get("description", "")),
                    "scope": operation.get("x-slipway-scope", ""),
                    "role": operation.get("x-slipway-role", ""),
                    "parameters": parameters,
                    "body": body,
                    "body_required": operation.get("requestBody", {}).get("required", False),
                    "responses": responses,
                    "curl": _curl(method.upper(), path, body, base),
                }
            )
    order = ["Releases", "Approvals", "Operations", "Applications", "Audit"]
    return [
        {"tag": tag, "operations": groups[tag]}
        for tag in sorted(groups, key=lambda t: order.index(t) if t in order else len(order))
    ]


def _schemas(document: dict[str, Any]) -> list[dict[str, Any]]:
    shown = sorted(
        name
        for name in document.get("components", {}).get("schemas", {})
        if name.endswith("Out") or name in {"Problem", "FieldProblem", "Links"}
    )
    return [{"name": name, "fields": _fields({"$ref": f"#/{name}"}, document)} for name in shown]


@require_GET
def api_docs(request: HttpRequest) -> HttpResponse:
    """The API reference, rendered on the server from the OpenAPI document (any signed-in person)."""
    document = api.get_openapi_schema()
    base = request.build_absolute_uri("/").rstrip("/")
    context = {
        "document": document,
        "description": _inline_markdown(document["info"].get("description", "")),
        "groups": reference(document, base),
        "schemas": _schemas(document),
        "scopes": [
            {
                "scope": scope.value,
                "label": scope.label,
                "includes": sorted(IMPLIED_SCOPES[scope] - {scope.value}),
                "role": SCOPE_ROLES[scope].label,
            }
            for scope in ApiToken.Scope
        ],
        "problems": [
            {"kind": kind, "code": kind.replace("-", "_"), "status": status, "title": title, "summary": summary}
            for kind, (status, title) in PROBLEM_TYPES.items()
            for summary in [CODE_SUMMARIES.get(kind.replace("-", "_"), "")]
        ],
        "api_root": API_ROOT,
        "base": base,
    }
    return render(request, "api/docs.html", context)


# --- API tokens -----------------------------------------------------------------------------------------


def _tokens_for(user: Any) -> Any:
    """Your own tokens; an admin sees everyone's (to manage service accounts' tokens)."""
    queryset = ApiToken.objects.select_related("owner").order_by("-created_at", "-id")
    return queryset if has_role(user, Role.ADMIN) else queryset.filter(owner=user)


@never_cache
def api_tokens(request: HttpRequest) -> HttpResponse:
    """List tokens and create one; a new token's secret is on this one response only (never stored)."""
    is_admin = has_role(request.user, Role.ADMIN)
    form = TokenCreateForm(request.POST if request.method == "POST" else None, may_choose_owner=is_admin)
    issued = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            owner = form.cleaned_data.get("owner") or request.user
            try:
                issued = tokens.token_create(
                    actor=request.user,
                    owner=owner,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.expires_at(),
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
                status = 400
            else:
                form = TokenCreateForm(may_choose_owner=is_admin)
        else:
            status = 400
    context = {
        "form": form,
        "issued": issued,
        "tokens": _tokens_for(request.user),
        "is_admin": is_admin,
        "docs_url": f"{API_ROOT}/docs/",
    }
    response = render(request, "api/tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page may carry a token's secret
    return response


def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Confirm (GET) and revoke (POST) a token: yours, or anyone's for an admin."""
    token = get_object_or_404(_tokens_for(request.user), pk=token_id)
    form = TokenRevokeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            tokens.token_revoke(token=token, actor=request.user, reason=form.cleaned_data["reason"])
        except DomainError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Revoked the token “{token.name}” ({token.prefix}); it no longer works.")
        return redirect("api_tokens")
    return render(request, "api/token_revoke.html", {"token": token, "form": form})
