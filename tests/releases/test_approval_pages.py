"""The approval pages as people use them: the request page, deciding, the inbox, the policy editor."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.core import clock
from portal.core.roles import Role
from releases.approvals.gates import promotion_blockers
from releases.approvals.models import ApprovalPolicy, ApprovalRequest, ApprovalRequestStatus, FreezeWindow
from releases.approvals.workflow import approval_decide
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, Release, ReleaseStatus, Stage
from releases.intake import services as intake
from tests.factories import ApplicationFactory, ApprovalPolicyFactory, ReleaseFactory, UserFactory, add_simulated_site

pytestmark = pytest.mark.django_db

WEDNESDAY = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 1, 17, 12, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(autouse=True)
def wednesday() -> object:
    with clock.frozen(WEDNESDAY):
        yield


@pytest.fixture
def checkout() -> Application:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    add_simulated_site(application)
    policy = ApprovalPolicyFactory(
        environment=application.environments.get(stage=Stage.PRODUCTION),
        approvals_required=2,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
    )
    FreezeWindow.objects.create(
        policy=policy,
        name="Weekend freeze",
        kind=FreezeWindow.Kind.WEEKLY,
        timezone="Europe/London",
        start_weekday=4,
        start_time=time(16),
        end_weekday=0,
        end_time=time(8),
    )
    ReleaseFactory(
        application=application,
        version="1.9.0",
        status=ReleaseStatus.LIVE,
        notes="What production runs",
        created_at=WEDNESDAY - timedelta(days=9),
    )
    ReleaseFactory(
        application=application,
        version="1.9.5",
        status=ReleaseStatus.REJECTED,
        notes="Faster product search",
        created_at=WEDNESDAY - timedelta(days=2),
    )
    return application


@pytest.fixture
def people() -> dict[str, User]:
    found = {name: UserFactory(username=name, roles=[Role.APPROVER]) for name in ("ann", "bob", "cat")}
    found["rita"] = UserFactory(username="rita", roles=[Role.RELEASE_MANAGER])
    return found


def browser(user: User) -> Client:
    """A signed-in browser that enforces CSRF, as a real one would."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post_form(client: Client, page: str, action: str, data: dict[str, str]) -> object:
    """Load `page`, take the CSRF token from its form, and submit `data` to `action`."""
    response = client.get(page)
    assert response.status_code == 200
    token = CSRF.search(response.text)
    assert token, f"no CSRF token on {page}"
    return client.post(action, {**data, "csrfmiddlewaretoken": token.group(1)})


def pending_request(application: Application, rita: User, version: str = "2.0.0") -> ApprovalRequest:
    release = intake.release_register(
        application=application,
        version=version,
        actor=rita,
        commit_sha="9fceb02d0ae598e95dc970b74767f19372d61af8",
        notes="One-page checkout",
        deployed_slot=application.slots.get(name="staging"),
    )
    return ApprovalRequest.objects.get(release=release)


# --- The whole way: registered on pre-production, approved by two people in their browsers ---------


def test_a_release_registered_on_pre_production_is_approved_by_two_approvers_and_is_then_promotable(
    checkout: Application, people: dict[str, User]
) -> None:
    manager = browser(people["rita"])
    staging = checkout.slots.get(name="staging")
    response = post_form(
        manager,
        reverse("release_register"),
        reverse("release_register"),
        {
            "application": str(checkout.pk),
            "version": "2.0.0",
            "commit_sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
            "deployed_slot": str(staging.pk),
            "notes": "One-page checkout",
        },
    )
    release = Release.objects.get(version="2.0.0")
    assert response.status_code == 302
    request = ApprovalRequest.objects.get(release=release)
    release_page = manager.get(release.get_absolute_url())
    assert reverse("approval_detail", args=[request.pk]) in release_page.text
    assert "Awaiting approval" in release_page.text

    ann, bob = browser(people["ann"]), browser(people["bob"])
    inbox = ann.get(reverse("approval_inbox"))
    assert "Checkout 2.0.0" in inbox.text
    assert '<span class="badge nav-count" title="Requests waiting for your decision">1</span>' in inbox.text

    page = ann.get(reverse("approval_detail", args=[request.pk]))
    assert 'href="/sim/checkout/staging/"' in page.text  # the live pre-production slot
    assert "9fceb02d0ae598e95dc970b74767f19372d61af8" in page.text
    assert "One-page checkout" in page.text and "Faster product search" in page.text
    assert "What production runs" not in page.text  # production's own notes are not a change
    assert "0 of 2</strong> approvals so far" in page.text

    decide = reverse("approval_decide", args=[request.pk])
    first = post_form(ann, reverse("approval_detail", args=[request.pk]), decide, {"verdict": "approve"})
    assert first.status_code == 302
    assert "1 of 2 approvals so far." in ann.get(first.headers["Location"]).text
    with clock.frozen(WEDNESDAY + timedelta(minutes=47)):
        second = post_form(
            bob, reverse("approval_detail", args=[request.pk]), decide, {"verdict": "approve", "comment": "Demoed"}
        )
        assert second.status_code == 302
        assert "The request is approved" in bob.get(second.headers["Location"]).text

    release.refresh_from_db()
    request.refresh_from_db()
    assert release.status == ReleaseStatus.APPROVED
    assert request.waited == timedelta(minutes=47)
    assert 'Waited <strong class="lead-time">47 min</strong>' in manager.get(release.get_absolute_url()).text
    with clock.frozen(WEDNESDAY + timedelta(hours=1)):
        assert promotion_blockers(release, checkout.production_environment) == []
    with clock.frozen(SATURDAY):
        assert promotion_blockers(release, checkout.production_environment) == [
            "“Weekend freeze” freezes Production until Mon 19 Jan 2026 08:00 GMT."
        ]


