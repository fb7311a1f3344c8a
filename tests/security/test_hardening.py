"""Production hardening: `check --deploy` clean, cookies and sessions, HSTS, secrets from files, password rules,
and login throttling (django-axes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A production-like environment: DEBUG off, secrets in files, single sign-on configured."""
    (tmp_path / "secret_key").write_text("prod-like-" + "k9X2" * 16 + "\n")
    (tmp_path / "oidc_secret").write_text("oidc-client-secret-from-a-file\n")
    return {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        "ALLOWED_HOSTS": "slipway.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://slipway.example.com",
        "DATABASE_URL": "sqlite:///:memory:",
        "REDIS_URL": "redis://127.0.0.1:6379/11",
        "SECURE_HSTS_PRELOAD": "1",  # the operator's choice (README, "Running it for real"); off, W021 remains
        "OIDC_ISSUER": "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0",
        "OIDC_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
        "OIDC_CLIENT_SECRET_FILE": str(tmp_path / "oidc_secret"),
        "OIDC_ROLE_MAP": "aaaaaaaa-0000-0000-0000-000000000001=approver,aaaaaaaa-0000-0000-0000-000000000002=admin",
        "LOG_STREAM": "stderr",
        **extra,
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603 - our own manage.py


SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
names = ["DEBUG", "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "SESSION_COOKIE_AGE",
         "SESSION_EXPIRE_AT_BROWSER_CLOSE", "CSRF_COOKIE_SECURE", "CSRF_COOKIE_HTTPONLY", "SECURE_SSL_REDIRECT",
         "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_CONTENT_TYPE_NOSNIFF", "X_FRAME_OPTIONS",
         "AXES_ENABLED", "AXES_FAILURE_LIMIT", "AXES_LOCKOUT_PARAMETERS", "OIDC_ENABLED", "OIDC_RP_CLIENT_SECRET",
         "OIDC_ROLE_MAP", "SECRET_KEY"]
print(json.dumps({n: getattr(s, n) for n in names}, default=sorted))
"""


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_hold_the_hardening(tmp_path: Path) -> None:
    result = run([sys.executable, "-c", SHOW_SETTINGS], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])

    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"]
    assert values["CSRF_COOKIE_SECURE"] and values["CSRF_COOKIE_HTTPONLY"]
    assert values["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert values["SESSION_COOKIE_AGE"] == 8 * 3600
    assert values["SESSION_EXPIRE_AT_BROWSER_CLOSE"] is True
    assert values["SECURE_SSL_REDIRECT"] and values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and values["SECURE_CONTENT_TYPE_NOSNIFF"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert (values["AXES_ENABLED"], values["AXES_FAILURE_LIMIT"]) == (True, 5)
    assert values["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"]]
    assert values["OIDC_ENABLED"] is True
    assert values["OIDC_RP_CLIENT_SECRET"] == "oidc-client-secret-from-a-file"  # read from the _FILE, stripped
    assert values["SECRET_KEY"] == "prod-like-" + "k9X2" * 16
    assert values["OIDC_ROLE_MAP"] == {
        "aaaaaaaa-0000-0000-0000-000000000001": ["approver"],
        "aaaaaaaa-0000-0000-0000-000000000002": ["admin"],
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"SECRET_KEY": "also-in-the-environment"}, "Set SECRET_KEY or SECRET_KEY_FILE, not both"),
        ({"SECRET_KEY_FILE": "/nonexistent/slipway/secret"}, "SECRET_KEY_FILE names '/nonexistent/slipway/secret'"),
        ({"OIDC_CLIENT_SECRET_FILE": "", "OIDC_CLIENT_SECRET": ""}, "set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET"),
        ({"OIDC_ROLE_MAP": "some-group=superuser"}, "OIDC_ROLE_MAP entries are <group id or name>="),
        ({"OIDC_ISSUER": "http://idp.example.com"}, "OIDC_ISSUER must be an https:// URL"),
        ({"AXES_FAILURE_LIMIT": "0"}, "AXES_FAILURE_LIMIT and AXES_COOLOFF_MINUTES must be at least 1"),
    ],
)
def test_bad_security_settings_stop_the_start(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    result = run([sys.executable, "manage.py", "check"], production_env(tmp_path, **extra))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_passwords_are_checked_for_length_commonness_and_digits_only(viewer: User) -> None:
    for weak in ("short1!", "password123", "8473629150", viewer.username):
        with pytest.raises(ValidationError):
            validate_password(weak, user=viewer)
    validate_password("a-long-and-unusual-passphrase", user=viewer)


@pytest.mark.django_db
def test_cookies_and_headers_over_https(client: Client, viewer: User) -> None:
    response = client.post(reverse("login"), {"username": viewer.username, "password": PASSWORD}, secure=True)

    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert not session["max-age"] and not session["expires"]  # ends with the browser; the server ends it after 8 h
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    page = Client().get(reverse("login"), secure=True)
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


# --- Login throttling ---------------------------------------------------------------------------------------------


def failed_sign_in(client: Client, username: str, ip: str = "198.51.100.7") -> object:
    return client.post(reverse("login"), {"username": username, "password": "wrong-password"}, REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_five_failures_lock_the_username_from_that_address_for_15_minutes(client: Client, viewer: User) -> None:
    for _ in range(4):
        assert failed_sign_in(client, viewer.username).status_code == 200  # the form again, with its error

    locked = failed_sign_in(client, viewer.username)

    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert f"After 5 failed sign-ins as <strong>{viewer.username}</strong>" in locked.text
    assert "locked for 15\n    minutes" in locked.text or "locked for 15 minutes" in " ".join(locked.text.split())
    # The right password no longer helps from there ...
    right = client.post(
        reverse("login"), {"username": viewer.username, "password": PASSWORD}, REMOTE_ADDR="198.51.100.7"
    )
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    # ... but another address, or another username from the same address, is not locked out.
    other_ip = Client().post(
        reverse("login"), {"username": viewer.username, "password": PASSWORD}, REMOTE_ADDR="203.0.113.9"
    )
    assert other_ip.status_code == 302
    assert failed_sign_in(Client(), "someone-else").status_code == 200


@pytest.mark.django_db
def test_the_lock_lifts_after_the_cool_off_and_a_success_resets_the_count(client: Client, viewer: User) -> None:
    for _ in range(5):
        failed_sign_in(client, viewer.username)
    # 16 minutes later (the failures' recorded time moved back; axes compares it with the real clock).
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    response = client.post(
        reverse("login"), {"username": viewer.username, "password": PASSWORD}, REMOTE_ADDR="198.51.100.7"
    )

    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username=viewer.username).exists()  # reset on success


@pytest.mark.django_db
def test_behind_proxies_the_client_address_comes_from_x_forwarded_for(settings, viewer: User) -> None:
    settings.AXES_TRUSTED_PROXY_COUNT = 1
    for n in range(5):  # a client that invents the left part of the header gains nothing
        Client().post(
            reverse("login"),
            {"username": viewer.username, "password": "wrong"},
            REMOTE_ADDR="10.0.0.4",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 198.51.100.7",
        )

    locked = Client().post(
        reverse("login"),
        {"username": viewer.username, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )
    elsewhere = Client().post(
        reverse("login"),
        {"username": viewer.username, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.4",
        HTTP_X_FORWARDED_FOR="203.0.113.50",
    )

    assert locked.status_code == 429
    assert elsewhere.status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}
