"""OFREP as the protocol's OpenAPI document has it, the flagd sync URL and reported events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from releases.audit.models import AuditEvent
from releases.catalog.models import Environment
from strategies.flags import evaluation, freshness, services
from strategies.flags.models import FlagApiKey, FlagEventBucket, FlagSet
from tests.flags.conftest import KEY

pytestmark = pytest.mark.django_db


def post(client: Client, path: str, body: Any = None, key: str | None = KEY, **headers: str) -> Any:
    if key:
        headers.setdefault("Authorization", f"Bearer {key}")
    data = body if isinstance(body, str) else json.dumps(body or {})
    return client.post(path, data, content_type="application/json", headers=headers)


def evaluate(client: Client, flag: str, context: Any = None, **kwargs: Any) -> Any:
    return post(
        client, f"/ofrep/v1/evaluate/flags/{flag}", {"context": context} if context is not None else {}, **kwargs
    )


def test_a_boolean_flag_is_evaluated_with_value_variant_reason_and_metadata(
    client: Client, api_key: str, make_flag: Any
) -> None:
    make_flag("new-checkout", default_variant="on")

    response = evaluate(client, "new-checkout", {"targetingKey": "u1"})

    assert response.status_code == 200
    body = response.json()
    assert body["key"] == "new-checkout"
    assert body["value"] is True
    assert body["variant"] == "on"
    assert body["reason"] == "STATIC"
    assert body["metadata"]["flagSetId"] == "checkout/prod"
    assert body["metadata"]["type"] == "boolean"


def test_the_key_may_come_in_x_api_key(client: Client, api_key: str, make_flag: Any) -> None:
    make_flag()

    response = post(client, "/ofrep/v1/evaluate/flags/new-checkout", {}, key=None, **{"X-API-Key": api_key})

    assert response.status_code == 200
    assert response.json()["value"] is False


def test_without_a_key_it_is_401_and_with_a_revoked_key_too(
    client: Client, api_key: str, make_flag: Any, release_manager: User
) -> None:
    make_flag()
    assert evaluate(client, "new-checkout", key=None).status_code == 401
    assert evaluate(client, "new-checkout", key="slwf_nope").status_code == 401

    services.api_key_revoke(key=FlagApiKey.objects.get(), actor=release_manager)
    response = evaluate(client, "new-checkout")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "revoked" in response.json()["errorDetails"]


def test_a_sync_only_key_may_not_evaluate_403(client: Client, sync_key: str, make_flag: Any) -> None:
    make_flag()

    response = evaluate(client, "new-checkout", key=sync_key)

    assert response.status_code == 403
    assert "not evaluate" in response.json()["errorDetails"]


def test_an_unknown_flag_is_404_flag_not_found(client: Client, api_key: str) -> None:
    response = evaluate(client, "nope", {"targetingKey": "u1"})

    assert response.status_code == 404
    assert response.json() == {
        "key": "nope",
        "errorCode": "FLAG_NOT_FOUND",
        "errorDetails": "No flag 'nope' in this environment.",
    }


def test_a_split_without_a_targeting_key_is_400_targeting_key_missing(
    client: Client, api_key: str, make_flag: Any
) -> None:
    make_flag(rules={"fallthrough": {"split": [["on", 10], ["off", 90]]}})

    response = evaluate(client, "new-checkout", {"country": "DE"})

    assert response.status_code == 400
    assert response.json()["errorCode"] == "TARGETING_KEY_MISSING"
    assert response.json()["key"] == "new-checkout"


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ("not json", "not JSON"),
        ('{"context": [1, 2]}', "JSON object of attributes"),
        ('{"context": {"targetingKey": 42}}', "targetingKey must be a string"),
        ("[1]", "JSON object"),
    ],
)
def test_a_malformed_context_is_400_invalid_context(
    client: Client, api_key: str, make_flag: Any, body: str, details: str
) -> None:
    make_flag()

    single = post(client, "/ofrep/v1/evaluate/flags/new-checkout", body)
    bulk = post(client, "/ofrep/v1/evaluate/flags", body)

    assert single.status_code == 400
    assert single.json()["errorCode"] == "INVALID_CONTEXT"
    assert single.json()["key"] == "new-checkout"
    assert details in single.json()["errorDetails"]
    assert bulk.status_code == 400
    assert bulk.json()["errorCode"] == "INVALID_CONTEXT"


def test_a_version_that_is_not_semantic_is_invalid_context_for_a_version_rule(
    client: Client, api_key: str, make_flag: Any
) -> None:
    rule = {
        "match": "all",
        "conditions": [{"attribute": "appVersion", "op": "semver_ge", "value": "2.0.0"}],
        "serve": {"variant": "on"},
    }
    make_flag(rules={"rules": [rule]})

    assert evaluate(client, "new-checkout", {"targetingKey": "u", "appVersion": "2.1.0"}).json()["value"] is True
    response = evaluate(client, "new-checkout", {"targetingKey": "u", "appVersion": "two"})

    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"


def test_bulk_evaluation_answers_every_flag_and_a_matching_etag_gets_304(
    client: Client, api_key: str, make_flag: Any
) -> None:
    make_flag("a-toggle", default_variant="on")
    make_flag("b-split", rules={"fallthrough": {"split": [["on", 50], ["off", 50]]}})
    make_flag("c-colour", flag_type="string", variants={"blue": "#00f", "red": "#f00"}, default_variant="red")

    first = post(client, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u1"}})
    again = post(
        client,
        "/ofrep/v1/evaluate/flags",
        {"context": {"targetingKey": "u1"}},
        **{"If-None-Match": first.headers["ETag"]},
    )
    anonymous = post(client, "/ofrep/v1/evaluate/flags", {"context": {}}, **{"If-None-Match": first.headers["ETag"]})

    assert first.status_code == 200
    flags = {f["key"]: f for f in first.json()["flags"]}
    assert flags["a-toggle"]["value"] is True
    assert flags["c-colour"]["value"] == "#f00"
    assert flags["b-split"]["reason"] == "TARGETING_MATCH"
    assert again.status_code == 304
    assert again.headers["ETag"] == first.headers["ETag"]
    assert anonymous.status_code == 200
    failed = {f["key"]: f for f in anonymous.json()["flags"]}["b-split"]
    assert failed["errorCode"] == "TARGETING_KEY_MISSING"


def test_a_change_of_a_flag_changes_the_etag(
    client: Client, api_key: str, make_flag: Any, release_manager: User
) -> None:
    flag = make_flag()
    first = post(client, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u1"}})

    services.flag_kill(flag=flag, actor=release_manager)
    after = post(
        client,
        "/ofrep/v1/evaluate/flags",
        {"context": {"targetingKey": "u1"}},
        **{"If-None-Match": first.headers["ETag"]},
    )

    assert after.status_code == 200
    assert after.json()["flags"][0]["reason"] == "DISABLED"


def test_the_kill_switch_serves_the_default_variant_as_disabled(
    client: Client, api_key: str, make_flag: Any, release_manager: User
) -> None:
    flag = make_flag(rules={"rules": [{"conditions": [], "serve": {"variant": "on"}}]})
    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).json()["value"] is True

    services.flag_kill(flag=flag, actor=release_manager, reason="errors up")
    body = evaluate(client, "new-checkout", {"targetingKey": "u"}).json()

    assert (body["value"], body["variant"], body["reason"]) == (False, "off", "DISABLED")
    event = AuditEvent.objects.get(action="flag.killed")
    assert (event.before["state"], event.after["state"], event.reason) == ("ENABLED", "DISABLED", "errors up")


def test_a_warm_cache_evaluates_without_a_query_and_a_request_costs_one(
    client: Client, api_key: str, make_flag: Any, django_assert_num_queries: Any
) -> None:
    for i in range(5):
        make_flag(f"flag-{i}")
    environment_id = FlagApiKey.objects.get().environment_id
    post(client, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u"}})  # warms the cache, records use

    with django_assert_num_queries(0):
        flag_set = evaluation.compiled(environment_id, evaluation._cache[environment_id].revision)
        results = evaluation.evaluate_all(flag_set, evaluation.parse_context({"targetingKey": "u"}))
    with django_assert_num_queries(0):  # the key is remembered, the revision comes with the rate limit's round trip
        response = post(client, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u"}})
        single = evaluate(client, "flag-0", {"targetingKey": "u"})

    assert len(results) == 5
    assert response.status_code == 200
    assert single.status_code == 200


def test_a_remembered_key_is_refused_as_soon_as_it_is_revoked(
    client: Client, api_key: str, make_flag: Any, release_manager: User
) -> None:
    make_flag()
    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).status_code == 200
    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).status_code == 200  # from memory now

    services.api_key_revoke(key=FlagApiKey.objects.get(), actor=release_manager)

    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).status_code == 401


def test_a_committed_change_is_announced_and_served_without_a_query(
    client: Client,
    api_key: str,
    make_flag: Any,
    release_manager: User,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    flag = make_flag()
    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).json()["value"] is False

    with django_capture_on_commit_callbacks(execute=True) as announced:  # what runs once the change commits
        services.flag_update(flag=flag, actor=release_manager, default_variant="on")

    assert announced

    revision = int(freshness.connection().get(freshness.revision_key(flag.environment_id)))
    assert revision == FlagSet.objects.get(environment_id=flag.environment_id).revision
    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).json()["value"] is True  # compiles it once
    with django_assert_num_queries(0):
        assert evaluate(client, "new-checkout", {"targetingKey": "u"}).json()["value"] is True


def test_without_redis_keys_and_revisions_come_from_the_database(
    client: Client, api_key: str, make_flag: Any, release_manager: User
) -> None:
    flag = make_flag()
    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).json()["value"] is False
    nobody_listens = "redis://127.0.0.1:1/0"  # a closed port: every Redis call fails at once
    with override_settings(REDIS_URL=nobody_listens):
        freshness._redis = None
        try:
            services.flag_update(flag=flag, actor=release_manager, default_variant="on")
            answer = evaluate(client, "new-checkout", {"targetingKey": "u"})
            services.api_key_revoke(key=FlagApiKey.objects.get(), actor=release_manager)
            refused = evaluate(client, "new-checkout", {"targetingKey": "u"})
        finally:
            freshness._redis = None
    assert answer.status_code == 200
    assert answer.json()["value"] is True
    assert refused.status_code == 401


def test_a_change_invalidates_the_cache(client: Client, api_key: str, make_flag: Any, release_manager: User) -> None:
    flag = make_flag()
    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).json()["value"] is False

    services.flag_update(flag=flag, actor=release_manager, default_variant="on")

    assert evaluate(client, "new-checkout", {"targetingKey": "u"}).json()["value"] is True


@override_settings(FLAGS_RATE_LIMIT_PER_MINUTE=2)
def test_past_the_rate_limit_it_is_429_with_retry_after(client: Client, api_key: str, make_flag: Any) -> None:
    make_flag()
    for _ in range(2):
        assert evaluate(client, "new-checkout").status_code == 200

    response = evaluate(client, "new-checkout")

    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_the_configuration_says_what_is_supported(client: Client, api_key: str) -> None:
    response = client.get("/ofrep/v1/configuration", headers={"Authorization": f"Bearer {api_key}"})

    assert response.status_code == 200
    assert "boolean" in response.json()["capabilities"]["flagEvaluation"]["supportedTypes"]


def test_the_flagd_sync_url_serves_the_definitions_to_a_sync_key_only(
    client: Client, api_key: str, sync_key: str, make_flag: Any, production: Environment
) -> None:
    make_flag()
    url = f"/flags/sync/{production.pk}/flags.json"

    anonymous = client.get(url)
    evaluate_only = client.get(url, headers={"Authorization": f"Bearer {api_key}"})
    ok = client.get(url, headers={"Authorization": f"Bearer {sync_key}"})
    unchanged = client.get(url, headers={"Authorization": f"Bearer {sync_key}", "If-None-Match": ok.headers["ETag"]})
    other = client.get(f"/flags/sync/{production.pk + 999}/flags.json", headers={"Authorization": f"Bearer {sync_key}"})

    assert (anonymous.status_code, evaluate_only.status_code, other.status_code) == (401, 403, 403)
    assert ok.status_code == 200
    doc = ok.json()
    assert doc["flags"]["new-checkout"]["state"] == "ENABLED"
    assert doc["metadata"]["flagSetId"] == "checkout/prod"
    assert unchanged.status_code == 304


def test_reported_events_are_folded_into_minute_buckets(client: Client, api_key: str, production: Environment) -> None:
    events = [
        {"flag": "f", "variant": "on", "targetingKey": f"u{i}", "ok": i % 4 != 0, "latency_ms": 100 + i}
        for i in range(8)
    ]
    events.append({"flag": "f", "variant": "off", "ok": True, "latency_ms": None})
    url = f"/flags/api/v1/environments/{production.pk}/events"

    response = post(client, url, {"events": events})
    post(client, url, {"events": events[:2]})

    assert response.status_code == 202
    on = FlagEventBucket.objects.get(variant="on")
    assert (on.count, on.errors, on.latency_count) == (10, 3, 10)
    assert FlagEventBucket.objects.get(variant="off").latency_count == 0


def test_a_bad_event_is_refused_naming_the_field(client: Client, api_key: str, production: Environment) -> None:
    response = post(
        client,
        f"/flags/api/v1/environments/{production.pk}/events",
        {"events": [{"flag": "f", "variant": "on", "ok": "yes"}]},
    )

    assert response.status_code == 400
    assert "events[0].ok" in response.json()["errorDetails"]


def test_an_unchanged_bulk_answer_is_a_304_without_an_evaluation(
    client: Client, api_key: str, make_flag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_flag("a-toggle", default_variant="on")
    first = post(client, "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u1"}})
    from strategies.flags import evaluation

    evaluated: list[object] = []
    original = evaluation.evaluate_all
    monkeypatch.setattr(evaluation, "evaluate_all", lambda *a, **k: evaluated.append(a) or original(*a, **k))

    cached = post(
        client,
        "/ofrep/v1/evaluate/flags",
        {"context": {"targetingKey": "u1"}},
        **{"If-None-Match": first.headers["ETag"]},
    )
    assert cached.status_code == 304 and evaluated == []
    other = post(
        client,
        "/ofrep/v1/evaluate/flags",
        {"context": {"targetingKey": "u2"}},
        **{"If-None-Match": first.headers["ETag"]},
    )

    assert other.status_code == 200 and len(evaluated) == 1 and other.headers["ETag"] != first.headers["ETag"]


def test_answered_calls_are_counted_but_not_logged_line_by_line_and_failures_are(
    client: Client, api_key: str, make_flag: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from portal.observability import HTTP_REQUESTS

    make_flag()
    before = HTTP_REQUESTS.labels("ofrep_evaluate_flag", "POST", "200")._value.get()
    with caplog.at_level("INFO", logger="slipway.request"):
        assert evaluate(client, "new-checkout", {"targetingKey": "u"}).status_code == 200
        assert evaluate(client, "new-checkout", {"targetingKey": "u"}, key="slwf_nope").status_code == 401

    logged = [r.getMessage() for r in caplog.records if r.name == "slipway.request"]
    assert HTTP_REQUESTS.labels("ofrep_evaluate_flag", "POST", "200")._value.get() == before + 1
    assert len(logged) == 1 and logged[0].startswith("POST /ofrep/v1/evaluate/flags/new-checkout 401 ")
