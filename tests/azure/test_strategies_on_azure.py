"""The operations engine on Azure: blue-green and canary promotions, their rollbacks and the application
rollback, run by a real RQ worker over the real Redis queue, with the real azure-mgmt-web / azure-mgmt-monitor
clients (AzureProvider) talking to the loopback ARM emulator. Nothing is patched: the outcomes asserted are
what the emulated App Service ends up running and routing, and what the database and the audit trail say.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from rq import Queue, SimpleWorker

from portal.core.errors import DomainError, ErrorCode
from releases.audit.models import AuditEvent
from releases.audit.services import audit_type
from releases.catalog.models import Application, Health, Release, ReleaseStatus
from releases.catalog.providers.azure import AzureProvider
from releases.catalog.services import slots_refresh
from strategies.operations import services
from strategies.operations.engine import operations_recover
from strategies.operations.models import Drift, Operation, OperationStatus, StepStatus
from strategies.operations.reconcile import drift_repair, reconcile
from tests.azure.conftest import azure_environment
from tests.azure_emulator import AzureEmulator, EmulatedSite, MinuteMetrics
from tests.factories import ApplicationFactory, ReleaseFactory
from tests.releases.test_jobs import _subprocess_database_url
from tests.strategies.conftest import drive

pytestmark = [pytest.mark.rq, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

VERSIONS = {"production": "1.0.0", "staging": "1.1.0", "test": "1.1.0", "dev": "1.2.0-dev"}
# Tiny timings: verification and bake in hundredths of a second (slept in the worker), analysis on 5 minutes
# of Azure Monitor data (5 per-minute latency averages per side).
FAST_BLUE_GREEN = {"verify_seconds": 0.05, "verify_interval_seconds": 0.02}
FAST_CANARY = {
    "bake_seconds": 0.02,
    "analysis_minutes": 5,
    "min_requests": 50,
    "min_latency_samples": 5,
    "verify_seconds": 0.05,
    "verify_interval_seconds": 0.02,
}
# What each slot serves per minute, as Azure Monitor reports it (Requests, Http5xx, HttpResponseTime).
STABLE_TRAFFIC = MinuteMetrics(requests=1200, errors=2, response_time_ms=85)
GOOD_CANARY = MinuteMetrics(requests=600, errors=1, response_time_ms=84)
BAD_CANARY = MinuteMetrics(requests=600, errors=120, response_time_ms=90)


@pytest.fixture
def checkout(emulator: AzureEmulator) -> Application:
    """An Azure application in the database (standard slots and environments, no approval policy)."""
    return ApplicationFactory(azure=True, name="Checkout", slug="checkout", health_check_path="/healthz")


@pytest.fixture
def checkout_site(emulator: AzureEmulator, checkout: Application) -> EmulatedSite:
    """Its App Service site: 1.0.0 in production, 1.1.0 warm in staging, a sticky DATABASE setting per slot,
    and swaps that take a few polls and a tenth of a second (a long-running operation, not an instant one)."""
    site = emulator.add_site(
        checkout.azure_subscription_id,
        checkout.azure_resource_group,
        checkout.azure_site_name,
        VERSIONS,
        app_settings={name: {"DATABASE": f"{name}-db"} for name in VERSIONS},
        sticky=["DATABASE"],
    )
    site.swap_polls, site.swap_seconds = 3, 0.1
    return site


@pytest.fixture
def live(checkout: Application) -> Release:
    return ReleaseFactory(application=checkout, version="1.0.0", status=ReleaseStatus.LIVE)


@pytest.fixture
def candidate(checkout: Application, live: Release) -> Release:
    staging = checkout.slots.get(name="staging")
    return ReleaseFactory(application=checkout, version="1.1.0", status=ReleaseStatus.APPROVED, deployed_slot=staging)


# --- reading back ------------------------------------------------------------------------------
def versions(site: EmulatedSite) -> dict[str, str]:
    return {name: slot.version for name, slot in site.slots.items()}


def statuses(*releases: Release) -> list[str]:
    for release in releases:
        release.refresh_from_db()
    return [r.status for r in releases]


def actions(obj: Operation | Release) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type=audit_type(obj), object_id=str(obj.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


def kinds(operation: Operation) -> list[str]:
    return [step.kind for step in operation.steps.order_by("position")]


def routing_writes(emulator: AzureEmulator, site: EmulatedSite) -> list[list[tuple[str, float]]]:
    """The ramp-up rules of each write of production's siteConfig (PATCH config/web), in order."""
    return [
        [(rule["name"], rule["reroutePercentage"]) for rule in record.body["properties"]["experiments"]["rampUpRules"]]
        for record in emulator.requests("config_web_update", site=site.name)
    ]


