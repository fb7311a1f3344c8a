"""From a flag's structured targeting to flagd's flag-definition JSON, and checking both.

Nobody has to write JSONLogic: a flag's `rules` hold *structured* targeting, compiled here into
flagd targeting. An expert may still write the targeting by hand (`Flag.targeting_override`); it is
checked against flagd's schema, the engine's operators and the application's segments.

Structured targeting (`Flag.rules`)::

    {
      "rules": [                      # first match wins
        {"name": "Staff", "match": "any" | "all",
         "conditions": [{"attribute": "email", "op": "ends_with", "value": "@example.com"},
                        {"attribute": "", "op": "in_segment", "value": "beta-customers"}],
         "serve": {"variant": "on"} | {"split": [["on", 10], ["off", 90]]},
         "launch": true}              # the cohort rule of an active dark launch (services.py)
      ],
      "fallthrough": {"split": [["on", 25], ["off", 75]]},   # optional: everyone else; else the default
      "bucket_by": ""                 # optional: a context attribute to bucket by instead of targetingKey
    }

A segment (`Segment`) is a list of the same conditions (no `in_segment`) plus explicit users, and
becomes a flagd `$evaluators` entry referenced as `{"$ref": "<segment key>"}`.

**Percentage bucketing** is flagd's `fractional` operator as openfeature-flagd-core 2.0.0 runs it
(see docs/architecture.md, "Feature flags"): the bucketing value is the JSON array
`[flagKey, targetingKey]` (or the string `flagKey + <bucket_by attribute>`), CBOR-encoded
(canonical), hashed with 32-bit MurmurHash3 (seed 0, unsigned); the bucket is
`(hash * total_weight) >> 32`, walked through the variants in their listed order. A user is in the
first variant iff `hash / 2**32 < weight / total`, so listing the variant being rolled out *first*
and only raising its share keeps every user who had it. Changing the library version, the bucketing
key or the order of a split re-buckets users.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import semver
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from portal.core.errors import DomainError, ErrorCode
from strategies.flags.models import FlagType

SCHEMA_DIR = Path(__file__).parent / "schemas"
FLAGS_SCHEMA_ID = "https://flagd.dev/schema/v0/flags.json"
TARGETING_SCHEMA_ID = "https://flagd.dev/schema/v0/targeting.json"
MAX_SAFE_INTEGER = 2**53 - 1  # flagd refuses integers JSON cannot carry exactly
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")

# The operators openfeature-flagd-core evaluates: json_logic's built-ins, its special forms, flagd's own.
ENGINE_OPERATORS = frozenset(
    {"!", "!!", "!=", "!==", "%", "*", "+", "-", "/", "<", "<=", "==", "===", ">", ">=", "cat", "in", "log"}
    | {"max", "merge", "min", "missing", "missing_some", "substr", "var"}
    | {"if", "?:", "and", "or", "filter", "reduce", "map", "all", "some", "none"}
    | {"fractional", "starts_with", "ends_with", "sem_ver"}
)


class DefinitionError(DomainError, ValueError):
    """Input that would not make a valid flag definition: a `DomainError` with the `invalid` code whose
    `fields` (also `errors`) map each field to its messages. Still a ValueError for the parsers that
    catch that."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        fields = {name: list(messages) for name, messages in errors.items() if messages}
        message = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
        super().__init__(ErrorCode.INVALID, message, fields=fields)

    @property
    def errors(self) -> dict[str, list[str]]:
        return self.fields


class _Errors:
    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, []).append(message)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise DefinitionError(self.by_field)


# --- Conditions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    label: str
    value_kind: str  # "text", "list", "version", "number", "segment"


