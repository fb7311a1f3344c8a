"""Fixtures of the feature-flag tests: an application's production environment, a release manager
acting on it, flag API keys, and a clean flag cache and Redis for each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from releases.catalog.models import Environment, Stage
from strategies.flags import evaluation, services
from strategies.flags.models import Flag, Segment
from tests.conftest import TEST_REDIS_DB
from tests.factories import ApplicationFactory

KEY = "slwf_test0000_production-evaluate-key"
SYNC_KEY = "slwf_sync0000_production-sync-key"


@pytest.fixture(autouse=True)
def clean_flag_state() -> Iterator[None]:
    """No flag set cached from another test, and an empty test Redis (exposures, rate windows)."""
    connection = evaluation._connection()
    assert connection.connection_pool.connection_kwargs["db"] == TEST_REDIS_DB
    evaluation.forget()
    connection.flushdb()
    yield
    evaluation.forget()
    connection.flushdb()


@pytest.fixture
def production(db: None) -> Environment:
    application = ApplicationFactory(name="Checkout", slug="checkout")
    return application.environments.get(stage=Stage.PRODUCTION)


@pytest.fixture
def api_key(production: Environment, release_manager: User) -> str:
    services.api_key_create(environment=production, name="backend", actor=release_manager, secret=KEY)
    return KEY


@pytest.fixture
def sync_key(production: Environment, release_manager: User) -> str:
    services.api_key_create(
        environment=production, name="flagd", actor=release_manager, can_evaluate=False, can_sync=True, secret=SYNC_KEY
    )
    return SYNC_KEY


@pytest.fixture
def make_flag(production: Environment, release_manager: User) -> Any:
    def make(key: str = "new-checkout", **kwargs: Any) -> Flag:
        kwargs.setdefault("flag_type", "boolean")
        kwargs.setdefault("variants", None)
        kwargs.setdefault("default_variant", "off")
        kwargs.setdefault("environment", production)
        return services.flag_create(key=key, actor=release_manager, **kwargs)

    return make


@pytest.fixture
def staff_segment(production: Environment, release_manager: User) -> Segment:
    from portal.core import clock

    segment = Segment(
        application=production.application,
        key="staff",
        name="Internal staff",
        match="any",
        conditions=[{"attribute": "email", "op": "ends_with", "value": "@example.com"}],
        users=["alice"],
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    return services.segment_save(segment=segment, actor=release_manager)
