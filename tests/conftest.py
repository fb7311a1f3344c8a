"""Shared fixtures: one persona per role, and the test Redis.

Personas are real users in the real groups that migration `releases/0002_roles` creates, so every
role check in the suite also checks that migration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import django_rq
import pytest
from django.contrib.auth.models import User
from rq import Queue

from portal.core.roles import Role
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Each test starts with an empty cache: database ids repeat across tests, cached renderings must not."""
    from django.core.cache import cache

    from strategies.flags import evaluation, freshness

    cache.clear()
    # Process memory of the flag API (known keys, compiled flag sets): ids repeat across tests too.
    freshness.forget()
    evaluation.forget()
    yield


@pytest.fixture
def viewer(db: None) -> User:
    return UserFactory(username="vera-viewer", roles=[Role.VIEWER])


@pytest.fixture
def approver(db: None) -> User:
    return UserFactory(username="arun-approver", roles=[Role.APPROVER])


@pytest.fixture
def release_manager(db: None) -> User:
    return UserFactory(username="rita-release-manager", roles=[Role.RELEASE_MANAGER])


@pytest.fixture
def admin_user(db: None) -> User:
    return UserFactory(username="ada-admin", roles=[Role.ADMIN])


@pytest.fixture
def no_role_user(db: None) -> User:
    return UserFactory(username="nico-no-role")


# Redis database the tests own and wipe; another number lets two test runs share one Redis.
TEST_REDIS_DB = int(os.environ.get("SLIPWAY_TEST_REDIS_DB", "15"))


def _empty(queues: list[Queue]) -> None:
    """Wipe the test Redis database: jobs, registries, scheduler locks and worker records alike."""
    for connection in {id(q.connection): q.connection for q in queues}.values():
        # Refuse to wipe anything but the test database number: a developer's portal may share this Redis.
        assert connection.connection_pool.connection_kwargs["db"] == TEST_REDIS_DB, (
            f"Tests must run against Redis database {TEST_REDIS_DB} (tests/settings.py sets REDIS_URL); "
            f"refusing to empty {connection}"
        )
        connection.flushdb()


@pytest.fixture
def rq_queues() -> Iterator[dict[str, Queue]]:
    """The real RQ queues on the test Redis database, emptied before and after the test."""
    queues = {name: django_rq.get_queue(name) for name in ("default", "operations", "notifications")}
    _empty(list(queues.values()))
    yield queues
    _empty(list(queues.values()))
