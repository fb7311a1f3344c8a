"""Drift in a real browser: production swapped behind Slipway's back appears on the open dashboard without a
reload; the release manager repairs it from a phone; the dashboard clears."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from portal.core.roles import Role
from releases.catalog import services
from releases.catalog.models import Application, ReleaseStatus, SimulatorSlot
from releases.catalog.providers.simulator import SimulatorProvider
from strategies.operations.models import Drift
from strategies.operations.reconcile import reconcile
from tests.factories import ApplicationFactory, ReleaseFactory, UserFactory, add_simulated_site
from tests.strategies.conftest import VERSIONS

pytestmark = [pytest.mark.rq, pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def checkout() -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application, VERSIONS)
    ReleaseFactory(application=application, version="1.0.0", status=ReleaseStatus.LIVE)
    services.slots_refresh(application=application)
    return application


def test_drift_appears_on_the_open_dashboard_and_is_repaired_from_a_phone(
    sign_in: Any, live_server: Any, worker: Any, checkout: Application
) -> None:
    rita = UserFactory(username="rita", roles=[Role.RELEASE_MANAGER, Role.VIEWER])
    dashboard = sign_in(rita)
    expect(dashboard.locator("#dashboard-grid")).to_contain_text("Checkout")
    expect(dashboard.locator(".drift-banner")).to_have_count(0)

    # Someone swaps staging into production with the provider's own tools; the periodic check finds it.
    SimulatorProvider().begin_swap(checkout, "staging", "production").result(timeout=10)
    reconcile(checkout)

    # The dashboard's idle poll (every 10 s) brings the banner and the row's badge, no reload.
    banner = dashboard.locator(".drift-banner")
    expect(banner).to_contain_text("production runs 1.1.0, but the live release is 1.0.0.", timeout=20_000)
    row = dashboard.locator("#dashboard-grid tbody tr").first
    expect(row).to_contain_text("drift")
    expect(row.locator("td").nth(3)).to_contain_text("1.1.0")  # the grid shows what production runs now

    phone = sign_in(rita)
    phone.set_viewport_size(PHONE)
    phone.goto(f"{live_server.url}{checkout.get_absolute_url()}")
    alert = phone.locator("#drift")
    expect(alert).to_contain_text("Production has drifted from what Slipway says")
    expect(alert).to_contain_text("Promotions of Checkout wait until it is resolved.")
    repair = phone.get_by_role("button", name="Repair: put production back as Slipway says")
    box = repair.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert phone.evaluate(
        "document.querySelector('#drift').scrollWidth <= document.querySelector('#drift').clientWidth"
    )

    repair.click()

    phone.wait_for_url(re.compile(r"/operations/\d+/$"))
    expect(phone.locator("main")).to_contain_text("Drift repair")
    expect(phone.locator("main")).to_contain_text("Succeeded", timeout=30_000)
    expect(banner).to_have_count(0, timeout=20_000)  # the worker reconciled after the repair; the poll cleared it
    assert SimulatorSlot.objects.get(application=checkout, slot_name="production").version == "1.0.0"
    drift = Drift.objects.get()
    assert drift.resolved_at is not None and drift.repair is not None
