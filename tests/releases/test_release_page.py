"""The release page: its timeline, deciding in place, and the running operation with its controls."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.core.roles import Role
from releases.approvals.models import ApprovalRequestStatus
from releases.approvals.workflow import approval_decide
from releases.catalog.models import Application, ReleaseStatus, Stage
from releases.intake import services as intake
from strategies.operations.models import OperationStatus, StepStatus
from tests.factories import (
    ApplicationFactory,
    ApprovalPolicyFactory,
    OperationFactory,
    OperationStepFactory,
    ReleaseFactory,
    UserFactory,
    add_simulated_site,
)

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def checkout() -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application)
    ApprovalPolicyFactory(
        environment=application.environments.get(stage=Stage.PRODUCTION),
        approvals_required=2,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
    )
    return application


@pytest.fixture
def people() -> dict[str, User]:
    return {
        "rita": UserFactory(username="rita", roles=[Role.RELEASE_MANAGER, Role.VIEWER]),
        "ann": UserFactory(username="ann", roles=[Role.APPROVER]),
        "bob": UserFactory(username="bob", roles=[Role.APPROVER]),
    }


def registered(checkout: Application, rita: User) -> object:
    return intake.release_register(
        application=checkout, version="2.0.0", actor=rita, deployed_slot=checkout.slots.get(name="staging")
    )


def decide(client: Client, request_pk: int, **data: str) -> object:
    return client.post(reverse("approval_decide", args=[request_pk]), {"return_to": "release", **data}, headers=HX)


def test_an_approver_decides_in_place_and_the_page_says_so(
    client: Client, checkout: Application, people: dict[str, User]
) -> None:
    release = registered(checkout, people["rita"])
    request = release.approval_requests.get()
    client.force_login(people["ann"])
    page = client.get(release.get_absolute_url()).content.decode()
    assert 'id="release-decision"' in page and 'hx-select="#approval"' in page

    response = decide(client, request.pk, verdict="approve", comment="Looks right on staging")

    assert response.status_code == 302 and response["Location"] == f"{release.get_absolute_url()}#approval"
    after = client.get(release.get_absolute_url()).content.decode()
    assert "You approved this request" in after and 'id="release-decision"' not in after
    assert request.decisions.get().comment == "Looks right on staging"


def test_a_rejection_without_a_comment_comes_back_in_place_with_the_field_error(
    client: Client, checkout: Application, people: dict[str, User]
) -> None:
    release = registered(checkout, people["rita"])
    request = release.approval_requests.get()
    client.force_login(people["ann"])

    response = decide(client, request.pk, verdict="reject", comment="")

    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="approval"' in body and "a rejection needs a comment" in body
    assert not request.decisions.exists()


def test_a_decision_on_a_settled_request_is_a_409_explained_in_place(
    client: Client, checkout: Application, people: dict[str, User]
) -> None:
    release = registered(checkout, people["rita"])
    request = release.approval_requests.get()
    approval_decide(request=request, actor=people["bob"], verdict="reject", comment="No")
    client.force_login(people["ann"])
    request.refresh_from_db()
    assert request.status == ApprovalRequestStatus.REJECTED

    response = decide(client, request.pk, verdict="approve")

    assert response.status_code == 409 and "rejected" in response.content.decode().lower()


def test_the_person_who_registered_it_is_told_why_they_cannot_decide(
    client: Client, checkout: Application, people: dict[str, User]
) -> None:
    rita = people["rita"]
    rita.groups.add(Group.objects.get(name=Role.APPROVER.value))
    release = registered(checkout, rita)
    client.force_login(rita)

    page = client.get(release.get_absolute_url()).content.decode()

    assert 'id="release-decision"' not in page and "separation of duties" in page


def test_the_timeline_tells_the_story_in_order_with_who_and_why(
    client: Client, checkout: Application, people: dict[str, User]
) -> None:
    release = registered(checkout, people["rita"])
    request = release.approval_requests.get()
    approval_decide(request=request, actor=people["ann"], verdict="approve", comment="Fine")
    approval_decide(request=request, actor=people["bob"], verdict="reject", comment="Totals are wrong")
    client.force_login(people["ann"])

    page = client.get(release.get_absolute_url()).content.decode()
    timeline = page[page.index('id="timeline"') :]

    order = ["registered the build", "asked for approval", "decided (approve)", "decided (reject)"]
    positions = [timeline.index(text) for text in order]
    assert positions == sorted(positions)
    assert "Totals are wrong" in timeline and "the release is rejected" in timeline
    assert "<strong>bob</strong>" in timeline


def test_a_running_operation_is_shown_live_with_its_controls_for_release_managers(
    client: Client, checkout: Application, people: dict[str, User], viewer: User
) -> None:
    release = ReleaseFactory(application=checkout, version="3.0.0", status=ReleaseStatus.ROLLING_OUT)
    operation = OperationFactory(release=release, status=OperationStatus.RUNNING)
    OperationStepFactory(operation=operation, position=1, title="Bake 5 % for 300 s", status=StepStatus.WAITING)
    client.force_login(people["rita"])

    page = client.get(release.get_absolute_url()).content.decode()

    assert f"operation #{operation.pk}" in page and "Bake 5 % for 300 s" in page
    assert f'hx-get="{reverse("operation_detail", args=[operation.pk])}' in page  # the steps poll
    assert reverse("operation_promote_now", args=[operation.pk]) in page
    client.force_login(viewer)
    assert (
        reverse("operation_promote_now", args=[operation.pk])
        not in client.get(release.get_absolute_url()).content.decode()
    )


def test_the_release_page_queries_do_not_grow_with_its_history(
    client: Client, checkout: Application, people: dict[str, User]
) -> None:
    release = registered(checkout, people["rita"])
    request = release.approval_requests.get()
    client.force_login(people["ann"])
    with CaptureQueriesContext(connection) as few:
        client.get(release.get_absolute_url())
    approval_decide(request=request, actor=people["bob"], verdict="approve", comment="ok")
    for n in range(5):
        OperationFactory(release=release, status=OperationStatus.FAILED, error=f"attempt {n}")
    with CaptureQueriesContext(connection) as many:
        client.get(release.get_absolute_url())

    assert len(many) <= len(few) + 1, [q["sql"] for q in many]  # +1: her own decision, looked up once it exists
