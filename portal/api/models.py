"""The REST API's own records: personal and service tokens, idempotency keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiToken(models.Model):
    """A scoped credential for pipelines. Only a SHA-256 of the secret is stored; the secret is shown once."""

    class Scope(models.TextChoices):
        READ = "read", "Read everything"
        RELEASES_WRITE = "releases:write", "Register releases and request approval"
        OPERATIONS_WRITE = "operations:write", "Promote, pause, resume and roll back"

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part, shown in lists and logs.")
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "releases_apitoken"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="token_name_unique_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyKey(models.Model):
    """A POST to the API made with an `Idempotency-Key` header, and the answer it got.

    Keyed by whoever called (the token, or the person for a browser session) and the key. The row is
    written in the transaction of the change the request made, so a concurrent retry with the same key
    waits on the unique constraint and then replays the stored answer instead of doing it twice.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    body_hash = models.CharField(max_length=64, help_text="SHA-256 of the request body.")
    # Empty while the first request runs; it is filled in before that request's transaction commits.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "releases_idempotencykey"  # kept from before the move (docs/architecture.md, "Moving a model")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["token", "key"], condition=Q(token__isnull=False), name="idempotency_key_unique_per_token"
            ),
            models.UniqueConstraint(
                fields=["user", "key"], condition=Q(token__isnull=True), name="idempotency_key_unique_per_session_user"
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key[:40]})"
