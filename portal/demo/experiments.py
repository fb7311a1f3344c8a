"""Demo experiments for `manage.py seed_demo` (called from the flags' demo): on Checkout Web's production,
a running experiment with 14 days of data and daily analyses, and a decided one in its history.

Events go through the events API's own service (`ingest.ingest`), and each day's analysis is taken with
the clock pinned to that day, so the results page and its "over time" chart read as they would have.
Safe to run again: an experiment that exists is left as it is. Deterministic (fixed random seeds).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model

from portal.core import clock
from releases.catalog.models import Application, Stage
from strategies.experiments import analysis, ingest, services
from strategies.experiments.models import Experiment
from strategies.flags import services as flag_services
from strategies.flags.models import Flag

DEMO_APPLICATION = "checkout-web"
DAYS = 14
USERS_PER_DAY = 1430  # about 20,000 users in 14 days


def _flag(environment: Any, actor: Any, key: str, **spec: Any) -> Flag:
    flag = Flag.objects.filter(environment=environment, key=key).first()
    return flag or flag_services.flag_create(environment=environment, key=key, actor=actor, **spec)


def _day_events(
    experiment: Experiment, rng: random.Random, *, day: int, users: int, rates: dict[str, float], start: Any
) -> list[dict[str, Any]]:
    """One day's exposures, purchases, revenue and latency, for users split by the experiment's weights."""
    variants = experiment.variants
    weights = [float(w) for _, w in experiment.allocation]
    events: list[dict[str, Any]] = []
    for i in range(users):
        user = f"{experiment.key}-d{day}-u{i}"
        variant = rng.choices(variants, weights)[0]
        at = start + timedelta(days=day, seconds=rng.uniform(0, 86_000))
        stamp = at.isoformat()
        base = {"user": user, "experiment": experiment.key, "timestamp": stamp}
        spend_before = max(rng.gauss(30, 20), 0.0)  # last month's spend: the CUPED covariate
        events.append({**base, "id": f"{user}-x", "type": "exposure", "variant": variant, "covariate": spend_before})
        latency = max(rng.gauss(180 if variant == variants[0] else 183, 45), 20.0)
        events.append({**base, "id": f"{user}-l", "type": "metric", "metric": "latency_ms", "value": round(latency, 1)})
        if rng.random() < rates[variant]:
            revenue = max(rng.gauss(55 + 0.4 * spend_before, 20), 5.0)
            events.append({**base, "id": f"{user}-p", "type": "metric", "metric": "purchase"})
            events.append(
                {**base, "id": f"{user}-r", "type": "metric", "metric": "revenue", "value": round(revenue, 2)}
            )
    return events


def _play(
    experiment: Experiment, *, start: Any, days: int, users_per_day: int, rates: dict[str, float], seed: str
) -> None:
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    for day in range(days):
        events = _day_events(experiment, rng, day=day, users=users_per_day, rates=rates, start=start)
        for first in range(0, len(events), ingest.MAX_EVENTS):
            ingest.ingest(events[first : first + ingest.MAX_EVENTS], environment_id=experiment.environment_id)
        with clock.frozen(start + timedelta(days=day + 1, minutes=-5)):
            analysis.analyse(experiment)


METRICS: dict[str, Any] = {
    "primary_metric": {"name": "purchase", "kind": "conversion", "direction": "increase"},
    "guardrails": [
        {"name": "revenue", "kind": "continuous", "direction": "increase", "tolerance": 5},
        {"name": "latency_ms", "kind": "continuous", "direction": "decrease", "tolerance": 10},
    ],
}


def seed_experiments(*, log: Callable[[str], None] = print) -> None:
    application = Application.objects.filter(slug=DEMO_APPLICATION).first()
    actor = get_user_model().objects.filter(username="releasemgr").first()
    if application is None or actor is None:
        return
    production = application.environments.get(stage=Stage.PRODUCTION)
    now = clock.now().replace(microsecond=0)
    made = []
    if not Experiment.objects.filter(environment=production, key="free-shipping-banner").exists():
        start = now - timedelta(days=DAYS * 2 + 3)
        with clock.frozen(start):  # the flag is made for the experiment, on the day it starts
            flag = _flag(
                production,
                actor,
                "free-shipping-banner",
                flag_type="boolean",
                default_variant="off",
                description="A banner announcing free shipping above 50 € on the basket page.",
            )
            experiment = services.experiment_create(
                flag=flag,
                key="free-shipping-banner",
                name="Free-shipping banner",
                hypothesis="Telling customers about free shipping above 50 € makes more of them buy.",
                allocation=[["off", 50], ["on", 50]],
                actor=actor,
                mde=0.15,
                baseline_rate=0.1,
                **METRICS,
            )
            experiment = services.experiment_start(experiment=experiment, actor=actor)
        _play(experiment, start=start, days=10, users_per_day=900, rates={"off": 0.10, "on": 0.125}, seed="banner")
        with clock.frozen(start + timedelta(days=10, hours=2)):
            services.experiment_ship(
                experiment=experiment, variant="on", actor=actor, reason="Better conversion, guardrails fine."
            )
        made.append("free-shipping-banner (decided: shipped on)")
    if not Experiment.objects.filter(environment=production, key="checkout-button-label").exists():
        start = now - timedelta(days=DAYS)
        with clock.frozen(start):
            flag = _flag(
                production,
                actor,
                "checkout-button-label",
                flag_type="string",
                variants={"pay-now": "Pay now", "complete-order": "Complete my order"},
                default_variant="pay-now",
                description="The label of the checkout button: an A/B test.",
            )
            experiment = services.experiment_create(
                flag=flag,
                key="checkout-button-label",
                name="Checkout button label",
                hypothesis="“Complete my order” tells customers what happens next, so more of them buy.",
                allocation=[["pay-now", 50], ["complete-order", 50]],
                actor=actor,
                mde=0.15,
                baseline_rate=0.1,
                cuped=False,
                **METRICS,
            )
            experiment = services.experiment_start(experiment=experiment, actor=actor)
        _play(
            experiment,
            start=start,
            days=DAYS,
            users_per_day=USERS_PER_DAY,
            rates={"pay-now": 0.100, "complete-order": 0.112},
            seed="button-label",
        )
        made.append("checkout-button-label (running, 14 days of data)")
    if made:
        log(f"{application.name} experiments: {', '.join(made)}")
