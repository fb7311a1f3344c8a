"""Fixtures of the experiment tests: the flag fixtures (production, keys, flags, segments, clean Redis and
flag cache), a two-variant flag, a draft experiment on it, and a helper that posts event batches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from releases.catalog.models import Environment
from strategies.experiments import services
from strategies.experiments.models import Experiment
from strategies.flags.models import Flag
from tests.flags.conftest import (  # noqa: F401 - fixtures
    KEY,
    SYNC_KEY,
    api_key,
    clean_flag_state,
    make_flag,
    production,
    staff_segment,
    sync_key,
)

EVENTS_URL = "/experiments/api/v1/events"


@pytest.fixture
def button_flag(make_flag: Any) -> Flag:  # noqa: F811 - the fixture imported above
    return make_flag(
        "checkout-button",
        flag_type="string",
        variants={"blue": "#2e6da4", "green": "#2e8b57", "orange": "#f0a202"},
        default_variant="blue",
    )


def draft(flag: Flag, actor: User, **overrides: Any) -> Experiment:
    values: dict[str, Any] = {
        "flag": flag,
        "key": "button-colour",
        "name": "Button colour",
        "actor": actor,
        "hypothesis": "A green button sells more.",
        "allocation": [["blue", 50], ["green", 50]],
        "primary_metric": {"name": "purchase", "kind": "conversion", "direction": "increase"},
        "guardrails": [{"name": "latency_ms", "kind": "continuous", "direction": "decrease", "tolerance": 5}],
        "mde": 0.1,
        "baseline_rate": 0.1,
    }
    values.update(overrides)
    return services.experiment_create(**values)


@pytest.fixture
def experiment(button_flag: Flag, release_manager: User) -> Experiment:
    return draft(button_flag, release_manager)


@pytest.fixture
def running(experiment: Experiment, release_manager: User) -> Experiment:
    return services.experiment_start(experiment=experiment, actor=release_manager)


def post_events(client: Client, events: list[dict[str, Any]], key: str = KEY) -> Any:
    return client.post(
        EVENTS_URL, json.dumps({"events": events}), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def environment_of(experiment: Experiment) -> Environment:
    return experiment.environment
