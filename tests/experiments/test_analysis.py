"""Analysis: the SQL aggregation matches a computation in Python, results end to end (winner, waiting,
sample ratio mismatch, conflicted users, snapshots and running minimum), and the assignment by the real
flagd engine: stable, and matching the weights over 100,000 users."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from django.contrib.auth.models import User
from openfeature.evaluation_context import EvaluationContext

from portal.core import clock
from strategies.experiments import analysis, ingest, services, stats
from strategies.experiments.models import Experiment, ExperimentSnapshot
from strategies.flags import evaluation
from strategies.flags.models import Flag, FlagSet
from tests.experiments.conftest import draft

pytestmark = pytest.mark.django_db


def feed(experiment: Experiment, events: list[dict[str, Any]]) -> ingest.Outcome:
    outcome = ingest.Outcome()
    for start in range(0, len(events), ingest.MAX_EVENTS):
        part = ingest.ingest(events[start : start + ingest.MAX_EVENTS], environment_id=experiment.environment_id)
        outcome.accepted += part.accepted
        outcome.rejected += part.rejected
    assert not outcome.rejected, outcome.rejected[:3]
    return outcome


def simulate(
    experiment: Experiment, users: dict[str, int], rates: dict[str, float], *, seed: int = 7, revenue: bool = True
) -> list[dict[str, Any]]:
    """Events of `users[variant]` users per variant converting at `rates[variant]`, with revenue and latency."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    n = 0
    for variant, count in users.items():
        for i in range(count):
            user = f"{variant}-{i}"
            n += 1
            events.append(
                {
                    "id": f"e{n}",
                    "type": "exposure",
                    "user": user,
                    "experiment": experiment.key,
                    "variant": variant,
                    "covariate": rng.uniform(0, 10),
                }
            )
            if rng.random() < rates[variant]:
                n += 1
                events.append(
                    {"id": f"e{n}", "type": "metric", "user": user, "experiment": experiment.key, "metric": "purchase"}
                )
            if revenue:
                n += 1
                events.append(
                    {
                        "id": f"e{n}",
                        "type": "metric",
                        "user": user,
                        "experiment": experiment.key,
                        "metric": "latency_ms",
                        "value": rng.gauss(200, 20),
                    }
                )
    return events


def test_the_aggregation_matches_python(running: Experiment) -> None:
    rng = random.Random(3)
    events, expected = [], {}
    for i in range(300):
        user, variant = f"u{i}", rng.choice(["blue", "green"])
        covariate = rng.choice([None, rng.uniform(0, 5)])
        events.append(
            {
                "id": f"x{i}",
                "type": "exposure",
                "user": user,
                "experiment": "button-colour",
                "variant": variant,
                **({"covariate": covariate} if covariate is not None else {}),
            }
        )
        values = [rng.uniform(50, 400) for _ in range(rng.choice([0, 0, 1, 3]))]
        for j, value in enumerate(values):
            events.append(
                {
                    "id": f"m{i}-{j}",
                    "type": "metric",
                    "user": user,
                    "experiment": "button-colour",
                    "metric": "latency_ms",
                    "value": value,
                }
            )
        expected.setdefault(variant, []).append((sum(values), covariate or 0.0, bool(values)))
    # A metric event of a user never exposed is not counted.
    events.append(
        {
            "id": "ghost",
            "type": "metric",
            "user": "ghost",
            "experiment": "button-colour",
            "metric": "latency_ms",
            "value": 1e6,
        }
    )
    feed(running, events)
    latency = {"name": "latency_ms", "kind": "continuous"}
    conversion = {"name": "latency_ms", "kind": "conversion"}
    continuous, converted = analysis.aggregate(running, latency), analysis.aggregate(running, conversion)
    for variant, rows in expected.items():
        sample = continuous[variant]
        assert sample.n == len(rows)
        assert math.isclose(sample.total, sum(y for y, _, _ in rows))
        assert math.isclose(sample.total_sq, sum(y * y for y, _, _ in rows))
        assert math.isclose(sample.x_total, sum(x for _, x, _ in rows))
        assert math.isclose(sample.x_sq, sum(x * x for _, x, _ in rows))
        assert math.isclose(sample.xy_total, sum(x * y for y, x, _ in rows))
        assert converted[variant].total == converted[variant].total_sq == sum(c for _, _, c in rows)


def test_a_clear_winner_is_declared(running: Experiment) -> None:
    feed(running, simulate(running, {"blue": 8000, "green": 8000}, {"blue": 0.10, "green": 0.14}))
    results = analysis.analyse(running)
    purchase = results["metrics"][0]
    comparison = purchase["comparisons"][0]
    assert results["total_users"] == 16000 and not results["srm"]["mismatch"]
    assert comparison["p_value"] < 1e-6 and comparison["p_adjusted"] == comparison["p_value"]  # one comparison
    assert results["winner"] == "green" and results["summary"] == "green is better with 95% confidence."
    effect = stats.conversion_effect(
        stats.Sample(8000, purchase["variants"][0]["total"], purchase["variants"][0]["total"]),
        stats.Sample(8000, purchase["variants"][1]["total"], purchase["variants"][1]["total"]),
    )
    assert math.isclose(comparison["difference"], effect.difference)
    assert purchase["role"] == "primary" and results["metrics"][1]["role"] == "guardrail"
    assert ExperimentSnapshot.objects.filter(experiment=running).count() == 1


