"""Idempotency-Key: a retried pipeline step gets the first answer, never a second release or operation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.api.models import IdempotencyKey
from portal.core import clock
from releases.approvals.models import ApprovalRequest
from releases.approvals.workflow import approval_decide
from releases.audit.models import AuditEvent
from releases.catalog.models import Release, ReleaseStatus
from strategies.operations.models import Operation
from tests.api.conftest import ALL_SCOPES, FAST_BLUE_GREEN, Call, assert_problem, issue
from tests.factories import ReleaseFactory

pytestmark = pytest.mark.django_db

REGISTER = {"application": "checkout", "version": "2.0.0", "deployed_slot": "staging"}
KEY = {"Idempotency-Key": "run-4711-step-register"}


def test_a_retry_with_the_same_key_replays_the_first_answer(call: Call, token: str, checkout) -> None:
    first = call("POST", "releases", token, REGISTER, headers=KEY)
    events = AuditEvent.objects.count()

    retry = call("POST", "releases", token, REGISTER, headers=KEY)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert retry["Location"] == first["Location"]
    assert "Idempotent-Replayed" not in first
    assert Release.objects.filter(version="2.0.0").count() == 1
    assert AuditEvent.objects.count() == events


def test_the_same_key_with_another_body_is_refused(call: Call, token: str, checkout) -> None:
    call("POST", "releases", token, REGISTER, headers=KEY)

    response = call("POST", "releases", token, {**REGISTER, "version": "2.0.1"}, headers=KEY)

    body = assert_problem(response, 422, field="Idempotency-Key", kind="idempotency-key-reused")
    assert "POST /api/v1/releases" in body["detail"]
    assert not Release.objects.filter(version="2.0.1").exists()


def test_the_same_key_on_another_endpoint_is_refused(call: Call, token: str, checkout) -> None:
    release = call("POST", "releases", token, REGISTER, headers=KEY).json()

    response = call("POST", f"releases/{release['id']}/approval", token, {}, headers=KEY)

    assert_problem(response, 422, kind="idempotency-key-reused")


def test_keys_belong_to_their_token(call: Call, token: str, pipeline: User, checkout) -> None:
    other = issue(pipeline, ALL_SCOPES, name="another pipeline")
    call("POST", "releases", token, REGISTER, headers=KEY)

    response = call("POST", "releases", other, REGISTER, headers=KEY)

    assert response.status_code == 200  # not a replay: the version exists, and says so
    assert "Idempotent-Replayed" not in response
    assert IdempotencyKey.objects.filter(key=KEY["Idempotency-Key"]).count() == 2  # one per token


def test_a_failed_first_attempt_leaves_the_key_free_for_the_retry(
    call: Call, token: str, checkout, approver: User
) -> None:
    release = call("POST", "releases", token, REGISTER).json()
    promote = {"strategy": "blue_green", "parameters": FAST_BLUE_GREEN}
    key = {"Idempotency-Key": "run-4711-step-promote"}

    refused = call("POST", f"releases/{release['id']}/promote", token, promote, headers=key)
    approval_decide(request=ApprovalRequest.objects.get(release_id=release["id"]), actor=approver, verdict="approve")
    retried = call("POST", f"releases/{release['id']}/promote", token, promote, headers=key)
    replayed = call("POST", f"releases/{release['id']}/promote", token, promote, headers=key)

    assert refused.status_code == 409
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert replayed.status_code == 201 and replayed["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == retried.json()["id"]
    assert Operation.objects.filter(release_id=release["id"]).count() == 1


@pytest.mark.parametrize("key", ["", "has spaces", "x" * 256, "naïve"])
def test_a_malformed_key_is_a_422_naming_the_header(call: Call, token: str, checkout, key: str) -> None:
    response = call("POST", "releases", token, REGISTER, headers={"Idempotency-Key": key})

    assert_problem(response, 422, field="Idempotency-Key")
    assert not Release.objects.filter(version="2.0.0").exists()


def test_a_key_older_than_a_day_is_forgotten(call: Call, token: str, checkout) -> None:
    call("POST", "releases", token, REGISTER, headers=KEY)
    IdempotencyKey.objects.update(created_at=clock.now() - timedelta(hours=25))

    response = call("POST", "releases", token, {**REGISTER, "version": "2.0.1"}, headers=KEY)

    assert response.status_code == 201
    assert Release.objects.filter(version__in=["2.0.0", "2.0.1"]).count() == 2


def test_a_browser_session_has_its_own_keys(client: Client, release_manager: User, checkout) -> None:
    client.force_login(release_manager)

    answers = [
        client.post("/api/v1/releases", data=REGISTER, content_type="application/json", headers=KEY) for _ in range(2)
    ]

    assert [a.status_code for a in answers] == [201, 201]
    assert answers[1]["Idempotent-Replayed"] == "true"
    row = IdempotencyKey.objects.get()
    assert (row.user, row.token) == (release_manager, None)


def test_control_calls_replay_too(call: Call, token: str, checkout) -> None:
    release = ReleaseFactory(application=checkout, version="2.1.0", status=ReleaseStatus.REGISTERED)
    checkout.simulator_slots.filter(slot_name="staging").update(version="2.1.0")  # where approvers will look
    key = {"Idempotency-Key": "ask-once"}

    first = call("POST", f"releases/{release.pk}/approval", token, {}, headers=key)
    second = call("POST", f"releases/{release.pk}/approval", token, {}, headers=key)

    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert ApprovalRequest.objects.filter(release=release).count() == 1