OPERATORS: dict[str, Operator] = {
    "is": Operator("is", "text"),
    "is_not": Operator("is not", "text"),
    "one_of": Operator("is one of", "list"),
    "not_one_of": Operator("is not one of", "list"),
    "contains": Operator("(a list) contains", "text"),
    "starts_with": Operator("starts with", "text"),
    "ends_with": Operator("ends with", "text"),
    "semver_eq": Operator("version =", "version"),
    "semver_ne": Operator("version ≠", "version"),
    "semver_gt": Operator("version >", "version"),
    "semver_ge": Operator("version ≥", "version"),
    "semver_lt": Operator("version <", "version"),
    "semver_le": Operator("version ≤", "version"),
    "semver_minor": Operator("version has the same minor as (~)", "version"),
    "semver_major": Operator("version has the same major as (^)", "version"),
    "gt": Operator("number >", "number"),
    "ge": Operator("number ≥", "number"),
    "lt": Operator("number <", "number"),
    "le": Operator("number ≤", "number"),
    "in_segment": Operator("is in the segment", "segment"),
}
SEMVER_OPS = {
    "semver_eq": "=",
    "semver_ne": "!=",
    "semver_gt": ">",
    "semver_ge": ">=",
    "semver_lt": "<",
    "semver_le": "<=",
    "semver_minor": "~",
    "semver_major": "^",
}
NUMBER_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}

# Attributes people target on most; any other context attribute name works too.
COMMON_ATTRIBUTES = {
    "targetingKey": "user id (targetingKey)",
    "email": "email",
    "groups": "groups (a list)",
    "country": "country",
    "appVersion": "app version",
}


def normalise_version(raw: str) -> str:
    """'v2.1' → '2.1.0', as flagd's sem_ver reads it; ValueError when it is not a version."""
    text = raw.strip()
    if text[:1] in {"v", "V"}:
        text = text[1:]
    numeric = text.split("-")[0].split("+")[0]
    dots = numeric.count(".")
    if dots < 2:
        text = numeric + ".0" * (2 - dots) + text[len(numeric) :]
    return str(semver.Version.parse(text))


def clean_condition(raw: Mapping[str, Any], *, segments: Iterable[str], allow_segments: bool = True) -> dict[str, Any]:
    """A condition made canonical; ValueError with a sentence when it cannot be one."""
    op = str(raw.get("op", ""))
    if op not in OPERATORS or (op == "in_segment" and not allow_segments):
        raise ValueError(f"unknown operator {op!r}")
    kind = OPERATORS[op].value_kind
    value = raw.get("value")
    if kind == "segment":
        key = str(value or "").strip()
        if key not in set(segments):
            raise ValueError(f"unknown segment {key!r}")
        return {"attribute": "", "op": op, "value": key}
    attribute = str(raw.get("attribute", "")).strip()
    if not ATTRIBUTE_NAME.match(attribute):
        raise ValueError(f"{attribute!r} is not a context attribute name (letters, digits, _ . -)")
    if kind == "list":
        items = value if isinstance(value, list) else re.split(r"[,\n]", str(value or ""))
        values = [str(item).strip() for item in items if str(item).strip()]
        if not values:
            raise ValueError(f"“{OPERATORS[op].label}” needs at least one value")
        return {"attribute": attribute, "op": op, "value": values}
    if kind == "version":
        try:
            return {"attribute": attribute, "op": op, "value": normalise_version(str(value or ""))}
        except ValueError:
            raise ValueError(f"{value!r} is not a semantic version such as 2.4.0") from None
    if kind == "number":
        number = _number(value)
        if number is None:
            raise ValueError(f"{value!r} is not a number")
        return {"attribute": attribute, "op": op, "value": number}
    text = str(value if value is not None else "").strip()
    if not text:
        raise ValueError(f"“{OPERATORS[op].label}” needs a value")
    return {"attribute": attribute, "op": op, "value": text}