# --- Deciding: refusals, CSRF, comments, settled and lapsed requests ------------------------------------


def test_a_form_posted_without_its_csrf_token_is_refused(checkout: Application, people: dict[str, User]) -> None:
    request = pending_request(checkout, people["rita"])

    response = browser(people["ann"]).post(reverse("approval_decide", args=[request.pk]), {"verdict": "approve"})

    assert response.status_code == 403
    assert "CSRF" in response.text
    assert not request.decisions.exists()


def test_an_approver_outside_the_policy_gets_a_403_that_says_why(
    checkout: Application, people: dict[str, User]
) -> None:
    ApprovalPolicy.objects.get().approver_groups.set([Group.objects.create(name="Payments approvers")])
    outsider = UserFactory(username="olga", roles=[Role.APPROVER])
    request = pending_request(checkout, people["rita"])
    client = browser(outsider)

    page = client.get(reverse("approval_detail", args=[request.pk]))
    response = post_form(
        client, reverse("release_list"), reverse("approval_decide", args=[request.pk]), {"verdict": "approve"}
    )

    assert 'name="verdict"' not in page.text
    assert "You are not an approver for Production of Checkout" in page.text
    assert response.status_code == 403
    assert "its policy names “Payments approvers” and 0 people" in response.text
    assert not request.decisions.exists()


def test_the_person_who_registered_the_release_gets_a_403(checkout: Application) -> None:
    both = UserFactory(username="dee", roles=[Role.APPROVER, Role.RELEASE_MANAGER])
    request = pending_request(checkout, both)
    client = browser(both)

    response = post_form(
        client,
        reverse("approval_detail", args=[request.pk]),
        reverse("approval_decide", args=[request.pk]),
        {"verdict": "approve"},
    )

    assert response.status_code == 403
    assert "You registered Checkout 2.0.0; separation of duties means someone else must decide." in response.text


def test_a_request_that_can_never_be_approved_says_so(checkout: Application, people: dict[str, User]) -> None:
    # Two approvals needed, but of the three approvers one registered the release, one already approved,
    # and the third is away (deactivated): nobody is left to give the second approval.
    registrar = people["cat"]
    registrar.groups.add(Group.objects.get(name=Role.RELEASE_MANAGER.value))
    request = pending_request(checkout, registrar)
    approval_decide(request=request, actor=people["ann"], verdict="approve")
    User.objects.filter(pk=people["bob"].pk).update(is_active=False)

    page = browser(people["ann"]).get(reverse("approval_detail", args=[request.pk]))

    assert "Only 0 more eligible approvers can decide, and 2 approvals are needed in all" in page.text


def test_a_rejection_without_a_comment_is_sent_back_with_the_field_error(
    checkout: Application, people: dict[str, User]
) -> None:
    request = pending_request(checkout, people["rita"])
    client = browser(people["ann"])
    page = reverse("approval_detail", args=[request.pk])

    response = post_form(client, page, reverse("approval_decide", args=[request.pk]), {"verdict": "reject"})

    assert response.status_code == 400
    assert "Say why you reject it; a rejection needs a comment." in response.text
    assert not request.decisions.exists()
    rejected = post_form(
        client, page, reverse("approval_decide", args=[request.pk]), {"verdict": "reject", "comment": "Totals wrong"}
    )
    assert rejected.status_code == 302
    request.refresh_from_db()
    assert request.status == ApprovalRequestStatus.REJECTED


