"""The whole job in a real browser: two approvers approve, the release manager promotes by canary and
watches the dashboard move without reloading, rolls back, and finds it all in the audit trail."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from portal.core.roles import Role
from releases.approvals.models import ApprovalRequestStatus
from releases.catalog import services
from releases.catalog.models import Application, Release, ReleaseStatus, Stage
from releases.intake import services as intake
from tests.factories import ApplicationFactory, ApprovalPolicyFactory, ReleaseFactory, UserFactory, add_simulated_site
from tests.strategies.conftest import VERSIONS, with_load

pytestmark = [pytest.mark.rq, pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def checkout() -> Application:
    """Checkout: 1.0.0 live, on the simulator with synthetic visitors; production needs two approvals."""
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application, VERSIONS)
    with_load(application)
    ApprovalPolicyFactory(
        environment=application.environments.get(stage=Stage.PRODUCTION),
        approvals_required=2,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
    )
    ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    services.slots_refresh(application=application)
    return application


def production_cell(page: Any) -> Any:
    """The Checkout row's production cell (columns: dev, test, pre-production, production)."""
    return page.locator("#dashboard-grid tbody tr").first.locator("td").nth(3)


def test_approve_promote_by_canary_watch_the_dashboard_roll_back_and_read_the_audit_trail(
    sign_in: Any, live_server: Any, worker: Any, checkout: Application
) -> None:
    ann = UserFactory(username="ann", first_name="Ann", roles=[Role.APPROVER])
    bob = UserFactory(username="bob", first_name="Bob", roles=[Role.APPROVER])
    rita = UserFactory(username="rita", roles=[Role.RELEASE_MANAGER, Role.VIEWER])
    release = intake.release_register(
        application=checkout,
        version="1.1.0",
        actor=rita,
        deployed_slot=checkout.slots.get(name="staging"),
        notes="Faster basket",
    )
    request = release.approval_requests.get()

    # Two approvers, each in their own browser. Ann follows the navigation's count to the request.
    page = sign_in(ann)
    expect(page.locator("#nav-approvals")).to_contain_text("1")
    page.locator("#nav-approvals").click()
    page.get_by_role("link", name=re.compile("1.1.0")).first.click()
    page.get_by_label("Comment").fill("Basket checked on staging")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("main")).to_contain_text("Basket checked on staging")

    # Bob decides on the release page itself: a reject without a comment is refused in place, then he approves.
    page = sign_in(bob)
    page.goto(f"{live_server.url}{release.get_absolute_url()}")
    moves: list[str] = []
    page.on("framenavigated", lambda frame: moves.append(frame.url) if frame == page.main_frame else None)
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#approval")).to_contain_text("a rejection needs a comment")
    page.get_by_label(re.compile("Your decision")).fill("Payment page fine")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#approval")).to_contain_text("You approved this request")
    expect(page.locator("#approval")).to_contain_text("Approved")
    assert moves == [], f"deciding reloaded the page: {moves}"
    request.refresh_from_db()
    assert request.status == ApprovalRequestStatus.APPROVED
    release.refresh_from_db()
    assert release.status == ReleaseStatus.APPROVED

    # The release manager promotes from the release page, then watches the dashboard in another tab.
    promote = sign_in(rita)
    expect(production_cell(promote)).to_contain_text("1.0.0")
    promote.goto(f"{live_server.url}{release.get_absolute_url()}")
    loads: list[str] = []  # full document loads; htmx swaps (even with a new URL in the history) are not
    promote.on("load", lambda: loads.append(promote.url))
    promote.get_by_label("Strategy").select_option("canary")
    promote.get_by_label("Canary shares (%)").fill("10, 100")
    promote.get_by_label("Canary bake (seconds)").fill("4")
    promote.get_by_label("Verify production after the swap for (seconds)").fill("2")
    promote.get_by_role("button", name="Preview plan").click()
    expect(promote.locator("main")).to_contain_text("Route 10 % of traffic to staging")
    promote.get_by_role("button", name="Start").click()
    promote.wait_for_url(re.compile(r".*/operations/\d+/$"))
    expect(promote.locator(".message-success")).to_contain_text("Started the promotion of Checkout 1.1.0")
    assert loads == [], f"promoting reloaded the page: {loads}"

    dashboard = promote.context.new_page()
    dashboard.goto(f"{live_server.url}/")
    reloads: list[str] = []
    dashboard.on("framenavigated", lambda frame: reloads.append(frame.url) if frame == dashboard.main_frame else None)
    # The dashboard notices the operation and follows its steps live.
    step = production_cell(dashboard).locator(".cell-step")
    expect(step).to_be_visible(timeout=20_000)
    first_step = step.inner_text()
    expect(step).not_to_have_text(first_step, timeout=20_000)
    expect(production_cell(dashboard)).to_contain_text("1.1.0", timeout=60_000)
    expect(production_cell(dashboard).locator(".cell-operation")).to_have_count(0, timeout=20_000)
    assert reloads == [], f"the dashboard reloaded: {reloads}"
    expect(promote.locator("#operation-status")).to_have_text("Succeeded", timeout=20_000)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.LIVE

    # Something is wrong after all: one click (and a reason) on the application page takes it back.
    promote.goto(f"{live_server.url}{checkout.get_absolute_url()}")
    loads.clear()
    confirmations: list[str] = []
    promote.on("dialog", lambda dialog: (confirmations.append(dialog.message), dialog.accept()))
    promote.get_by_label("Why roll back?").fill("Basket totals are wrong for Irish customers")
    promote.get_by_role("button", name="Roll back production").click()
    promote.wait_for_url(re.compile(r".*/operations/\d+/$"))
    assert loads == [], f"rolling back reloaded the page: {loads}"
    assert confirmations == ["Roll back production of Checkout now? Production returns to the previous release."]
    expect(promote.locator("#operation-status")).to_have_text("Succeeded", timeout=60_000)
    expect(production_cell(dashboard)).to_contain_text("1.0.0", timeout=20_000)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK
    assert Release.objects.get(application=checkout, version="1.0.0").status == ReleaseStatus.LIVE

    # The audit trail tells the story, with who and why.
    promote.goto(f"{live_server.url}/audit/")
    trail = promote.locator("main")
    expect(trail).to_contain_text("release.rolled_back")
    expect(trail).to_contain_text("Basket totals are wrong for Irish customers")
    expect(trail).to_contain_text("approval.decided")