def condition_logic(condition: Mapping[str, Any]) -> dict[str, Any]:
    op, attribute, value = condition["op"], condition["attribute"], condition["value"]
    var = {"var": attribute}
    if op == "in_segment":
        return {"$ref": value}
    if op == "is":
        return {"==": [var, value]}
    if op == "is_not":
        return {"!=": [var, value]}
    if op == "one_of":
        return {"in": [var, list(value)]}
    if op == "not_one_of":
        return {"!": [{"in": [var, list(value)]}]}
    if op == "contains":
        return {"in": [value, var]}
    if op in {"starts_with", "ends_with"}:
        return {op: [var, value]}
    if op in SEMVER_OPS:
        # The guard keeps a context without the attribute from reaching sem_ver (which logs an error).
        return {"and": [var, {"sem_ver": [var, SEMVER_OPS[op], value]}]}
    if op in NUMBER_OPS:
        return {NUMBER_OPS[op]: [var, value]}
    raise ValueError(f"unknown operator {op!r}")


def describe_condition(condition: Mapping[str, Any]) -> str:
    op = OPERATORS.get(condition.get("op", ""))
    if op is None:
        return str(condition)
    value = condition.get("value")
    shown = ", ".join(value) if isinstance(value, list) else str(value)
    if condition["op"] == "in_segment":
        return f"in the segment {shown}"
    attribute = COMMON_ATTRIBUTES.get(condition.get("attribute", ""), condition.get("attribute", ""))
    return f"{attribute} {op.label} {shown}"


def _matcher(parts: list[dict[str, Any]], match: str) -> Any:
    if not parts:
        return True
    if len(parts) == 1:
        return parts[0]
    return {"and" if match == "all" else "or": parts}


def segment_logic(conditions: list[dict[str, Any]], users: list[str], match: str) -> dict[str, Any]:
    parts = [condition_logic(c) for c in conditions]
    if users:
        in_users = {"in": [{"var": "targetingKey"}, list(users)]}
        # Explicit users are in the segment whatever the conditions say.
        logic = _matcher(parts, match)
        return in_users if logic is True else {"or": [in_users, logic]}
    result = _matcher(parts, match)
    # A segment has at least one condition or user (clean_segment); an empty one matches nobody.
    return result if isinstance(result, dict) else {"in": [{"var": "targetingKey"}, []]}


def clean_segment(
    *, key: str, conditions: list[Mapping[str, Any]], users: Iterable[str], match: str
) -> tuple[list[dict[str, Any]], list[str]]:
    errors = _Errors()
    cleaned = []
    for number, raw in enumerate(conditions, start=1):
        try:
            cleaned.append(clean_condition(raw, segments=(), allow_segments=False))
        except ValueError as exc:
            errors.add("conditions", f"Condition {number}: {exc}.")
    user_list = sorted({str(u).strip() for u in users if str(u).strip()})
    if not cleaned and not user_list and "conditions" not in errors.by_field:
        errors.add("conditions", "A segment needs at least one condition or one user.")
    if match not in {"any", "all"}:
        errors.add("match", f"{match!r} is neither “any” nor “all”.")
    errors.raise_if_any()
    return cleaned, user_list


# --- Variants and splits ---------------------------------------------------------------------------


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number: int | float = value
    else:
        try:
            parsed = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        if not parsed.is_finite():
            return None
        number = int(parsed) if parsed == parsed.to_integral_value() and "." not in str(value) else float(parsed)
    if isinstance(number, float) and not math.isfinite(number):
        return None
    return number