def test_deciding_a_settled_request_is_a_409_that_explains(checkout: Application, people: dict[str, User]) -> None:
    request = pending_request(checkout, people["rita"])
    approval_decide(request=request, actor=people["ann"], verdict="reject", comment="Totals wrong")
    client = browser(people["bob"])

    response = post_form(
        client,
        reverse("approval_detail", args=[request.pk]),
        reverse("approval_decide", args=[request.pk]),
        {"verdict": "approve"},
    )

    assert response.status_code == 409
    assert "This request was already rejected on 14 Jan 2026 09:00; a decision cannot change it." in response.text


def test_a_lapsed_request_shows_it_and_refuses_a_decision(checkout: Application, people: dict[str, User]) -> None:
    request = pending_request(checkout, people["rita"])
    client = browser(people["ann"])

    with clock.frozen(WEDNESDAY + timedelta(hours=80)):
        page = client.get(reverse("approval_detail", args=[request.pk]))
        response = client.post(
            reverse("approval_decide", args=[request.pk]),
            {"verdict": "approve", "csrfmiddlewaretoken": CSRF.search(page.text).group(1)},  # type: ignore[union-attr]
        )

    assert "This request lapsed on 17 Jan 2026 09:00" in page.text
    assert 'name="verdict"' not in page.text
    assert response.status_code == 409
    assert "lapsed at 17 Jan 2026 09:00 before your decision" in response.text
    request.refresh_from_db()
    assert request.status == ApprovalRequestStatus.EXPIRED


def test_the_status_poll_stops_once_the_request_is_settled(checkout: Application, people: dict[str, User]) -> None:
    request = pending_request(checkout, people["rita"])
    client = browser(people["cat"])
    url = reverse("approval_detail", args=[request.pk])

    polling = client.get(url, headers={"HX-Request": "true"})
    approval_decide(request=request, actor=people["ann"], verdict="reject", comment="No")
    settled = client.get(url, headers={"HX-Request": "true"})

    assert polling.status_code == 200
    assert polling.text.lstrip().startswith('<section id="approval-status"')
    assert 'hx-trigger="every 10s"' in polling.text
    assert settled.status_code == 286
    assert "Rejected" in settled.text
    assert "<html" not in settled.text


def test_the_gates_are_evaluated_on_demand_and_swapped_in_by_htmx(
    checkout: Application, people: dict[str, User]
) -> None:
    request = pending_request(checkout, people["rita"])
    client = browser(people["cat"])
    url = reverse("approval_detail", args=[request.pk])
    assert "Not evaluated yet" in client.get(url).text

    response = post_form(client, url, reverse("approval_gates", args=[request.pk]), {})
    fragment = client.post(
        reverse("approval_gates", args=[request.pk]),
        headers={"HX-Request": "true", "X-CSRFToken": client.cookies["csrftoken"].value},
    )

    assert response.status_code == 302
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section id="gates"')
    assert "The staging slot answers its health check: HTTP 200" in fragment.text
    assert "No freeze window of Production is active." in fragment.text
    assert fragment.text.count("Passed") == 4  # slot health, no freeze, no operation, no drift


# --- The inbox and its count --------------------------------------------------------------------------


def test_the_inbox_lists_what_waits_for_me_newest_first_and_the_count_is_one_query(
    checkout: Application, people: dict[str, User]
) -> None:
    older = pending_request(checkout, people["rita"], "2.0.0")
    other = ApplicationFactory(name="Ledger", slug="ledger")
    add_simulated_site(other)
    ApprovalPolicyFactory(
        environment=other.environments.get(stage=Stage.PRODUCTION),
        approvals_required=1,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
    )
    with clock.frozen(WEDNESDAY + timedelta(minutes=5)):
        newer = pending_request(other, people["rita"], "7.1.0")
    approval_decide(request=older, actor=people["bob"], verdict="approve")
    client = browser(people["ann"])

    page = client.get(reverse("approval_inbox"))
    with CaptureQueriesContext(connection) as queries:
        elsewhere = client.get(reverse("release_list"))  # any page: the navigation carries the count
    counted = [q["sql"] for q in queries.captured_queries if "approvalrequest" in q["sql"]]

    assert re.findall(r"(Checkout 2\.0\.0|Ledger 7\.1\.0)</a>", page.text) == ["Ledger 7.1.0", "Checkout 2.0.0"]
    assert '<span class="badge nav-count" title="Requests waiting for your decision">2</span>' in page.text
    bob_inbox = browser(people["bob"]).get(reverse("approval_inbox")).text
    assert '<span class="badge nav-count" title="Requests waiting for your decision">1</span>' in bob_inbox
    assert "Ledger 7.1.0</a>" in bob_inbox
    assert "Checkout 2.0.0</a>" not in bob_inbox  # bob has decided it
    assert newer.status == ApprovalRequestStatus.PENDING
    assert len(counted) == 1, counted
    assert counted[0].startswith("SELECT COUNT(*)")
    assert '<span class="badge nav-count" title="Requests waiting for your decision">2</span>' in elsewhere.text


