"""A ring target's production is judged by its own approvals and freeze, at every entry point and while it runs.

Checkout's ring 0 swaps the build into "Checkout internal"'s production. Internal's production needs two
approvals of its own release of the build, and may be frozen; neither may be skipped by promoting Checkout
(the service, the REST API, the promote page), and a freeze that starts while the promotion runs holds the
step that would expose production (Checkout's own routing too) until it ends. Refused changes change
nothing: the rows of both applications and what their slots run are compared before and after.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rq import Queue

from portal.api.tokens import token_create
from portal.core import clock
from portal.core.errors import DomainError, ErrorCode
from portal.core.roles import Role
from releases.approvals.models import ApprovalRequestStatus
from releases.approvals.workflow import approval_decide, approval_request_open
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release, ReleaseStatus, SimulatorSlot
from releases.intake.services import release_register
from strategies.operations import services
from strategies.operations.models import Operation, OperationStatus, Ring, StepStatus
from tests.factories import (
    ApplicationFactory,
    FreezeWindowFactory,
    ReleaseFactory,
    UserFactory,
    add_simulated_site,
    production_environment,
)
from tests.releases.test_approvals import policy_for
from tests.strategies.conftest import FAST_CANARY, VERSIONS, drive, with_load

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FAST = {
    "analysis_minutes": 5,
    "min_requests": 50,
    "min_latency_samples": 20,
    "verify_seconds": 0.05,
    "verify_interval_seconds": 0.02,
}


@pytest.fixture
def internal(checkout: Application) -> Application:
    application = ApplicationFactory(name="Checkout internal", slug="checkout-internal")
    add_simulated_site(application, VERSIONS)  # 1.1.0 staged, 1.0.0 in production
    ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    policy_for(application, approvals_required=2)
    Ring.objects.create(
        application=checkout, position=0, name="Staff", kind=Ring.Kind.TARGETS, bake_seconds=0.02, analyse=False
    ).targets.set([application])
    with_load(checkout)
    with_load(application)
    return application


def internal_release(internal: Application, *, approvals: int) -> Release:
    """Internal's own release of the build, asked for and decided through the approval services."""
    release = ReleaseFactory(application=internal, version="1.1.0", deployed_slot=internal.slots.get(name="staging"))
    requester = UserFactory(roles=[Role.RELEASE_MANAGER])
    request = approval_request_open(release=release, actor=requester)
    for _ in range(approvals):
        approval_decide(request=request, actor=UserFactory(roles=[Role.APPROVER]), verdict="approve", comment="ok")
    release.refresh_from_db()
    return release


def state(*applications: Application) -> dict[str, Any]:
    """What a refused promotion must leave exactly as it was."""
    return {
        "slots": sorted(
            SimulatorSlot.objects.filter(application__in=applications).values_list(
                "application__slug", "slot_name", "version", "routing_percent"
            )
        ),
        "releases": sorted(Release.objects.filter(application__in=applications).values_list("pk", "status")),
        "operations": Operation.objects.count(),
        "audit": AuditEvent.objects.exclude(action="gate.evaluated").count(),
    }


def start(candidate: Release, actor: User, strategy: str = "rings", parameters: dict | None = None) -> Operation:
    return services.operation_start(release=candidate, strategy=strategy, parameters=parameters or FAST, actor=actor)


# --- at the start, through every entry point ---------------------------------------------------------------
def test_a_target_without_its_own_release_is_refused_by_the_service_naming_its_approvals(
    checkout: Application, internal: Application, candidate: Release, release_manager: User
) -> None:
    before = state(checkout, internal)
    with pytest.raises(DomainError) as refused:
        start(candidate, release_manager)
    assert refused.value.code == ErrorCode.PROMOTION_BLOCKED
    (reason,) = refused.value.details["blockers"]
    assert "Checkout internal Production needs 2 approvals of 1.1.0" in reason
    assert "no release 1.1.0" in reason
    assert state(checkout, internal) == before