def ramp_up_rules(site: EmulatedSite) -> list[dict]:
    return site.production.site_config["experiments"]["rampUpRules"]


def arm_routes(emulator: AzureEmulator, site: EmulatedSite, wanted: set[str]) -> list[str]:
    """The routes among `wanted` that the site was asked, in order ("health:<slot>" for a slot's health path)."""
    routes = []
    for record in emulator.requests(site=site.name):
        route = f"health:{record.slot}" if record.route == "health" else record.route
        if route in wanted:
            routes.append(route)
    return routes


# --- blue-green --------------------------------------------------------------------------------
def test_blue_green_swaps_the_build_into_production_and_makes_it_live(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout: Application,
    checkout_site: EmulatedSite,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    site = checkout_site
    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    assert statuses(candidate) == [ReleaseStatus.ROLLING_OUT]
    assert emulator.calls("swap") == 0, "nothing is swapped before a worker runs the operation"

    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert statuses(candidate, live) == [ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED]
    assert kinds(operation) == ["check_health", "swap", "verify_health", "go_live"]
    assert set(operation.steps.values_list("status", flat=True)) == {StepStatus.SUCCEEDED}

    # Azure: the content moved, the sticky settings stayed, nothing is left in flight.
    assert versions(site) == {"production": "1.1.0", "staging": "1.0.0", "test": "1.1.0", "dev": "1.2.0-dev"}
    assert site.production.app_settings == {"SLIPWAY_VERSION": "1.1.0", "DATABASE": "production-db"}
    assert site.slot("staging").app_settings == {"SLIPWAY_VERSION": "1.0.0", "DATABASE": "staging-db"}
    assert site.current is None and site.preview is None
    assert site.slot_swap_status["sourceSlotName"] == "production"
    assert site.slot_swap_status["destinationSlotName"] == "staging"

    # One swap POST, a long-running operation polled by the SDK's poller (202s, then 200) ...
    (swap_request,) = emulator.requests("swap", site=site.name)
    assert swap_request.path.endswith(f"/sites/{site.name}/slotsswap")
    assert swap_request.body == {"targetSlot": "staging", "preserveVnet": True}
    polls = [r.status for r in emulator.requests("swap_status", site=site.name)]
    assert polls[-1] == 200 and polls.count(202) >= 2, polls
    # ... whose resume token, kept on the step, names that very swap (and carries no credentials).
    swap = operation.steps.get(kind="swap")
    (swap_id,) = site.operations
    token = base64.b64decode(swap.resume_token).decode()
    assert swap_id in token and "Bearer" not in token
    assert swap.attempts == 1 and "attempt 1: ok" in swap.log
    assert swap.detail["swapped"] is True

    # The gate asked staging's app before the swap; the verification asked production's app after it.
    order = arm_routes(emulator, site, {"health:staging", "health:production", "swap"})
    assert order.index("health:staging") < order.index("swap") < len(order) - 1
    assert order[-1] == "health:production"
    checks = operation.steps.get(kind="verify_health").detail["checks"]
    assert checks and all(c["healthy"] and c["code"] == 200 for c in checks)

    # What Slipway observes of the slots through the provider agrees.
    refreshed = slots_refresh(application=checkout)
    assert refreshed.error == "" and refreshed.missing == []
    slots = {slot.name: slot for slot in checkout.slots.all()}
    production, staging = slots["production"], slots["staging"]
    assert (production.running_version, production.current_release, production.traffic_percent) == (
        "1.1.0",
        candidate,
        100,
    )
    assert (staging.running_version, staging.current_release, staging.traffic_percent) == ("1.0.0", live, 0)
    assert production.health == staging.health == Health.HEALTHY

    # The audit trail: the operation's life and the releases' transitions.
    assert actions(operation) == ["operation.created", "operation.running", "operation.succeeded"]
    assert AuditEvent.objects.get(action="operation.created", object_id=str(operation.pk)).actor == release_manager
    assert actions(candidate) == ["release.rollout_started", "release.went_live"]
    assert actions(live) == ["release.superseded"]


def test_blue_green_with_preview_verifies_staging_with_productions_settings_then_completes_the_swap(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout_site: EmulatedSite,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    site = checkout_site
    seen: list[tuple[str, str, str]] = []  # what each health request found in the slot: an observer, never a fault
    site.health_faults.append(lambda slot: seen.append((slot.name, slot.version, slot.app_settings["DATABASE"])))

    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters={**FAST_BLUE_GREEN, "preview": True}, actor=release_manager
    )
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert statuses(candidate, live) == [ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED]
    assert kinds(operation) == ["check_health", "swap_preview", "verify_health", "swap", "verify_health", "go_live"]

    # Phase 1 (applySlotConfig on staging), staging verified with production's settings, phase 2 (the swap).
    (apply,) = emulator.requests("apply_slot_config", site=site.name)
    assert apply.path.endswith(f"/sites/{site.name}/slots/staging/applySlotConfig")
    assert apply.body == {"targetSlot": "production", "preserveVnet": True}
    order = arm_routes(emulator, site, {"health:staging", "apply_slot_config", "swap"})
    applied, swapped = order.index("apply_slot_config"), order.index("swap")
    assert "health:staging" in order[:applied] and order[applied + 1] == "health:staging"
    assert applied < swapped and order.count("swap") == 1
    assert seen[0] == ("staging", "1.1.0", "staging-db")  # the gate
    assert ("staging", "1.1.0", "production-db") in seen  # the preview's verification
    assert emulator.calls("reset_slot_config") == 0

    # Completing the preview: production runs the build with its own settings; staging gets its own back.
    assert site.preview is None
    assert site.production.app_settings == {"SLIPWAY_VERSION": "1.1.0", "DATABASE": "production-db"}
    assert site.slot("staging").app_settings == {"SLIPWAY_VERSION": "1.0.0", "DATABASE": "staging-db"}
    assert emulator.requests("swap", site=site.name)[0].body == {"targetSlot": "staging", "preserveVnet": True}


def test_a_preview_that_fails_verification_is_cancelled_and_nothing_is_swapped(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout_site: EmulatedSite,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    site = checkout_site
    # 1.1.0 cannot talk to the production database: healthy in staging, broken with production's settings.
    site.health_faults.append(lambda slot: slot.version == "1.1.0" and slot.app_settings["DATABASE"] == "production-db")

    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters={**FAST_BLUE_GREEN, "preview": True}, actor=release_manager
    )
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert "staging failed its health check during verification: HTTP 503" in operation.error
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]
    undo = operation.steps.filter(parameters__undo=True)
    assert [(s.kind, s.status) for s in undo] == [("cancel_preview", StepStatus.SUCCEEDED)]
    assert operation.steps.get(kind="swap").status == StepStatus.SKIPPED

    (reset,) = emulator.requests("reset_slot_config", site=site.name)
    assert reset.path.endswith(f"/sites/{site.name}/slots/staging/resetSlotConfig")
    assert emulator.calls("swap") == 0
    assert site.preview is None
    assert site.slot("staging").app_settings == {"SLIPWAY_VERSION": "1.1.0", "DATABASE": "staging-db"}
    assert site.production.app_settings == {"SLIPWAY_VERSION": "1.0.0", "DATABASE": "production-db"}
    assert actions(operation) == [
        "operation.created",
        "operation.running",
        "operation.rolling_back",
        "operation.rolled_back",
    ]


