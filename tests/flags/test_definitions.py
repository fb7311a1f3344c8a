"""Structured targeting compiles to flagd definitions that validate against flagd's schema and that
openfeature-flagd-core evaluates as intended; bad input is refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from strategies.flags.definitions import (
    DefinitionError,
    FlagSpec,
    clean_flag,
    document,
    flag_definition,
    schema_problems,
    segment_logic,
    targeting_problems,
)

BOOL = {"on": True, "off": False}
STAFF = segment_logic([{"attribute": "email", "op": "ends_with", "value": "@example.com"}], ["alice"], "any")


def spec(rules: dict[str, Any] | None = None, **kwargs: Any) -> FlagSpec:
    values = {"key": "f", "flag_type": "boolean", "variants": BOOL, "default_variant": "off", "rules": rules or {}}
    values.update(kwargs)
    return FlagSpec(**values)


def core_for(*specs: FlagSpec) -> FlagdCore:
    doc = document(
        {s.key: flag_definition(clean_flag(s, segments={"staff"})) for s in specs}, {"staff": STAFF}, {"flagSetId": "t"}
    )
    assert schema_problems(doc) == []
    core = FlagdCore()
    core.set_flags(doc)
    return core


def rule(conditions: list[dict[str, Any]], serve: dict[str, Any], match: str = "all") -> dict[str, Any]:
    return {"name": "", "match": match, "conditions": conditions, "serve": serve}


TARGETING_KINDS = {
    "no targeting": {},
    "attribute is": {"rules": [rule([{"attribute": "country", "op": "is", "value": "DE"}], {"variant": "on"})]},
    "user ids": {
        "rules": [rule([{"attribute": "targetingKey", "op": "one_of", "value": "u1, u2"}], {"variant": "on"})]
    },
    "email domain": {
        "rules": [rule([{"attribute": "email", "op": "ends_with", "value": "@acme.io"}], {"variant": "on"})]
    },
    "group": {"rules": [rule([{"attribute": "groups", "op": "contains", "value": "beta"}], {"variant": "on"})]},
    "not one of": {"rules": [rule([{"attribute": "country", "op": "not_one_of", "value": ["FR"]}], {"variant": "on"})]},
    "semver": {"rules": [rule([{"attribute": "appVersion", "op": "semver_ge", "value": "2.1"}], {"variant": "on"})]},
    "number": {"rules": [rule([{"attribute": "age", "op": "gt", "value": "17"}], {"variant": "on"})]},
    "segment": {"rules": [rule([{"attribute": "", "op": "in_segment", "value": "staff"}], {"variant": "on"})]},
    "any of two": {
        "rules": [
            rule(
                [
                    {"attribute": "", "op": "in_segment", "value": "staff"},
                    {"attribute": "country", "op": "is", "value": "NL"},
                ],
                {"variant": "on"},
                match="any",
            )
        ]
    },
    "split in a rule": {"rules": [rule([], {"split": [["on", 5], ["off", 95]]})]},
    "fallthrough split": {"fallthrough": {"split": [["on", 10], ["off", 90]]}},
    "decimal split": {"fallthrough": {"split": [["on", 0.5], ["off", 99.5]]}},
    "split by attribute": {"fallthrough": {"split": [["on", 50], ["off", 50]]}, "bucket_by": "accountId"},
}


@pytest.mark.parametrize("kind", TARGETING_KINDS)
def test_every_kind_of_targeting_makes_a_definition_valid_against_flagds_schema(kind: str) -> None:
    cleaned = clean_flag(spec(TARGETING_KINDS[kind]), segments={"staff"})
    doc = document({"f": flag_definition(cleaned)}, {"staff": STAFF}, {"flagSetId": "checkout/prod", "version": "1"})

    assert schema_problems(doc) == []


@pytest.mark.parametrize(
    ("flag_type", "variants", "default"),
    [
        ("string", {"blue": "#00f", "green": "#0f0", "red": "#f00"}, "blue"),
        ("number", {"small": 10, "large": 50}, "small"),
        ("number", {"low": 0.5, "high": 2}, "low"),
        ("object", {"v1": {"layout": "grid", "columns": 3}, "v2": {"layout": "list"}}, "v1"),
    ],
)
def test_every_flag_type_makes_a_valid_definition(flag_type: str, variants: dict[str, Any], default: str) -> None:
    cleaned = clean_flag(spec(flag_type=flag_type, variants=variants, default_variant=default), segments=())

    assert schema_problems(document({"f": flag_definition(cleaned)}, {}, {})) == []


def test_a_number_flag_with_one_fraction_serves_floats_only() -> None:
    cleaned = clean_flag(spec(flag_type="number", variants={"low": 0.5, "high": 2}, default_variant="low"), segments=())

    assert cleaned.variants == {"low": 0.5, "high": 2.0}
    assert isinstance(cleaned.variants["high"], float)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"variants": {"on": True, "off": "no"}}, "variants", "'off' is \"no\", not a boolean"),
        ({"flag_type": "number", "variants": {"a": 1, "b": "two"}, "default_variant": "a"}, "variants", "not a number"),
        ({"flag_type": "object", "variants": {"a": [1]}, "default_variant": "a"}, "variants", "not a JSON object"),
        ({"default_variant": "maybe"}, "default_variant", "'maybe' is not one of the variants"),
        ({"rules": {"fallthrough": {"split": [["on", 10], ["off", 80]]}}}, "fallthrough", "add up to 90, not 100"),
        ({"rules": {"fallthrough": {"split": [["on", 10], ["blue", 90]]}}}, "fallthrough", "'blue' is not a variant"),
        (
            {"rules": {"rules": [rule([{"attribute": "", "op": "in_segment", "value": "vips"}], {"variant": "on"})]}},
            "conditions",
            "unknown segment 'vips'",
        ),
        (
            {
                "rules": {
                    "rules": [rule([{"attribute": "appVersion", "op": "semver_gt", "value": "two"}], {"variant": "on"})]
                }
            },
            "conditions",
            "'two' is not a semantic version",
        ),
        ({"rules": {"rules": [rule([], {"variant": "maybe"})]}}, "serve", "'maybe' is not a variant"),
        (
            {"targeting_override": {"if": [{"$ref": "vips"}, "on", None]}},
            "targeting_override",
            "Unknown segment 'vips'",
        ),
        ({"targeting_override": {"iff": [True, "on"]}}, "targeting_override", "Not valid flagd targeting"),
        ({"targeting_override": {"rollout": [1, 2, "on"]}}, "targeting_override", "not supported by the evaluation"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        clean_flag(spec(**changes), segments={"staff"})

    assert field in refused.value.errors
    assert words in " ".join(refused.value.errors[field])
    assert str(refused.value).startswith(f"{field}:") or f"; {field}:" in str(refused.value)


def test_an_expert_may_write_targeting_by_hand() -> None:
    override = {"if": [{"$ref": "staff"}, "on", {"fractional": [["on", 1], ["off", 1]]}]}

    assert targeting_problems(override, variants=BOOL, segments={"staff"}) == []
    core = core_for(spec(targeting_override=override))
    assert core.resolve_boolean_value("f", False, EvaluationContext("bob", {"email": "bob@example.com"})).value is True


def rollout(percent: int) -> FlagSpec:
    return spec({"fallthrough": {"split": [["on", percent], ["off", 100 - percent]]}})


def test_a_user_keeps_the_variant_as_the_percentage_grows_from_10_to_50() -> None:
    users = [f"user-{i}" for i in range(4000)]
    at_10 = core_for(rollout(10))
    at_50 = core_for(rollout(50))

    on_at_10 = {u for u in users if at_10.resolve_boolean_value("f", False, EvaluationContext(u)).value}
    on_at_50 = {u for u in users if at_50.resolve_boolean_value("f", False, EvaluationContext(u)).value}

    assert on_at_10 <= on_at_50
    assert 0.08 < len(on_at_10) / len(users) < 0.12
    assert 0.46 < len(on_at_50) / len(users) < 0.54


def test_bucketing_is_flagd_cores_murmur3_of_the_cbor_flag_key_and_targeting_key() -> None:
    # Pinned: a change of openfeature-flagd-core's scheme (or of our split order) re-buckets users.
    import cbor2
    import mmh3

    core = core_for(rollout(50))
    for user in ("alice", "bob", "carol", "dave", "erin"):
        bucket = (mmh3.hash(cbor2.dumps(["f", user], canonical=True), signed=False) * 100) >> 32
        expected = bucket < 50
        assert core.resolve_boolean_value("f", False, EvaluationContext(user)).value is expected


def test_semantic_versions_compare_as_versions_not_strings() -> None:
    core = core_for(
        spec({"rules": [rule([{"attribute": "appVersion", "op": "semver_ge", "value": "2.9.0"}], {"variant": "on"})]})
    )

    def served(version: str) -> bool:
        return core.resolve_boolean_value("f", False, EvaluationContext("u", {"appVersion": version})).value

    assert served("2.10.0") is True  # "2.10.0" < "2.9.0" as strings
    assert served("2.9.0") is True
    assert served("2.8.9") is False
    assert served("v3") is True


def test_a_segment_matches_its_users_and_its_conditions() -> None:
    core = core_for(
        spec({"rules": [rule([{"attribute": "", "op": "in_segment", "value": "staff"}], {"variant": "on"})]})
    )

    def served(key: str, **attributes: Any) -> bool:
        return core.resolve_boolean_value("f", False, EvaluationContext(key, attributes)).value

    assert served("alice") is True
    assert served("bob", email="bob@example.com") is True
    assert served("eve", email="eve@elsewhere.org") is False


def test_rules_are_tried_in_order_and_the_first_match_wins() -> None:
    variants = {"a": "A", "b": "B", "c": "C"}
    rules = {
        "rules": [
            rule([{"attribute": "country", "op": "is", "value": "DE"}], {"variant": "a"}),
            rule([{"attribute": "groups", "op": "contains", "value": "beta"}], {"variant": "b"}),
        ]
    }
    core = core_for(spec(rules, flag_type="string", variants=variants, default_variant="c"))

    def served(**attributes: Any) -> str:
        return core.resolve_string_value("f", "", EvaluationContext("u", attributes)).value

    assert served(country="DE", groups=["beta"]) == "A"
    assert served(country="FR", groups=["beta"]) == "B"
    assert served(country="FR") == "C"
