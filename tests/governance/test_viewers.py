"""Viewers read: the buttons that call the provider or write results are not theirs, and posting anyway is refused
with 403 and writes nothing (no gate results, no refresh asked, no analysis)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from releases.approvals.models import GateResult
from releases.audit.models import AuditEvent
from releases.catalog.models import Application, ReleaseStatus
from tests.factories import ApplicationFactory, ApprovalRequestFactory, ReleaseFactory, add_simulated_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop() -> Application:
    application = ApplicationFactory(name="Shop", slug="shop")
    add_simulated_site(application)
    return application


def test_a_viewer_cannot_refresh_the_slots(client: Client, shop: Application, viewer: User) -> None:
    client.force_login(viewer)
    page = client.get(shop.get_absolute_url()).text
    assert "Refresh slots now" not in page
    assert client.post(reverse("application_refresh_slots", args=[shop.slug])).status_code == 403
    shop.refresh_from_db()
    assert shop.slots_refresh_requested_at is None


def test_a_viewer_cannot_evaluate_the_gates(client: Client, shop: Application, viewer: User, approver: User) -> None:
    release = ReleaseFactory(application=shop, version="1.1.0", status=ReleaseStatus.AWAITING_APPROVAL)
    request = ApprovalRequestFactory(release=release)
    client.force_login(viewer)
    assert "Re-evaluate the gates" not in client.get(reverse("approval_detail", args=[request.pk])).text
    events = AuditEvent.objects.count()
    assert client.post(reverse("approval_gates", args=[request.pk])).status_code == 403
    assert not GateResult.objects.exists() and AuditEvent.objects.count() == events
    client.force_login(approver)
    assert "Re-evaluate the gates" in client.get(reverse("approval_detail", args=[request.pk])).text
    assert client.post(reverse("approval_gates", args=[request.pk])).status_code == 302
    assert GateResult.objects.filter(evaluated_by=approver).exists()
