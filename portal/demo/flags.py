"""Demo flags for `manage.py seed_demo`: every kind of flag on Checkout Web's production, and a
documented API key for it. Safe to run again: whatever exists is left as it is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model

from portal.core import clock
from portal.demo.experiments import seed_experiments
from releases.catalog.models import Application, Stage
from strategies.flags import services
from strategies.flags.models import Flag, FlagApiKey, Segment

DEMO_APPLICATION = "checkout-web"
# Demo data on a local machine: a fixed, documented key for Checkout Web's production (printed by ./dev run).
DEMO_FLAG_API_KEY = "slwf_demo0000_checkout-web-production-demo-key"

SEGMENTS: list[dict[str, Any]] = [
    {
        "key": "internal-staff",
        "name": "Internal staff",
        "description": "Everyone signed in with a company address.",
        "match": "any",
        "conditions": [{"attribute": "email", "op": "ends_with", "value": "@slipway.example"}],
        "users": ["qa-bot"],
    },
    {
        "key": "beta-customers",
        "name": "Beta customers",
        "description": "Customers who joined the beta programme, on app 3.0 or later.",
        "match": "all",
        "conditions": [
            {"attribute": "groups", "op": "contains", "value": "beta"},
            {"attribute": "appVersion", "op": "semver_ge", "value": "3.0.0"},
        ],
        "users": [],
    },
]


def _rule(segment: str, serve: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "match": "any",
        "conditions": [{"attribute": "", "op": "in_segment", "value": segment}],
        "serve": serve,
    }


FLAGS: list[dict[str, Any]] = [
    {
        "key": "payments-enabled",
        "flag_type": "boolean",
        "default_variant": "on",
        "description": "Kill switch for card payments: turn off to show the maintenance notice instead.",
        "lifecycle": "permanent",
    },
    {
        "key": "new-checkout",
        "flag_type": "boolean",
        "default_variant": "off",
        "description": "The redesigned checkout, rolling out to a quarter of customers.",
        "rules": {"fallthrough": {"split": [["on", 25], ["off", 75]]}},
        "planned_removal": 45,
    },
    {
        "key": "one-click-pay",
        "flag_type": "boolean",
        "default_variant": "off",
        "description": "Pay with the saved card in one click: dark-launched to internal staff.",
        "launch": {"variant": "on", "segments": ["internal-staff"]},
        "planned_removal": 60,
    },
    {
        "key": "checkout-button-colour",
        "flag_type": "string",
        "variants": {"blue": "#2e6da4", "green": "#2e8b57", "orange": "#f0a202"},
        "default_variant": "blue",
        "description": "Which colour sells: beta customers see green, everyone else is split.",
        "rules": {
            "rules": [_rule("beta-customers", {"variant": "green"}, "Beta customers")],
            "fallthrough": {"split": [["blue", 50], ["green", 25], ["orange", 25]]},
        },
    },
    {
        "key": "max-cart-items",
        "flag_type": "number",
        "variants": {"standard": 50, "generous": 100},
        "default_variant": "standard",
        "description": "How many items fit in a cart.",
        "rules": {"rules": [_rule("internal-staff", {"variant": "generous"}, "Staff")]},
    },
    {
        "key": "recommendations-layout",
        "flag_type": "object",
        "variants": {"grid": {"layout": "grid", "columns": 3}, "carousel": {"layout": "carousel", "items": 8}},
        "default_variant": "grid",
        "description": "How recommendations are laid out under the basket.",
    },
]


def seed_flags(*, log: Callable[[str], None] = print) -> None:
    application = Application.objects.filter(slug=DEMO_APPLICATION).first()
    actor = get_user_model().objects.filter(username="releasemgr").first()
    if application is None or actor is None:
        return
    production = application.environments.get(stage=Stage.PRODUCTION)
    made = []
    for spec in SEGMENTS:
        if not Segment.objects.filter(application=application, key=spec["key"]).exists():
            services.segment_save(segment=Segment(application=application, **spec), actor=actor)
            made.append(f"segment {spec['key']}")
    for spec in FLAGS:
        if Flag.objects.filter(environment=production, key=spec["key"]).exists():
            continue
        spec = dict(spec)
        lifecycle, launch = spec.pop("lifecycle", None), spec.pop("launch", None)
        days = spec.pop("planned_removal", None)
        planned = (clock.now() + timedelta(days=days)).date() if days else None
        flag = services.flag_create(environment=production, actor=actor, planned_removal=planned, **spec)
        if lifecycle == "permanent":
            flag = services.flag_set_lifecycle(flag=flag, to="active", actor=actor)
            flag = services.flag_set_lifecycle(flag=flag, to="permanent", actor=actor)
        if launch:
            services.launch_start(flag=flag, actor=actor, reason="Staff try it first", **launch)
        made.append(flag.key)
    if not FlagApiKey.objects.filter(key_hash=services.key_hash(DEMO_FLAG_API_KEY)).exists():
        services.api_key_create(
            environment=production, name="Demo key (documented)", actor=actor, can_sync=True, secret=DEMO_FLAG_API_KEY
        )
        made.append("the demo API key")
    if made:
        log(f"{application.name} flags: {', '.join(made)}")

    seed_experiments(log=log)