def test_a_build_unhealthy_in_production_is_swapped_back_and_the_release_rolled_back(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout: Application,
    checkout_site: EmulatedSite,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    site = checkout_site
    # Healthy in staging (the gate passes), broken once it serves production.
    site.health_faults.append(lambda slot: slot.name == "production" and slot.version == "1.1.0")

    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert "production failed its health check during verification: HTTP 503" in operation.error
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]
    assert [(s.kind, s.status) for s in operation.steps.order_by("position")] == [
        ("check_health", StepStatus.SUCCEEDED),
        ("swap", StepStatus.SUCCEEDED),
        ("verify_health", StepStatus.FAILED),
        ("go_live", StepStatus.SKIPPED),
        ("swap", StepStatus.SUCCEEDED),  # the swap back
    ]
    swap_back = operation.steps.get(parameters__undo=True)
    assert swap_back.parameters["expect_version"] == "1.0.0" and swap_back.resume_token

    # There and back: two real swaps, and production serves the old build again, healthily.
    swaps = emulator.requests("swap", site=site.name)
    assert [r.body for r in swaps] == [{"targetSlot": "staging", "preserveVnet": True}] * 2
    assert len(site.operations) == 2 and {op.status for op in site.operations.values()} == {"Succeeded"}
    assert versions(site) == VERSIONS
    assert site.production.app_settings["DATABASE"] == "production-db"
    production_checks = [r.status for r in emulator.requests("health", site=site.name) if r.slot == "production"]
    assert 503 in production_checks
    assert AzureProvider.for_application(checkout).check_health(checkout, "production").healthy

    assert actions(operation) == [
        "operation.created",
        "operation.running",
        "operation.rolling_back",
        "operation.rolled_back",
    ]
    assert actions(candidate) == ["release.rollout_started", "release.rolled_back"]
    assert actions(live) == []


