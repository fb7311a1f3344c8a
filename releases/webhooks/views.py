"""Webhook pages: subscriptions of an application, their delivery log, and the changes (release managers)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from portal.core.errors import DomainError
from portal.core.roles import Role, role_required
from releases.catalog.models import Application
from releases.webhooks import services
from releases.webhooks.events import EVENT_TYPES
from releases.webhooks.forms import SubscriptionForm
from releases.webhooks.models import WebhookDelivery, WebhookSubscription

DELIVERIES_SHOWN = 50


def _subscription(slug: str, pk: int) -> tuple[Application, WebhookSubscription]:
    application = get_object_or_404(Application, slug=slug)
    return application, get_object_or_404(WebhookSubscription, pk=pk, application=application)


def _secret_page(
    request: HttpRequest, application: Application, subscription: WebhookSubscription, secret: str, *, made: bool
) -> HttpResponse:
    context = {"application": application, "subscription": subscription, "secret": secret, "made": made}
    return render(request, "webhooks/secret.html", context)


@role_required(Role.VIEWER)
def webhook_list(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    subscriptions = list(application.webhook_subscriptions.all())
    for subscription in subscriptions:
        subscription.event_labels = [EVENT_TYPES.get(e, e) for e in subscription.events]
        subscription.last_delivery = subscription.deliveries.first()
    return render(request, "webhooks/list.html", {"application": application, "subscriptions": subscriptions})


@role_required(Role.RELEASE_MANAGER)
@never_cache
def webhook_create(request: HttpRequest, slug: str) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            subscription, secret = services.subscription_create(
                application=application,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                actor=request.user,
            )
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            return _secret_page(request, application, subscription, secret, made=True)
    status = 400 if request.method == "POST" else 200
    return render(request, "webhooks/create.html", {"application": application, "form": form}, status=status)


@role_required(Role.VIEWER)
def webhook_deliveries(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    application, subscription = _subscription(slug, pk)
    deliveries = list(subscription.deliveries.all()[:DELIVERIES_SHOWN])
    for delivery in deliveries:
        delivery.payload_json = json.dumps(delivery.payload, indent=2, sort_keys=True)
    context = {
        "application": application,
        "subscription": subscription,
        "event_labels": [EVENT_TYPES.get(e, e) for e in subscription.events],
        "deliveries": deliveries,
    }
    return render(request, "webhooks/deliveries.html", context)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def webhook_toggle(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    _, subscription = _subscription(slug, pk)
    try:
        services.subscription_update(subscription=subscription, actor=request.user, active=not subscription.active)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Webhook to {subscription.url} turned {'on' if not subscription.active else 'off'}.")
    return redirect("webhook_list", slug=slug)


@require_POST
@role_required(Role.RELEASE_MANAGER)
@never_cache
def webhook_rotate(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    application, subscription = _subscription(slug, pk)
    secret = services.subscription_rotate_secret(subscription=subscription, actor=request.user)
    return _secret_page(request, application, subscription, secret, made=False)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def webhook_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    _, subscription = _subscription(slug, pk)
    url = subscription.url
    services.subscription_delete(subscription=subscription, actor=request.user)
    messages.success(request, f"Deleted the webhook to {url} and its delivery log.")
    return redirect("webhook_list", slug=slug)


@require_POST
@role_required(Role.RELEASE_MANAGER)
def webhook_redeliver(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    application = get_object_or_404(Application, slug=slug)
    delivery = get_object_or_404(
        WebhookDelivery.objects.select_related("subscription"), pk=pk, subscription__application=application
    )
    again = services.delivery_redeliver(delivery=delivery, actor=request.user)
    messages.success(request, f"Queued delivery {again.pk}: {delivery.event_type} again, signed afresh.")
    return redirect("webhook_deliveries", slug=slug, pk=delivery.subscription_id)
