"""The `slipway` CLI as a pipeline runs it: a real subprocess over real HTTP against a live server, with
real workers running the operations (in-process, `drive()`) and approvers deciding meanwhile."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rq import Queue

from releases.approvals.models import ApprovalRequest
from releases.approvals.workflow import approval_decide
from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorVersionProfile
from strategies.operations.models import Operation, OperationStatus
from tests.cli.conftest import operation_started
from tests.factories import FreezeWindowFactory, production_environment
from tests.strategies.conftest import FAST_CANARY, drive, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

Run = Callable[..., subprocess.CompletedProcess[str]]
Start = Callable[..., subprocess.Popen[str]]
CANARY_OPTIONS = [arg for key, value in FAST_CANARY.items() for arg in ("--option", f"{key}={value}")]


def register(slipway: Run, version: str = "2.0.0", *extra: str) -> dict[str, Any]:
    done = slipway(
        "release", "register", "--app", "checkout", "--version", version, "--commit", "9fceb02",
        "--slot", "staging", "--json", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done
    return json.loads(done.stdout)


def decide(release_id: int, approver: User, verdict: str, comment: str = "") -> None:
    request = ApprovalRequest.objects.get(release_id=release_id, status="pending")
    approval_decide(request=request, actor=approver, verdict=verdict, comment=comment)


@pytest.fixture(autouse=True)
def _queues(rq_queues: dict[str, Queue]) -> None:
    """Registering and deciding enqueue notifications: every test gets the emptied test Redis."""


def test_register_prints_the_release_and_the_same_version_again_is_the_same_release(
    slipway: Run, checkout: Application
) -> None:
    first = slipway(
        "release", "register", "--app", "checkout", "--version", "2.0.0", "--commit", "9fceb02",
        "--build-id", "4711", "--branch", "main", "--notes", "Faster checkout", "--slot", "staging",
        "--idempotency-key", "4711-register",
    )  # fmt: skip
    assert first.returncode == 0, first
    release = Release.objects.get(application=checkout, version="2.0.0")
    assert f"Registered checkout 2.0.0 as release {release.pk} (awaiting_approval)" in first.stdout
    assert release.build_id == "4711" and release.branch == "main" and release.notes == "Faster checkout"

    again = register(slipway)  # another key: the API answers 200 with the release registered before
    assert again["id"] == release.pk and again["status"] == "awaiting_approval" and again["exit_code"] == 0
    quiet = slipway("release", "register", "--app", "checkout", "--version", "2.0.0", "--commit", "9fceb02", "-q")
    assert quiet.stdout.strip() == str(release.pk)
    assert Release.objects.filter(application=checkout, version="2.0.0").count() == 1


def test_the_pipeline_story_register_wait_for_approval_promote_with_a_canary(
    slipway: Run, slipway_start: Start, rq_queues: dict[str, Queue], checkout: Application, approver: User
) -> None:
    release = register(slipway)

    # The pipeline waits; an approver approves in the portal meanwhile.
    waiting = slipway_start(
        "approval", "wait", "--release", str(release["id"]), "--timeout", "30s", "--interval", "0.1s"
    )
    assert "0 of 1 approvals (pending" in waiting.stdout.readline()  # type: ignore[union-attr]
    decide(release["id"], approver, "approve", "Looks good")
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, (out, err)
    assert f"approve by {approver.username}: Looks good" in out
    assert f"Approved: release {release['id']} (2.0.0) may be promoted." in out

    # Promote with a canary and follow it while a worker runs it.
    with_load(checkout)
    promoting = slipway_start(
        "promote", "--app", "checkout", "--version", "2.0.0", "--strategy", "canary", *CANARY_OPTIONS,
        "--reason", "Pipeline run 4711", "--wait", "--interval", "0.1s", "--timeout", "60s",
    )  # fmt: skip
    operation = operation_started(promoting, release_id=release["id"])
    drive(rq_queues["operations"], operation, timeout=40)
    out, err = promoting.communicate(timeout=30)
    assert promoting.returncode == 0, (out, err)
    assert f"Operation {operation.pk} started: canary of checkout 2.0.0 to prod" in out
    assert f"Operation {operation.pk} succeeded." in out
    assert "/" in out and ": succeeded" in out  # the steps, as they finished
    assert operation.parameters["bake_seconds"] == 0.02 and operation.reason == "Pipeline run 4711"
    assert Release.objects.get(pk=release["id"]).status == ReleaseStatus.LIVE

    status = slipway("status", "--app", "checkout")
    assert status.returncode == 0 and f"live: 2.0.0 (release {release['id']})" in status.stdout
    status = slipway("status", "--release", str(release["id"]), "--json")
    assert json.loads(status.stdout)["status"] == "live"

    # And production can be rolled back from the CLI too.
    rolling = slipway_start("rollback", "--app", "checkout", "--reason", "Smoke test", "--wait", "--interval", "0.1s")
    rollback = operation_started(rolling, kind=Operation.Kind.ROLLBACK)
    drive(rq_queues["operations"], rollback)
    out, err = rolling.communicate(timeout=30)
    assert rolling.returncode == 0, (out, err)
    assert Release.objects.get(pk=release["id"]).status != ReleaseStatus.LIVE


def test_a_failing_canary_exits_1_with_the_reason(
    slipway: Run, slipway_start: Start, rq_queues: dict[str, Queue], checkout: Application, approver: User
) -> None:
    release = register(slipway)
    decide(release["id"], approver, "approve")
    with_load(checkout)
    SimulatorVersionProfile.objects.create(application=checkout, version="2.0.0", error_rate=0.4)

    promoting = slipway_start(
        "promote", "--release", str(release["id"]), "--strategy", "canary", *CANARY_OPTIONS,
        "--wait", "--interval", "0.1s", "--json",
    )  # fmt: skip
    drive(rq_queues["operations"], operation_started(promoting, release_id=release["id"]), timeout=40)
    out, err = promoting.communicate(timeout=30)

    assert promoting.returncode == 1, (out, err)
    result = json.loads(out)
    assert result["status"] == OperationStatus.ROLLED_BACK and result["exit_code"] == 1
    assert "Canary analysis failed. Error rate" in result["error"]
    assert "Canary analysis failed. Error rate" in err  # the progress went to stderr with --json


def test_a_rejection_exits_1_with_the_comment(
    slipway_start: Start, slipway: Run, checkout: Application, approver: User
) -> None:
    release = register(slipway)
    waiting = slipway_start("approval", "wait", "--release", str(release["id"]), "--interval", "0.1s")
    waiting.stdout.readline()  # type: ignore[union-attr]
    decide(release["id"], approver, "reject", "Breaks the EU tax rules")
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 1, (out, err)
    assert "reject by" in out and "Breaks the EU tax rules" in err and "was rejected" in err


def test_waiting_too_long_exits_2_and_a_blocked_promotion_exits_3_with_the_blockers(
    slipway: Run, checkout: Application, approver: User
) -> None:
    release = register(slipway)
    waited = slipway("approval", "wait", "--release", str(release["id"]), "--timeout", "0.3s", "--interval", "0.1s")
    assert waited.returncode == 2, waited
    assert "timed out after 0 s waiting for approval" in waited.stderr

    unapproved = slipway("promote", "--release", str(release["id"]), "--strategy", "canary")
    assert unapproved.returncode == 3, unapproved
    assert "blocked: Checkout 2.0.0 is awaiting approval" in unapproved.stderr

    decide(release["id"], approver, "approve")
    FreezeWindowFactory(policy=production_environment(checkout).approval_policy, name="Holiday freeze")
    frozen = slipway("promote", "--release", str(release["id"]), "--strategy", "canary", "--json")
    assert frozen.returncode == 3, frozen
    assert "blocked: " in frozen.stderr and "Holiday freeze" in frozen.stderr.splitlines()[1]
    body = json.loads(frozen.stdout)
    assert body["exit_code"] == 3 and "Holiday freeze" in body["blockers"][0]
    assert Operation.objects.count() == 0


def test_refusals_say_why_and_exit_4_and_usage_errors_exit_64(slipway: Run, checkout: Application) -> None:
    bad_token = slipway("status", "--app", "checkout", "--token", "slw_nothing_nothing")
    assert bad_token.returncode == 4, bad_token
    assert bad_token.stderr.startswith("error: ") and "Traceback" not in bad_token.stderr

    bad_field = slipway("release", "register", "--app", "checkout", "--version", "2.0.0", "--commit", "xyz")
    assert bad_field.returncode == 4, bad_field
    assert "  commit_sha (--commit): " in bad_field.stderr

    missing = slipway("status", "--release", "999999", "--json")
    assert missing.returncode == 4 and json.loads(missing.stdout)["status"] == 404

    no_url = slipway("status", "--app", "checkout", env={"SLIPWAY_URL": ""})
    assert no_url.returncode == 64 and "SLIPWAY_URL" in no_url.stderr
    usage = slipway("approval", "wait", "--release", "1", "--timeout", "soon")
    assert usage.returncode == 64 and "not a duration" in usage.stderr
