"""A CI pipeline over real HTTP: register the build it deployed to staging, wait for approval, promote it,
follow the operation until the build is live — with `requests` against a live server and a real worker."""

from __future__ import annotations

import uuid

import pytest
import requests
from django.contrib.auth.models import User
from rq import Queue

from releases.approvals.models import ApprovalRequest
from releases.approvals.workflow import approval_decide
from releases.audit.models import AuditEvent
from releases.catalog.models import ReleaseStatus
from strategies.operations.models import Operation
from tests.api.conftest import ALL_SCOPES, FAST_BLUE_GREEN, issue
from tests.strategies.conftest import drive

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_pipeline_registers_waits_for_approval_promotes_and_sees_it_live(
    live_server: object, rq_queues: dict[str, Queue], checkout: object, pipeline: User, approver: User
) -> None:
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {issue(pipeline, ALL_SCOPES, name='checkout deploy')}"
    base = f"{live_server.url}/api/v1"  # type: ignore[attr-defined]

    def post(path: str, body: dict) -> requests.Response:
        # Every POST with its own key, as a pipeline step would, so a retry never does it twice.
        return api.post(f"{base}{path}", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}, timeout=10)

    # 1. The deploy job put 2.0.0 in staging: register it.
    registered = post(
        "/releases",
        {"application": "checkout", "version": "2.0.0", "commit_sha": "9fceb02", "deployed_slot": "staging"},
    )
    assert registered.status_code == 201, registered.text
    release = registered.json()
    assert release["status"] == "awaiting_approval"

    # 2. Approval was asked for on registration; the pipeline polls it.
    approval = api.get(f"{base}{release['links']['approval'].removeprefix('/api/v1')}", timeout=10).json()
    assert [r["status"] for r in approval["requests"]] == ["pending"]

    # 3. Promoting before approval is refused with the reason.
    early = post(f"/releases/{release['id']}/promote", {"strategy": "blue_green"})
    assert early.status_code == 409
    assert early.headers["Content-Type"] == "application/problem+json"

    # 4. An approver approves in the portal.
    request = ApprovalRequest.objects.get(pk=approval["requests"][0]["id"])
    approval_decide(request=request, actor=approver, verdict="approve")
    assert api.get(f"{base}/releases/{release['id']}", timeout=10).json()["status"] == "approved"

    # 5. Promote, and follow the operation while a worker runs it.
    promoted = post(
        f"/releases/{release['id']}/promote",
        {"strategy": "blue_green", "parameters": FAST_BLUE_GREEN, "reason": "Pipeline run 4711"},
    )
    assert promoted.status_code == 201, promoted.text
    operation_url = promoted.headers["Location"]
    assert api.get(f"{live_server.url}{operation_url}", timeout=10).json()["status"] == "pending"  # type: ignore[attr-defined]

    drive(rq_queues["operations"], Operation.objects.get(pk=promoted.json()["id"]))

    operation = api.get(f"{live_server.url}{operation_url}", timeout=10).json()  # type: ignore[attr-defined]
    assert operation["status"] == "succeeded"
    assert {s["status"] for s in operation["steps"]} == {"succeeded"}
    assert api.get(f"{base}/releases/{release['id']}", timeout=10).json()["status"] == ReleaseStatus.LIVE
    application = api.get(f"{base}/applications/checkout", timeout=10).json()
    assert application["live_release"]["version"] == "2.0.0"

    # 6. The audit trail says the pipeline's token did it.
    prefix = api.headers["Authorization"].split("_")[1]
    by_token = AuditEvent.objects.filter(origin__token=prefix).values_list("action", flat=True)
    assert {"release.registered", "approval.requested", "operation.created", "release.rollout_started"} <= set(by_token)
    events = api.get(f"{base}/audit-events?object_type=releases.operation", timeout=10).json()["items"]
    created = next(e for e in events if e["action"] == "operation.created")
    assert created["origin"]["via"] == "api" and created["origin"]["token"] == prefix
    assert created["actor"] == "ci-pipeline"
