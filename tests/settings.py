"""Settings for the test suite: the real settings, with a test secret and fast password hashing.

The database comes from DATABASE_URL like everywhere else (`./dev test` points it at PostgreSQL
when one answers, SQLite otherwise). Redis comes from REDIS_URL; tests use their own database
number so they never touch a running portal's queues.
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from portal.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
