"""Taking in exposure and metric events: validation per event, idempotency per event id, set-based folding.

A batch is validated event by event (a bad event is reported by its index, the good ones are kept).
In one transaction, the new event ids are inserted as receipts with `INSERT … ON CONFLICT DO NOTHING
RETURNING` (PostgreSQL, and SQLite ≥ 3.35), so an id already received — a retried batch — is a
duplicate and counts nothing; the batch's new events are folded per user in memory and written with
one `INSERT … ON CONFLICT DO UPDATE` per table and chunk: exposures (first variant, first time,
covariate, `conflicted` when the user shows up in another variant) and metric values (count, sum).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from portal.core import clock
from strategies.experiments.models import Experiment, ExperimentEventReceipt, ExperimentExposure, ExperimentMetricValue

MAX_EVENTS = 5000
ROWS_PER_STATEMENT = 1000
ACCEPTING = (Experiment.Status.RUNNING, Experiment.Status.SHIPPING, Experiment.Status.STOPPED)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TEXT_FIELDS = {"id": 200, "user": 200, "experiment": 60, "flag": 100, "variant": 100, "metric": 100}


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    user: str
    experiment_id: int
    variant: str | None
    metric: str | None
    value: float
    at: datetime
    covariate: float | None


class _Rejected(Exception):
    def __init__(self, field_name: str, error: str) -> None:
        self.field_name, self.error = field_name, error


def _text(item: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = item.get(name)
    if value is None:
        if required:
            raise _Rejected(name, "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Rejected(name, "must be a non-empty string")
    if len(value) > TEXT_FIELDS[name] or CONTROL.search(value):
        raise _Rejected(name, f"must be at most {TEXT_FIELDS[name]} characters, without control characters")
    return value


def _number(item: Mapping[str, Any], name: str) -> float | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Rejected(name, "must be a finite number")
    return float(value)


def _timestamp(item: Mapping[str, Any], now: datetime) -> datetime:
    value = item.get("timestamp")
    if value is None:
        return now
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or not 0 <= value < 1e13:
            raise _Rejected("timestamp", "must be milliseconds since 1970 or an ISO 8601 time")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _Rejected("timestamp", "must be milliseconds since 1970 or an ISO 8601 time with a zone")


class _Experiments:
    """The environment's experiments that take events, found by experiment key or flag key (one query)."""

    def __init__(self, environment_id: int) -> None:
        self.by_key: dict[str, Experiment] = {}
        self.by_flag: dict[str, Experiment] = {}
        self.environment_id = environment_id
        self._loaded = False

    def _load(self) -> None:
        rows = (
            Experiment.objects.filter(environment_id=self.environment_id)
            .exclude(status=Experiment.Status.DECIDED)
            .select_related("flag")
            .order_by("created_at")
        )
        for experiment in rows:
            self.by_key[experiment.key] = experiment
            if experiment.status in ACCEPTING or experiment.flag.key not in self.by_flag:
                self.by_flag[experiment.flag.key] = experiment
        self._loaded = True

    def find(self, item: Mapping[str, Any]) -> Experiment:
        if not self._loaded:
            self._load()
        key = _text(item, "experiment", required=False)
        if key is not None:
            experiment = self.by_key.get(key)
            if experiment is None:
                raise _Rejected("experiment", f"no experiment {key!r} takes events in this environment")
        else:
            flag = _text(item, "flag", required=False)
            if flag is None:
                raise _Rejected("experiment", "name the experiment (or its flag)")
            experiment = self.by_flag.get(flag)
            if experiment is None:
                raise _Rejected("flag", f"the flag {flag!r} has no experiment in this environment")
        if experiment.status not in ACCEPTING:
            raise _Rejected("experiment", f"{experiment.key!r} is {experiment.get_status_display().lower()}")
        return experiment


def _validate(item: Any, experiments: _Experiments, now: datetime) -> Event:
    if not isinstance(item, Mapping):
        raise _Rejected("event", "must be a JSON object")
    event_id = _text(item, "id", required=True)
    kind = item.get("type")
    if kind not in ("exposure", "metric"):
        raise _Rejected("type", 'must be "exposure" or "metric"')
    user = _text(item, "user", required=True)
    experiment = experiments.find(item)
    variant = _text(item, "variant", required=kind == "exposure")
    if kind == "exposure" and variant not in experiment.variants:
        raise _Rejected("variant", f"{variant!r} is not a variant of {experiment.key!r}")
    metric = None
    value = 1.0
    if kind == "metric":
        metric = _text(item, "metric", required=True)
        if metric not in [m["name"] for m in experiment.metrics]:
            raise _Rejected("metric", f"{metric!r} is not a metric of {experiment.key!r}")
        number = _number(item, "value")
        value = 1.0 if number is None else number
    covariate = _number(item, "covariate")
    return Event(event_id, kind, user, experiment.pk, variant, metric, value, _timestamp(item, now), covariate)


def validate(raw: Sequence[Any], *, environment_id: int, outcome: Outcome) -> list[Event]:
    """The batch's good events; each bad one is reported in `outcome.rejected` with its index."""
    experiments = _Experiments(environment_id)
    now = clock.now()
    events = []
    for index, item in enumerate(raw):
        try:
            events.append(_validate(item, experiments, now))
        except _Rejected as exc:
            outcome.rejected.append({"index": index, "field": exc.field_name, "error": exc.error})
    return events