def test_too_little_data_says_how_many_more_users(running: Experiment) -> None:
    feed(running, simulate(running, {"blue": 300, "green": 300}, {"blue": 0.10, "green": 0.11}))
    results = analysis.analyse(running)
    assert results["winner"] is None and results["level"] == "wait"
    assert results["summary"].startswith("Not enough data yet: about ")
    assert "more users per variant needed" in results["summary"]


def test_a_skewed_split_is_a_sample_ratio_mismatch(running: Experiment) -> None:
    feed(running, simulate(running, {"blue": 5000, "green": 4500}, {"blue": 0.10, "green": 0.20}))
    results = analysis.analyse(running)
    assert results["srm"]["mismatch"] and results["srm"]["p_value"] < 0.001
    assert results["level"] == "srm" and results["winner"] is None
    assert results["summary"].startswith("Sample ratio mismatch — do not trust these results")


def test_conflicted_users_are_counted_and_left_out(running: Experiment) -> None:
    feed(running, simulate(running, {"blue": 50, "green": 50}, {"blue": 0.5, "green": 0.5}))
    feed(
        running,
        [{"id": "twice", "type": "exposure", "user": "blue-1", "experiment": "button-colour", "variant": "green"}],
    )
    results = analysis.analyse(running)
    assert results["conflicted_users"] == 1 and results["users"] == {"blue": 49, "green": 50}


def test_always_valid_p_is_a_running_minimum_over_the_looks(running: Experiment) -> None:
    feed(running, simulate(running, {"blue": 3000, "green": 3000}, {"blue": 0.10, "green": 0.13}))
    first = analysis.analyse(running)["metrics"][0]["comparisons"][0]
    # More users with no difference dilute the effect: the raw p rises, the reported one does not.
    feed(
        running,
        simulate(running, {"blue": 3000, "green": 3000}, {"blue": 0.10, "green": 0.10}, seed=11)[::1]
        and [
            {**e, "id": "late-" + e["id"], "user": "late-" + e["user"]}
            for e in simulate(running, {"blue": 3000, "green": 3000}, {"blue": 0.12, "green": 0.10}, seed=11)
        ],
    )
    second = analysis.analyse(running)["metrics"][0]["comparisons"][0]
    assert second["av_p_value_raw"] > first["av_p_value_raw"]
    assert second["av_p_value"] == min(first["av_p_value"], second["av_p_value_raw"])


def test_nothing_to_analyse_is_said_in_words(running: Experiment) -> None:
    results = analysis.analyse(running)
    assert results["summary"] == "No exposures yet: nothing to analyse." and results["winner"] is None
    text = str(results).lower()
    assert "nan" not in text and "inf" not in text


def test_cuped_uses_the_covariate(button_flag: Flag, release_manager: User) -> None:
    experiment = draft(button_flag, release_manager, cuped=True)
    services.experiment_start(experiment=experiment, actor=release_manager)
    feed(experiment, simulate(experiment, {"blue": 500, "green": 500}, {"blue": 0.1, "green": 0.15}))
    comparison = analysis.analyse(experiment)["metrics"][0]["comparisons"][0]
    assert "CUPED" in comparison["method"]


# --- Assignment by the flagd engine ----------------------------------------------------------------


def assignments(flag: Flag, users: int) -> list[str]:
    revision = FlagSet.objects.get(environment_id=flag.environment_id).revision
    flag_set = evaluation.compiled(flag.environment_id, revision)
    return [
        evaluation.evaluate(flag_set, flag.key, EvaluationContext(targeting_key=f"user-{i}")).variant
        for i in range(users)
    ]


def test_assignment_matches_the_weights_and_is_stable(button_flag: Flag, release_manager: User) -> None:
    users = 100_000
    experiment = draft(button_flag, release_manager, allocation=[["blue", 50], ["green", 30], ["orange", 20]])
    services.experiment_start(experiment=experiment, actor=release_manager)
    first = assignments(button_flag, users)
    shares = {v: first.count(v) / users for v in ("blue", "green", "orange")}
    for variant, weight in (("blue", 0.5), ("green", 0.3), ("orange", 0.2)):
        assert abs(shares[variant] - weight) < 0.005, shares  # ±0.5 point: about 3.5 standard errors
    assert assignments(button_flag, users) == first  # the same user always gets the same variant
    sizes = [first.count(v) for v in ("blue", "green", "orange")]
    assert not stats.sample_ratio_mismatch(sizes, [50, 30, 20]).mismatch


def test_growing_the_treatment_keeps_its_users(button_flag: Flag, release_manager: User) -> None:
    users = 100_000
    small = draft(button_flag, release_manager, key="small", allocation=[["green", 10], ["blue", 90]])
    services.experiment_start(experiment=small, actor=release_manager)
    before = assignments(button_flag, users)
    services.experiment_stop(experiment=small, actor=release_manager)
    larger = draft(button_flag, release_manager, key="larger", allocation=[["green", 20], ["blue", 80]])
    services.experiment_start(experiment=larger, actor=release_manager)
    after = assignments(button_flag, users)
    assert abs(after.count("green") / users - 0.2) < 0.005
    assert all(b == "green" for a, b in zip(before, after, strict=True) if a == "green")  # nobody leaves green
    assert clock.now() is not None
