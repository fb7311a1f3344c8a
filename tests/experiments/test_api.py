"""The events API over HTTP: the flag API key, per-event validation reported by index, idempotent retries,
limits, and what lands in the per-user rows."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from strategies.experiments import ingest
from strategies.experiments.models import (
    Experiment,
    ExperimentEventReceipt,
    ExperimentExposure,
    ExperimentMetricValue,
)
from strategies.flags import services as flag_services
from tests.experiments.conftest import EVENTS_URL, post_events

pytestmark = pytest.mark.django_db


def exposure(i: int, user: str, variant: str, **extra: object) -> dict:
    return {
        "id": f"x-{i}",
        "type": "exposure",
        "user": user,
        "experiment": "button-colour",
        "variant": variant,
        **extra,
    }


def metric(i: int, user: str, name: str = "purchase", value: float | None = None) -> dict:
    event = {"id": f"m-{i}", "type": "metric", "user": user, "flag": "checkout-button", "metric": name}
    if value is not None:
        event["value"] = value
    return event


def test_a_key_is_required(client: Client, running: Experiment, api_key: str, sync_key: str) -> None:
    assert client.post(EVENTS_URL, "{}", content_type="application/json").status_code == 401
    assert post_events(client, [], key="slwf_nope_nope").status_code == 401
    forbidden = post_events(client, [exposure(1, "u1", "blue")], key=sync_key)
    assert forbidden.status_code == 403 and "errorDetails" in forbidden.json()
    assert client.get(EVENTS_URL, HTTP_AUTHORIZATION=f"Bearer {api_key}").status_code == 405


def test_a_key_of_another_environment_finds_no_experiment(
    client: Client, running: Experiment, release_manager: User
) -> None:
    staging = running.environment.application.environments.exclude(pk=running.environment_id).first()
    other = flag_services.api_key_create(environment=staging, name="staging", actor=release_manager).secret
    response = post_events(client, [exposure(1, "u1", "blue")], key=other)
    assert response.status_code == 207
    assert response.json()["rejected"] == [
        {"index": 0, "field": "experiment", "error": "no experiment 'button-colour' takes events in this environment"}
    ]


def test_good_events_are_kept_and_bad_ones_reported_by_index(client: Client, running: Experiment, api_key: str) -> None:
    events = [
        exposure(1, "u1", "blue", covariate=3.5, timestamp="2026-11-20T10:00:00Z"),
        exposure(2, "u2", "purple"),
        {"id": "x-3", "type": "click", "user": "u3", "experiment": "button-colour"},
        exposure(4, "", "blue"),
        metric(5, "u1", value=12.5),
        metric(6, "u1", name="unknown"),
        {"type": "exposure", "user": "u9", "experiment": "button-colour", "variant": "blue"},
        exposure(8, "u8", "green", timestamp="yesterday"),
        metric(9, "u2", name="latency_ms", value="fast"),
        "not an object",
        exposure(11, "u11", "green", timestamp=1764150000000),
        {**metric(12, "u1"), "flag": "no-such-flag"},
    ]
    response = post_events(client, events)
    assert response.status_code == 207
    body = response.json()
    assert body["accepted"] == 3 and body["duplicates"] == 0
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "variant"),
        (2, "type"),
        (3, "user"),
        (5, "metric"),
        (6, "id"),
        (7, "timestamp"),
        (8, "value"),
        (9, "event"),
        (11, "flag"),
    ]
    row = ExperimentExposure.objects.get(user_key="u1")
    assert row.variant == "blue" and row.covariate == 3.5 and row.first_at.isoformat().startswith("2026-11-20T10:00")
    assert ExperimentMetricValue.objects.get(user_key="u1").total == 12.5


def test_a_retried_batch_is_not_counted_twice(client: Client, running: Experiment, api_key: str) -> None:
    events = [
        exposure(1, "u1", "blue"),
        metric(2, "u1", value=10),
        metric(3, "u1", value=5),
        exposure(4, "u2", "green"),
    ]
    first = post_events(client, events)
    assert first.status_code == 200 and first.json() == {"accepted": 4, "duplicates": 0, "rejected": []}
    again = post_events(client, events)
    assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 4, "rejected": []}
    partly = post_events(client, [*events[:2], metric(5, "u1", value=1), metric(5, "u1", value=1)])
    assert partly.json() == {"accepted": 1, "duplicates": 3, "rejected": []}
    value = ExperimentMetricValue.objects.get(user_key="u1", metric="purchase")
    assert (value.count, value.total) == (3, 16.0)
    assert ExperimentEventReceipt.objects.count() == 5 and ExperimentExposure.objects.count() == 2


def test_a_user_seen_in_two_variants_is_marked(client: Client, running: Experiment, api_key: str) -> None:
    post_events(client, [exposure(1, "u1", "blue"), exposure(2, "u2", "green"), exposure(3, "u2", "green")])
    post_events(client, [exposure(4, "u1", "green")])
    post_events(client, [exposure(5, "u3", "blue"), exposure(6, "u3", "green")])  # both in one batch
    conflicted = dict(ExperimentExposure.objects.values_list("user_key", "conflicted"))
    assert conflicted == {"u1": True, "u2": False, "u3": True}


def test_the_earliest_exposure_wins(client: Client, running: Experiment, api_key: str) -> None:
    post_events(client, [exposure(1, "u1", "blue", timestamp="2026-11-20T10:00:00Z")])
    post_events(client, [exposure(2, "u1", "blue", timestamp="2026-11-19T10:00:00Z", covariate=2.0)])
    row = ExperimentExposure.objects.get()
    assert row.first_at.day == 19 and row.covariate == 2.0 and not row.conflicted


def test_limits_and_malformed_bodies(client: Client, running: Experiment, api_key: str) -> None:
    too_many = [exposure(i, f"u{i}", "blue") for i in range(ingest.MAX_EVENTS + 1)]
    response = post_events(client, too_many)
    assert response.status_code == 400 and "At most 5000" in response.json()["errorDetails"]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    assert client.post(EVENTS_URL, "{not json", content_type="application/json", **headers).status_code == 400
    assert client.post(EVENTS_URL, "[1, 2]", content_type="application/json", **headers).status_code == 400
    missing = client.post(EVENTS_URL, json.dumps({"event": []}), content_type="application/json", **headers)
    assert missing.status_code == 400 and "events" in missing.json()["errorDetails"]
    full = post_events(client, [exposure(i, f"u{i}", "blue" if i % 2 else "green") for i in range(ingest.MAX_EVENTS)])
    assert full.status_code == 200 and full.json()["accepted"] == ingest.MAX_EVENTS
    assert ExperimentExposure.objects.count() == ingest.MAX_EVENTS


def test_a_draft_takes_no_events(client: Client, experiment: Experiment, api_key: str) -> None:
    response = post_events(client, [exposure(1, "u1", "blue")])
    assert response.status_code == 207 and response.json()["rejected"][0]["error"] == "'button-colour' is draft"