def clean_variants(flag_type: str, variants: Mapping[str, Any]) -> dict[str, Any]:
    """Variants checked against the flag's type (numbers: all integers, or all floats)."""
    errors = _Errors()
    if not variants:
        errors.add("variants", "A flag needs at least one variant.")
    cleaned: dict[str, Any] = {}
    for name, value in variants.items():
        if not VARIANT_NAME.match(str(name)):
            errors.add("variants", f"{name!r} is not a variant name (letters, digits, _ . -).")
            continue
        if flag_type == FlagType.BOOLEAN and not isinstance(value, bool):
            errors.add("variants", f"Variant {name!r} is {json.dumps(value)}, not a boolean: this is a boolean flag.")
        elif flag_type == FlagType.STRING and not isinstance(value, str):
            errors.add("variants", f"Variant {name!r} is {json.dumps(value)}, not a string: this is a string flag.")
        elif flag_type == FlagType.NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.add("variants", f"Variant {name!r} is {json.dumps(value)}, not a number: this is a number flag.")
        elif flag_type == FlagType.NUMBER and isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
            errors.add("variants", f"Variant {name!r} is larger than JSON numbers carry exactly (2^53 - 1).")
        elif flag_type == FlagType.NUMBER and isinstance(value, float) and not math.isfinite(value):
            errors.add("variants", f"Variant {name!r} is not a finite number.")
        elif flag_type == FlagType.OBJECT and not isinstance(value, dict):
            errors.add(
                "variants", f"Variant {name!r} is {json.dumps(value)}, not a JSON object: this is an object flag."
            )
        elif flag_type not in FlagType.values:
            errors.add("flag_type", f"{flag_type!r} is not a flag type.")
        cleaned[str(name)] = value
    errors.raise_if_any()
    if flag_type == FlagType.NUMBER and any(isinstance(v, float) for v in cleaned.values()):
        # One numeric type per flag, so OFREP clients read it with one typed call (integer or float).
        cleaned = {name: float(value) for name, value in cleaned.items()}
    return cleaned


def number_kind(variants: Mapping[str, Any]) -> str:
    return "float" if any(isinstance(v, float) for v in variants.values()) else "integer"


def parse_split(text: str) -> list[list[Any]]:
    """'on=10, off=90' (or 'on 10 %, off 90 %') → [['on', 10], ['off', 90]]; ValueError in words."""
    split: list[list[Any]] = []
    for part in re.split(r"[,;\n]", text):
        part = part.strip()
        if not part:
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*[=:\s]\s*([0-9]+(?:\.[0-9]+)?)\s*%?$", part)
        if match is None:
            raise ValueError(f"{part!r} is not “variant = percent”, as in “on = 10, off = 90”")
        number = _number(match.group(2))
        split.append([match.group(1), number])
    if not split:
        raise ValueError("write the split as “on = 10, off = 90”")
    return split


def format_split(split: list[list[Any]]) -> str:
    return ", ".join(f"{variant} = {percent:g}" for variant, percent in split)


def clean_split(split: Any, variants: Mapping[str, Any], *, field_name: str) -> list[list[Any]]:
    errors = _Errors()
    if not isinstance(split, list) or not split:
        raise DefinitionError({field_name: ["A split lists each variant with its percentage."]})
    cleaned: list[list[Any]] = []
    seen: set[str] = set()
    total = Decimal(0)
    for entry in split:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            errors.add(field_name, f"{entry!r} is not [variant, percent].")
            continue
        variant, percent = str(entry[0]), _number(entry[1])
        if variant not in variants:
            errors.add(field_name, f"{variant!r} is not a variant of this flag ({', '.join(variants)}).")
        if variant in seen:
            errors.add(field_name, f"{variant!r} appears twice in the split.")
        seen.add(variant)
        if percent is None or percent < 0 or percent > 100:
            errors.add(field_name, f"The percentage of {variant!r} must be between 0 and 100.")
            continue
        if Decimal(str(percent)) != Decimal(str(percent)).quantize(Decimal("0.01")):
            errors.add(field_name, f"The percentage of {variant!r} has more than two decimals.")
        total += Decimal(str(percent))
        cleaned.append([variant, percent])
    if not errors.by_field and total != 100:
        errors.add(field_name, f"The percentages add up to {total:g}, not 100.")
    errors.raise_if_any()
    return cleaned


def split_weights(split: list[list[Any]]) -> list[list[Any]]:
    """Percentages as the integer weights flagd needs, scaled by 1, 10 or 100 (bucketing is scale-free)."""
    for scale in (1, 10, 100):
        weights = [Decimal(str(percent)) * scale for _, percent in split]
        if all(w == w.to_integral_value() for w in weights):
            return [[variant, int(w)] for (variant, _), w in zip(split, weights, strict=True)]
    raise ValueError("percentages have at most two decimals")  # clean_split refused it before