def test_a_worker_killed_while_the_swap_runs_is_recovered_and_resumes_that_swap_by_its_token(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout_site: EmulatedSite,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    site = checkout_site
    site.hold_swap = True  # the swap stays in progress until released
    operation = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    env = {
        **os.environ,
        **azure_environment(emulator),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _subprocess_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "AZURE_POLLING_INTERVAL": "1",  # whole seconds from the environment; the worker only has to poll once
    }
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "operations", "--burst", "--worker-class", "rq.worker.SimpleWorker"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        swap = operation.steps.get(kind="swap")
        deadline = time.monotonic() + 30
        while not (swap.resume_token and emulator.calls("swap_status", site=site.name) >= 1):
            assert worker.poll() is None, worker.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "the worker never began polling its swap"
            time.sleep(0.02)
            swap.refresh_from_db()
        worker.send_signal(signal.SIGKILL)  # as when a machine dies mid-swap
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == -signal.SIGKILL
    swap.refresh_from_db()
    assert swap.status == StepStatus.RUNNING and swap.attempts == 1
    assert site.current is not None and versions(site)["production"] == "1.0.0"

    assert [pk for pk, _ in operations_recover(stale_after=0)] == [operation.pk]
    site.hold_swap = False  # App Service finishes the swap
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert statuses(candidate, live) == [ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED]
    swap.refresh_from_db()
    assert swap.attempts == 2 and f"Resuming swap {swap.resume_token}" in swap.log
    assert emulator.calls("swap", site=site.name) == 1, "the recovered runner polls the same swap; never a second"
    assert len(site.operations) == 1
    assert versions(site)["production"] == "1.1.0" and versions(site)["staging"] == "1.0.0"
    assert "operation.recovered" in actions(operation)


# --- canary ------------------------------------------------------------------------------------
def test_a_canary_routes_each_share_passes_its_analysis_on_azure_monitor_then_swaps_and_resets_routing(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout: Application,
    checkout_site: EmulatedSite,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    site = checkout_site
    site.production.metrics, site.slot("staging").metrics = STABLE_TRAFFIC, GOOD_CANARY

    operation = services.operation_start(
        release=candidate, strategy="canary", parameters=FAST_CANARY, actor=release_manager
    )
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert statuses(candidate, live) == [ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED]
    assert set(operation.steps.values_list("status", flat=True)) == {StepStatus.SUCCEEDED}

    # siteConfig.experiments.rampUpRules on production: each share in turn, then none.
    assert routing_writes(emulator, site) == [
        [("staging", 5.0)],
        [("staging", 25.0)],
        [("staging", 50.0)],
        [("staging", 100.0)],
        [],
    ]
    assert {r.slot for r in emulator.requests("config_web_update", site=site.name)} == {"production"}
    assert ramp_up_rules(site) == []
    # The swap came after the last share was routed and analysed, and before the routing was reset.
    order = arm_routes(emulator, site, {"config_web_update", "swap"})
    assert order == ["config_web_update"] * 4 + ["swap", "config_web_update"]
    assert versions(site)["production"] == "1.1.0" and versions(site)["staging"] == "1.0.0"
    states = {s.name: s for s in AzureProvider.for_application(checkout).slot_states(checkout)}
    assert (states["production"].traffic_percent, states["staging"].traffic_percent) == (100, 0)

    # Each analysis read Azure Monitor for the canary (staging) and stable (production), 5 minutes of PT1M data;
    # then the swap recorded production's baseline, and each verification of production read it again.
    metrics = emulator.requests("metrics", site=site.name)
    verifications = operation.steps.get(kind="verify_health").detail["checks"]
    assert [r.slot for r in metrics] == ["staging", "production"] * 4 + ["production"] * (1 + len(verifications))
    assert all(check["analysis"] for check in verifications)
    assert {r.query["metricnames"] for r in metrics} == {"Requests,Http5xx,HttpResponseTime"}
    analyses = list(operation.steps.filter(kind="analyse").order_by("position"))
    assert [a.detail["verdict"] for a in analyses] == ["pass"] * 4
    figures = analyses[0].detail["analyses"][0]["figures"]
    assert (figures["error_rate"]["canary_requests"], figures["error_rate"]["stable_requests"]) == (3000, 6000)
    assert (figures["error_rate"]["canary_error_rate"], figures["error_rate"]["stable_error_rate"]) == (
        round(5 / 3000, 5),
        round(10 / 6000, 5),
    )
    assert (figures["latency"]["canary_median_ms"], figures["latency"]["stable_median_ms"]) == (84.0, 85.0)
    assert figures["latency"]["outcome"] == "pass"

    assert actions(operation) == ["operation.created", "operation.running", "operation.succeeded"]
    assert actions(candidate) == ["release.rollout_started", "release.went_live"]
    assert actions(live) == ["release.superseded"]


def test_a_canary_erring_in_azure_monitor_gets_its_traffic_back_to_zero_and_is_rolled_back(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout: Application,
    checkout_site: EmulatedSite,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    site = checkout_site
    site.production.metrics, site.slot("staging").metrics = STABLE_TRAFFIC, BAD_CANARY  # 20 % of 5xx

    operation = services.operation_start(
        release=candidate, strategy="canary", parameters=FAST_CANARY, actor=release_manager
    )
    drive(rq_queues["operations"], operation)

    assert operation.status == OperationStatus.ROLLED_BACK
    assert "Canary analysis failed. Error rate: canary 20.00% vs stable 0.17%" in operation.error
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]
    analysis = operation.steps.filter(kind="analyse").order_by("position").first()
    assert (analysis.status, analysis.detail["verdict"]) == (StepStatus.FAILED, "fail")
    undo = operation.steps.filter(parameters__undo=True)
    assert [(s.kind, s.parameters["percent"], s.status) for s in undo] == [("set_traffic", 0, StepStatus.SUCCEEDED)]
    # Everything after the failed analysis (three more shares, the swap, the reset, the verification, go live)
    # was skipped.
    assert operation.steps.filter(status=StepStatus.SKIPPED).count() == 13

    # 5 % went to the canary, then the rule was removed; nothing was swapped.
    assert routing_writes(emulator, site) == [[("staging", 5.0)], []]
    assert ramp_up_rules(site) == []
    assert AzureProvider.for_application(checkout).get_traffic(checkout) == {}
    assert emulator.calls("swap") == 0
    assert versions(site) == VERSIONS

    assert actions(operation) == [
        "operation.created",
        "operation.running",
        "operation.rolling_back",
        "operation.rolled_back",
    ]
    assert actions(candidate) == ["release.rollout_started", "release.rolled_back"]


# --- application rollback ----------------------------------------------------------------------
def test_rolling_back_the_application_swaps_the_previous_build_back_into_production(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout: Application,
    checkout_site: EmulatedSite,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    site = checkout_site
    promotion = services.operation_start(
        release=candidate, strategy="blue_green", parameters=FAST_BLUE_GREEN, actor=release_manager
    )
    drive(rq_queues["operations"], promotion)
    assert promotion.status == OperationStatus.SUCCEEDED, promotion.error
    assert versions(site)["production"] == "1.1.0"

    rollback = services.application_rollback(application=checkout, actor=release_manager, reason="Checkout errors")
    assert rollback.kind == Operation.Kind.ROLLBACK
    drive(rq_queues["operations"], rollback)

    assert rollback.status == OperationStatus.SUCCEEDED, rollback.error
    assert kinds(rollback) == ["check_health", "swap", "set_traffic", "restore"]
    assert set(rollback.steps.values_list("status", flat=True)) == {StepStatus.SUCCEEDED}
    assert statuses(candidate, live) == [ReleaseStatus.ROLLED_BACK, ReleaseStatus.LIVE]

    # The previous build, still warm in staging, is swapped back: production runs 1.0.0 again.
    assert versions(site) == VERSIONS
    assert site.production.app_settings == {"SLIPWAY_VERSION": "1.0.0", "DATABASE": "production-db"}
    swaps = emulator.requests("swap", site=site.name)
    assert len(swaps) == 2 and len(site.operations) == 2
    assert rollback.steps.get(kind="swap").resume_token
    assert emulator.calls("config_web_update") == 0, "no routing rule to remove: no write"

    assert actions(rollback) == ["operation.created", "operation.running", "operation.succeeded"]
    rolled_back = AuditEvent.objects.get(action="release.rolled_back", object_id=str(candidate.pk))
    assert (rolled_back.actor, rolled_back.reason) == (release_manager, "Checkout errors")
    assert actions(live) == ["release.superseded", "release.restored"]
    assert actions(candidate) == ["release.rollout_started", "release.went_live", "release.rolled_back"]


# --- drift ---------------------------------------------------------------------------------------
# A swap made in the Azure portal (any ARM client but Slipway's engine) and a ramp-up rule left behind are
# found, block promotion, and a repair operation puts production back with the ARM calls a promotion makes.
def test_a_swap_in_the_azure_portal_is_drift_and_the_repair_swaps_the_live_build_back(
    rq_queues: dict[str, Queue],
    emulator: AzureEmulator,
    checkout_site: EmulatedSite,
    checkout: Application,
    live: Release,
    candidate: Release,
    release_manager: User,
) -> None:
    provider = AzureProvider.for_application(checkout)
    assert reconcile(checkout) is None
    provider.begin_swap(checkout, "staging", "production").result(timeout=30)  # someone in the portal
    provider.set_traffic(checkout, "staging", 20)  # and a ramp-up rule

    drift = reconcile(checkout)

    assert drift is not None
    assert sorted(f["kind"] for f in drift.findings) == ["routing", "version"]
    assert "production runs 1.1.0, but the live release is 1.0.0." in drift.summary
    with pytest.raises(DomainError) as refused:
        services.operation_start(release=candidate, strategy="blue_green", parameters={}, actor=release_manager)
    assert refused.value.code == ErrorCode.PROMOTION_BLOCKED

    repair = drift_repair(drift=drift, actor=release_manager)
    drive(rq_queues["operations"], repair)
    SimpleWorker([rq_queues["default"]], connection=rq_queues["default"].connection).work(burst=True)

    assert repair.kind == Operation.Kind.REPAIR and repair.status == OperationStatus.SUCCEEDED, repair.error
    assert [s.kind for s in repair.steps.order_by("position")] == ["set_traffic", "swap"]
    assert versions(checkout_site)["production"] == "1.0.0" and ramp_up_rules(checkout_site) == []
    drift.refresh_from_db()
    assert drift.resolved_at is not None
    assert not Drift.objects.filter(resolved_at__isnull=True).exists()
