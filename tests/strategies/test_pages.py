"""The operation pages on the simulator: promote from the release page, follow, act, roll back (real workers)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rq import Queue

from releases.catalog.models import Application, Release, ReleaseStatus
from strategies.operations import services
from strategies.operations.models import Operation, OperationStatus
from tests.strategies.conftest import FAST_BLUE_GREEN, drive

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

HTMX = {"HTTP_HX_REQUEST": "true"}


def start_blue_green(candidate: Release, actor: User) -> Operation:
    return services.operation_start(release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=actor)


def test_a_release_manager_previews_then_starts_a_blue_green_promotion_and_follows_it(
    client: Client, rq_queues: dict[str, Queue], candidate: Release, live: Release, release_manager: User
) -> None:
    client.force_login(release_manager)
    page = client.get(candidate.get_absolute_url())
    assert "Promote to production" in page.text
    assert '<option value="blue_green" selected>' in page.text
    form = {"strategy": "blue_green", "preview": "on", "verify_seconds": "0.05"}

    preview = client.post(reverse("release_promote", args=[candidate.pk]), {**form, "action": "preview"})

    assert preview.status_code == 200
    assert "Apply production&#x27;s settings to staging (swap with preview)" in preview.text
    assert "Swap staging into production: 1.0.0 → 1.1.0" in preview.text
    assert not Operation.objects.exists()

    started = client.post(reverse("release_promote", args=[candidate.pk]), {**form, "action": "start"})

    operation = Operation.objects.get()
    assert started.status_code == 302
    assert started.headers["Location"] == reverse("operation_detail", args=[operation.pk])
    assert operation.strategy == "blue_green" and operation.parameters["preview"] is True
    running = client.get(started.headers["Location"])
    assert running.status_code == 200
    assert "Mark 1.1.0 live" in running.text and "<progress" in running.text
    assert 'hx-trigger="every 2s"' in running.text
    poll = client.get(started.headers["Location"], **HTMX)
    assert poll.status_code == 200
    assert poll.text.lstrip().startswith('<section id="steps"') and "<html" not in poll.text

    drive(rq_queues["operations"], operation)

    done = client.get(started.headers["Location"])
    assert operation.status == OperationStatus.SUCCEEDED
    assert "Succeeded" in done.text and 'hx-trigger="every 2s"' not in done.text
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.LIVE
    final_poll = client.get(started.headers["Location"], **HTMX)
    assert final_poll.status_code == 286
    assert "Succeeded" in final_poll.text and final_poll["Content-Type"].startswith("text/html")


def test_bad_options_are_refused_with_a_400_and_nothing_starts(
    client: Client, candidate: Release, release_manager: User
) -> None:
    client.force_login(release_manager)
    url = reverse("release_promote", args=[candidate.pk])

    not_numbers = client.post(url, {"strategy": "canary", "shares": "5, lots", "action": "start"})
    falling = client.post(url, {"strategy": "canary", "shares": "50, 5", "action": "start"})

    assert not_numbers.status_code == 400 and "Give whole percentages" in not_numbers.text
    assert falling.status_code == 400 and "shares must rise strictly" in falling.text
    assert not Operation.objects.exists()


def test_a_second_start_is_a_409_naming_the_running_operation(
    client: Client, rq_queues: dict[str, Queue], candidate: Release, release_manager: User
) -> None:
    operation = start_blue_green(candidate, release_manager)
    client.force_login(release_manager)

    response = client.post(reverse("release_promote", args=[candidate.pk]), {"strategy": "canary", "action": "start"})

    assert response.status_code == 409
    assert "rolling out; only an approved release can be promoted" in response.text
    assert list(Operation.objects.all()) == [operation]


def test_a_viewer_sees_the_operation_but_may_not_start_pause_or_roll_back(
    client: Client,
    rq_queues: dict[str, Queue],
    checkout: Application,
    candidate: Release,
    release_manager: User,
    viewer: User,
) -> None:
    operation = start_blue_green(candidate, release_manager)
    client.force_login(viewer)

    page = client.get(reverse("operation_detail", args=[operation.pk]))
    release_page = client.get(candidate.get_absolute_url())
    refused = [
        client.post(reverse("release_promote", args=[candidate.pk]), {"strategy": "blue_green", "action": "start"}),
        client.post(reverse("operation_pause", args=[operation.pk])),
        client.post(reverse("operation_rollback", args=[operation.pk]), {"reason": "bad"}),
        client.post(reverse("application_rollback", args=[checkout.slug]), {"reason": "bad"}),
    ]

    assert page.status_code == 200 and "Pending" in page.text
    assert "Roll back" not in page.text and "Pause" not in page.text
    assert "Promote to production" not in release_page.text
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert "needs the release manager role" in refused[1].text
    operation.refresh_from_db()
    assert operation.status == OperationStatus.PENDING and Operation.objects.count() == 1


def test_a_rollback_without_a_reason_is_a_400_and_starts_nothing(
    client: Client, rq_queues: dict[str, Queue], checkout: Application, candidate: Release, release_manager: User
) -> None:
    client.force_login(release_manager)

    response = client.post(reverse("application_rollback", args=[checkout.slug]), {"reason": "  "})

    assert response.status_code == 400
    assert "This field is required." in response.text
    assert not Operation.objects.exists()

    operation = start_blue_green(candidate, release_manager)
    on_operation = client.post(reverse("operation_rollback", args=[operation.pk]), {"reason": ""})

    assert on_operation.status_code == 400 and "This field is required." in on_operation.text
    operation.refresh_from_db()
    assert operation.status == OperationStatus.PENDING


def test_pause_and_resume_from_the_operation_page(
    client: Client, rq_queues: dict[str, Queue], candidate: Release, release_manager: User
) -> None:
    operation = start_blue_green(candidate, release_manager)
    client.force_login(release_manager)

    paused = client.post(reverse("operation_pause", args=[operation.pk]))
    again = client.post(reverse("operation_pause", args=[operation.pk]))

    assert paused.status_code == 302
    operation.refresh_from_db()
    assert operation.status == OperationStatus.PAUSED
    assert again.status_code == 409 and "it cannot be paused" in again.text

    assert client.post(reverse("operation_resume", args=[operation.pk])).status_code == 302
    drive(rq_queues["operations"], operation)
    assert operation.status == OperationStatus.SUCCEEDED


def test_a_release_manager_rolls_production_back_from_the_application_page(
    client: Client,
    rq_queues: dict[str, Queue],
    checkout: Application,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    drive(rq_queues["operations"], start_blue_green(candidate, release_manager))
    client.force_login(release_manager)
    assert "Roll back production" in client.get(checkout.get_absolute_url()).text

    response = client.post(reverse("application_rollback", args=[checkout.slug]), {"reason": "Checkout errors"})

    rollback = Operation.objects.get(kind=Operation.Kind.ROLLBACK)
    assert response.status_code == 302
    assert response.headers["Location"] == reverse("operation_detail", args=[rollback.pk])
    drive(rq_queues["operations"], rollback)
    assert rollback.status == OperationStatus.SUCCEEDED
    live.refresh_from_db()
    candidate.refresh_from_db()
    assert (live.status, candidate.status) == (ReleaseStatus.LIVE, ReleaseStatus.ROLLED_BACK)
    assert "Checkout errors" in client.get(response.headers["Location"]).text