# --- Rules -----------------------------------------------------------------------------------------


def clean_serve(serve: Any, variants: Mapping[str, Any], *, field_name: str) -> dict[str, Any]:
    if isinstance(serve, Mapping) and "variant" in serve:
        variant = str(serve["variant"])
        if variant not in variants:
            raise DefinitionError({field_name: [f"{variant!r} is not a variant of this flag ({', '.join(variants)})."]})
        return {"variant": variant}
    if isinstance(serve, Mapping) and "split" in serve:
        return {"split": clean_split(serve["split"], variants, field_name=field_name)}
    raise DefinitionError({field_name: ["Serve either one variant or a percentage split."]})


def clean_rule(raw: Mapping[str, Any], *, variants: Mapping[str, Any], segments: Iterable[str]) -> dict[str, Any]:
    """One rule made canonical; DefinitionError naming `name`, `conditions`, `serve` or `match`."""
    errors = _Errors()
    segment_keys = set(segments)
    conditions = []
    for number, condition in enumerate(raw.get("conditions") or [], start=1):
        try:
            conditions.append(clean_condition(condition, segments=segment_keys))
        except ValueError as exc:
            errors.add("conditions", f"Condition {number}: {exc}.")
    match = str(raw.get("match") or "all")
    if match not in {"any", "all"}:
        errors.add("match", f"{match!r} is neither “any” nor “all”.")
    serve: dict[str, Any] = {}
    try:
        serve = clean_serve(raw.get("serve"), variants, field_name="serve")
    except DefinitionError as exc:
        for name, messages in exc.errors.items():
            for message in messages:
                errors.add(name, message)
    name = str(raw.get("name") or "").strip()[:100]
    errors.raise_if_any()
    rule: dict[str, Any] = {"name": name, "match": match, "conditions": conditions, "serve": serve}
    if raw.get("launch"):
        rule["launch"] = True
    return rule


def clean_rules(
    raw: Mapping[str, Any] | None, *, variants: Mapping[str, Any], segments: Iterable[str]
) -> dict[str, Any]:
    raw = raw or {}
    segment_keys = set(segments)
    errors = _Errors()
    rules = []
    for number, rule in enumerate(raw.get("rules") or [], start=1):
        try:
            rules.append(clean_rule(rule, variants=variants, segments=segment_keys))
        except DefinitionError as exc:
            for name, messages in exc.errors.items():
                for message in messages:
                    errors.add(name, f"Rule {number}: {message}")
    result: dict[str, Any] = {"rules": rules}
    fallthrough = raw.get("fallthrough")
    if fallthrough:
        try:
            serve = clean_serve(fallthrough, variants, field_name="fallthrough")
            if "split" in serve:
                result["fallthrough"] = serve
            # A single variant for everyone else is the default variant's job.
        except DefinitionError as exc:
            for name, messages in exc.errors.items():
                for message in messages:
                    errors.add(name, message)
    bucket_by = str(raw.get("bucket_by") or "").strip()
    if bucket_by and bucket_by != "targetingKey":
        if not ATTRIBUTE_NAME.match(bucket_by):
            errors.add("bucket_by", f"{bucket_by!r} is not a context attribute name.")
        result["bucket_by"] = bucket_by
    errors.raise_if_any()
    return result


def _serve_logic(serve: Mapping[str, Any], bucket_by: str) -> Any:
    if "variant" in serve:
        return serve["variant"]
    weights = split_weights(serve["split"])
    if bucket_by:
        return {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": bucket_by}]}, *weights]}
    return {"fractional": weights}


def targeting_logic(rules: Mapping[str, Any]) -> dict[str, Any] | None:
    """flagd targeting for structured rules; None when everyone gets the default variant."""
    bucket_by = rules.get("bucket_by", "")
    branches: list[Any] = []
    for rule in rules.get("rules", []):
        condition = _matcher([condition_logic(c) for c in rule["conditions"]], rule.get("match", "all"))
        branches += [condition, _serve_logic(rule["serve"], bucket_by)]
    fallthrough = rules.get("fallthrough")
    otherwise = _serve_logic(fallthrough, bucket_by) if fallthrough else None
    if not branches:
        return otherwise if isinstance(otherwise, dict) else None
    return {"if": [*branches, otherwise]}


# --- Whole flags and documents ---------------------------------------------------------------------


@dataclass
class FlagSpec:
    """What a flag definition is built from: the model's fields, without the model."""

    key: str
    flag_type: str
    variants: dict[str, Any]
    default_variant: str
    enabled: bool = True
    rules: dict[str, Any] = field(default_factory=dict)
    targeting_override: dict[str, Any] | None = None
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)


