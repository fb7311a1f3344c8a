"""Outgoing webhooks: subscriptions per application and one delivery row per event and subscription."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from releases.catalog.models import Application


class WebhookSubscription(models.Model):
    """An outgoing webhook: Slipway POSTs signed JSON about an application's events to `url`.

    `secret` is a shared secret, not a password: Slipway needs it in clear to compute each body's
    HMAC-SHA256 signature (releases.webhooks.delivery), and the receiver holds the same value. It is
    shown once, when made or rotated, and never written to logs or the audit trail.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="webhook_subscriptions")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=list, help_text="Event types delivered (releases.webhooks.events.EVENT_TYPES).")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        db_table = "releases_webhooksubscription"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["application", "created_at", "id"]

    def __str__(self) -> str:
        return f"Webhook {self.pk} of {self.application} to {self.url}"


class WebhookDelivery(models.Model):
    """One event sent (or to send) to one subscription, and how the last attempt went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True, help_text="The first 500 characters of the last answer.")
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    attempt_log = models.JSONField(default=list, blank=True, help_text="One entry per attempt: at, code, error.")
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "releases_webhookdelivery"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subscription", "-created_at"], name="webhook_delivery_sub_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} to webhook {self.subscription_id} ({self.status})"