def test_a_target_awaiting_its_approvals_is_refused_by_the_rest_api(
    client: Client, checkout: Application, internal: Application, candidate: Release, release_manager: User
) -> None:
    internal_release(internal, approvals=1)
    secret = token_create(
        actor=release_manager, owner=release_manager, name="ci", scopes=["read", "operations:write"]
    ).secret
    before = state(checkout, internal)
    response = client.post(
        f"/api/v1/releases/{candidate.pk}/promote",
        data={"strategy": "rings", "parameters": FAST},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 409, response.content
    problem = response.json()
    assert problem["code"] == "promotion_blocked"
    (reason,) = problem["blockers"]
    assert reason.startswith("Checkout internal 1.1.0: Waiting for approval: 1 of 2 so far"), reason
    assert state(checkout, internal) == before


def test_a_frozen_target_is_refused_by_the_promote_page(
    client: Client, checkout: Application, internal: Application, candidate: Release, release_manager: User
) -> None:
    internal_release(internal, approvals=2)
    FreezeWindowFactory(policy=production_environment(internal).approval_policy, name="Staff offsite")
    before = state(checkout, internal)
    client.force_login(release_manager)
    response = client.post(
        reverse("release_promote", args=[candidate.pk]),
        {"strategy": "rings", "action": "start", "verify_seconds": "0.05"},
    )
    assert response.status_code == 409, response.content.decode()[:2000]
    assert "“Staff offsite” freezes Checkout internal Production until" in response.content.decode()
    assert state(checkout, internal) == before


def test_a_target_approved_under_its_own_policy_is_exposed(
    checkout: Application,
    internal: Application,
    candidate: Release,
    release_manager: User,
    rq_queues: dict[str, Queue],
) -> None:
    internal_release(internal, approvals=2)
    operation = drive(rq_queues["operations"], start(candidate, release_manager))
    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert SimulatorSlot.objects.get(application=internal, slot_name="production").version == "1.1.0"


# --- while it runs -------------------------------------------------------------------------------------------
def test_a_freeze_of_the_target_starting_mid_promotion_holds_its_swap_until_the_freeze_ends(
    checkout: Application,
    internal: Application,
    candidate: Release,
    release_manager: User,
    rq_queues: dict[str, Queue],
) -> None:
    internal_release(internal, approvals=2)
    operation = start(candidate, release_manager)  # allowed: nothing is frozen yet
    ends = clock.now() + timedelta(seconds=3)
    FreezeWindowFactory(
        policy=production_environment(internal).approval_policy, name="Incident", starts_at=clock.now(), ends_at=ends
    )
    operation = drive(rq_queues["operations"], operation, until={OperationStatus.RUNNING})
    swap = operation.steps.get(kind="swap", parameters__application=internal.pk)
    assert swap.status == StepStatus.PENDING
    assert "Held: “Incident” freezes Checkout internal Production until" in swap.log
    assert operation.waiting_for.startswith("Held: “Incident”")
    assert operation.wake_at is not None and abs((operation.wake_at - ends).total_seconds()) < 1
    assert SimulatorSlot.objects.get(application=internal, slot_name="production").version == "1.0.0"
    held = AuditEvent.objects.get(action="operation.held")
    assert held.after["environment"] == "Checkout internal Production" and "Incident" in held.reason

    operation = drive(rq_queues["operations"], operation, timeout=30)
    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert SimulatorSlot.objects.get(application=internal, slot_name="production").version == "1.1.0"
    assert AuditEvent.objects.filter(action="operation.held").count() == 1, "one hold, audited once"


def test_a_freeze_of_its_own_production_starting_mid_canary_holds_the_traffic_step(
    checkout: Application, candidate: Release, release_manager: User, rq_queues: dict[str, Queue]
) -> None:
    policy = policy_for(checkout, approvals_required=0)
    with_load(checkout)
    operation = start(candidate, release_manager, "canary", {**FAST_CANARY, "shares": [10, 100]})
    FreezeWindowFactory(policy=policy, name="Year-end", ends_at=clock.now() + timedelta(days=2))
    operation = drive(rq_queues["operations"], operation, until={OperationStatus.RUNNING})
    routing = operation.steps.get(kind="set_traffic", position=2)
    assert routing.status == StepStatus.PENDING and "Held: “Year-end”" in routing.log
    assert SimulatorSlot.objects.get(application=checkout, slot_name="staging").routing_percent == 0
    # A rollback is never held: taking the build away is always allowed.
    services.operation_rollback(operation=operation, actor=release_manager, reason="not this year")
    operation = drive(rq_queues["operations"], operation)
    assert operation.status == OperationStatus.ROLLED_BACK, operation.error


def test_the_demo_pipeline_registers_the_build_on_each_ring_target_so_its_approvers_are_asked(
    checkout: Application, internal: Application, release_manager: User
) -> None:
    release_register(
        application=checkout, version="1.2.0", actor=release_manager, deployed_slot=checkout.slots.get(name="staging")
    )
    staged = Release.objects.get(application=internal, version="1.2.0")
    assert staged.deployed_slot.name == "staging"
    assert SimulatorSlot.objects.get(application=internal, slot_name="staging").version == "1.2.0"
    assert staged.approval_requests.filter(status=ApprovalRequestStatus.PENDING).count() == 1