def flag_definition(spec: FlagSpec) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "state": "ENABLED" if spec.enabled else "DISABLED",
        "variants": spec.variants,
        "defaultVariant": spec.default_variant,
    }
    targeting = spec.targeting_override if spec.targeting_override is not None else targeting_logic(spec.rules)
    if targeting:
        definition["targeting"] = targeting
    if spec.metadata:
        definition["metadata"] = spec.metadata
    return definition


def clean_flag(spec: FlagSpec, *, segments: Iterable[str]) -> FlagSpec:
    """The spec with variants, rules and expert targeting checked; DefinitionError naming each field."""
    errors = _Errors()
    segment_keys = set(segments)
    variants: dict[str, Any] = {}
    try:
        variants = clean_variants(spec.flag_type, spec.variants)
    except DefinitionError as exc:
        for name, messages in exc.errors.items():
            for message in messages:
                errors.add(name, message)
    if variants and spec.default_variant not in variants:
        errors.add("default_variant", f"{spec.default_variant!r} is not one of the variants ({', '.join(variants)}).")
    rules: dict[str, Any] = {}
    if variants:
        try:
            rules = clean_rules(spec.rules, variants=variants, segments=segment_keys)
        except DefinitionError as exc:
            for name, messages in exc.errors.items():
                for message in messages:
                    errors.add(name, message)
    if spec.targeting_override is not None:
        for message in targeting_problems(spec.targeting_override, variants=variants, segments=segment_keys):
            errors.add("targeting_override", message)
    errors.raise_if_any()
    return FlagSpec(
        key=spec.key,
        flag_type=spec.flag_type,
        variants=variants,
        default_variant=spec.default_variant,
        enabled=spec.enabled,
        rules=rules,
        targeting_override=spec.targeting_override,
        metadata=spec.metadata,
    )


def document(
    flags: Mapping[str, dict[str, Any]], evaluators: Mapping[str, dict[str, Any]], metadata: Mapping[str, str]
) -> dict[str, Any]:
    doc: dict[str, Any] = {"$schema": FLAGS_SCHEMA_ID, "metadata": dict(metadata), "flags": dict(flags)}
    if evaluators:
        doc["$evaluators"] = dict(evaluators)
    return doc


# --- Schema ----------------------------------------------------------------------------------------


@cache
def _validators() -> tuple[Draft7Validator, Draft7Validator]:
    flags_schema = json.loads((SCHEMA_DIR / "flags.json").read_text())
    targeting_schema = json.loads((SCHEMA_DIR / "targeting.json").read_text())
    # Registered under their $ids: the root's "$ref" hides its "$id" in draft 7, so refs are resolved
    # from the URI each document is retrieved at (which is also how "./targeting.json" finds its sibling).
    registry = Registry().with_resources(
        [
            (FLAGS_SCHEMA_ID, Resource.from_contents(flags_schema)),
            (TARGETING_SCHEMA_ID, Resource.from_contents(targeting_schema)),
        ]
    )
    return (
        Draft7Validator({"$ref": FLAGS_SCHEMA_ID}, registry=registry),
        Draft7Validator({"$ref": TARGETING_SCHEMA_ID}, registry=registry),
    )


def _where(error: ValidationError) -> str:
    path = "/".join(str(part) for part in error.absolute_path)
    return path or "(top level)"


