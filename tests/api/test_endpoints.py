"""Each endpoint of /api/v1: what it does when asked well, and the problem it answers when not."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from releases.approvals.models import ApprovalRequest, FreezeWindow
from releases.approvals.workflow import approval_decide
from releases.audit.models import AuditEvent
from releases.catalog.models import Release, ReleaseStatus
from strategies.operations.models import Operation, OperationStatus, StepStatus
from tests.api.conftest import FAST_BLUE_GREEN, Call, assert_problem
from tests.factories import (
    ApplicationFactory,
    FreezeWindowFactory,
    OperationFactory,
    ReleaseFactory,
    production_environment,
)

pytestmark = pytest.mark.django_db

REGISTER = {
    "application": "checkout",
    "version": "2.0.0",
    "build_id": "20261126.3",
    "commit_sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "branch": "main",
    "notes": "Faster basket totals.\nAnd a fix.",
    "artifact_url": "https://ci.example.com/builds/20261126.3",
    "deployed_slot": "staging",
}


@pytest.fixture
def registered(call: Call, token: str, checkout) -> dict:
    """2.0.0 registered through the API, deployed to staging, awaiting approval for production."""
    response = call("POST", "releases", token, REGISTER)
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def approved(registered: dict, approver: User) -> Release:
    release = Release.objects.get(pk=registered["id"])
    request = ApprovalRequest.objects.get(release=release)
    approval_decide(request=request, actor=approver, verdict="approve")
    release.refresh_from_db()
    assert release.status == ReleaseStatus.APPROVED
    return release


@pytest.fixture
def operation(call: Call, token: str, approved: Release) -> dict:
    response = call(
        "POST", f"releases/{approved.pk}/promote", token, {"strategy": "blue_green", "parameters": FAST_BLUE_GREEN}
    )
    assert response.status_code == 201, response.content
    return response.json()


# --- applications ------------------------------------------------------------------------------------------


def test_it_lists_applications_with_their_environments_and_live_release(call: Call, token: str, checkout) -> None:
    response = call("GET", "applications", token)

    assert response.status_code == 200
    (item,) = response.json()["items"]
    assert item["slug"] == "checkout"
    assert [e["stage"] for e in item["environments"]] == ["dev", "test", "preprod", "prod"]
    assert item["environments"][-1]["slot"]["name"] == "production"
    assert item["live_release"]["version"] == "1.0.0"
    assert response.json()["next"] is None


def test_it_pages_through_applications_with_a_cursor(call: Call, token: str) -> None:
    for n in range(3):
        ApplicationFactory(slug=f"app-{n}", team="Search" if n else "Payments")

    first = call("GET", "applications?limit=2", token).json()
    second = call("GET", first["next"], token).json()
    search = call("GET", "applications?team=Search", token).json()

    assert [a["slug"] for a in first["items"]] == ["app-2", "app-1"]
    assert "cursor=" in first["next"] and "limit=2" in first["next"]
    assert [a["slug"] for a in second["items"]] == ["app-0"]
    assert second["next"] is None
    assert {a["slug"] for a in search["items"]} == {"app-1", "app-2"}


@pytest.mark.parametrize(
    ("query", "field"),
    [("cursor=bm9wZQ", "cursor"), ("limit=0", "limit"), ("limit=101", "limit"), ("colour=red", "colour")],
)
def test_a_bad_list_query_is_a_422_naming_the_parameter(call: Call, token: str, query: str, field: str) -> None:
    response = call("GET", f"applications?{query}", token)

    assert_problem(response, 422, field=field, kind="validation")


def test_it_reads_an_application(call: Call, token: str, checkout) -> None:
    response = call("GET", "applications/checkout", token)

    assert response.status_code == 200
    assert response.json()["links"] == {
        "self": "/api/v1/applications/checkout",
        "html": "/apps/checkout/",
        "approval": None,
        "operations": None,
    }


def test_an_unknown_application_is_a_404(call: Call, token: str) -> None:
    body = assert_problem(call("GET", "applications/nowhere", token), 404, kind="not-found")

    assert "nowhere" in body["detail"]


def test_an_application_slug_that_cannot_be_one_is_a_422(call: Call, token: str) -> None:
    assert_problem(call("GET", "applications/Not_A_Slug", token), 422, field="slug")


# --- registering --------------------------------------------------------------------------------------------


def test_it_registers_a_release_and_asks_for_approval(call: Call, token: str, checkout, pipeline: User) -> None:
    response = call("POST", "releases", token, REGISTER)

    assert response.status_code == 201
    body = response.json()
    release = Release.objects.get(pk=body["id"])
    assert response["Location"] == f"/api/v1/releases/{release.pk}"
    assert (release.version, release.build_id, release.commit_sha, release.branch) == (
        "2.0.0",
        "20261126.3",
        REGISTER["commit_sha"],
        "main",
    )
    assert release.deployed_slot.name == "staging"
    assert release.created_by == pipeline
    assert body["status"] == ReleaseStatus.AWAITING_APPROVAL  # staging's next stage needs approval
    assert body["links"]["approval"] == f"/api/v1/releases/{release.pk}/approval"
    assert checkout.simulator_slots.get(slot_name="staging").version == "2.0.0"


def test_the_commit_time_is_kept_for_lead_time_and_must_be_a_past_zoned_time(call: Call, token: str, checkout) -> None:
    response = call("POST", "releases", token, {**REGISTER, "committed_at": "2026-11-20T08:15:00+01:00"})

    assert response.status_code == 201 and response.json()["committed_at"] == "2026-11-20T07:15:00Z"
    release = Release.objects.get(pk=response.json()["id"])
    assert release.committed_at.isoformat() == "2026-11-20T07:15:00+00:00"
    naive = {**REGISTER, "version": "2.0.1", "committed_at": "2026-11-20T08:15:00"}
    assert_problem(call("POST", "releases", token, naive), 422, field="committed_at")
    future = {**REGISTER, "version": "2.0.2", "committed_at": "2999-01-01T00:00:00Z"}
    assert_problem(call("POST", "releases", token, future), 422, field="committed_at")


def test_registering_is_audited_with_the_tokens_identity(call: Call, token: str, checkout, pipeline: User) -> None:
    call("POST", "releases", token, REGISTER, headers={"X-Request-ID": "ci-run-77"})

    event = AuditEvent.objects.get(action="release.registered")
    prefix = token.split("_")[1]
    assert event.actor == pipeline
    assert event.actor_label == "ci-pipeline"
    assert event.origin["via"] == "api"
    assert event.origin["token"] == prefix
    assert event.origin["token_name"] == "deploy"
    assert event.origin["request_id"] == "ci-run-77"
    approval_event = AuditEvent.objects.get(action="approval.requested")
    assert approval_event.origin["token"] == prefix


def test_registering_the_same_version_again_returns_the_existing_release(call: Call, token: str, checkout) -> None:
    first = call("POST", "releases", token, REGISTER)
    events = AuditEvent.objects.count()

    again = call("POST", "releases", token, {"application": "checkout", "version": "2.0.0"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert "Location" not in again
    assert Release.objects.filter(version="2.0.0").count() == 1
    assert AuditEvent.objects.count() == events


def test_the_same_version_with_another_commit_is_a_conflict(call: Call, token: str, checkout) -> None:
    call("POST", "releases", token, REGISTER)

    response = call("POST", "releases", token, {**REGISTER, "commit_sha": "abcdef12"})

    body = assert_problem(response, 409, field="commit_sha", kind="conflict")
    assert REGISTER["commit_sha"] in body["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"application": "nowhere"}, "application"),
        ({"deployed_slot": "blue"}, "deployed_slot"),
        ({"colour": "red"}, "colour"),
        ({"version": "1" * 101}, "version"),
        ({"version": "   "}, "version"),
        ({"notes": "x" * 10_001}, "notes"),
        ({"branch": "main\u0000"}, "branch"),
        ({"branch": "main\nrm -rf"}, "branch"),
        ({"commit_sha": "not-hex"}, "commit_sha"),
        ({"artifact_url": "ftp://example.com/a"}, "artifact_url"),
        ({"artifact_url": "javascript:alert(1)"}, "artifact_url"),
        ({"version": 2}, "version"),
    ],
)
def test_bad_registration_input_is_a_422_naming_the_field(
    call: Call, token: str, checkout, change: dict, field: str
) -> None:
    response = call("POST", "releases", token, {**REGISTER, **change})

    body = assert_problem(response, 422, field=field, kind="validation")
    assert field in body["detail"]
    assert not Release.objects.filter(version="2.0.0").exists()


def test_a_missing_field_is_named(call: Call, token: str, checkout) -> None:
    response = call("POST", "releases", token, {"application": "checkout"})

    body = assert_problem(response, 422, field="version")
    assert body["errors"] == [{"field": "version", "message": "This field is required."}]


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        ("{not json", 400, "body"),
        ('{"application": "checkout", "version": NaN}', 400, "body"),
        ('["a list"]', 422, "body"),
        ('{"application": "checkout", "version": "\\ud800"}', 400, "body"),
        ('{"application": "checkout", "version": "1\\u0000"}', 422, "version"),
    ],
    ids=["not-json", "nan", "not-an-object", "lone-surrogate", "nul-in-a-field"],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    call: Call, token: str, checkout, raw: str, status: int, field: str
) -> None:
    assert_problem(call("POST", "releases", token, raw=raw), status, field=field)


@override_settings(API_MAX_BODY_BYTES=1000)
def test_a_body_over_the_limit_is_a_413(call: Call, token: str, checkout) -> None:
    response = call("POST", "releases", token, {**REGISTER, "notes": "x" * 2000})

    assert_problem(response, 413, field="body", kind="payload-too-large")


def test_a_wrong_method_is_a_405_problem(call: Call, token: str) -> None:
    response = call("DELETE", "releases", token)

    assert_problem(response, 405, kind="method-not-allowed")
    assert response["Allow"] == "GET, POST"


# --- reading releases --------------------------------------------------------------------------------------


def test_it_lists_and_filters_releases(call: Call, token: str, registered: dict, checkout) -> None:
    other = ReleaseFactory(version="9.9.9")

    everything = call("GET", "releases", token).json()["items"]
    mine = call("GET", "releases?application=checkout", token).json()["items"]
    waiting = call("GET", "releases?status=awaiting_approval", token).json()["items"]
    by_version = call("GET", "releases?version=9.9.9", token).json()["items"]

    assert {r["id"] for r in everything} == {
        registered["id"],
        other.pk,
        *checkout.releases.values_list("pk", flat=True),
    }
    assert {r["version"] for r in mine} == {"1.0.0", "2.0.0"}
    assert [r["id"] for r in waiting] == [registered["id"]]
    assert [r["id"] for r in by_version] == [other.pk]


def test_an_unknown_status_filter_is_a_422(call: Call, token: str) -> None:
    assert_problem(call("GET", "releases?status=shipped", token), 422, field="status")


def test_a_misspelt_filter_is_refused_rather_than_ignored(call: Call, token: str) -> None:
    body = assert_problem(call("GET", "releases?stauts=live", token), 422, field="stauts")

    assert "application" in body["detail"] and "status" in body["detail"]


def test_it_reads_a_release(call: Call, token: str, registered: dict) -> None:
    response = call("GET", f"releases/{registered['id']}", token)

    assert response.status_code == 200
    assert response.json() == registered | {"status": "awaiting_approval"}


@pytest.mark.parametrize(("path", "status"), [("releases/999999", 404), ("releases/0", 422), ("releases/x", 422)])
def test_a_missing_or_impossible_release_id(call: Call, token: str, path: str, status: int) -> None:
    assert_problem(call("GET", path, token), status)


# --- approval ----------------------------------------------------------------------------------------------


def test_it_reads_a_releases_approval_with_its_decisions(call: Call, token: str, approved: Release) -> None:
    response = call("GET", f"releases/{approved.pk}/approval", token)

    assert response.status_code == 200
    body = response.json()
    assert body["release"] == {"id": approved.pk, "version": "2.0.0", "status": "approved"}
    (request,) = body["requests"]
    assert (request["environment"], request["status"], request["approvals"], request["approvals_required"]) == (
        "prod",
        "approved",
        1,
        1,
    )
    assert request["requested_by"] == "ci-pipeline"
    assert request["decisions"][0]["approver"] == "arun-approver"
    assert request["decisions"][0]["verdict"] == "approve"


def test_it_requests_approval_for_a_release_registered_without_a_slot(call: Call, token: str, checkout) -> None:
    release = call("POST", "releases", token, {"application": "checkout", "version": "2.1.0"}).json()
    assert release["status"] == "registered"
    # Approvers look at the slot before production: it must run the build they are asked about.
    refused = call("POST", f"releases/{release['id']}/approval", token, {"reason": "Hotfix for checkout"})
    assert refused.status_code == 409 and "The staging slot runs 1.0.0, not 2.1.0" in refused.json()["detail"]
    checkout.simulator_slots.filter(slot_name="staging").update(version="2.1.0")  # the pipeline deployed it

    response = call("POST", f"releases/{release['id']}/approval", token, {"reason": "Hotfix for checkout"})

    assert response.status_code == 201, response.content
    assert response.json()["environment"] == "prod"
    assert response.json()["status"] == "pending"
    assert response["Location"] == f"/api/v1/releases/{release['id']}/approval"
    assert call("GET", f"releases/{release['id']}", token).json()["status"] == "awaiting_approval"
    event = AuditEvent.objects.get(action="approval.requested")
    assert (event.reason, event.origin["via"]) == ("Hotfix for checkout", "api")


def test_requesting_approval_takes_an_empty_body(call: Call, token: str, checkout) -> None:
    release = ReleaseFactory(application=checkout, version="2.1.0")
    checkout.simulator_slots.filter(slot_name="staging").update(version="2.1.0")

    assert call("POST", f"releases/{release.pk}/approval", token).status_code == 201


def test_requesting_approval_twice_is_a_conflict(call: Call, token: str, registered: dict) -> None:
    response = call("POST", f"releases/{registered['id']}/approval", token, {})

    body = assert_problem(response, 409, kind="conflict")
    assert "already waits for approval" in body["detail"] or "awaiting approval" in body["detail"]


@pytest.mark.parametrize(
    ("body", "status", "field"), [({"environment": "moon"}, 422, "environment"), ({"environment": "dev"}, 409, None)]
)
def test_requesting_approval_into_a_stage_that_cannot_take_it(
    call: Call, token: str, checkout, body: dict, status: int, field: str | None
) -> None:
    release = ReleaseFactory(application=checkout, version="2.1.0")

    assert_problem(call("POST", f"releases/{release.pk}/approval", token, body), status, field=field)


# --- promoting ---------------------------------------------------------------------------------------------


def test_it_promotes_an_approved_release(call: Call, token: str, approved: Release, pipeline: User) -> None:
    response = call(
        "POST",
        f"releases/{approved.pk}/promote",
        token,
        {"strategy": "blue_green", "parameters": FAST_BLUE_GREEN, "reason": "Nightly train"},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    operation = Operation.objects.get(pk=body["id"])
    assert response["Location"] == f"/api/v1/operations/{operation.pk}"
    assert (operation.kind, operation.strategy, operation.started_by, operation.reason) == (
        "promote",
        "blue_green",
        pipeline,
        "Nightly train",
    )
    assert body["status"] == "pending"
    assert body["release"] == {"id": approved.pk, "version": "2.0.0", "status": "rolling_out"}
    assert [s["kind"] for s in body["steps"]] == ["check_health", "swap", "verify_health", "go_live"]
    event = AuditEvent.objects.get(action="operation.created")
    assert event.origin["via"] == "api" and event.actor == pipeline


def test_promotion_defaults_to_the_applications_strategy(call: Call, token: str, approved: Release) -> None:
    response = call("POST", f"releases/{approved.pk}/promote", token)

    assert response.status_code == 201
    assert response.json()["strategy"] == approved.application.default_strategy


def test_a_promotion_the_policy_blocks_is_a_409_listing_the_blockers(call: Call, token: str, checkout) -> None:
    release = ReleaseFactory(
        application=checkout,
        version="2.0.0",
        status=ReleaseStatus.APPROVED,
        deployed_slot=checkout.slots.get(name="staging"),
    )
    checkout.simulator_slots.filter(slot_name="staging").update(version="2.0.0", healthy=False)
    FreezeWindowFactory(policy=production_environment(checkout).approval_policy, name="Holiday freeze")

    response = call("POST", f"releases/{release.pk}/promote", token, {"strategy": "blue_green"})

    body = assert_problem(response, 409, kind="promotion-blocked")
    blockers = body["blockers"]
    assert len(blockers) == 3
    assert "Holiday freeze" in blockers[0]
    assert "needs 1 approval and none has been asked for" in blockers[1]
    assert "staging slot answers its health check: HTTP 503" in blockers[2]
    assert body["detail"].startswith("Promotion is blocked")
    assert not release.operations.exists()


def test_promoting_a_release_that_is_not_approved_is_a_conflict(call: Call, token: str, registered: dict) -> None:
    response = call("POST", f"releases/{registered['id']}/promote", token, {"strategy": "blue_green"})

    assert "only an approved release can be promoted" in assert_problem(response, 409)["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"strategy": "big_bang"}, "strategy"),
        ({"strategy": "blue_green", "parameters": {"verify_seconds": "soon"}}, "parameters"),
        ({"strategy": "canary", "parameters": {"shares": [50, 5]}}, "parameters"),
        ({"strategy": "blue_green", "parameters": {"warp": 9}}, "parameters"),
        ({"strategy": "blue_green", "reason": "x" * 1001}, "reason"),
        ({"strategy": "blue_green", "when": "now"}, "when"),
    ],
)
def test_bad_promotion_options_are_a_422_naming_the_field(
    call: Call, token: str, approved: Release, body: dict, field: str
) -> None:
    response = call("POST", f"releases/{approved.pk}/promote", token, body)

    assert_problem(response, 422, field=field)
    assert not approved.operations.exists()


# --- operations ---------------------------------------------------------------------------------------------


def test_it_lists_reads_and_filters_operations(call: Call, token: str, operation: dict) -> None:
    other = OperationFactory(status=OperationStatus.SUCCEEDED)

    listed = call("GET", "operations", token).json()["items"]
    of_release = call("GET", f"operations?release={operation['release']['id']}", token).json()["items"]
    succeeded = call("GET", "operations?status=succeeded&kind=promote", token).json()["items"]
    detail = call("GET", f"operations/{operation['id']}", token)

    assert [o["id"] for o in listed] == [other.pk, operation["id"]]
    assert [o["id"] for o in of_release] == [operation["id"]]
    assert [o["id"] for o in succeeded] == [other.pk]
    assert detail.status_code == 200
    step = detail.json()["steps"][0]
    assert set(step) == {
        "position",
        "kind",
        "title",
        "status",
        "attempts",
        "progress",
        "detail",
        "started_at",
        "finished_at",
    }


def test_a_missing_operation_is_a_404(call: Call, token: str) -> None:
    assert_problem(call("GET", "operations/424242", token), 404)
    assert_problem(call("POST", "operations/424242/pause", token), 404)


def test_it_pauses_resumes_and_promotes_an_operation_now(call: Call, token: str, operation: dict) -> None:
    path = f"operations/{operation['id']}"

    paused = call("POST", f"{path}/pause", token, {"reason": "Watching the graphs"})
    resumed = call("POST", f"{path}/resume", token)
    hurried = call("POST", f"{path}/promote-now", token, {})

    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    assert (resumed.status_code, resumed.json()["status"]) == (200, "running")
    assert hurried.status_code == 200
    verify = next(s for s in hurried.json()["steps"] if s["kind"] == "verify_health")
    assert verify["status"] == StepStatus.SKIPPED
    actions = list(
        AuditEvent.objects.filter(object_type="releases.operation", object_id=str(operation["id"]))
        .order_by("id")
        .values_list("action", "reason")
    )
    assert actions[1:] == [
        ("operation.paused", "Watching the graphs"),
        ("operation.resumed", ""),
        ("operation.promoted_now", ""),
    ]


def test_pausing_an_operation_that_is_not_running_is_a_conflict(call: Call, token: str) -> None:
    finished = OperationFactory(status=OperationStatus.SUCCEEDED)

    response = call("POST", f"operations/{finished.pk}/pause", token)

    assert "it cannot be paused" in assert_problem(response, 409)["detail"]


def test_rolling_back_an_operation_needs_a_reason(call: Call, token: str, operation: dict) -> None:
    missing = call("POST", f"operations/{operation['id']}/rollback", token, {})
    blank = call("POST", f"operations/{operation['id']}/rollback", token, {"reason": "  "})

    assert_problem(missing, 422, field="reason")
    assert_problem(blank, 422, field="reason")


def test_it_rolls_an_operation_back(call: Call, token: str, operation: dict) -> None:
    response = call("POST", f"operations/{operation['id']}/rollback", token, {"reason": "Error rate doubled"})

    assert response.status_code == 200
    assert response.json()["status"] == "rolling_back"
    assert "Error rate doubled" in response.json()["error"]


def test_rolling_back_an_application_aborts_its_running_operation(call: Call, token: str, operation: dict) -> None:
    response = call("POST", "applications/checkout/rollback", token, {"reason": "Customers report errors"})

    assert response.status_code == 201
    assert response.json()["id"] == operation["id"]
    assert response.json()["status"] == "rolling_back"


def test_rolling_back_an_application_with_nothing_to_return_to_is_a_conflict(call: Call, token: str, checkout) -> None:
    response = call("POST", "applications/checkout/rollback", token, {"reason": "Why not"})

    assert "no previous release" in assert_problem(response, 409)["detail"]
    assert_problem(call("POST", "applications/nowhere/rollback", token, {"reason": "x"}), 404)
    assert_problem(call("POST", "applications/checkout/rollback", token, {}), 422, field="reason")


# --- audit ---------------------------------------------------------------------------------------------


def test_it_lists_audit_events_with_filters(call: Call, token: str, registered: dict) -> None:
    everything = call("GET", "audit-events?application=checkout", token).json()["items"]
    registrations = call("GET", "audit-events?action=release.", token).json()["items"]
    of_release = call("GET", f"audit-events?object_type=releases.release&object_id={registered['id']}", token).json()[
        "items"
    ]
    future = call("GET", "audit-events?since=2999-01-01T00:00:00", token).json()["items"]

    assert {"release.registered", "approval.requested"} <= {e["action"] for e in everything}
    assert {e["action"] for e in registrations} == {"release.registered", "release.approval_requested"}
    assert all(e["object_id"] == str(registered["id"]) for e in of_release)
    assert future == []
    event = registrations[0]
    assert event["origin"]["via"] == "api" and event["actor"] == "ci-pipeline"


@pytest.mark.parametrize(
    ("query", "field"),
    [("since=yesterday", "since"), ("action=DROP%20TABLE", "action"), ("object_id=%00", "object_id")],
)
def test_a_bad_audit_filter_is_a_422(call: Call, token: str, query: str, field: str) -> None:
    assert_problem(call("GET", f"audit-events?{query}", token), 422, field=field)


def test_the_problem_body_is_json_with_the_problem_content_type(call: Call, token: str) -> None:
    response = call("GET", "releases/999999", token)

    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["status"] == 404


def test_a_frozen_window_is_also_named_in_words(call: Call, token: str, approved: Release) -> None:
    policy = production_environment(approved.application).approval_policy
    FreezeWindowFactory(policy=policy, name="Black Friday", kind=FreezeWindow.Kind.DATED)

    response = call("POST", f"releases/{approved.pk}/promote", token, {"strategy": "blue_green"})

    body = assert_problem(response, 409, kind="promotion-blocked")
    assert body["blockers"] and "Black Friday" in body["blockers"][0]


def test_the_audit_page_says_which_token_did_it(call: Call, token: str, registered: dict, client, viewer: User) -> None:
    client.force_login(viewer)

    page = client.get("/audit/").text

    assert f"<code>{token.split('_')[1]}</code>" in page  # the origin column names the token


def test_an_unknown_api_path_is_a_404_problem_and_a_page_elsewhere(call: Call, token: str, client) -> None:
    assert_problem(call("GET", "no-such-thing", token), 404, kind="not-found")
    page = client.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
