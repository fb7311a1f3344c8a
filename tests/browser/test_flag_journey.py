"""Feature flags in a real browser (issue 8, "Done when"): a release manager creates a toggle, dark-launches it to
a cohort, watches it, widens it, rolls it out and kills it; a real OpenFeature client (the Python SDK with its
OFREP provider) gets the right values from the live server at every step. The second journey puts the launch
through an approver.

With SLIPWAY_SCREENSHOTS=1 the first journey also saves docs/screenshots/flags-launch.png and flags-flag.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason
from playwright.sync_api import expect

from portal.core import clock
from portal.core.roles import Role
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Environment, Stage
from strategies.flags import changes, evaluation, services
from strategies.flags.models import DarkLaunch, Flag, FlagChangeRequest, Segment
from tests.conftest import TEST_REDIS_DB
from tests.factories import ApplicationFactory, ApprovalPolicyFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
STAFF = EvaluationContext("alice", {"email": "alice@example.com"})
CUSTOMER = EvaluationContext("carl", {"email": "carl@customer.org"})
# A population outside the cohort: nobody on @example.com, none of the users the cohort names.
EVERYONE = [EvaluationContext(f"user-{i}", {"email": f"user-{i}@customer.org"}) for i in range(200)]


@pytest.fixture(autouse=True)
def clean_flag_state() -> Iterator[None]:
    """No flag set cached in this process from another test, and an empty test Redis (exposures, rate windows)."""
    connection = evaluation._connection()
    assert connection.connection_pool.connection_kwargs["db"] == TEST_REDIS_DB
    evaluation.forget()
    connection.flushdb()
    yield
    evaluation.forget()
    connection.flushdb()


@pytest.fixture
def openfeature(live_server: Any) -> Iterator[Any]:
    """`openfeature(key)` → an OpenFeature client whose OFREP provider asks the live server with that key."""

    def client_for(key: str) -> Any:
        api.set_provider(OFREPProvider(live_server.url, headers_factory=lambda: {"Authorization": f"Bearer {key}"}))
        return api.get_client()

    yield client_for
    api.shutdown()


def served_on(client: Any, flag: str, contexts: list[EvaluationContext]) -> int:
    """How many of `contexts` the boolean flag serves true, each asked over OFREP."""
    return sum(client.get_boolean_value(flag, False, context) for context in contexts)


def report_events(live_server: Any, environment: Environment, key: str, events: list[dict[str, Any]]) -> None:
    response = requests.post(
        f"{live_server.url}/flags/api/v1/environments/{environment.pk}/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert (response.status_code, response.json()) == (202, {"accepted": len(events)})


def outcomes(flag: str, variant: str, count: int, errors: int, latency_ms: float) -> list[dict[str, Any]]:
    return [
        {"flag": flag, "variant": variant, "ok": i >= errors, "latency_ms": latency_ms + i % 7} for i in range(count)
    ]


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    """For docs/screenshots/, only when asked (SLIPWAY_SCREENSHOTS=1): a test run leaves the docs alone."""
    if os.environ.get("SLIPWAY_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def test_create_a_toggle_dark_launch_it_watch_widen_roll_out_and_kill_it(
    sign_in: Any, live_server: Any, openfeature: Any
) -> None:
    checkout = ApplicationFactory(name="Checkout", slug="checkout")
    production = checkout.environments.get(stage=Stage.PRODUCTION)
    rita = UserFactory(username="rita", roles=[Role.RELEASE_MANAGER, Role.VIEWER])
    page = sign_in(rita)

    # A boolean toggle through the form: a bad key is refused in the page, the rest of the input kept.
    page.goto(f"{live_server.url}/apps/checkout/flags/")
    expect(page.locator("#flags-prod")).to_contain_text("Flag changes apply at once.")
    page.get_by_role("link", name="New flag").click()
    page.get_by_label("Environment").select_option(str(production.pk))
    page.get_by_label("Key").fill("new checkout!")
    page.get_by_label("Description").fill("The one-page checkout")
    expect(page.get_by_label("Default variant")).to_have_value("off")
    page.get_by_role("button", name="Create the flag").click()
    expect(page.get_by_role("alert")).to_contain_text("Use letters, digits, dots, hyphens and underscores")
    expect(page.get_by_label("Description")).to_have_value("The one-page checkout")
    expect(page.get_by_label("Environment")).to_have_value(str(production.pk))
    assert not Flag.objects.exists()
    page.get_by_label("Key").fill("new-checkout")
    page.get_by_role("button", name="Create the flag").click()
    page.wait_for_url(re.compile(r".*/apps/checkout/flags/\d+/$"))
    expect(page.locator(".message-success")).to_contain_text("Created the flag new-checkout in Production.")
    flag = Flag.objects.get(key="new-checkout")
    assert (flag.environment, flag.default_variant, flag.enabled) == (production, "off", True)
    flag_url = page.url

    # The cohort: internal staff, by e-mail address.
    page.goto(f"{live_server.url}/apps/checkout/flags/")
    page.get_by_role("link", name="New segment").click()
    page.get_by_label("Key").fill("staff")
    page.get_by_label("Name").fill("Internal staff")
    page.get_by_label("Match").select_option("any")
    page.get_by_label("Condition 1: attribute").fill("email")
    page.get_by_label("Condition 1: operator").select_option("ends_with")
    page.get_by_label("Condition 1: value").fill("@example.com")
    page.get_by_role("button", name="Save the segment").click()
    expect(page.locator(".message-success")).to_contain_text("Saved the segment Internal staff.")
    expect(page.locator("#segments")).to_contain_text("1 condition (any)")

    # An API key for the backend, shown once.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Environment").select_option(str(production.pk))
    page.get_by_label("Name").fill("checkout backend")
    page.get_by_role("button", name="Issue the key").click()
    issued = page.locator("#issued-key")
    expect(issued).to_contain_text("it is not shown again")
    key = issued.locator("pre code").first.inner_text().strip()
    assert key.startswith("slwf_")
    expect(page.locator("#flag-keys")).to_contain_text("checkout backend")
    client = openfeature(key)
    assert client.get_boolean_value("new-checkout", True, STAFF) is False  # the default, before any launch

    # Dark-launch the toggle to the staff, from the flag page.
    page.goto(flag_url)
    page.get_by_role("button", name="Dark-launch…").click()
    expect(page.get_by_label("Variant")).to_have_value("on")
    page.get_by_label("Internal staff (staff)").check()
    page.get_by_label("Reason").fill("Staff try the new checkout first")
    page.get_by_role("button", name="Start the dark launch").click()
    page.wait_for_url(re.compile(r".*/apps/checkout/launches/\d+/$"))
    expect(page.locator(".message-success")).to_contain_text("Dark-launched new-checkout = on to segment staff.")
    launch = DarkLaunch.objects.get(flag=flag)
    launch_url = page.url

    details = client.get_boolean_details("new-checkout", False, STAFF)
    assert (details.value, details.variant, details.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert client.get_boolean_value("new-checkout", True, CUSTOMER) is False

    # The application reports outcomes: the launched variant errs ten times as often.
    report_events(
        live_server,
        production,
        key,
        outcomes("new-checkout", "on", 100, 20, 180.0) + outcomes("new-checkout", "off", 100, 2, 120.0),
    )
    page.goto(launch_url)
    expect(page.locator("#exposures-total")).to_have_text("1")
    expect(page.locator("#side-cohort")).to_contain_text("100")
    expect(page.locator("#side-cohort")).to_contain_text("0.2")
    expect(page.locator("#side-others")).to_contain_text("100")
    expect(page.locator("#side-others")).to_contain_text("0.02")
    verdict = page.locator("#launch-verdict")
    expect(verdict).to_contain_text("The cohort has more errors and is slower than everyone else (p < 0.01).")
    expect(verdict).to_contain_text("(errors p < 0.0001, latency p < 0.0001)")
    screenshot(page, "flags-launch.png")

    actions = page.locator("#launch-actions")
    widen = actions.locator("article").filter(has=page.get_by_role("heading", name="Widen"))
    rollout = actions.locator("article").filter(has=page.get_by_role("heading", name="Roll out to everyone"))
    kill = actions.locator("article").filter(has=page.get_by_role("heading", name="Kill"))

    # Widen the cohort by one customer, then roll out to half of everyone else.
    widen.get_by_label("Users").fill("carl")
    widen.get_by_role("button", name="Widen the cohort").click()
    expect(page.locator(".message-success")).to_contain_text("Widened the launch: segment staff or 1 user (carl).")
    assert client.get_boolean_value("new-checkout", False, CUSTOMER) is True
    assert served_on(client, "new-checkout", EVERYONE) == 0

    rollout.get_by_label("Percent").fill("50")
    rollout.get_by_role("button", name="Roll out").click()
    expect(page.locator(".message-success")).to_contain_text("on now reaches 50 % of everyone.")
    half = served_on(client, "new-checkout", EVERYONE)
    assert 70 <= half <= 130, f"{half} of 200 got on at 50 %"
    assert client.get_boolean_value("new-checkout", False, STAFF) is True

    # The flag's own kill switch: everyone gets the default at once, then it is on again (the flag API caches per
    # revision, so each answer below is the live server noticing a new revision).
    page.goto(flag_url)
    expect(page.locator("main")).to_contain_text("Dark launch under way")
    page.get_by_role("button", name=re.compile("Kill switch")).click()
    expect(page.locator(".message-success")).to_contain_text("Killed new-checkout: everyone gets “off”.")
    killed = client.get_boolean_details("new-checkout", True, STAFF)
    assert (killed.value, killed.reason) == (False, Reason.DISABLED)
    assert served_on(client, "new-checkout", EVERYONE[:20]) == 0
    page.get_by_role("button", name="Turn back on").click()
    expect(page.locator(".message-success")).to_contain_text("new-checkout is on again.")
    assert client.get_boolean_value("new-checkout", False, STAFF) is True
    screenshot(page, "flags-flag.png", full_page=False)  # the top: state, actions, targeting (history runs on)

    # Kill the launch: everyone, the cohort included, is back on the default.
    page.goto(launch_url)
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    kill.get_by_label("Reason").fill("Too many payment errors in the cohort")
    kill.get_by_role("button", name="Kill the launch").click()
    expect(page.locator(".message-success")).to_contain_text("Killed the launch: everyone gets off again.")
    expect(page.locator("h1")).to_contain_text("Killed")
    expect(page.locator("#launch-actions")).to_have_count(0)
    assert served_on(client, "new-checkout", [STAFF, CUSTOMER, *EVERYONE]) == 0
    launch.refresh_from_db()
    assert launch.status == DarkLaunch.Status.KILLED

    # The audit trail tells the launch's story, with the reasons.
    page.goto(f"{live_server.url}/audit/")
    trail = page.locator("main")
    for action in ("dark_launch.started", "dark_launch.widened", "dark_launch.rollout_raised", "dark_launch.killed"):
        expect(trail).to_contain_text(action)
    expect(trail).to_contain_text("Too many payment errors in the cohort")
    expect(trail).to_contain_text("flag.killed")
    assert AuditEvent.objects.filter(action="flag_api_key.created", actor=rita).count() == 1


@pytest.fixture
def payments() -> Application:
    """Payments: production's flag changes need one approval from the approvers' group."""
    application = ApplicationFactory(name="Payments", slug="payments")
    production = application.environments.get(stage=Stage.PRODUCTION)
    ApprovalPolicyFactory(
        environment=production, approvals_required=1, approver_groups=[Group.objects.get(name=Role.APPROVER.value)]
    )
    changes.set_approval(environment=production, on=True, actor=UserFactory(username="ada", roles=[Role.ADMIN]))
    return application


def test_a_dark_launch_in_production_waits_for_an_approver(
    sign_in: Any, live_server: Any, openfeature: Any, payments: Application
) -> None:
    production = payments.environments.get(stage=Stage.PRODUCTION)
    rita = UserFactory(username="rita", roles=[Role.RELEASE_MANAGER, Role.VIEWER])
    ann = UserFactory(username="ann", first_name="Ann", roles=[Role.APPROVER, Role.VIEWER])
    flag = services.flag_create(
        environment=production, key="instant-refunds", flag_type="boolean", default_variant="off", actor=rita
    )
    services.segment_save(
        segment=Segment(
            application=payments,
            key="staff",
            name="Internal staff",
            match="any",
            conditions=[{"attribute": "email", "op": "ends_with", "value": "@example.com"}],
            created_at=clock.now(),
            updated_at=clock.now(),
        ),
        actor=rita,
    )
    key = services.api_key_create(environment=production, name="payments backend", actor=rita).secret
    client = openfeature(key)

    # The release manager proposes the launch; nothing is served yet.
    page = sign_in(rita)
    page.goto(f"{live_server.url}{flag.get_absolute_url()}")
    expect(page.locator("main")).to_contain_text("Changes to flags in Production need approval")
    page.get_by_role("button", name="Dark-launch…").click()
    page.get_by_label("Internal staff (staff)").check()
    page.get_by_label("Reason").fill("Refunds without a call to support")
    page.get_by_role("button", name="Start the dark launch").click()
    page.wait_for_url(f"{live_server.url}{flag.get_absolute_url()}")
    expect(page.locator(".message-success")).to_contain_text("need approval: proposed as change #")
    pending = page.locator("#flag-pending-changes")
    expect(pending).to_contain_text("dark-launch instant-refunds = on")
    expect(pending).to_contain_text("This needs the approver role")
    expect(pending.get_by_role("button", name="Approve")).to_have_count(0)
    change = FlagChangeRequest.objects.get(flag=flag)
    assert change.status == FlagChangeRequest.Status.PENDING
    assert not DarkLaunch.objects.exists()
    assert client.get_boolean_value("instant-refunds", True, STAFF) is False

    # The approver finds it in the inbox, and approves it with a comment on the flag page.
    approver = sign_in(ann)
    approver.goto(f"{live_server.url}/approvals/")
    expect(approver.get_by_role("heading", name="Flag changes waiting for you")).to_be_visible()
    inbox = approver.locator("#flag-change-inbox")
    expect(inbox).to_contain_text("Payments / Production")
    inbox.get_by_role("link", name=re.compile(f"#{change.pk} dark-launch instant-refunds")).click()
    approver.wait_for_url(re.compile(rf".*{re.escape(flag.get_absolute_url())}(#flag-pending-changes)?$"))
    approver.locator("#flag-pending-changes").get_by_label("Comment").fill("Fine for staff")
    approver.get_by_role("button", name="Approve", exact=True).click()
    expect(approver.locator(".message-success")).to_contain_text(
        "Approved and applied: dark-launch instant-refunds = on."
    )
    expect(approver.locator("#flag-pending-changes")).to_have_count(0)
    expect(approver.locator("main")).to_contain_text("Dark launch under way")
    change.refresh_from_db()
    assert (change.status, change.decided_by) == (FlagChangeRequest.Status.APPLIED, ann)
    launch = DarkLaunch.objects.get(flag=flag)
    assert (launch.status, launch.started_by) == (DarkLaunch.Status.ACTIVE, rita)

    # Now the cohort gets it over OFREP, and nobody else does.
    assert client.get_boolean_value("instant-refunds", False, STAFF) is True
    assert client.get_boolean_value("instant-refunds", True, CUSTOMER) is False
    approver.goto(f"{live_server.url}/approvals/")
    expect(approver.locator("#flag-change-inbox")).to_contain_text("No flag change waits for you.")
