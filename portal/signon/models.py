"""Single sign-on: the identity provider's subject a person signed in with."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SsoIdentity(models.Model):
    """The single sign-on subject behind an account (portal.oidc): an issuer and its stable user id.

    Users are matched by (issuer, subject) — Entra ID's `oid`, else `sub` — never by e-mail, so an
    identity provider cannot take over a local account by asserting its address.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField()
    last_sign_in_at = models.DateTimeField()

    class Meta:
        db_table = "releases_ssoidentity"  # kept from before the move (docs/architecture.md, "Moving a model")
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_subject_unique_per_issuer")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
