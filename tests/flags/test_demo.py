"""The demo's flags: every page renders, and the documented key gets answers over OFREP."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from portal.demo.flags import DEMO_FLAG_API_KEY
from strategies.flags.models import DarkLaunch, Flag

pytestmark = pytest.mark.django_db


def test_the_demo_flags_render_and_answer_over_ofrep(client: Client, viewer: User) -> None:
    call_command("seed_demo")
    client.force_login(viewer)

    assert client.get("/flags/").status_code == 200
    assert client.get("/apps/checkout-web/flags/").status_code == 200
    for flag in Flag.objects.all():
        assert client.get(flag.get_absolute_url()).status_code == 200, flag.key
    launch = DarkLaunch.objects.get(status="active")
    assert client.get(launch.get_absolute_url()).status_code == 200
    response = client.post(
        "/ofrep/v1/evaluate/flags",
        '{"context": {"targetingKey": "ana", "email": "ana@slipway.example"}}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {DEMO_FLAG_API_KEY}"},
    )
    flags = {f["key"]: f for f in response.json()["flags"]}
    assert {k: flags[k]["value"] for k in ("payments-enabled", "one-click-pay", "max-cart-items")} == {
        "payments-enabled": True,
        "one-click-pay": True,
        "max-cart-items": 100,
    }
    assert flags["recommendations-layout"]["value"] == {"layout": "grid", "columns": 3}
