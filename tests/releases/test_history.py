"""The release history: filters, cursor pages, the htmx partial, the compare view, and fixed query counts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from releases.catalog.models import Application, Release, ReleaseStatus, Stage
from releases.history.keyset import PAGE_SIZE, Cursor
from tests.factories import (
    ApplicationFactory,
    ApprovalDecisionFactory,
    ApprovalRequestFactory,
    OperationFactory,
    ReleaseFactory,
    UserFactory,
)

MOMENT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HISTORY = reverse("release_list")
COMPARE = reverse("release_compare")


def release_at(application: Application, version: str, at: datetime = MOMENT, **fields: object) -> Release:
    return ReleaseFactory(application=application, version=version, created_at=at, status_changed_at=at, **fields)


def versions_in(html: str) -> list[str]:
    """The versions listed in the history table, in order."""
    return re.findall(r'<td><a href="/releases/\d+/">([^<]+)</a></td>', html)


def older_link(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)"[^>]*rel="next">Older', html)
    return match.group(1).replace("&amp;", "&") if match else None


def newer_link(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)"[^>]*rel="prev">← Newer', html)
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.fixture
def checkout(db: None) -> Application:
    return ApplicationFactory(name="Checkout", slug="checkout")


@pytest.fixture
def signed_in(client: Client, viewer: User) -> Client:
    client.force_login(viewer)
    return client


# --- The page ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_anonymous_visitor_is_sent_to_sign_in_for_the_history_and_compare(client: Client) -> None:
    for url in (HISTORY, COMPARE):
        response = client.get(url)

        assert response.status_code == 302
        assert response.headers["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_a_user_without_a_role_is_refused_the_history(client: Client, no_role_user: User) -> None:
    client.force_login(no_role_user)

    assert client.get(HISTORY).status_code == 403
    assert client.get(COMPARE).status_code == 403


@pytest.mark.django_db
def test_it_lists_releases_newest_first_with_their_columns(signed_in: Client, checkout: Application) -> None:
    author = UserFactory(username="dana")
    release_at(checkout, "1.0.0", MOMENT - timedelta(days=1), status=ReleaseStatus.SUPERSEDED)
    release_at(
        checkout,
        "1.1.0",
        status=ReleaseStatus.LIVE,
        live_at=MOMENT + timedelta(hours=2),
        commit_sha="0123456789abcdef",
        branch="main",
        created_by=author,
    )

    response = signed_in.get(HISTORY)

    assert response.status_code == 200
    assert versions_in(response.text) == ["1.1.0", "1.0.0"]
    assert "Checkout" in response.text
    assert '<span class="badge status-live">Live</span>' in response.text  # the status in words, not colour alone
    assert "2026-03-10 12:00" in response.text and "by dana" in response.text
    assert "2026-03-10 14:00" in response.text  # live at, in UTC
    assert '<code title="0123456789abcdef">01234567</code>' in response.text
    assert "by a pipeline" in response.text
    assert 'aria-label="Compare from Checkout 1.1.0"' in response.text
    assert "Older" not in response.text and "Newer" not in response.text  # one page


@pytest.mark.django_db
def test_with_no_releases_it_says_how_they_arrive(signed_in: Client) -> None:
    response = signed_in.get(HISTORY)

    assert response.status_code == 200
    assert "No releases yet." in response.text
    assert "registers it through the API" in response.text


@pytest.mark.django_db
def test_filters_that_match_nothing_say_what_to_try(signed_in: Client, checkout: Application) -> None:
    release_at(checkout, "1.0.0")

    response = signed_in.get(HISTORY, {"status": ReleaseStatus.FAILED})

    assert response.status_code == 200
    assert "No releases match these filters." in response.text
    assert "clear the filters" in response.text


@pytest.mark.django_db
def test_the_filter_form_has_a_label_for_every_control(signed_in: Client) -> None:
    response = signed_in.get(HISTORY)

    for name in ("application", "stage", "status", "person", "since", "until"):
        assert f'<label for="id_{name}">' in response.text
    assert "Who registered the release, decided an approval of it, or started an operation on it." in response.text
    assert "Production: it went live at some point" in response.text


# --- Filters -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_filters_by_application_and_status(signed_in: Client, checkout: Application) -> None:
    search = ApplicationFactory(name="Search", slug="search")
    release_at(checkout, "1.0.0", status=ReleaseStatus.LIVE)
    release_at(checkout, "1.1.0", status=ReleaseStatus.REGISTERED)
    release_at(search, "9.0.0", status=ReleaseStatus.LIVE)

    by_application = signed_in.get(HISTORY, {"application": "checkout"})
    by_status = signed_in.get(HISTORY, {"status": ReleaseStatus.LIVE})
    both = signed_in.get(HISTORY, {"application": "search", "status": ReleaseStatus.LIVE})

    assert sorted(versions_in(by_application.text)) == ["1.0.0", "1.1.0"]
    assert sorted(versions_in(by_status.text)) == ["1.0.0", "9.0.0"]
    assert versions_in(both.text) == ["9.0.0"]


@pytest.mark.django_db
def test_the_environment_filter_is_the_deployed_slot_or_having_reached_production(
    signed_in: Client, checkout: Application
) -> None:
    slots = {env.stage: env.slot for env in checkout.environments.select_related("slot")}
    release_at(checkout, "dev-build", MOMENT, deployed_slot=slots[Stage.DEV])
    release_at(checkout, "staged", MOMENT + timedelta(minutes=1), deployed_slot=slots[Stage.PREPRODUCTION])
    release_at(
        checkout,
        "went-live",
        MOMENT + timedelta(minutes=2),
        deployed_slot=slots[Stage.PREPRODUCTION],
        status=ReleaseStatus.SUPERSEDED,
        live_at=MOMENT + timedelta(hours=1),
    )
    release_at(checkout, "nowhere", MOMENT + timedelta(minutes=3))

    def stage(value: str) -> list[str]:
        return versions_in(signed_in.get(HISTORY, {"stage": value}).text)

    assert stage(Stage.DEV) == ["dev-build"]
    assert stage(Stage.PREPRODUCTION) == ["went-live", "staged"]
    assert stage(Stage.PRODUCTION) == ["went-live"]  # went live once, though superseded since
    assert stage(Stage.TEST) == []


@pytest.mark.django_db
def test_the_person_filter_finds_what_they_registered_decided_or_started(
    signed_in: Client, checkout: Application
) -> None:
    pat = UserFactory(username="pat")
    registered = release_at(checkout, "registered-by-pat", MOMENT, created_by=pat)
    decided = release_at(checkout, "approved-by-pat", MOMENT + timedelta(minutes=1))
    ApprovalDecisionFactory(request=ApprovalRequestFactory(release=decided), approver=pat)
    started = release_at(checkout, "promoted-by-pat", MOMENT + timedelta(minutes=2), status=ReleaseStatus.APPROVED)
    OperationFactory(release=started, started_by=pat)
    release_at(checkout, "someone-else", MOMENT + timedelta(minutes=3), created_by=UserFactory(username="quinn"))
    other = release_at(checkout, "approved-twice", MOMENT + timedelta(minutes=4))
    request = ApprovalRequestFactory(release=other)
    ApprovalDecisionFactory(request=request, approver=UserFactory(username="rae"))

    response = signed_in.get(HISTORY, {"person": "pat"})

    assert versions_in(response.text) == ["promoted-by-pat", "approved-by-pat", "registered-by-pat"]
    assert registered.pk and versions_in(signed_in.get(HISTORY, {"person": "nobody"}).text) == []


@pytest.mark.django_db
def test_the_date_range_is_whole_utc_days_both_included(signed_in: Client, checkout: Application) -> None:
    release_at(checkout, "before", datetime(2026, 3, 9, 23, 59, 59, tzinfo=UTC))
    release_at(checkout, "first-day", datetime(2026, 3, 10, 0, 0, tzinfo=UTC))
    release_at(checkout, "last-day", datetime(2026, 3, 11, 23, 59, 59, tzinfo=UTC))
    release_at(checkout, "after", datetime(2026, 3, 12, 0, 0, tzinfo=UTC))

    response = signed_in.get(HISTORY, {"since": "2026-03-10", "until": "2026-03-11"})
    only_since = signed_in.get(HISTORY, {"since": "2026-03-11"})

    assert versions_in(response.text) == ["last-day", "first-day"]
    assert versions_in(only_since.text) == ["after", "last-day"]


@pytest.mark.django_db
def test_a_backwards_date_range_is_explained_beside_the_field(signed_in: Client) -> None:
    response = signed_in.get(HISTORY, {"since": "2026-03-11", "until": "2026-03-10"})

    assert response.status_code == 400
    assert "The end date is before the start date." in response.text
    assert 'aria-invalid="true"' in response.text
    assert "Traceback" not in response.text


@pytest.mark.django_db
def test_an_unknown_application_or_a_bad_date_is_explained(signed_in: Client) -> None:
    response = signed_in.get(HISTORY, {"application": "nope", "since": "yesterday"})

    assert response.status_code == 400
    assert "There is no application with that name." in response.text
    assert "Enter a valid date." in response.text


# --- htmx --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_htmx_request_gets_only_the_results(signed_in: Client, checkout: Application) -> None:
    release_at(checkout, "1.0.0")

    response = signed_in.get(HISTORY, {"application": "checkout"}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="history-results"')
    assert "<html" not in response.text and 'name="person"' not in response.text
    assert versions_in(response.text) == ["1.0.0"]
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.django_db
def test_the_filter_form_swaps_the_results_and_pushes_the_url(signed_in: Client) -> None:
    response = signed_in.get(HISTORY)

    assert 'hx-get="/releases/"' in response.text
    assert 'hx-target="#history-results"' in response.text
    assert 'hx-push-url="true"' in response.text


@pytest.mark.django_db
def test_an_htmx_request_with_bad_filters_gets_the_message_in_the_results(signed_in: Client) -> None:
    response = signed_in.get(HISTORY, {"since": "2026-03-11", "until": "2026-03-10"}, headers={"HX-Request": "true"})

    assert response.status_code == 200  # htmx swaps 2xx answers only
    assert response.text.lstrip().startswith('<section id="history-results"')
    assert "To (UTC): The end date is before the start date." in response.text


# --- Cursor pages ------------------------------------------------------------------------------------


def walk_older(client: Client, url: str, **headers: str) -> list[list[str]]:
    pages = []
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        pages.append(versions_in(response.text))
        next_url = older_link(response.text)
        url = f"{HISTORY}{next_url}" if next_url else ""
    return pages


@pytest.mark.django_db
def test_older_pages_have_no_duplicates_or_gaps_when_many_share_a_timestamp(
    signed_in: Client, checkout: Application
) -> None:
    # 130 releases, 40 of them at the very same instant, straddling the page boundaries.
    expected = []
    for n in range(130):
        at = MOMENT if 30 <= n < 70 else MOMENT + timedelta(seconds=n)
        expected.append(release_at(checkout, f"v{n}", at))
    expected.sort(key=lambda r: (r.created_at, r.pk), reverse=True)

    pages = walk_older(signed_in, HISTORY)

    assert [len(page) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 30]
    assert [v for page in pages for v in page] == [r.version for r in expected]


@pytest.mark.django_db
def test_newer_links_lead_back_to_the_same_pages(signed_in: Client, checkout: Application) -> None:
    for n in range(120):
        release_at(checkout, f"v{n}", MOMENT + timedelta(seconds=n // 7))  # ties in groups of seven
    first = signed_in.get(HISTORY)
    second = signed_in.get(HISTORY + older_link(first.text))
    third = signed_in.get(HISTORY + older_link(second.text))

    back_to_second = signed_in.get(HISTORY + newer_link(third.text))
    back_to_first = signed_in.get(HISTORY + newer_link(back_to_second.text))

    assert versions_in(back_to_second.text) == versions_in(second.text)
    assert versions_in(back_to_first.text) == versions_in(first.text)
    assert newer_link(back_to_first.text) is None  # the newest page has nothing newer
    assert "Newest" not in back_to_first.text
    assert "Newest" in third.text


@pytest.mark.django_db
def test_pages_stay_put_when_releases_are_registered_meanwhile(signed_in: Client, checkout: Application) -> None:
    for n in range(100):
        release_at(checkout, f"v{n}", MOMENT + timedelta(seconds=n))
    first = signed_in.get(HISTORY)
    for n in range(10):
        release_at(checkout, f"new{n}", MOMENT + timedelta(days=1, seconds=n))

    second = signed_in.get(HISTORY + older_link(first.text))

    assert versions_in(second.text) == [f"v{n}" for n in range(49, -1, -1)]


@pytest.mark.django_db
def test_the_cursor_keeps_the_filters(signed_in: Client, checkout: Application) -> None:
    other = ApplicationFactory()
    for n in range(60):
        release_at(checkout, f"c{n}", MOMENT + timedelta(seconds=n))
        release_at(other, f"o{n}", MOMENT + timedelta(seconds=n))

    first = signed_in.get(HISTORY, {"application": "checkout"})
    link = older_link(first.text)
    second = signed_in.get(HISTORY + link)

    assert parse_qs(urlparse(link).query)["application"] == ["checkout"]
    assert versions_in(second.text) == [f"c{n}" for n in range(9, -1, -1)]


@pytest.mark.django_db
def test_a_damaged_cursor_shows_the_newest_page_and_says_so(signed_in: Client, checkout: Application) -> None:
    release_at(checkout, "1.0.0")

    response = signed_in.get(HISTORY, {"cursor": "not-a-cursor!"})

    assert response.status_code == 200
    assert "That page link was not valid" in response.text
    assert versions_in(response.text) == ["1.0.0"]


def test_a_cursor_is_opaque_and_round_trips() -> None:
    cursor = Cursor(created_at=MOMENT, pk=42, older=True)

    token = cursor.encode()

    assert "2026" not in token and "=" not in token
    assert Cursor.decode(token) == cursor


@pytest.mark.django_db
def test_an_older_page_past_the_end_offers_the_way_back(signed_in: Client, checkout: Application) -> None:
    first = release_at(checkout, "1.0.0")
    past_the_end = Cursor(created_at=first.created_at, pk=first.pk, older=True).encode()

    response = signed_in.get(HISTORY, {"cursor": past_the_end})

    assert response.status_code == 200
    assert "No releases match these filters on this page." in response.text
    assert "Back to the newest." in response.text


# --- Query counts ------------------------------------------------------------------------------------


def count_queries(client: Client, url: str, params: dict[str, str] | None = None, **headers: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, params or {}, headers=headers)
    assert response.status_code == 200
    return len(context.captured_queries)


def add_varied_releases(count: int, person: User) -> None:
    """Releases of several applications and authors, each with an approval decided by `person`."""
    application = None
    for n in range(count):
        if n % 5 == 0:
            application = ApplicationFactory()
        release = ReleaseFactory(
            application=application,
            created_by=UserFactory() if n % 2 else person,
            status=ReleaseStatus.APPROVED,
            commit_sha=f"{n:040x}",
            live_at=MOMENT if n % 3 == 0 else None,
        )
        ApprovalDecisionFactory(request=ApprovalRequestFactory(release=release), approver=person)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [{}, {"person": "pat", "stage": "prod", "status": "approved", "since": "2020-01-01"}],
    ids=["unfiltered", "filtered"],
)
def test_the_history_runs_the_same_queries_for_5_or_50_releases(signed_in: Client, params: dict[str, str]) -> None:
    pat = UserFactory(username="pat")
    add_varied_releases(5, pat)
    small = count_queries(signed_in, HISTORY, params)
    small_htmx = count_queries(signed_in, HISTORY, params, **{"HX-Request": "true"})

    add_varied_releases(45, pat)
    large = count_queries(signed_in, HISTORY, params)
    large_htmx = count_queries(signed_in, HISTORY, params, **{"HX-Request": "true"})

    assert small == large
    assert small_htmx == large_htmx
    assert large <= 8


# --- Compare -----------------------------------------------------------------------------------------


@pytest.fixture
def lineage(checkout: Application) -> list[Release]:
    """Five releases of Checkout, oldest first, 1.0.0 live."""
    releases = []
    for n in range(5):
        releases.append(
            release_at(
                checkout,
                f"1.{n}.0",
                MOMENT + timedelta(hours=n),
                status=ReleaseStatus.LIVE if n == 0 else ReleaseStatus.REGISTERED,
                commit_sha=f"{n}" * 40,
                branch="main",
                build_id=f"build-{n}",
                notes=f"Notes of 1.{n}.0",
            )
        )
    return releases


@pytest.mark.django_db
def test_compare_shows_both_sides_and_what_lies_between(signed_in: Client, lineage: list[Release]) -> None:
    older, newer = lineage[1], lineage[4]

    response = signed_in.get(COMPARE, {"from": older.pk, "to": newer.pk})

    assert response.status_code == 200
    text = response.text
    assert "Checkout: 1.1.0 → 1.4.0" in text
    assert "From (older)" in text and "To (newer)" in text
    assert "build-1" in text and "build-4" in text and "<code>main</code>" in text
    assert "3 releases after 1.1.0 up to 1.4.0" in text
    notes = re.findall(r"Notes of (1\.\d\.0)", text)
    assert notes == ["1.4.0", "1.3.0", "1.2.0"]  # newest first; the "from" release's own notes are not a change
    assert "<code>44444444</code> · <code>33333333</code> · <code>22222222</code>" in text
    assert "knows no repository address" in text
    assert "Feature-flag differences" in text


@pytest.mark.django_db
def test_compare_puts_the_older_release_first_whichever_way_it_is_asked(
    signed_in: Client, lineage: list[Release]
) -> None:
    response = signed_in.get(COMPARE, {"from": lineage[3].pk, "to": lineage[2].pk})

    assert response.status_code == 200
    assert "Checkout: 1.2.0 → 1.3.0" in response.text


@pytest.mark.django_db
def test_compare_with_live_compares_with_the_live_release(signed_in: Client, lineage: list[Release]) -> None:
    response = signed_in.get(COMPARE, {"from": "live", "to": lineage[2].pk})

    assert response.status_code == 200
    assert "Checkout: 1.0.0 → 1.2.0" in response.text


@pytest.mark.django_db
def test_compare_refuses_releases_of_two_applications_in_words(signed_in: Client, checkout: Application) -> None:
    mine = release_at(checkout, "1.0.0")
    theirs = release_at(ApplicationFactory(name="Search"), "2.0.0")

    response = signed_in.get(COMPARE, {"from": mine.pk, "to": theirs.pk})

    assert response.status_code == 400
    assert "belong to different applications" in response.text
    assert "Traceback" not in response.text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Pick two releases to compare"),
        ({"from": "1"}, "Pick two releases to compare"),
        ({"from": "x", "to": "1"}, "Pick two releases to compare"),
    ],
)
def test_compare_without_two_releases_says_what_to_do(signed_in: Client, params: dict[str, str], message: str) -> None:
    response = signed_in.get(COMPARE, params)

    assert response.status_code == 400
    assert message in response.text
    assert reverse("release_list") in response.text


@pytest.mark.django_db
def test_compare_refuses_a_release_with_itself_and_a_missing_live_release(
    signed_in: Client, checkout: Application
) -> None:
    release = release_at(checkout, "1.0.0")

    itself = signed_in.get(COMPARE, {"from": release.pk, "to": release.pk})
    nothing_live = signed_in.get(COMPARE, {"from": "live", "to": release.pk})
    missing = signed_in.get(COMPARE, {"from": release.pk, "to": release.pk + 1000})

    assert itself.status_code == 400 and "the same release on both sides" in itself.text
    assert nothing_live.status_code == 400 and "Nothing of Checkout is live yet" in nothing_live.text
    assert missing.status_code == 404


@pytest.mark.django_db
def test_compare_lists_at_most_its_limit_and_says_there_are_more(
    signed_in: Client, checkout: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("releases.history.views.COMPARE_LIMIT", 3)
    releases = [release_at(checkout, f"1.{n}.0", MOMENT + timedelta(minutes=n), notes=f"N{n}") for n in range(6)]

    response = signed_in.get(COMPARE, {"from": releases[0].pk, "to": releases[5].pk})

    assert re.findall(r"<p>N(\d)</p>", response.text) == ["5", "4", "3"]
    assert "More than 3 releases" in response.text
    assert "Only the newest 3 are listed." in response.text


@pytest.mark.django_db
def test_compare_runs_the_same_queries_for_5_or_50_releases_between(signed_in: Client, checkout: Application) -> None:
    authors = [UserFactory() for _ in range(3)]
    first = release_at(checkout, "0", MOMENT)
    for n in range(1, 6):
        last = release_at(checkout, f"{n}", MOMENT + timedelta(minutes=n), created_by=authors[n % 3])
    small = count_queries(signed_in, COMPARE, {"from": first.pk, "to": last.pk})
    for n in range(6, 51):
        last = release_at(checkout, f"{n}", MOMENT + timedelta(minutes=n), created_by=authors[n % 3])

    large = count_queries(signed_in, COMPARE, {"from": first.pk, "to": last.pk})

    assert small == large


# --- Links from the release page ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_release_page_links_to_compare_with_live_and_to_its_trail(
    signed_in: Client, lineage: list[Release]
) -> None:
    release = lineage[3]

    response = signed_in.get(release.get_absolute_url())
    live_page = signed_in.get(lineage[0].get_absolute_url())

    compare_url = f"{COMPARE}?from=live&amp;to={release.pk}"
    assert compare_url in response.text
    assert f"{reverse('audit_list')}?{urlencode({'object': f'releases.release:{release.pk}'}, safe=':')}" in (
        response.text
    )
    assert "Compare with live" not in live_page.text
    assert "Compare with live" in response.text