def test_the_navigation_count_costs_nothing_for_someone_who_cannot_approve(viewer: User) -> None:
    client = browser(viewer)

    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("release_list"))

    assert "nav-count" not in page.text
    assert not [q for q in queries.captured_queries if "approvalrequest" in q["sql"]]


# --- The release page ---------------------------------------------------------------------------------


def test_a_release_manager_asks_for_approval_with_the_button(checkout: Application, people: dict[str, User]) -> None:
    release = ReleaseFactory(application=checkout, version="2.1.0", deployed_slot=checkout.slots.get(name="staging"))
    checkout.simulator_slots.filter(slot_name="staging").update(version="2.1.0")  # the pipeline deployed it
    client = browser(people["rita"])

    page = client.get(release.get_absolute_url())
    response = post_form(client, release.get_absolute_url(), reverse("release_request_approval", args=[release.pk]), {})

    assert "Request approval" in page.text
    assert "into Production (2 approvals needed)" in page.text
    request = ApprovalRequest.objects.get(release=release)
    assert response.headers["Location"] == reverse("approval_detail", args=[request.pk])
    release.refresh_from_db()
    assert release.status == ReleaseStatus.AWAITING_APPROVAL
    assert "Request approval" not in client.get(release.get_absolute_url()).text


# --- Time zones: stored in UTC, shown in the viewer's zone ------------------------------------------------


def test_times_are_shown_in_the_zone_the_browser_reports(checkout: Application, people: dict[str, User]) -> None:
    request = pending_request(checkout, people["rita"])
    client = browser(people["ann"])
    url = reverse("approval_detail", args=[request.pk])

    in_utc = client.get(url).text
    client.cookies["slipway_tz"] = "America/New_York"
    in_new_york = client.get(url).text
    client.cookies["slipway_tz"] = "Not/AZone"
    fallback = client.get(url).text

    assert "14 Jan 2026 09:00 UTC" in in_utc
    assert "14 Jan 2026 04:00 EST" in in_new_york
    assert "Times in America/New_York" in in_new_york
    assert "14 Jan 2026 09:00 UTC" in fallback
    request.refresh_from_db()
    assert request.created_at == WEDNESDAY  # storage stays UTC


# --- The freeze override on the page -------------------------------------------------------------------


def test_an_admin_breaks_the_freeze_from_the_request_page_and_it_shows(
    checkout: Application, people: dict[str, User], admin_user: User
) -> None:
    request = pending_request(checkout, people["rita"])
    client = browser(admin_user)
    url = reverse("approval_detail", args=[request.pk])

    with clock.frozen(SATURDAY):
        assert "Break glass" in client.get(url).text
        refused = post_form(client, url, reverse("approval_override_freeze", args=[request.pk]), {"reason": " "})
        response = post_form(
            client, url, reverse("approval_override_freeze", args=[request.pk]), {"reason": "Payment outage fix"}
        )
        page = client.get(url).text

    assert refused.status_code == 400
    assert response.status_code == 302
    assert "Freeze overridden</strong> by ada-admin" in page
    assert "Payment outage fix" in page
    assert AuditEvent.objects.get(action="freeze.overridden").reason == "Payment outage fix"


# --- The policy editor ----------------------------------------------------------------------------------


def policy_post(**overrides: str | None) -> dict[str, str]:
    """The policy form as a browser posts it; an override of None leaves the field out (an unticked box)."""
    data = {
        "approvals_required": "2",
        "approver_groups": str(Group.objects.get(name=Role.APPROVER.value).pk),
        "forbid_self_approval": "on",
        "expiry_hours": "48",
        "reminder_hours": "6",
        "require_healthy_slot": "on",
        "windows-TOTAL_FORMS": "1",
        "windows-INITIAL_FORMS": "0",
        "windows-MIN_NUM_FORMS": "0",
        "windows-MAX_NUM_FORMS": "20",
        "windows-0-name": "Weekend freeze",
        "windows-0-kind": "weekly",
        "windows-0-timezone": "Europe/London",
        "windows-0-start_weekday": "4",
        "windows-0-start_time": "16:00",
        "windows-0-end_weekday": "0",
        "windows-0-end_time": "08:00",
    }
    return {key: value for key, value in (data | overrides).items() if value is not None}


