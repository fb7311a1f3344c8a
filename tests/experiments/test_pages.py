"""The experiment pages: the form and its live power calculator, the results page in words (never NaN), the
Recompute button, deciding from the browser (ship, stop, through approval), and the demo's experiment."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from portal.core import clock
from releases.audit.models import AuditEvent
from releases.catalog.models import Environment
from strategies.experiments import analysis
from strategies.experiments.models import Experiment
from strategies.flags import changes
from strategies.flags.models import Flag, FlagChangeRequest
from tests.experiments.test_analysis import feed, simulate
from tests.factories import ApprovalPolicyFactory

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def detail_url(experiment: Experiment) -> str:
    return reverse("experiment_detail", args=[experiment.environment.application.slug, experiment.pk])


def action_url(name: str, experiment: Experiment) -> str:
    return reverse(name, args=[experiment.environment.application.slug, experiment.pk])


def no_nan(html: str) -> None:
    text = re.sub(r"<[^>]+>", " ", html).lower()
    assert not re.search(r"\bnan\b|\binf\b|infinity|none\b", text), re.findall(r".{40}(?:nan|inf|none).{40}", text)


def test_the_form_creates_a_draft_and_computes_the_sample_live(
    button_flag: Flag, release_manager: User, production: Environment
) -> None:
    client = signed_in(release_manager)
    slug = production.application.slug
    page = client.get(reverse("experiment_create", args=[slug]), {"flag": button_flag.pk})
    assert page.status_code == 200 and 'hx-post="/apps/checkout/experiments/power"' in page.text
    power = client.post(
        reverse("experiment_power", args=[slug]),
        {
            "primary_kind": "conversion",
            "mde": "0.1",
            "mde_relative": "on",
            "alpha": "0.05",
            "power": "0.8",
            "baseline_rate": "0.1",
        },
    )
    assert power.status_code == 200 and "about 14751 users per variant" in power.text
    wrong = client.post(
        reverse("experiment_power", args=[slug]),
        {"primary_kind": "conversion", "mde": "0.1", "alpha": "0.05", "power": "0.8", "baseline_rate": "2"},
    )
    assert "between 0 and 1" in wrong.text
    form = {
        "flag": button_flag.pk,
        "key": "label",
        "name": "Button label",
        "allocation": "blue = 50, green = 60",
        "primary_name": "purchase",
        "primary_kind": "conversion",
        "primary_direction": "increase",
        "guardrails": "latency_ms, continuous, decrease, 5",
        "mde": "0.1",
        "mde_relative": "on",
        "alpha": "0.05",
        "power": "0.8",
        "baseline_rate": "0.1",
    }
    refused = client.post(reverse("experiment_create", args=[slug]), form)
    assert refused.status_code == 400 and "add up to 110" in refused.text
    created = client.post(reverse("experiment_create", args=[slug]), {**form, "allocation": "blue = 50, green = 50"})
    experiment = Experiment.objects.get(key="label")
    assert created.status_code == 302 and created["Location"] == detail_url(experiment)
    assert experiment.guardrails == [
        {"name": "latency_ms", "kind": "continuous", "direction": "decrease", "tolerance": 5.0}
    ]


def test_a_fresh_experiment_page_has_no_nan(
    client: Client, running: Experiment, release_manager: User, viewer: User
) -> None:
    watcher = signed_in(viewer).get(detail_url(running)).text  # viewers read; only a release manager recomputes
    assert 'id="recompute"' not in watcher and "analysed every 10 minutes" in watcher
    client = signed_in(release_manager)
    page = client.get(detail_url(running))
    assert page.status_code == 200 and "No analysis yet: press Recompute." in page.text
    recomputed = client.post(action_url("experiment_recompute", running), HTTP_HX_REQUEST="true")
    assert recomputed.status_code == 200 and recomputed.text.lstrip().startswith('<section id="results">')
    assert "No exposures yet: nothing to analyse." in recomputed.text
    no_nan(recomputed.text)
    # Tiny data: one user per variant, nobody converted.
    feed(
        running,
        [
            {"id": "a", "type": "exposure", "user": "u1", "experiment": running.key, "variant": "blue"},
            {"id": "b", "type": "exposure", "user": "u2", "experiment": running.key, "variant": "green"},
        ],
    )
    analysis.analyse(running)
    page = client.get(detail_url(running))
    assert page.status_code == 200
    no_nan(page.text)
    assert "—" in page.text and 'id="verdict"' in page.text


def test_the_results_page_says_who_wins_and_draws_the_charts(running: Experiment, viewer: User) -> None:
    events = simulate(running, {"blue": 6000, "green": 6000}, {"blue": 0.10, "green": 0.14})
    half = len(events) // 2
    feed(running, events[:half])
    with clock.frozen(clock.now() - timedelta(days=1)):
        analysis.analyse(running)
    feed(running, events[half:])
    analysis.analyse(running)
    page = signed_in(viewer).get(detail_url(running))
    assert "green is better with 95% confidence." in page.text
    assert 'id="intervals-purchase"' in page.text and 'id="over-time"' in page.text and "<polyline" in page.text
    assert "Holm" in page.text and "Sample ratio check" in page.text
    assert "style=" not in page.text and "<script>" not in page.text
    no_nan(page.text)
    assert 'id="ship"' not in page.text  # viewers read


def test_a_sample_ratio_mismatch_is_said_prominently(running: Experiment, viewer: User) -> None:
    feed(running, simulate(running, {"blue": 3000, "green": 2600}, {"blue": 0.1, "green": 0.2}))
    analysis.analyse(running)
    page = signed_in(viewer).get(detail_url(running))
    assert 'id="srm"' in page.text and "Sample ratio mismatch — do not trust these results." in page.text
    assert "is better with" not in page.text


def test_ship_from_the_browser(running: Experiment, release_manager: User) -> None:
    client = signed_in(release_manager)
    feed(running, simulate(running, {"blue": 200, "green": 200}, {"blue": 0.1, "green": 0.1}))
    bad = client.post(action_url("experiment_ship", running), {"variant": "purple"})
    assert bad.status_code == 400
    shipped = client.post(action_url("experiment_ship", running), {"variant": "green", "reason": "looks good"})
    assert shipped.status_code == 302
    page = client.get(detail_url(running))
    assert "Ship <code>green</code> to everyone" in page.text and "Decided" in page.text
    assert f"Shipped green of {running.flag.key} to everyone; {running.key} is decided." in page.text
    assert "functools" not in page.text
    assert Flag.objects.get(pk=running.flag_id).default_variant == "green"
    decision = Experiment.objects.get(pk=running.pk).decision
    assert decision["analysis"]["total_users"] == 400
    again = client.post(action_url("experiment_stop", running))
    assert again.status_code == 409 and "only a running one stops" in again.text


def test_start_stop_and_ship_through_approval_from_the_browser(
    experiment: Experiment, release_manager: User, approver: User, admin_user: User, production: Environment
) -> None:
    group = Group.objects.create(name="approvers")
    approver.groups.add(group)
    ApprovalPolicyFactory(environment=production, approvals_required=1, approver_groups=[group])
    changes.set_approval(environment=production, on=True, actor=admin_user)
    client = signed_in(release_manager)
    assert client.post(action_url("experiment_start", experiment)).status_code == 302
    page = client.get(detail_url(experiment))
    assert "Pending approval to start" in page.text and "Waiting for approval of flag change" in page.text
    request = FlagChangeRequest.objects.get()
    decided = signed_in(approver).post(
        reverse("flag_change_decide", args=[production.application.slug, request.pk]),
        {"decision": "approve", "comment": "ok"},
    )
    assert decided.status_code in (200, 302)
    page = client.get(detail_url(experiment))  # the page catches up with the applied change
    assert "Running" in page.text and Experiment.objects.get(pk=experiment.pk).status == "running"
    client.post(action_url("experiment_ship", experiment), {"variant": "green"})
    assert Experiment.objects.get(pk=experiment.pk).status == "shipping"
    assert "pending approval to ship (the flag change waits for an approver)" in client.get(detail_url(experiment)).text
    assert Flag.objects.get(pk=experiment.flag_id).default_variant == "blue"  # not before approval


def test_the_stop_button(running: Experiment, release_manager: User) -> None:
    client = signed_in(release_manager)
    response = client.post(action_url("experiment_stop", running), {"reason": "broken client"})
    assert response.status_code == 302
    assert Experiment.objects.get(pk=running.pk).status == "stopped"
    assert AuditEvent.objects.get(action="experiment.stopped").reason == "broken client"
