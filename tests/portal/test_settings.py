"""Settings refuse to start wrong, and the health check says whether the portal can work."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

BASE_DIR = Path(settings.BASE_DIR)


def import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Import portal.settings in a fresh interpreter that sees only `env` (plus PATH)."""
    with tempfile.TemporaryDirectory() as var_dir:
        return subprocess.run(
            [sys.executable, "-c", "import portal.settings as s; print('DEBUG', s.DEBUG)"],
            cwd=BASE_DIR,
            env={"PATH": os.environ.get("PATH", ""), "SLIPWAY_VAR_DIR": var_dir, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def test_production_settings_refuse_to_start_without_a_secret_key() -> None:
    result = import_settings()

    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set." in result.stderr


def test_production_settings_start_with_a_secret_key() -> None:
    result = import_settings(SECRET_KEY="a-long-random-production-secret")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG False"


def test_development_settings_start_without_a_secret_key() -> None:
    result = import_settings(DEBUG="yes")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG True"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be a boolean (1/0, true/false, yes/no, on/off), not 'maybe'"),
        ("SESSION_COOKIE_SECURE", "2", "SESSION_COOKIE_SECURE must be a boolean"),
        ("RQ_DEFAULT_TIMEOUT", "ten minutes", "RQ_DEFAULT_TIMEOUT must be an integer, not 'ten minutes'"),
        ("DATABASE_URL", "mongodb://localhost/slipway", "DATABASE_URL is not a database URL Slipway understands"),
        ("API_RATE_LIMIT_PER_MINUTE", "lots", "API_RATE_LIMIT_PER_MINUTE must be an integer, not 'lots'"),
        ("API_MAX_BODY_BYTES", "0", "API_MAX_BODY_BYTES must be at least 1, not 0"),
    ],
)
def test_a_malformed_setting_stops_the_start_with_a_message_naming_it(name: str, value: str, message: str) -> None:
    result = import_settings(SECRET_KEY="a-long-random-production-secret", **{name: value})

    assert result.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {message}" in result.stderr


@pytest.mark.django_db
def test_the_health_check_answers_anonymously_when_database_and_redis_answer(client: Client) -> None:
    # /healthz is liveness only (tests/deploy covers it); /readyz checks the database, migrations and Redis.
    response = client.get(reverse("healthz"))
    ready = client.get(reverse("readyz"))

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
    assert "no-cache" in response.headers["Cache-Control"]


@pytest.mark.django_db
def test_the_health_check_reports_redis_down_as_degraded(client: Client) -> None:
    # Port 9 (discard) has nothing listening here: a real refused connection, not a stand-in.
    unreachable = {name: {"URL": "redis://127.0.0.1:9/15"} for name in settings.RQ_QUEUES}

    with override_settings(RQ_QUEUES=unreachable):
        live = client.get(reverse("healthz"))
        response = client.get(reverse("readyz"))

    assert live.status_code == 200  # liveness asks no dependency: a Redis outage restarts nothing
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "error: ConnectionError"}


@pytest.mark.django_db
def test_the_health_check_only_answers_get(client: Client) -> None:
    assert client.post(reverse("healthz")).status_code == 405
