"""The A/B-testing decision in a real browser: a release manager reads the results page of a running experiment
in headless Chromium, ships the winner, and the flag serves it to everyone over OFREP (issue 9, "Done when")."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from playwright.sync_api import expect

from portal.core import clock
from releases.audit.models import AuditEvent
from strategies.experiments import analysis
from strategies.experiments.models import Experiment
from strategies.flags.models import Flag
from tests.experiments.conftest import draft
from tests.experiments.test_analysis import feed, simulate
from tests.flags.conftest import (  # noqa: F401 - fixtures
    KEY,
    api_key,
    clean_flag_state,
    make_flag,
    production,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def ofrep_value(live_server: Any, flag: str, user: str) -> Any:
    answer = requests.post(
        f"{live_server.url}/ofrep/v1/evaluate/flags/{flag}",
        json={"context": {"targetingKey": user}},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["variant"]


def test_a_release_manager_reads_the_results_and_ships_the_winner(
    sign_in: Any,
    live_server: Any,
    make_flag: Any,  # noqa: F811 - the fixture imported above
    api_key: str,  # noqa: F811
    release_manager: User,
) -> None:
    flag = make_flag(
        "checkout-button", flag_type="string", variants={"blue": "#2e6da4", "green": "#2e8b57"}, default_variant="blue"
    )
    experiment = draft(flag, release_manager)
    from strategies.experiments import services

    experiment = services.experiment_start(experiment=experiment, actor=release_manager)
    served = {ofrep_value(live_server, flag.key, f"user-{i}") for i in range(40)}
    assert served == {"blue", "green"}  # the running experiment splits users between the variants
    events = simulate(experiment, {"blue": 3000, "green": 3000}, {"blue": 0.10, "green": 0.15})
    feed(experiment, events[: len(events) // 2])
    with clock.frozen(clock.now() - timedelta(days=1)):
        analysis.analyse(experiment)
    feed(experiment, events[len(events) // 2 :])
    analysis.analyse(experiment)

    page = sign_in(release_manager)
    page.goto(f"{live_server.url}{experiment.get_absolute_url()}")
    expect(page.locator("#results")).to_contain_text("green is better with 95% confidence.")
    expect(page.locator("#results")).to_contain_text("Sample ratio check")
    expect(page.locator("svg#intervals-purchase")).to_be_visible()
    assert not re.search(r"\bnan\b|\binf\b", page.locator("main").inner_text(), re.IGNORECASE)

    actions = page.locator("#experiment-actions")
    actions.get_by_label("Variant").select_option("green")
    actions.get_by_label("Reason").first.fill("Green sells more; latency unchanged")
    actions.get_by_role("button", name="Ship this variant to everyone").click()

    expect(page.locator("main")).to_contain_text(f"Shipped green of {flag.key} to everyone")
    expect(page.locator("#experiment-status")).to_have_text("Decided")
    expect(page.locator("#decision")).to_contain_text("Green sells more")
    assert Experiment.objects.get(pk=experiment.pk).decision["analysis"]["total_users"] == 6000
    assert Flag.objects.get(pk=flag.pk).default_variant == "green"
    assert {ofrep_value(live_server, flag.key, f"user-{i}") for i in range(40)} == {"green"}
    assert AuditEvent.objects.filter(object_id=str(experiment.pk), action__startswith="experiment.").exists()
