"""Approvals are asked in stage order, and only for a build that runs where approvers will look.

A build on the dev slot cannot be approved straight into production (through the REST API or the service);
a release whose build left the staging slot (a newer build superseded its request) cannot be sent to
approvers again, who would open the slot and judge another build. Each refusal names why and writes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.api.tokens import token_create
from portal.core.errors import DomainError, ErrorCode
from releases.approvals.models import ApprovalRequest, ApprovalRequestStatus
from releases.approvals.workflow import approval_request_open
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release, ReleaseStatus, Stage
from releases.intake.services import release_register
from tests.factories import ApplicationFactory, ReleaseFactory, add_simulated_site
from tests.releases.test_approvals import policy_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop() -> Application:
    application = ApplicationFactory(name="Shop", slug="shop")
    add_simulated_site(application, {"dev": "1.2.0", "test": "1.1.0", "staging": "1.1.0", "production": "1.0.0"})
    ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    policy_for(application, Stage.PRODUCTION, approvals_required=2)
    policy_for(application, Stage.TEST, approvals_required=1)
    return application


def written() -> dict[str, Any]:
    return {
        "requests": list(ApprovalRequest.objects.values_list("pk", "status")),
        "releases": list(Release.objects.order_by("pk").values_list("pk", "status")),
        "audit": AuditEvent.objects.count(),
    }


def test_a_build_on_the_dev_slot_is_not_approved_straight_into_production_through_the_api(
    client: Client, shop: Application, release_manager: User
) -> None:
    build = ReleaseFactory(application=shop, version="1.2.0", deployed_slot=shop.slots.get(name="dev"))
    secret = token_create(actor=release_manager, owner=release_manager, name="ci", scopes=["releases:write"]).secret
    before = written()
    response = client.post(
        f"/api/v1/releases/{build.pk}/approval",
        data={"environment": "prod"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 409, response.content
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == ["environment"]
    assert "its next approval is for Test, not Production" in problem["detail"]
    assert written() == before


def test_the_next_stage_is_asked_and_a_skip_is_refused_by_the_service(shop: Application, release_manager: User) -> None:
    build = ReleaseFactory(application=shop, version="1.2.0", deployed_slot=shop.slots.get(name="dev"))
    with pytest.raises(DomainError) as refused:
        approval_request_open(
            release=build, actor=release_manager, environment=shop.environments.get(stage=Stage.PRODUCTION)
        )
    assert refused.value.code == ErrorCode.CONFLICT and "environment" in refused.value.fields
    request = approval_request_open(release=build, actor=release_manager)
    assert request.environment.stage == Stage.TEST and request.status == ApprovalRequestStatus.PENDING


def test_a_release_whose_build_left_staging_cannot_be_sent_to_approvers_again(
    shop: Application, release_manager: User
) -> None:
    staging = shop.slots.get(name="staging")
    first = release_register(application=shop, version="1.1.1", actor=release_manager, deployed_slot=staging)
    assert first.approval_requests.get().status == ApprovalRequestStatus.PENDING
    release_register(application=shop, version="1.1.2", actor=release_manager, deployed_slot=staging)
    first.refresh_from_db()
    assert first.approval_requests.get().status == ApprovalRequestStatus.SUPERSEDED
    assert first.status == ReleaseStatus.REGISTERED  # its request was superseded; the build is gone from staging
    before = written()
    with pytest.raises(DomainError) as refused:
        approval_request_open(release=first, actor=release_manager)
    assert refused.value.code == ErrorCode.CONFLICT
    assert "The staging slot runs 1.1.2, not 1.1.1: approvers would be shown another build" in str(refused.value)
    assert written() == before


def test_registering_a_build_where_it_does_not_run_opens_no_request(shop: Application, release_manager: User) -> None:
    """On the simulator registering plays the deploy; on a site where the build is elsewhere nothing is asked."""
    shop.simulator_slots.filter(slot_name="staging").delete()  # the slot is not simulated: the deploy is not played
    build = release_register(
        application=shop, version="1.3.0", actor=release_manager, deployed_slot=shop.slots.get(name="staging")
    )
    assert not build.approval_requests.exists()


def test_the_approval_page_checks_what_the_slot_runs_as_it_renders(
    client: Client, shop: Application, release_manager: User, approver: User
) -> None:
    staging = shop.slots.get(name="staging")
    build = release_register(application=shop, version="1.1.1", actor=release_manager, deployed_slot=staging)
    request = build.approval_requests.get()
    client.force_login(approver)
    page = client.get(reverse("approval_detail", args=[request.pk])).content.decode()
    assert 'id="stale-facts"' not in page
    shop.simulator_slots.filter(slot_name="staging").update(version="1.0.9")  # someone deployed over it
    page = client.get(reverse("approval_detail", args=[request.pk])).content.decode()
    assert 'id="stale-facts"' in page
    assert "The staging slot runs 1.0.9, not 1.1.1: approvers would be shown another build" in page
