"""The dashboard: what each cell shows, its live poll (fast while something runs, 304 when unchanged)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.core import clock
from releases.audit.services import audit_record
from releases.catalog.models import Application, ReleaseStatus
from strategies.operations.models import OperationStatus, StepStatus
from tests.factories import (
    ApplicationFactory,
    ApprovalDecisionFactory,
    ApprovalRequestFactory,
    OperationFactory,
    OperationStepFactory,
    ReleaseFactory,
)

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


def poll(client: Client, **headers: str) -> HttpResponse:
    return client.get(reverse("dashboard"), headers={**HX, **headers})


@pytest.fixture
def signed_in(client: Client, viewer: User) -> Client:
    client.force_login(viewer)
    return client


def busy_application(name: str = "Checkout") -> Application:
    """An application with a canary running (step 2 of 3, half baked) and a newer build awaiting approval."""
    application = ApplicationFactory(name=name)
    operation = OperationFactory(
        release__application=application, release__version="2.0.0", status=OperationStatus.RUNNING
    )
    OperationStepFactory(operation=operation, position=1, title="Route 5 % to staging", status=StepStatus.SUCCEEDED)
    OperationStepFactory(
        operation=operation, position=2, title="Bake 5 % for 300 s", status=StepStatus.WAITING, progress=50
    )
    OperationStepFactory(operation=operation, position=3, title="Analyse the canary at 5 %")
    request = ApprovalRequestFactory(release__application=application, release__version="2.1.0", approvals_required=2)
    ApprovalDecisionFactory(request=request)
    return application


def test_a_cell_shows_the_running_operation_its_step_and_pending_approvals(signed_in: Client) -> None:
    busy_application()

    page = signed_in.get(reverse("dashboard")).content.decode()

    assert "Promotion of 2.0.0" in page and "Running" in page
    assert "Step 2: Bake 5 % for 300 s" in page and 'value="50"' in page
    assert "2.1.0 awaits approval" in page and "(1 of 2)" in page
    assert 'hx-trigger="every 2s"' in page and "Live: updates every 2 seconds" in page


def test_an_idle_dashboard_polls_slowly(signed_in: Client) -> None:
    ReleaseFactory(status=ReleaseStatus.LIVE)

    page = signed_in.get(reverse("dashboard")).content.decode()

    assert 'hx-trigger="every 10s"' in page and "Nothing is running" in page


def test_an_unchanged_poll_is_answered_304_and_a_change_is_not(signed_in: Client, viewer: User) -> None:
    application = busy_application()

    first = poll(signed_in)
    assert first.status_code == 200 and first["Cache-Control"] == "private, no-cache"
    assert 'id="dashboard"' in first.content.decode() and "<html" not in first.content.decode()
    etag = first["ETag"]

    with CaptureQueriesContext(connection) as unchanged_queries:
        unchanged = poll(signed_in, **{"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged["ETag"] == etag and not unchanged.content

    step = application.operations.get().steps.get(position=2)
    step.progress = 80
    step.save()
    progressed = poll(signed_in, **{"If-None-Match": etag})
    assert progressed.status_code == 200 and progressed["ETag"] != etag and 'value="80"' in progressed.content.decode()

    with transaction.atomic():
        audit_record(actor=viewer, action="slot.observed", obj=application, application=application)
    assert poll(signed_in, **{"If-None-Match": progressed["ETag"]}).status_code == 200
    # The 304 path reads three aggregates (plus the session and the user), never the grid.
    assert len(unchanged_queries) <= 5, [q["sql"] for q in unchanged_queries]


def test_the_poll_is_per_person_and_per_filter(client: Client, viewer: User, approver: User) -> None:
    busy_application()
    client.force_login(viewer)
    etag = poll(client)["ETag"]

    client.force_login(approver)
    assert poll(client, **{"If-None-Match": etag}).status_code == 200
    client.force_login(viewer)
    filtered = client.get(reverse("dashboard"), {"team": "Nobody"}, headers={**HX, "If-None-Match": etag})
    assert filtered.status_code == 200 and "No application matches these filters" in filtered.content.decode()


def test_the_dashboard_makes_the_same_queries_for_two_or_eight_busy_applications(signed_in: Client) -> None:
    for n in range(2):
        busy_application(f"App {n}")
    with CaptureQueriesContext(connection) as few:
        signed_in.get(reverse("dashboard"))
    for n in range(2, 8):
        busy_application(f"App {n}")
    with CaptureQueriesContext(connection) as many:
        page = signed_in.get(reverse("dashboard"))

    assert page.content.decode().count("awaits approval") == 8
    assert len(many) == len(few), [q["sql"] for q in many]


def test_the_grid_is_rendered_once_per_state_and_shared(client: Client, viewer: User, approver: User) -> None:
    application = busy_application()
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as first:
        client.get(reverse("dashboard"))
    client.force_login(approver)
    with CaptureQueriesContext(connection) as second:
        page = client.get(reverse("dashboard")).content.decode()

    assert "Step 2: Bake 5 % for 300 s" in page
    # Rendering the grid takes four queries or more; the approver's navigation counts their inbox with one
    # query more than the viewer's, so a shared grid shows as at least three queries fewer.
    assert len(second) < len(first) - 2, "the second person's page did not reuse the rendered grid"
    step = application.operations.get().steps.get(position=2)
    step.title = "Bake 5 % for 600 s"
    step.started_at = clock.now()
    step.save()
    assert "Step 2: Bake 5 % for 600 s" in client.get(reverse("dashboard")).content.decode()


def test_the_dashboard_filters_by_team_and_application_name(signed_in: Client) -> None:
    busy_application("Checkout")
    ApplicationFactory(name="Inventory API", team="Supply")

    by_name = signed_in.get(reverse("dashboard"), {"q": "invent"}).content.decode()
    by_team = signed_in.get(reverse("dashboard"), {"team": "Supply", "q": "check"}).content.decode()

    assert "Inventory API" in by_name and "Checkout" not in by_name
    assert 'hx-get="/?q=invent"' in by_name, "the poll keeps the filter"
    assert "No application matches these filters" in by_team
