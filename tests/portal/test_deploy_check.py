"""`manage.py check --deploy` under production-like settings reports only what the README calls deliberate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DELIBERATE = {"security.W021"}  # HSTS preload: README, "Running it for real"


def run_deploy_check(**extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "SECRET_KEY": "a-production-like-secret-key-with-enough-entropy-0123456789-abcdefghij",
        "ALLOWED_HOSTS": "slipway.example.com",
        "DATABASE_URL": "sqlite:///:memory:",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def reported_ids(result: subprocess.CompletedProcess[str]) -> set[str]:
    return set(re.findall(r"\(([a-z_]+\.[A-Z]\d{3})\)", result.stdout + result.stderr))


def test_production_settings_report_only_the_deliberate_warning() -> None:
    result = run_deploy_check()

    assert result.returncode == 0, result.stderr
    assert reported_ids(result) == DELIBERATE


def test_turning_on_hsts_preload_leaves_nothing_to_report() -> None:
    result = run_deploy_check(SECURE_HSTS_PRELOAD="1")

    assert result.returncode == 0, result.stderr
    assert reported_ids(result) == set()
    assert "no issues" in result.stdout


def test_debug_in_production_is_reported() -> None:
    result = run_deploy_check(DEBUG="1")

    assert "security.W018" in reported_ids(result)