def _chunks(rows: list[tuple[Any, ...]]) -> Iterable[list[tuple[Any, ...]]]:
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        yield rows[start : start + ROWS_PER_STATEMENT]


def _insert(cursor: Any, head: str, types: Sequence[str], rows: list[tuple[Any, ...]], tail: str) -> list[Any]:
    """`head` rows `tail` as set-based statements: one `unnest` of arrays on PostgreSQL (a handful of
    parameters, whatever the batch size), multi-row VALUES in chunks elsewhere. Returns RETURNING rows."""
    returned: list[Any] = []
    if not rows:
        return returned
    if connection.vendor == "postgresql":
        columns = [list(column) for column in zip(*rows, strict=True)]
        arrays = ", ".join(f"%s::{kind}[]" for kind in types)
        cursor.execute(f"{head} SELECT * FROM unnest({arrays}) {tail}", columns)  # noqa: S608 - our own SQL
        if "RETURNING" in tail:
            returned.extend(cursor.fetchall())
        return returned
    placeholder = "(" + ", ".join(["%s"] * len(types)) + ")"
    for chunk in _chunks(rows):
        values = ", ".join([placeholder] * len(chunk))
        cursor.execute(f"{head} VALUES {values} {tail}", [v for row in chunk for v in row])
        if "RETURNING" in tail:
            returned.extend(cursor.fetchall())
    return returned


def record(events: list[Event], *, environment_id: int, outcome: Outcome) -> None:
    """Store the events whose ids are new (receipts), folded into the per-user rows, in one transaction."""
    if not events:
        return
    unique: dict[str, Event] = {}
    for event in events:
        if event.id in unique:
            outcome.duplicates += 1
        else:
            unique[event.id] = event
    postgres = connection.vendor == "postgresql"
    adapt = (lambda value: value) if postgres else connection.ops.adapt_datetimefield_value
    received = adapt(clock.now())
    with transaction.atomic(), connection.cursor() as cursor:
        returned = _insert(
            cursor,
            f"INSERT INTO {ExperimentEventReceipt._meta.db_table} (environment_id, event_id, received_at)",
            ("bigint", "text", "timestamptz"),
            [(environment_id, event_id, received) for event_id in sorted(unique)],
            "ON CONFLICT (environment_id, event_id) DO NOTHING RETURNING event_id",
        )
        fresh = {row[0] for row in returned}
        outcome.duplicates += len(unique) - len(fresh)
        outcome.accepted += len(fresh)
        exposures: dict[tuple[int, str], list[Any]] = {}
        metrics: dict[tuple[int, str, str], list[Any]] = {}
        for event_id in fresh:
            event = unique[event_id]
            if event.type == "exposure":
                key = (event.experiment_id, event.user)
                row = exposures.get(key)
                if row is None:
                    exposures[key] = [event.variant, event.at, event.covariate, False]
                else:
                    if row[0] != event.variant:
                        row[3] = True
                    if event.at < row[1]:
                        row[0], row[1] = event.variant, event.at
                    if row[2] is None:
                        row[2] = event.covariate
            else:
                key3 = (event.experiment_id, event.user, event.metric or "")
                row = metrics.setdefault(key3, [0, 0.0])
                row[0] += 1
                row[1] += event.value
        _insert(
            cursor,
            f"INSERT INTO {ExperimentExposure._meta.db_table} AS x "
            "(experiment_id, user_key, variant, first_at, covariate, conflicted)",
            ("bigint", "text", "text", "timestamptz", "float8", "boolean"),
            [(e, u, v, adapt(at), cov, conflict) for (e, u), (v, at, cov, conflict) in sorted(exposures.items())],
            "ON CONFLICT (experiment_id, user_key) DO UPDATE SET "
            "variant = CASE WHEN excluded.first_at < x.first_at THEN excluded.variant ELSE x.variant END, "
            "first_at = CASE WHEN excluded.first_at < x.first_at THEN excluded.first_at ELSE x.first_at END, "
            "covariate = COALESCE(x.covariate, excluded.covariate), "
            "conflicted = (x.conflicted OR excluded.conflicted OR x.variant <> excluded.variant)",
        )
        _insert(
            cursor,
            f"INSERT INTO {ExperimentMetricValue._meta.db_table} AS x (experiment_id, user_key, metric, count, total)",
            ("bigint", "text", "text", "integer", "float8"),
            [(e, u, m, count, total) for (e, u, m), (count, total) in sorted(metrics.items())],
            "ON CONFLICT (experiment_id, user_key, metric) DO UPDATE SET "
            "count = x.count + excluded.count, total = x.total + excluded.total",
        )


def ingest(raw: Any, *, environment_id: int) -> Outcome:
    """Validate and store a batch (`raw` is the body's "events" list); ValueError for a batch that is not one."""
    if not isinstance(raw, list):
        raise ValueError('Send {"events": [{"id", "type", "user", "experiment", "variant", ...}, ...]}.')
    if len(raw) > MAX_EVENTS:
        raise ValueError(f"At most {MAX_EVENTS} events per batch; split this one of {len(raw)}.")
    outcome = Outcome()
    events = validate(raw, environment_id=environment_id, outcome=outcome)
    record(events, environment_id=environment_id, outcome=outcome)
    return outcome
