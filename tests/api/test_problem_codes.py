"""Every problem document carries a stable `code`, and a domain refusal's status, type, fields and
blockers come from its code (releases/api/problems.py), never from its words."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from releases.approvals.models import ApprovalRequest
from releases.approvals.workflow import approval_decide
from releases.catalog.models import Release, ReleaseStatus
from strategies.operations.models import OperationStatus
from tests.api.conftest import FAST_BLUE_GREEN, Call, assert_problem
from tests.factories import FreezeWindowFactory, OperationFactory, ReleaseFactory, production_environment

pytestmark = pytest.mark.django_db

REGISTER = {"application": "checkout", "version": "2.0.0", "deployed_slot": "staging"}


@pytest.fixture
def approved(call: Call, token: str, checkout, approver: User) -> Release:
    response = call("POST", "releases", token, REGISTER)
    assert response.status_code == 201, response.content
    release = Release.objects.get(pk=response.json()["id"])
    approval_decide(request=ApprovalRequest.objects.get(release=release), actor=approver, verdict="approve")
    return release


def test_a_promotion_of_a_release_that_is_not_approved_says_transition_not_allowed(
    call: Call, token: str, checkout
) -> None:
    release = ReleaseFactory(application=checkout, version="2.0.0", deployed_slot=checkout.slots.get(name="staging"))

    body = assert_problem(call("POST", f"releases/{release.pk}/promote", token), 409, kind="transition-not-allowed")

    assert body["code"] == "transition_not_allowed"


def test_a_blocked_promotion_says_promotion_blocked_with_the_services_blockers(
    call: Call, token: str, approved: Release
) -> None:
    FreezeWindowFactory(policy=production_environment(approved.application).approval_policy, name="Code freeze")

    response = call("POST", f"releases/{approved.pk}/promote", token, {"strategy": "blue_green"})

    body = assert_problem(response, 409, kind="promotion-blocked")
    assert body["code"] == "promotion_blocked"
    assert len(body["blockers"]) == 1 and "Code freeze" in body["blockers"][0]
    assert body["detail"] == "Promotion is blocked: " + body["blockers"][0]


def test_a_second_promotion_while_one_runs_says_operation_active(call: Call, token: str, approved: Release) -> None:
    first = call("POST", f"releases/{approved.pk}/promote", token, {"parameters": FAST_BLUE_GREEN})
    assert first.status_code == 201, first.content
    other = ReleaseFactory(
        application=approved.application,
        version="2.0.1",
        status=ReleaseStatus.APPROVED,
        deployed_slot=approved.deployed_slot,
    )

    body = assert_problem(call("POST", f"releases/{other.pk}/promote", token), 409, kind="operation-active")

    assert body["code"] == "operation_active" and "already running" in body["detail"]


def test_bad_strategy_options_are_invalid_naming_the_parameters_from_the_errors_fields(
    call: Call, token: str, approved: Release
) -> None:
    response = call(
        "POST", f"releases/{approved.pk}/promote", token, {"strategy": "canary", "parameters": {"shares": [50, 5]}}
    )

    body = assert_problem(response, 422, kind="invalid")
    assert body["code"] == "invalid"
    assert body["errors"] == [{"field": "parameters", "message": "shares must rise strictly, each from 1 to 100 %."}]
    assert body["detail"].startswith("Invalid strategy options — shares must rise strictly")
    assert not approved.operations.exists()


def test_an_operation_in_the_wrong_state_says_transition_not_allowed(call: Call, token: str) -> None:
    finished = OperationFactory(status=OperationStatus.SUCCEEDED)

    body = assert_problem(call("POST", f"operations/{finished.pk}/pause", token), 409, kind="transition-not-allowed")

    assert body["code"] == "transition_not_allowed"


def test_asking_for_approval_twice_is_a_conflict_with_its_code(call: Call, token: str, checkout) -> None:
    release = call("POST", "releases", token, REGISTER).json()

    body = assert_problem(call("POST", f"releases/{release['id']}/approval", token), 409, kind="conflict")

    assert body["code"] == "conflict"


def test_the_apis_own_problems_carry_a_code_too(call: Call, token: str, read_token: str, checkout) -> None:
    missing = assert_problem(call("GET", "releases/999999", token), 404, kind="not-found")
    unauthenticated = assert_problem(call("GET", "releases", None), 401, kind="unauthenticated")
    forbidden = assert_problem(call("POST", "releases", read_token, REGISTER), 403, kind="forbidden")
    invalid = assert_problem(call("POST", "releases", token, {"application": "checkout"}), 422, kind="validation")

    assert [missing["code"], unauthenticated["code"], forbidden["code"], invalid["code"]] == [
        "not_found",
        "unauthenticated",
        "forbidden",
        "validation",
    ]


def test_the_reference_page_lists_every_code(client, viewer: User) -> None:
    from portal.core.errors import ErrorCode

    client.force_login(viewer)
    page = client.get("/api/v1/docs/").content.decode()

    for code in ErrorCode:
        assert f'id="problem-{code.replace("_", "-")}"' in page
        assert f"<code>{code}</code>" in page


def test_the_openapi_problem_schema_requires_the_code() -> None:
    from portal.api.routing import api

    problem = api.get_openapi_schema()["components"]["schemas"]["Problem"]

    assert "code" in problem["required"]
    assert "promotion_blocked" in problem["properties"]["code"]["description"]
