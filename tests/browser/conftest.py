"""Browser tests: headless Chromium (Debian's package, driven by Playwright) against a live server,
with a real `manage.py rqworker` subprocess doing the background work.

Skipped, with the reason, when /usr/bin/chromium is missing (`.ci/run` installs it). A failing test
leaves a screenshot of every page it had open in var/browser-failures/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from rq import Queue

from tests.factories import PASSWORD
from tests.releases.test_jobs import _subprocess_database_url

# Playwright's sync API keeps an event loop running in the test's thread; the ORM calls the test makes
# meanwhile are ordinary blocking calls, which Django would otherwise refuse inside a running loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("SLIPWAY_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps calling home, which this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAILURES = Path(settings.BASE_DIR) / "var" / "browser-failures"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def chromium(_django_db_helper: None) -> Iterator[Any]:
    """A browser per test, started after the test database is set up: Playwright's sync API runs the
    test inside its own greenlet, where Django's per-context connection objects are new ones, so a
    browser kept across tests made later tests miss their serialized-rollback restore."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"No Chromium at {CHROMIUM}: install Debian's chromium package (the CI script does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def sign_in(chromium: Any, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """`sign_in(user)` → a page of a fresh browser context, signed in through the login form."""
    pages: list[Any] = []

    def open_as(user: Any) -> Any:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/")
        pages.append(page)
        return page

    yield open_as
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        FAILURES.mkdir(parents=True, exist_ok=True)
        for n, page in enumerate(pages):
            page.screenshot(path=str(FAILURES / f"{request.node.name}-{n}.png"), full_page=True)
    for page in pages:
        page.context.close()


@pytest.fixture
def worker(rq_queues: dict[str, Queue], live_server: Any) -> Iterator[subprocess.Popen[str]]:
    """A real RQ worker with its scheduler (bakes are scheduled jobs), on the test database and Redis."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    process = subprocess.Popen(  # our own manage.py with the test interpreter
        [sys.executable, "manage.py", "rqworker", "operations", "notifications", "default", "--with-scheduler"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(0.5)
    yield process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
