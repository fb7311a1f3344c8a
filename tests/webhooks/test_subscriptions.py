"""Subscriptions: who gets which event, validation, the audit trail, and the pages with their roles."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from portal.core.errors import DomainError
from releases.audit.models import AuditEvent
from releases.catalog.models import Application
from releases.intake import services as intake
from releases.webhooks import services as webhooks
from releases.webhooks.models import WebhookDelivery, WebhookSubscription
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/slipway"


@pytest.fixture
def checkout() -> Application:
    return ApplicationFactory(name="Checkout", slug="checkout")


def test_deliveries_go_to_the_active_subscriptions_of_that_application_and_event(
    checkout: Application, release_manager: User
) -> None:
    other = ApplicationFactory(name="Billing", slug="billing")
    wanted, _ = webhooks.subscription_create(
        application=checkout, url=URL, events=["release.registered", "operation.failed"], actor=release_manager
    )
    webhooks.subscription_create(application=checkout, url=URL, events=["approval.requested"], actor=release_manager)
    off, _ = webhooks.subscription_create(
        application=checkout, url=URL, events=["release.registered"], actor=release_manager
    )
    webhooks.subscription_update(subscription=off, active=False, actor=release_manager)
    webhooks.subscription_create(application=other, url=URL, events=["release.registered"], actor=release_manager)

    intake.release_register(application=checkout, version="2.0.0", actor=release_manager)

    [delivery] = WebhookDelivery.objects.all()
    assert delivery.subscription == wanted
    assert (delivery.event_type, delivery.status, delivery.attempts) == ("release.registered", "pending", 0)
    assert delivery.payload["schema_version"] == 1
    assert delivery.payload["release"]["version"] == "2.0.0"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("http://127.0.0.1:8080/x", True),
        ("http://localhost/x", True),
        ("http://[::1]:9000/x", True),
        ("http://hooks.example.com/x", False),
        ("ftp://hooks.example.com/x", False),
        ("http://10.0.0.1/x", False),
    ],
)
def test_only_https_or_the_loopback_may_receive_webhooks(url: str, allowed: bool) -> None:
    assert (webhooks.url_problem(url) == "") is allowed


def test_unknown_events_and_plain_http_are_refused(checkout: Application, release_manager: User) -> None:
    with pytest.raises(DomainError, match="Unknown event type"):
        webhooks.subscription_create(application=checkout, url=URL, events=["release.exploded"], actor=release_manager)
    with pytest.raises(DomainError, match="HTTPS only"):
        webhooks.subscription_create(
            application=checkout, url="http://hooks.example.com/", events=["release.registered"], actor=release_manager
        )
    with pytest.raises(DomainError, match="at least one event"):
        webhooks.subscription_create(application=checkout, url=URL, events=[], actor=release_manager)
    assert not WebhookSubscription.objects.exists()


def test_every_change_of_a_subscription_is_audited_without_its_secret(
    checkout: Application, release_manager: User
) -> None:
    subscription, secret = webhooks.subscription_create(
        application=checkout, url=URL, events=["release.registered"], actor=release_manager
    )
    assert len(secret) >= 40 and subscription.secret == secret
    webhooks.subscription_update(subscription=subscription, active=False, actor=release_manager)
    webhooks.subscription_update(
        subscription=subscription, events=["operation.failed", "release.registered"], actor=release_manager
    )
    rotated = webhooks.subscription_rotate_secret(subscription=subscription, actor=release_manager)
    assert rotated != secret
    assert WebhookSubscription.objects.get().secret == rotated
    webhooks.subscription_delete(subscription=subscription, actor=release_manager)

    trail = list(AuditEvent.objects.filter(object_type="releases.webhooksubscription").order_by("id"))
    assert [e.action for e in trail] == [
        "webhook.created",
        "webhook.deactivated",
        "webhook.updated",
        "webhook.secret_rotated",
        "webhook.deleted",
    ]
    assert all(e.actor == release_manager and e.application == checkout for e in trail)
    assert trail[0].after == {"url": URL, "events": ["release.registered"], "active": True}
    assert trail[2].after["events"] == ["release.registered", "operation.failed"]  # known order
    for event in trail:
        assert secret not in str(event.before) + str(event.after) + event.reason
        assert rotated not in str(event.before) + str(event.after) + event.reason


def test_a_release_manager_adds_a_webhook_and_sees_its_secret_once(
    client: Client, checkout: Application, release_manager: User
) -> None:
    client.force_login(release_manager)
    assert 'href="/apps/checkout/webhooks/"' in client.get(checkout.get_absolute_url()).content.decode()

    response = client.post(
        reverse("webhook_create", args=[checkout.slug]),
        {"url": URL, "events": ["release.registered", "approval.decided"]},
    )

    assert response.status_code == 200
    subscription = WebhookSubscription.objects.get()
    assert subscription.events == ["release.registered", "approval.decided"]
    assert subscription.secret in response.content.decode()
    assert "no-store" in response.headers["Cache-Control"]
    listing = client.get(reverse("webhook_list", args=[checkout.slug])).content.decode()
    assert URL in listing and subscription.secret not in listing

    client.post(reverse("webhook_toggle", args=[checkout.slug, subscription.pk]))
    assert WebhookSubscription.objects.get().active is False
    rotated = client.post(reverse("webhook_rotate", args=[checkout.slug, subscription.pk]))
    assert WebhookSubscription.objects.get().secret in rotated.content.decode()
    client.post(reverse("webhook_delete", args=[checkout.slug, subscription.pk]))
    assert not WebhookSubscription.objects.exists()


def test_the_form_refuses_plain_http_and_no_events(
    client: Client, checkout: Application, release_manager: User
) -> None:
    client.force_login(release_manager)

    response = client.post(reverse("webhook_create", args=[checkout.slug]), {"url": "http://hooks.example.com/"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "HTTPS only" in page and "This field is required" in page
    assert not WebhookSubscription.objects.exists()


def test_a_viewer_reads_the_log_but_changes_nothing(
    client: Client, checkout: Application, viewer: User, release_manager: User
) -> None:
    subscription, _ = webhooks.subscription_create(
        application=checkout, url=URL, events=["release.registered"], actor=release_manager
    )
    intake.release_register(application=checkout, version="2.0.0", actor=release_manager)
    delivery = WebhookDelivery.objects.get()
    client.force_login(viewer)

    listing = client.get(reverse("webhook_list", args=[checkout.slug]))
    log = client.get(reverse("webhook_deliveries", args=[checkout.slug, subscription.pk]))

    assert listing.status_code == 200 and log.status_code == 200
    assert "Rotate secret" not in listing.content.decode()
    assert "release.registered" in log.content.decode() and "Redeliver" not in log.content.decode()
    assert client.post(reverse("webhook_redeliver", args=[checkout.slug, delivery.pk])).status_code == 403
    assert client.post(reverse("webhook_rotate", args=[checkout.slug, subscription.pk])).status_code == 403
    assert client.get(reverse("webhook_create", args=[checkout.slug])).status_code == 403


def test_a_delivery_of_another_application_is_not_found(
    client: Client, checkout: Application, release_manager: User
) -> None:
    other = ApplicationFactory(name="Billing", slug="billing")
    webhooks.subscription_create(application=other, url=URL, events=["release.registered"], actor=release_manager)
    intake.release_register(application=other, version="2.0.0", actor=release_manager)
    client.force_login(release_manager)

    response = client.post(reverse("webhook_redeliver", args=[checkout.slug, WebhookDelivery.objects.get().pk]))

    assert response.status_code == 404


def test_approval_requested_and_decided_are_announced(checkout: Application, release_manager: User) -> None:
    from django.contrib.auth.models import Group

    from portal.core.roles import Role
    from releases.approvals.models import ApprovalRequest
    from releases.approvals.workflow import approval_decide
    from releases.catalog.models import Stage
    from tests.factories import ApprovalPolicyFactory, UserFactory, add_simulated_site

    add_simulated_site(checkout)
    ApprovalPolicyFactory(
        environment=checkout.environments.get(stage=Stage.PRODUCTION),
        approvals_required=1,
        approver_groups=[Group.objects.get(name=Role.APPROVER.value)],
    )
    approver = UserFactory(username="ann", roles=[Role.APPROVER])
    webhooks.subscription_create(
        application=checkout, url=URL, events=["approval.requested", "approval.decided"], actor=release_manager
    )

    intake.release_register(
        application=checkout, version="2.0.0", actor=release_manager, deployed_slot=checkout.slots.get(name="staging")
    )
    request = ApprovalRequest.objects.get()
    approval_decide(request=request, actor=approver, verdict="approve")

    requested, decided = WebhookDelivery.objects.order_by("id")
    assert requested.event_type == "approval.requested"
    assert requested.payload["approval_request"]["status"] == "pending"
    assert decided.event_type == "approval.decided"
    assert decided.payload["approval_request"]["status"] == "approved"
    assert decided.payload["release"]["version"] == "2.0.0"
