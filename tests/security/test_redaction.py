"""No secret in a log record or an audit payload: each path that handles one is driven for real and both are searched.

The paths: API tokens (issued, used in `Authorization`, revoked), flag API keys (issued, used in `Authorization`
and `X-API-Key`), webhook secrets (created, rotated, a failed delivery) and webhook URLs carrying credentials,
passwords (a failed sign-in and the lockout), OIDC tokens and the client secret (a sign-in), and anything that
slips into a log message, an exception or an added log field anyway.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.test import Client
from django.urls import reverse

from portal.api.tokens import token_create, token_revoke
from portal.core import clock
from portal.core.redaction import MASK, SECRET_KEYS, TRIGGERS, RedactingFilter, redact_data, redact_text
from releases.audit.models import AuditEvent
from releases.webhooks import delivery as webhook_delivery
from releases.webhooks.models import WebhookDelivery
from releases.webhooks.services import subscription_create, subscription_rotate_secret, subscription_update
from strategies.flags.services import api_key_create, api_key_revoke
from tests.factories import PASSWORD, ApplicationFactory

log = logging.getLogger("tests.security")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}\n{r.stack_info or ''}" for r in caplog.records)


def everything_audited() -> str:
    return json.dumps(list(AuditEvent.objects.values()), cls=DjangoJSONEncoder)


def assert_nowhere(secret: str, caplog: pytest.LogCaptureFixture) -> None:
    assert secret, "a test must look for a real secret"
    assert secret not in everything_audited(), "the secret is in an audit event"
    assert secret not in everything_logged(caplog), "the secret is in a log record"


# --- The layer itself ------------------------------------------------------------------------------------------

API_TOKEN = "slw_0a1b2c3d_Zm9vYmFyYmF6cXV4cXV1eHh5enp5MDEyMzQ1Njc4OWFiY2RlZg"
FLAG_KEY = "slwf_9f8e7d6c_cXV1eHh5enp5MDEyMzQ1Njc4OWFiY2RlZmZvb2Jhcg"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"Authorization: Bearer {API_TOKEN}", API_TOKEN, "Authorization: "),
        (f"calling with token {API_TOKEN} now", API_TOKEN, "slw_0a1b2c3d_"),  # the public prefix stays
        (f"{{'HTTP_X_API_KEY': '{FLAG_KEY}'}}", FLAG_KEY, "HTTP_X_API_KEY"),
        (f"X-API-Key: {FLAG_KEY}", FLAG_KEY, "X-API-Key: "),
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "Authorization"),
        ("client_secret=s3cr3t-value&grant_type=authorization_code", "s3cr3t-value", "grant_type=authorization_code"),
        ('{"password": "hunter2-correct", "username": "ada"}', "hunter2-correct", '"username": "ada"'),
        (f"id_token {JWT} expired", JWT, "expired"),
        ("GET /oidc/callback/?code=0.AUoA-the-code&state=abc", "0.AUoA-the-code", "state=abc"),
        ("posting to https://hook:p4ssw0rd@hooks.example.com/x", "p4ssw0rd", "hooks.example.com/x"),
    ],
)
def test_secret_shapes_are_masked_and_the_rest_kept(text: str, secret: str, kept: str) -> None:
    redacted = redact_text(text)

    assert secret not in redacted
    assert MASK in redacted
    assert kept in redacted


def test_every_secret_key_name_wakes_the_patterns_up() -> None:
    # redact_text skips text holding none of TRIGGERS: a key name without one would never be masked.
    assert all(any(trigger in key for trigger in TRIGGERS) for key in SECRET_KEYS)


def test_ordinary_text_is_left_alone() -> None:
    text = "Release 2.10.0 of checkout-web promoted by ada (canary 10 %, swap token resumed); key dark-mode on"

    assert redact_text(text) == text
    assert redact_data({"key": "dark-mode", "version": "2.10.0", "scopes": ["read"]}) == {
        "key": "dark-mode",
        "version": "2.10.0",
        "scopes": ["read"],
    }


def test_secret_named_fields_are_masked_at_any_depth() -> None:
    data = {"headers": {"Authorization": "Bearer x", "Accept": "*/*"}, "items": [{"client_secret": "y"}]}

    assert redact_data(data) == {
        "headers": {"Authorization": MASK, "Accept": "*/*"},
        "items": [{"client_secret": MASK}],
    }


def test_every_log_record_is_redacted_when_it_is_made(logs: pytest.LogCaptureFixture) -> None:
    log.warning("upstream refused %s with %s", f"Authorization: Bearer {API_TOKEN}", {"password": "hunter2-x"})
    try:
        raise RuntimeError(f"token endpoint answered: client_secret={'shh-' * 4} id_token={JWT}")
    except RuntimeError:
        log.exception("sign-in broke")
    log.info("stack", stack_info=True, extra={"note": f"X-API-Key: {FLAG_KEY}"})

    assert len(logs.records) == 3
    for secret in (API_TOKEN, "hunter2-x", "shh-shh-", JWT):
        assert secret not in everything_logged(logs)
    assert "sign-in broke" in logs.records[1].getMessage()
    assert "RuntimeError" in logs.records[1].exc_text


def test_the_handler_filter_also_masks_fields_added_after_the_record_was_made() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "request done", None, None)
    record.path = f"/hooks/{API_TOKEN}"
    record.authorization = "Bearer abc"
    record.user = "ada"

    assert RedactingFilter().filter(record)

    assert API_TOKEN not in record.path
    assert record.authorization == MASK
    assert record.user == "ada"


# --- API tokens -------------------------------------------------------------------------------------------------


def test_an_api_token_is_in_no_log_or_audit_event(
    client: Client, release_manager: User, logs: pytest.LogCaptureFixture
) -> None:
    issued = token_create(actor=release_manager, owner=release_manager, name="pipeline", scopes=["read"])
    api = Client()
    assert api.get("/api/v1/applications", HTTP_AUTHORIZATION=f"Bearer {issued.secret}").status_code == 200
    assert api.get("/api/v1/applications", HTTP_AUTHORIZATION=f"Bearer {issued.secret}x").status_code == 401
    log.info("a careless line: Authorization: Bearer %s", issued.secret)
    token_revoke(token=issued.token, actor=release_manager, reason=f"leaked: {issued.secret}")
    assert api.get("/api/v1/applications", HTTP_AUTHORIZATION=f"Bearer {issued.secret}").status_code == 401

    assert_nowhere(issued.secret, logs)
    assert issued.token.prefix in everything_audited()  # the public part is what the trail keeps
    revoked = AuditEvent.objects.get(action="api_token.revoked")
    assert revoked.reason.startswith("leaked: slw_") and MASK in revoked.reason


# --- Flag API keys ----------------------------------------------------------------------------------------------


def test_a_flag_api_key_is_in_no_log_or_audit_event(release_manager: User, logs: pytest.LogCaptureFixture) -> None:
    environment = ApplicationFactory().environments.first()
    issued = api_key_create(environment=environment, name="checkout", actor=release_manager, can_sync=True)
    app = Client()
    assert app.get(reverse("ofrep_configuration"), HTTP_AUTHORIZATION=f"Bearer {issued.secret}").status_code == 200
    assert app.get(reverse("ofrep_configuration"), HTTP_X_API_KEY=issued.secret).status_code == 200
    api_key_revoke(key=issued.key, actor=release_manager, reason="rotated")
    assert app.get(reverse("ofrep_configuration"), HTTP_X_API_KEY=issued.secret).status_code == 401

    assert_nowhere(issued.secret, logs)


# --- Webhook secrets and URLs -----------------------------------------------------------------------------------


def test_a_webhook_secret_is_in_no_log_or_audit_event(release_manager: User, logs: pytest.LogCaptureFixture) -> None:
    application = ApplicationFactory()
    subscription, first = subscription_create(
        application=application, url="http://127.0.0.1:9/hook", events=["release.registered"], actor=release_manager
    )
    second = subscription_rotate_secret(subscription=subscription, actor=release_manager)
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            subscription=subscription,
            event_id=uuid.uuid4(),
            event_type="release.registered",
            payload={"hello": "world"},
            created_at=clock.now(),
        )
    with pytest.raises(webhook_delivery.WebhookDeliveryError):
        webhook_delivery.deliver_webhook(delivery.pk)  # nothing listens on port 9: a failure, logged

    assert any("webhook delivery" in r.getMessage() for r in logs.records)
    assert_nowhere(first, logs)
    assert_nowhere(second, logs)


def test_credentials_in_a_webhook_url_are_masked_in_the_audit_trail(
    release_manager: User, logs: pytest.LogCaptureFixture
) -> None:
    application = ApplicationFactory()
    subscription, _ = subscription_create(
        application=application,
        url="https://ci:p4ss-word-1@hooks.example.com/in?token=tok-123456&team=payments",
        events=["release.registered"],
        actor=release_manager,
    )
    subscription_update(subscription=subscription, actor=release_manager, active=False)

    assert_nowhere("p4ss-word-1", logs)
    assert_nowhere("tok-123456", logs)
    created = AuditEvent.objects.get(action="webhook.created")
    assert created.after["url"] == f"https://ci:{MASK}@hooks.example.com/in?token={MASK}&team=payments"


# --- Passwords ----------------------------------------------------------------------------------------------------


def test_a_password_is_in_no_log_audit_event_or_lockout_record(
    client: Client, viewer: User, logs: pytest.LogCaptureFixture, settings
) -> None:
    from axes.models import AccessAttempt, AccessLog

    settings.AXES_FAILURE_LIMIT = 2
    wrong = "not-the-password-Zq9"
    for _ in range(3):
        client.post(reverse("login"), {"username": viewer.username, "password": wrong})
    client.post(reverse("login"), {"username": "ghost", "password": PASSWORD})

    assert_nowhere(wrong, logs)
    assert_nowhere(PASSWORD, logs)
    stored = json.dumps([*AccessAttempt.objects.values(), *AccessLog.objects.values()], cls=DjangoJSONEncoder)
    assert AccessAttempt.objects.exists()
    assert wrong not in stored and PASSWORD not in stored
