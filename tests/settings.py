"""Settings for the test suite: the real settings, with a test secret and fast password hashing.

The database comes from DATABASE_URL like everywhere else (`./dev test` points it at PostgreSQL
when one answers, SQLite otherwise). Redis comes from REDIS_URL; tests use their own database
number so they never touch a running portal's queues.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")
os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:6379/{os.environ.get('SLIPWAY_TEST_REDIS_DB', '15')}")

from portal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file rather than memory, so that an RQ worker started as a subprocess (tests/releases/test_jobs.py)
    # sees the test database too; one per test process, so that two test runs never share one.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"slipway-test-{os.getpid()}.sqlite3")
    }

# whitenoise warns once per test client when STATIC_ROOT is missing; tests serve from the finders.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# Mail stays in memory (django.core.mail.outbox) during tests.
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

# The simulator's swaps take a few hundredths of a second, and a restart is over at once.
SIMULATOR_TIMINGS = {
    **SIMULATOR_TIMINGS,  # noqa: F405
    "swap_seconds": 0.06,
    "warmup_seconds": 0.02,
    "routing_seconds": 0.02,
    "restart_seconds": 0.0,
    "serve_sleep_max_ms": 0.0,
}

# Operations: a swap whose runner died is given a moment to land (the simulator's swaps take 0.06 s).
OPERATION_SWAP_SETTLE_SECONDS = 0.5
