"""One error type with stable codes, mapped once: the codes' statuses, the pages' middleware, and no
code anywhere deciding by an error's words."""

from __future__ import annotations

import ast
import pickle
import re
from http import HTTPStatus
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.template.loader import get_template
from django.test import Client

from portal.api.problems import DOMAIN_TITLES, PROBLEM_TYPES, domain_problem
from portal.core.errors import DomainError, ErrorCode
from portal.errors_middleware import TEMPLATES
from strategies.flags.definitions import DefinitionError

ROOT = Path(__file__).resolve().parents[2]

# --- the codes ------------------------------------------------------------------------------------------

EXPECTED_STATUS = {
    ErrorCode.INVALID: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.APPROVAL_NOT_ELIGIBLE: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TRANSITION_NOT_ALLOWED: 409,
    ErrorCode.CONCURRENT_CHANGE: 409,
    ErrorCode.OPERATION_ACTIVE: 409,
    ErrorCode.PROMOTION_BLOCKED: 409,
    ErrorCode.APPROVAL_REQUIRED: 409,
    ErrorCode.PROVIDER_UNAVAILABLE: 502,
}


def test_every_code_has_the_status_its_kind_of_refusal_needs() -> None:
    assert {code: int(code.status) for code in ErrorCode} == EXPECTED_STATUS


def test_bad_input_is_400_on_pages_and_422_in_the_api_and_the_rest_the_same_in_both() -> None:
    assert ErrorCode.INVALID.api_status == HTTPStatus.UNPROCESSABLE_CONTENT
    assert all(code.api_status == code.status for code in ErrorCode if code != ErrorCode.INVALID)


def test_codes_are_their_own_lowercase_values_and_each_says_what_to_do() -> None:
    for code in ErrorCode:
        assert code == code.value and re.fullmatch(r"[a-z_]+", code)
        assert code.summary.endswith(".")


def test_a_domain_error_keeps_its_message_fields_and_details() -> None:
    error = DomainError(ErrorCode.INVALID, "A release needs a version.", fields={"version": "Required."}, hint=1)

    assert str(error) == error.message == "A release needs a version."
    assert error.fields == {"version": ["Required."]}
    assert error.details == {"hint": 1}
    assert error.status == HTTPStatus.BAD_REQUEST and not error.forbidden


def test_a_domain_error_needs_a_code() -> None:
    with pytest.raises(TypeError):
        DomainError("A release needs a version.", "")  # type: ignore[arg-type]


def test_a_domain_error_survives_pickling_with_its_code_and_fields() -> None:
    error = DomainError(ErrorCode.PROMOTION_BLOCKED, "Promotion is blocked: frozen.", blockers=["frozen"])

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object

    assert (copy.code, copy.message, copy.details) == (error.code, error.message, {"blockers": ["frozen"]})


def test_a_definition_error_is_an_invalid_domain_error_naming_its_fields() -> None:
    error = DefinitionError({"key": ["Taken."], "variants": []})

    assert isinstance(error, DomainError) and isinstance(error, ValueError)
    assert error.code == ErrorCode.INVALID
    assert error.fields == error.errors == {"key": ["Taken."]}
    assert str(error) == "key: Taken."


def test_every_status_a_code_has_has_a_page_template() -> None:
    for code in ErrorCode:
        assert get_template(TEMPLATES[code.status]) is not None


def test_every_code_is_a_documented_problem_type_of_the_api() -> None:
    for code in ErrorCode:
        assert PROBLEM_TYPES[code.replace("_", "-")] == (int(code.api_status), DOMAIN_TITLES[code])


def test_the_api_maps_fields_and_blockers_from_the_error_not_its_words() -> None:
    invalid = domain_problem(DomainError(ErrorCode.INVALID, "Bad.", fields={"strategy": ["Unknown.", "Pick one."]}))
    blocked = domain_problem(DomainError(ErrorCode.PROMOTION_BLOCKED, "Anything at all.", blockers=["frozen"]))

    assert (invalid.status, invalid.kind) == (422, "invalid")
    assert invalid.errors == [
        {"field": "strategy", "message": "Unknown."},
        {"field": "strategy", "message": "Pick one."},
    ]
    assert (blocked.status, blocked.kind, blocked.extra["blockers"]) == (409, "promotion-blocked", ["frozen"])


# --- no decision by an error's words --------------------------------------------------------------------

MESSAGE_MATCHING = re.compile(
    r"""in\s+str\((exc|error|e)\)|str\((exc|error|e)\)\s*(==|\.startswith|\.endswith)|\.message\b\s*(==|!=|\.startswith)"""
    r"""|\bin\s+(exc|error)\.message\b|BLOCKED_PREFIX"""
)


@pytest.mark.parametrize("package", ["portal", "releases", "strategies"])
def test_no_code_decides_by_matching_an_error_message(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if MESSAGE_MATCHING.search(line)
    ]
    assert found == []


def test_every_domain_error_raised_in_our_code_names_its_code() -> None:
    uncoded = []
    for package in ["portal", "releases", "strategies"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DomainError":
                    first = node.args[0] if node.args else None
                    named = isinstance(first, ast.Attribute) and getattr(first.value, "id", None) == "ErrorCode"
                    if not named:
                        uncoded.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert uncoded == []


def test_the_core_errors_module_imports_nothing_of_the_project() -> None:
    source = (ROOT / "portal/core/errors.py").read_text()
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, re.M)
    assert [name for name in imports if name.split(".")[0] in {"portal", "releases", "strategies", "django"}] == []


# --- the pages -------------------------------------------------------------------------------------------

project_and_test_urls = pytest.mark.urls("tests.portal.error_urls")


@pytest.fixture
def signed_in(client: Client, viewer: User) -> Client:
    client.force_login(viewer)
    return client


@project_and_test_urls
@pytest.mark.django_db
@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_a_refusal_no_view_caught_is_the_page_of_its_code_not_a_500(signed_in: Client, code: ErrorCode) -> None:
    response = signed_in.get(f"/test-errors/{code}/")

    assert response.status_code == code.status
    page = response.content.decode()
    assert f"Refused with {code}." in page
    assert f'data-code="{code}"' in page
    assert "<html" in page  # the whole page, with the site's layout


@project_and_test_urls
@pytest.mark.django_db
def test_a_bad_input_page_names_the_fields(signed_in: Client) -> None:
    page = signed_in.get("/test-errors/invalid/").content.decode()

    assert "version: Give a version." in page


@project_and_test_urls
@pytest.mark.django_db
@pytest.mark.parametrize("code", [ErrorCode.INVALID, ErrorCode.CONFLICT, ErrorCode.FORBIDDEN], ids=str)
def test_an_htmx_request_gets_only_the_problem_part(signed_in: Client, code: ErrorCode) -> None:
    response = signed_in.get(f"/test-errors/{code}/", headers={"HX-Request": "true"})

    assert response.status_code == code.status
    page = response.content.decode()
    assert page.lstrip().startswith('<article class="problem" id="problem"')
    assert f"Refused with {code}." in page and "<html" not in page


@project_and_test_urls
@pytest.mark.django_db
def test_a_missing_role_is_the_403_page_naming_the_role(client: Client, no_role_user: User) -> None:
    client.force_login(no_role_user)

    response = client.get("/test-errors/conflict/")

    assert response.status_code == 403
    page = response.content.decode()
    assert "This needs the viewer role" in page and 'data-code="forbidden"' in page