def test_an_admin_saves_a_policy_with_its_freeze_windows(admin_user: User, people: dict[str, User]) -> None:
    application = ApplicationFactory(name="Ledger", slug="ledger")
    client = browser(admin_user)
    url = reverse("policy_edit", args=["ledger", Stage.PRODUCTION])
    data = policy_post(
        **{
            "windows-TOTAL_FORMS": "2",
            "windows-1-name": "Christmas",
            "windows-1-kind": "dated",
            "windows-1-timezone": "America/New_York",
            "windows-1-starts_at": "2026-12-24T00:00",
            "windows-1-ends_at": "2027-01-02T00:00",
            "slack_webhook_url": "https://hooks.slack.com/services/T0/B0/SECRET-SLACK",
        }
    )

    response = post_form(client, url, url, data)

    assert response.status_code == 302
    policy = ApprovalPolicy.objects.get(environment__application=application)
    assert (policy.approvals_required, policy.expiry_hours, policy.reminder_hours) == (2, 48, 6)
    weekly, christmas = policy.freeze_windows.order_by("id")
    assert (weekly.start_weekday, weekly.start_time, weekly.end_weekday) == (4, time(16), 0)
    assert christmas.starts_at == datetime(2026, 12, 24, 5, 0, tzinfo=UTC)  # midnight in New York, stored in UTC
    assert AuditEvent.objects.get(action="policy.created").after["freeze_windows"] == [
        "Weekend freeze: every Friday 16:00 to Monday 08:00 (Europe/London)",
        "Christmas: Thu 24 Dec 2026 00:00 to Sat 02 Jan 2027 00:00 (America/New_York)",
    ]
    page = client.get(url).text
    assert "SECRET-SLACK" not in page  # a credential is never sent back
    assert "A Slack webhook is configured; leave this empty to keep it." in page
    assert 'value="Christmas"' in page and 'value="2026-12-24T00:00"' in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"approvals_required": "5"},
            "approvals_required",
            "5 approvals can never be given: only 3 people are eligible",
        ),
        ({"approver_groups": None}, "approver_groups", "Choose who may approve: at least one group or one person."),
        ({"reminder_hours": "48"}, "reminder_hours", "Remind before the request lapses"),
        ({"windows-0-timezone": "Europe/Londn"}, "windows-0-timezone", "“Europe/Londn” is not a time zone"),
        (
            {"windows-0-end_weekday": "4", "windows-0-end_time": "16:00"},
            "windows-0-end_time",
            "The window ends when it starts, so it would never freeze anything.",
        ),
        (
            {
                "windows-TOTAL_FORMS": "2",
                "windows-1-name": "Friday afternoon",
                "windows-1-kind": "weekly",
                "windows-1-timezone": "Europe/London",
                "windows-1-start_weekday": "4",
                "windows-1-start_time": "13:00",
                "windows-1-end_weekday": "4",
                "windows-1-end_time": "17:00",
            },
            "windows-1",
            "“Friday afternoon” overlaps “Weekend freeze”",
        ),
        (
            {
                "windows-0-kind": "dated",
                "windows-0-starts_at": "2026-12-24T00:00",
                "windows-0-ends_at": "2026-12-23T00:00",
            },
            "windows-0-ends_at",
            "The freeze must end after it starts.",
        ),
    ],
)
def test_the_policy_form_shows_contradictions_next_to_their_fields(
    admin_user: User, people: dict[str, User], overrides: dict[str, str | None], field: str, message: str
) -> None:
    ApplicationFactory(name="Ledger", slug="ledger")
    client = browser(admin_user)
    url = reverse("policy_edit", args=["ledger", Stage.PRODUCTION])

    response = post_form(client, url, url, policy_post(**overrides))

    assert response.status_code == 400
    assert message in response.text
    assert not ApprovalPolicy.objects.exists()
    assert not AuditEvent.objects.exists()
    form, formset = response.context["form"], response.context["formset"]
    if field.startswith("windows-"):
        index, _, name = field.removeprefix("windows-").partition("-")
        errors = formset.forms[int(index)].errors
        assert any(message in e for e in errors.get(name or "__all__", []))
    else:
        assert any(message in e for e in form.errors[field])


def test_adding_a_window_row_saves_nothing(admin_user: User) -> None:
    ApplicationFactory(name="Ledger", slug="ledger")
    client = browser(admin_user)
    url = reverse("policy_edit", args=["ledger", Stage.PRODUCTION])

    response = post_form(client, url, url, policy_post(add_window="1"))

    assert response.status_code == 200
    assert len(response.context["formset"].forms) == 2
    assert not ApprovalPolicy.objects.exists()