def _deepest(error: ValidationError) -> ValidationError:
    """The most specific of an anyOf/oneOf error's alternatives: the one that got furthest."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.context or [])))
    return error


def schema_problems(doc: Mapping[str, Any]) -> list[str]:
    """flags.json's complaints about a whole document, each with where it is."""
    validator, _ = _validators()
    return [f"{_where(e)}: {_deepest(e).message}" for e in validator.iter_errors(doc)][:10]


def validate_document(doc: Mapping[str, Any]) -> None:
    problems = schema_problems(doc)
    if problems:
        raise DefinitionError({"definition": [f"Not a valid flagd definition: {'; '.join(problems)}"]})


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every operator of a JSONLogic expression with its arguments."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def targeting_problems(targeting: Any, *, variants: Mapping[str, Any], segments: Iterable[str]) -> list[str]:
    """What is wrong with hand-written targeting, in words (empty: nothing)."""
    if not isinstance(targeting, dict):
        return ['Targeting is a JSON object (a JSONLogic rule), such as {"if": [...]}.']
    _, validator = _validators()
    errors = list(validator.iter_errors(targeting))
    if errors:
        best = best_match(errors)
        deepest = _deepest(best)
        return [f"Not valid flagd targeting at {_where(deepest)}: {deepest.message}"]
    problems = []
    segment_keys = set(segments)
    for operator, argument in _walk(targeting):
        if operator == "$ref":
            if argument not in segment_keys:
                problems.append(f'Unknown segment {argument!r} (in {{"$ref": ...}}).')
        elif operator not in ENGINE_OPERATORS:
            problems.append(f"The operator {operator!r} is not supported by the evaluation engine.")
        elif operator == "fractional" and isinstance(argument, list):
            for entry in argument:
                if isinstance(entry, list) and entry and isinstance(entry[0], str) and entry[0] not in variants:
                    problems.append(f"The fractional split names {entry[0]!r}, which is not a variant.")
                if isinstance(entry, list) and len(entry) == 2 and not isinstance(entry[1], int):
                    problems.append(f"The weight of {entry[0]!r} in a fractional split must be a whole number.")
    return problems


# --- What evaluation needs to know ------------------------------------------------------------------


def evaluation_hints(spec: FlagSpec) -> dict[str, Any]:
    """How to evaluate the flag over OFREP: its value type, default, bucketing key and version attributes."""
    targeting = flag_definition(spec).get("targeting") or {}
    bucket_by: str | None = None
    semver_attributes: set[str] = set()
    for operator, argument in _walk(targeting):
        if operator == "fractional" and isinstance(argument, list) and argument:
            first = argument[0]
            if isinstance(first, list):
                bucket_by = bucket_by or "targetingKey"
            elif isinstance(first, dict):
                names = [a for op, a in _walk(first) if op == "var" and isinstance(a, str)]
                named = [n for n in names if not n.startswith("$flagd.")]
                bucket_by = bucket_by or (named[0] if named else None)
        elif operator == "sem_ver" and isinstance(argument, list):
            for item in argument:
                if isinstance(item, dict) and isinstance(item.get("var"), str):
                    semver_attributes.add(item["var"])
    value_type = spec.flag_type
    if spec.flag_type == FlagType.NUMBER:
        value_type = number_kind(spec.variants)
    return {
        "type": value_type,
        "defaultVariant": spec.default_variant,
        "defaultValue": spec.variants.get(spec.default_variant),
        "bucketBy": bucket_by,
        "semver": sorted(semver_attributes),
    }


# --- Diffs -----------------------------------------------------------------------------------------


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def definition_diff(before: Any, after: Any) -> list[str]:
    """A unified diff of two definitions (or audit snapshots), line by line, without the header."""
    old = pretty(before).splitlines() if before is not None else []
    new = pretty(after).splitlines() if after is not None else []
    lines = list(difflib.unified_diff(old, new, "before", "after", lineterm="", n=2))
    return lines[2:]
