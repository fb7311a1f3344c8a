"""The CLI's test world: the API's (Checkout on the simulator, 1.0.0 live, production needing one approval,
the `ci-pipeline` service account with a token), and `slipway`, which runs the CLI as a real subprocess
against the live server — the way a pipeline runs it, with nothing installed (PYTHONPATH=cli/)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from strategies.operations.models import Operation
from tests.api.conftest import checkout, pipeline, token  # noqa: F401 (fixtures)

CLI = Path(settings.BASE_DIR) / "cli"


@pytest.fixture
def slipway_env(live_server: Any, token: str) -> dict[str, str]:  # noqa: F811
    return {
        **os.environ,
        "PYTHONPATH": str(CLI),
        "PYTHONUNBUFFERED": "1",
        "SLIPWAY_URL": live_server.url,
        "SLIPWAY_TOKEN": token,
    }


@pytest.fixture
def slipway(slipway_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`slipway("release", "register", ...)` → the finished process (stdout, stderr, returncode)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own client, with the test's interpreter
            [sys.executable, "-m", "slipway_cli.main", *args],
            env={**slipway_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def slipway_start(slipway_env: dict[str, str]) -> Callable[..., subprocess.Popen[str]]:
    """`slipway_start(...)` → the running process, for the commands that wait while the test acts."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(  # noqa: S603 - our own client, with the test's interpreter
            [sys.executable, "-m", "slipway_cli.main", *args],
            env=slipway_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def operation_started(process: subprocess.Popen[str], timeout: float = 20, **lookup: Any) -> Operation:
    """The operation the CLI process asked for, once the API has created it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        operation = Operation.objects.filter(**lookup).order_by("-pk").first()
        if operation is not None:
            return operation
        if process.poll() is not None:
            raise AssertionError(f"the CLI ended with {process.returncode}: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no operation {lookup} after {timeout} s")
