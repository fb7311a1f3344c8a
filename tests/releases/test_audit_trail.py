"""The audit trail page: filters, full-text search, cursor pages, an object's own trail, exports, query counts."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Model, QuerySet
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.core import clock
from releases.audit import selectors as audit_selectors
from releases.audit.models import AuditEvent
from releases.audit.services import audit_type
from releases.catalog.models import Application, Release, ReleaseStatus
from releases.history.keyset import PAGE_SIZE
from tests.factories import ApplicationFactory, ApprovalRequestFactory, OperationFactory, ReleaseFactory

MOMENT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TRAIL = reverse("audit_list")
CSV_EXPORT = reverse("audit_export_csv")
JSON_EXPORT = reverse("audit_export_json")

on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL full-text search")
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite fallback")


def record(
    obj: Model,
    action: str = "release.approved",
    at: datetime = MOMENT,
    *,
    actor_label: str = "dana",
    reason: str = "",
    before: Any = None,
    after: Any = None,
    origin: dict[str, str] | None = None,
    application: Application | None = None,
) -> AuditEvent:
    if application is None:
        application = obj if isinstance(obj, Application) else getattr(obj, "application", None)
    return AuditEvent.objects.create(
        created_at=at,
        actor_label=actor_label,
        action=action,
        object_type=audit_type(obj),
        object_id=str(obj.pk),
        object_repr=str(obj),
        application=application,
        before=before,
        after=after,
        reason=reason,
        origin=origin if origin is not None else {"via": "web", "request_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
    )


def actions_in(html: str) -> list[str]:
    return re.findall(r"<td><code>([^<]+)</code></td>", html)


def older_link(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)"[^>]*rel="next">Older', html)
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.fixture
def checkout(db: None) -> Application:
    return ApplicationFactory(name="Checkout", slug="checkout")


@pytest.fixture
def release(checkout: Application) -> Release:
    return ReleaseFactory(application=checkout, version="7.3.0", created_at=MOMENT, status_changed_at=MOMENT)


@pytest.fixture
def signed_in(client: Client, viewer: User) -> Client:
    client.force_login(viewer)
    return client


# --- The page ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_anonymous_visitor_is_sent_to_sign_in_for_the_trail_and_its_exports(client: Client) -> None:
    for url in (TRAIL, CSV_EXPORT, JSON_EXPORT):
        response = client.get(url)

        assert response.status_code == 302
        assert response.headers["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_a_user_without_a_role_is_refused_the_trail_and_its_exports(client: Client, no_role_user: User) -> None:
    client.force_login(no_role_user)

    for url in (TRAIL, CSV_EXPORT, JSON_EXPORT):
        assert client.get(url).status_code == 403


@pytest.mark.django_db
def test_each_event_shows_when_who_what_which_object_the_change_why_and_whence(
    signed_in: Client, release: Release
) -> None:
    record(
        release,
        "release.approved",
        actor_label="arun",
        reason="Looks good",
        before={"status": "awaiting_approval", "version": "7.3.0", "approved_at": None},
        after={"status": "approved", "version": "7.3.0", "approved_at": "2026-03-10T12:00:00Z"},
    )

    response = signed_in.get(TRAIL)

    text = response.text
    assert response.status_code == 200
    assert "When (UTC)" in text and '<time datetime="2026-03-10T12:00:00+00:00">2026-03-10 12:00:00</time>' in text
    assert "<td>arun</td>" in text
    assert "<code>release.approved</code>" in text
    assert f'<a href="{release.get_absolute_url()}">Checkout 7.3.0</a>' in text
    assert '<code>status</code> <span class="audit-before">awaiting_approval</span> → ' in text
    assert '<code>approved_at</code> <span class="audit-before">—</span>' in text
    assert "<code>version</code>" not in text  # unchanged keys are left out
    assert "Looks good" in text
    assert "web" in text and "<code>0f1e2d3c…</code>" in text  # the request id, shortened


@pytest.mark.django_db
def test_it_shows_times_in_utc_whatever_the_viewers_zone(signed_in: Client, release: Release) -> None:
    record(release)
    signed_in.cookies["slipway_tz"] = "Pacific/Auckland"

    response = signed_in.get(TRAIL)

    assert "2026-03-10 12:00:00" in response.text


@pytest.mark.django_db
def test_objects_link_to_their_pages(signed_in: Client, checkout: Application, release: Release) -> None:
    operation = OperationFactory(release=ReleaseFactory(application=checkout, status=ReleaseStatus.APPROVED))
    approval = ApprovalRequestFactory(release=ReleaseFactory(application=checkout))
    record(release)
    record(operation, "operation.started")
    record(approval, "approval.requested", application=checkout)
    record(checkout, "application.created")
    slot = checkout.slots.first()
    record(slot, "slot.observed", application=checkout)

    text = signed_in.get(TRAIL).text

    assert f'<a href="{release.get_absolute_url()}">' in text
    assert f'<a href="{reverse("operation_detail", args=[operation.pk])}">' in text
    assert f'<a href="{reverse("approval_detail", args=[approval.pk])}">' in text
    assert f'<a href="{checkout.get_absolute_url()}">Checkout</a>' in text
    assert f"<td>{slot}</td>" in text  # a slot has no page of its own


@pytest.mark.django_db
def test_origins_say_how_the_change_came_in(signed_in: Client, release: Release) -> None:
    record(release, "release.registered", origin={"via": "api", "auth": "token", "token": "slp0001", "request_id": "r"})
    record(release, "release.went_live", origin={"via": "job", "job_id": "abcdef0123456789"})

    text = signed_in.get(TRAIL).text

    assert "api · token <code>slp0001</code>" in text
    assert '<span class="muted">job</span> <code>abcdef01…</code>' in text


@pytest.mark.django_db
def test_an_empty_trail_says_what_will_appear(signed_in: Client) -> None:
    response = signed_in.get(TRAIL)

    assert response.status_code == 200
    assert "Nothing has been recorded yet." in response.text
    assert "CSV" not in response.text  # nothing to export


@pytest.mark.django_db
def test_the_filter_form_has_a_label_for_every_control(signed_in: Client) -> None:
    text = signed_in.get(TRAIL).text

    for name in ("q", "application", "action", "actor", "object_type", "object", "since", "until"):
        assert f'<label for="id_{name}">' in text
    assert "Integrity:" in text and "no events sealed into the hash chain yet" in text  # see test_audit_chain.py


# --- Filters -----------------------------------------------------------------------------------------


@pytest.fixture
def varied(checkout: Application, release: Release) -> dict[str, AuditEvent]:
    search = ApplicationFactory(name="Search", slug="search")
    other = ReleaseFactory(application=search, version="2.0.0")
    return {
        "approved": record(release, "release.approved", MOMENT, actor_label="Arun"),
        "rejected": record(other, "release.rejected", MOMENT + timedelta(days=1), actor_label="bea"),
        "started": record(
            OperationFactory(release=ReleaseFactory(application=checkout, status=ReleaseStatus.APPROVED)),
            "operation.started",
            MOMENT + timedelta(days=2),
            actor_label="system",
        ),
        "app": record(checkout, "application.created", MOMENT + timedelta(days=3), actor_label="ada"),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"application": "search"}, ["release.rejected"]),
        ({"action": "release."}, ["release.rejected", "release.approved"]),
        ({"action": "release.approved"}, ["release.approved"]),
        ({"actor": "arun"}, ["release.approved"]),  # any case
        ({"object_type": "releases.operation"}, ["operation.started"]),
        ({"since": "2026-03-11", "until": "2026-03-12"}, ["operation.started", "release.rejected"]),
        ({"until": "2026-03-10"}, ["release.approved"]),
        ({"application": "checkout", "action": "release."}, ["release.approved"]),
    ],
)
def test_it_filters(
    signed_in: Client, varied: dict[str, AuditEvent], params: dict[str, str], expected: list[str]
) -> None:
    response = signed_in.get(TRAIL, params)

    assert response.status_code == 200
    assert actions_in(response.text) == expected


@pytest.mark.django_db
def test_the_object_filter_shows_one_objects_trail(
    signed_in: Client, release: Release, varied: dict[str, AuditEvent]
) -> None:
    record(release, "release.went_live", MOMENT + timedelta(hours=1))

    full = signed_in.get(TRAIL, {"object": f"releases.release:{release.pk}"})
    short = signed_in.get(TRAIL, {"object": f"release:{release.pk}"})

    assert actions_in(full.text) == ["release.went_live", "release.approved"]
    assert actions_in(short.text) == actions_in(full.text)
    assert f"The trail of one object: <code>releases.release:{release.pk}</code>" in full.text
    assert "Show every event" in full.text


@pytest.mark.django_db
def test_a_malformed_object_filter_is_explained_in_place(signed_in: Client) -> None:
    response = signed_in.get(TRAIL, {"object": "release 42"})

    assert response.status_code == 400
    assert "Write the object as type:id, for example release:42." in response.text
    assert "Traceback" not in response.text


@pytest.mark.django_db
def test_an_unknown_application_is_explained_in_place(signed_in: Client, checkout: Application) -> None:
    response = signed_in.get(TRAIL, {"application": "nope"})

    assert response.status_code == 400
    assert "Select a valid choice." in response.text


# --- Full-text search --------------------------------------------------------------------------------


@pytest.fixture
def reasons(release: Release) -> None:
    record(release, "release.rolled_back", MOMENT, reason="Rolling back: database timeout during the swap")
    record(release, "release.rejected", MOMENT + timedelta(minutes=1), reason="Missing the security review")
    record(
        release, "release.approved", MOMENT + timedelta(minutes=2), reason="Swap window agreed with the database team"
    )
    record(release, "freeze.overridden", MOMENT + timedelta(minutes=3), reason="Hotfix for the payment timeout")


@pytest.mark.django_db
@pytest.mark.usefixtures("reasons")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("timeout", ["freeze.overridden", "release.rolled_back"]),
        ("database swap", ["release.approved", "release.rolled_back"]),  # every word, in any order
        ("SECURITY", ["release.rejected"]),
        ("checkout 7.3.0 review", ["release.rejected"]),  # the object's name is searched too
        ("nothing-like-this", []),
    ],
)
def test_search_finds_words_in_the_reason_on_every_database(signed_in: Client, query: str, expected: list[str]) -> None:
    response = signed_in.get(TRAIL, {"q": query})

    assert response.status_code == 200
    assert actions_in(response.text) == expected


@on_postgres
@pytest.mark.django_db
@pytest.mark.usefixtures("reasons")
def test_on_postgresql_search_understands_word_forms_phrases_and_exclusions(signed_in: Client) -> None:
    def search(query: str) -> list[str]:
        return actions_in(signed_in.get(TRAIL, {"q": query}).text)

    assert search("rolled back") == ["release.rolled_back"]  # stemmed: rolled ~ rolling
    assert search("timeouts") == ["freeze.overridden", "release.rolled_back"]
    assert search('"payment timeout"') == ["freeze.overridden"]
    assert search("timeout -payment") == ["release.rolled_back"]
    assert search("security or hotfix") == ["freeze.overridden", "release.rejected"]


@on_postgres
@pytest.mark.django_db
def test_on_postgresql_the_search_can_use_the_gin_index() -> None:

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = audit_selectors.audit_events(text="timeout").order_by("-created_at", "-id").explain()

    assert "audit_search_idx" in plan


@on_sqlite
@pytest.mark.django_db
@pytest.mark.usefixtures("reasons")
def test_on_sqlite_search_falls_back_to_substrings(signed_in: Client) -> None:
    response = signed_in.get(TRAIL, {"q": "time secur"})

    assert actions_in(response.text) == []  # both words in one event: none has both
    assert actions_in(signed_in.get(TRAIL, {"q": "secur"}).text) == ["release.rejected"]


@pytest.mark.django_db
def test_the_search_index_exists_on_postgresql_only() -> None:
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, AuditEvent._meta.db_table)

    assert "audit_created_id_idx" in indexes
    assert ("audit_search_idx" in indexes) == (connection.vendor == "postgresql")


# --- htmx and cursor pages ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_htmx_request_gets_only_the_results(signed_in: Client, release: Release) -> None:
    record(release)

    response = signed_in.get(TRAIL, {"action": "release."}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="audit-results"')
    assert "<html" not in response.text and 'name="actor"' not in response.text
    assert actions_in(response.text) == ["release.approved"]
    assert "HX-Request" in response.headers["Vary"]
    assert f"{CSV_EXPORT}?action=release." in response.text  # the export links follow the filters


@pytest.mark.django_db
def test_an_htmx_request_with_bad_filters_gets_the_message_in_the_results(signed_in: Client) -> None:
    response = signed_in.get(TRAIL, {"since": "2026-03-11", "until": "2026-03-01"}, headers={"HX-Request": "true"})

    assert response.status_code == 200  # htmx swaps 2xx answers only
    assert response.text.lstrip().startswith('<section id="audit-results"')
    assert "To (UTC): The end date is before the start date." in response.text


@pytest.mark.django_db
def test_pages_of_events_with_identical_timestamps_have_no_duplicates_or_gaps(
    signed_in: Client, release: Release
) -> None:
    events = [record(release, f"test.e{n:03d}", MOMENT if n % 2 else MOMENT + timedelta(seconds=n)) for n in range(120)]
    expected = [e.action for e in sorted(events, key=lambda e: (e.created_at, e.pk), reverse=True)]

    seen: list[list[str]] = []
    url = f"{TRAIL}?action=test."
    while url:
        response = signed_in.get(url, headers={"HX-Request": "true"})
        seen.append(actions_in(response.text))
        link = older_link(response.text)
        url = f"{TRAIL}{link}" if link else ""

    assert [len(page) for page in seen] == [PAGE_SIZE, PAGE_SIZE, 20]
    assert [action for page in seen for action in page] == expected


# --- An object's own trail on its page ---------------------------------------------------------------


@pytest.mark.django_db
def test_object_pages_link_to_their_full_trail(signed_in: Client, checkout: Application, release: Release) -> None:
    operation = OperationFactory(release=ReleaseFactory(application=checkout, status=ReleaseStatus.APPROVED))
    approval = ApprovalRequestFactory(release=release)
    record(release, reason="Reviewed")

    pages = {
        release.get_absolute_url(): f"?object=releases.release:{release.pk}",
        reverse("operation_detail", args=[operation.pk]): f"?object=releases.operation:{operation.pk}",
        reverse("approval_detail", args=[approval.pk]): f"?object=releases.approvalrequest:{approval.pk}",
        checkout.get_absolute_url(): f"?object=releases.application:{checkout.pk}",
    }
    for page, query in pages.items():
        response = signed_in.get(page)
        assert response.status_code == 200, page
        assert f'href="{TRAIL}{query}"' in response.text, page
    assert "Reviewed" in signed_in.get(release.get_absolute_url()).text  # its own events stay on its page


# --- Exports -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_csv_export_streams_the_filtered_events_with_a_header(signed_in: Client, release: Release) -> None:
    record(release, "release.approved", MOMENT, reason='=HYPERLINK("http://evil")', after={"status": "approved"})
    record(release, "release.rejected", MOMENT + timedelta(minutes=1), reason="Too risky, see notes")
    record(release, "operation.started", MOMENT + timedelta(minutes=2))

    with clock.frozen(datetime(2026, 4, 1, 9, 0, tzinfo=UTC)):
        response = signed_in.get(CSV_EXPORT, {"action": "release."})

    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="slipway-audit-2026-04-01.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "id", "created_at", "actor", "action", "object_type", "object_id", "object", "application", "reason",
        "before", "after", "origin",
    ]  # fmt: skip
    assert [row[3] for row in rows[1:]] == ["release.rejected", "release.approved"]
    rejected, approved = (dict(zip(rows[0], row, strict=True)) for row in rows[1:])
    assert rejected["reason"] == "Too risky, see notes"
    assert rejected["created_at"] == "2026-03-10T12:01:00+00:00"
    assert rejected["application"] == "checkout" and rejected["object"] == "Checkout 7.3.0"
    assert approved["reason"] == '\'=HYPERLINK("http://evil")'  # not run as a formula by a spreadsheet
    assert json.loads(approved["after"]) == {"status": "approved"}
    assert json.loads(approved["origin"])["via"] == "web"
    assert approved["before"] == ""


@pytest.mark.django_db
def test_the_json_export_streams_one_array_of_events(signed_in: Client, release: Release) -> None:
    record(release, "release.approved", MOMENT, reason="=1+1", before={"status": "x"}, after={"status": "y"})
    record(release, "release.rejected", MOMENT + timedelta(minutes=1), reason="Ünïcode reason")

    with clock.frozen(datetime(2026, 4, 1, 9, 0, tzinfo=UTC)):
        response = signed_in.get(JSON_EXPORT, {"q": "reason"})
        everything = signed_in.get(JSON_EXPORT)

    assert response.streaming is True
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="slipway-audit-2026-04-01.json"'
    events = json.loads(b"".join(response.streaming_content))
    assert [e["action"] for e in events] == ["release.rejected"]
    assert events[0]["reason"] == "Ünïcode reason"
    all_events = json.loads(b"".join(everything.streaming_content))
    assert [e["action"] for e in all_events] == ["release.rejected", "release.approved"]
    assert all_events[1]["reason"] == "=1+1"  # verbatim: JSON is not opened as a spreadsheet
    assert all_events[1]["before"] == {"status": "x"} and all_events[1]["after"] == {"status": "y"}
    assert all_events[1]["object_type"] == "releases.release" and all_events[1]["object_id"] == str(release.pk)


@pytest.mark.django_db
def test_an_empty_json_export_is_an_empty_array(signed_in: Client) -> None:
    response = signed_in.get(JSON_EXPORT)

    assert json.loads(b"".join(response.streaming_content)) == []


@pytest.mark.django_db
def test_an_export_with_bad_filters_says_why(signed_in: Client) -> None:
    response = signed_in.get(CSV_EXPORT, {"object": "nonsense"})

    assert response.status_code == 400
    assert "Object: Write the object as type:id" in response.text


@pytest.mark.django_db
def test_the_export_reads_the_trail_in_chunks(
    signed_in: Client, release: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunk_sizes: list[int | None] = []
    original = QuerySet.iterator

    def spy(self: QuerySet[Any], chunk_size: int | None = None) -> Any:
        if self.model is AuditEvent:
            chunk_sizes.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    record(release)

    response = signed_in.get(CSV_EXPORT)
    body = b"".join(response.streaming_content)

    assert chunk_sizes == [2000]
    assert body.count(b"\n") == 2  # the header and one event


# --- Query counts ------------------------------------------------------------------------------------


def add_varied_events(count: int) -> None:
    """Events about releases, operations, applications and approval requests of several applications."""
    for n in range(count):
        application = ApplicationFactory(environments=n % 4 == 1)
        kind = n % 4
        if kind == 0:
            obj: Model = ReleaseFactory(application=ApplicationFactory())
        elif kind == 1:
            obj = OperationFactory(release=ReleaseFactory(application=application, status=ReleaseStatus.APPROVED))
        elif kind == 2:
            obj = application
        else:
            obj = ApprovalRequestFactory()
        record(
            obj,
            f"test.{kind}",
            MOMENT + timedelta(seconds=n),
            reason=f"timeout number {n}",
            before={"status": "a", "n": n},
            after={"status": "b", "n": n},
            application=getattr(obj, "application", None) if not isinstance(obj, Application) else obj,
        )


def count_queries(client: Client, url: str, params: dict[str, str] | None = None, **headers: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, params or {}, headers=headers)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(context.captured_queries)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "params", "headers"),
    [
        (TRAIL, {}, {}),
        (TRAIL, {"q": "timeout", "action": "test.", "since": "2026-01-01"}, {}),
        (TRAIL, {"action": "test."}, {"HX-Request": "true"}),
        (CSV_EXPORT, {}, {}),
        (JSON_EXPORT, {"q": "timeout"}, {}),
    ],
    ids=["page", "filtered page", "htmx partial", "csv", "json"],
)
def test_the_trail_runs_the_same_queries_for_5_or_50_events(
    signed_in: Client, url: str, params: dict[str, str], headers: dict[str, str]
) -> None:
    add_varied_events(5)
    small = count_queries(signed_in, url, params, **headers)
    add_varied_events(45)

    large = count_queries(signed_in, url, params, **headers)

    assert small == large
    assert large <= 7


@pytest.mark.django_db
def test_a_release_page_trail_runs_the_same_queries_for_5_or_50_events(signed_in: Client, release: Release) -> None:
    for n in range(5):
        record(release, f"test.{n}", MOMENT + timedelta(seconds=n), before={"n": n}, after={"n": n + 1})
    small = count_queries(signed_in, release.get_absolute_url())
    for n in range(5, 50):
        record(release, f"test.{n}", MOMENT + timedelta(seconds=n), before={"n": n}, after={"n": n + 1})

    large = count_queries(signed_in, release.get_absolute_url())

    assert small == large
