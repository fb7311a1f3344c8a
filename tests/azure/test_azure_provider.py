"""The Azure provider, driving the real azure-mgmt-web / azure-mgmt-monitor / azure-identity code against the
loopback emulator (tests/azure_emulator). Nothing in the SDKs is patched: what these tests prove is what the
real client sends and how the provider reads the real client's answers and errors.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from django.conf import settings as django_settings
from pytest_django.fixtures import Settings

from releases.catalog.models import Application, AzureCredential
from releases.catalog.providers import (
    PRODUCTION_SLOT,
    Attempt,
    AuthError,
    HostingProvider,
    NotFoundError,
    PermanentError,
    TransientError,
    call_with_retry,
)
from releases.catalog.providers.azure import (
    WARMUP_PATH_SETTING,
    WARMUP_STATUSES_SETTING,
    AzureProvider,
    credential_for,
    is_loopback_host,
)
from releases.catalog.providers.registry import provider_for
from tests.azure.conftest import PRINCIPAL, azure_environment
from tests.azure_emulator import AzureEmulator, EmulatedSite, MinuteMetrics
from tests.factories import ApplicationFactory


def versions(site: EmulatedSite) -> dict[str, str]:
    return {name: slot.version for name, slot in site.slots.items()}


# --- reading the site --------------------------------------------------------------------------
def test_it_lists_every_slot_with_version_hostname_state_health_and_traffic(provider, application, site):
    states = provider.slot_states(application)

    assert [s.name for s in states] == ["production", "dev", "staging"]
    by_name = {s.name: s for s in states}
    assert {name: s.version for name, s in by_name.items()} == {
        "production": "1.0.0",
        "dev": "1.2.0-dev",
        "staging": "1.1.0",
    }
    assert {name: s.hostname for name, s in by_name.items()} == {name: slot.host for name, slot in site.slots.items()}
    assert {s.state for s in states} == {"Running"}
    assert {s.healthy for s in states} == {True}
    assert {name: s.traffic_percent for name, s in by_name.items()} == {"production": 100, "dev": 0, "staging": 0}


def test_it_reads_a_slot_list_that_comes_in_pages(provider, application, site, emulator):
    site.page_size = 1

    assert [s.name for s in provider.slot_states(application)] == ["production", "dev", "staging"]
    pages = emulator.requests("list_slots", site=site.name)
    assert len(pages) == 2
    assert pages[1].query["$skipToken"] == "1"


def test_a_missing_site_or_slot_is_not_found(provider, application, site):
    stranger = ApplicationFactory.build(azure=True, azure_site_name="no-such-site")
    with pytest.raises(NotFoundError) as missing_site:
        provider.slot_states(stranger)
    assert missing_site.value.status == 404
    assert missing_site.value.code == "ResourceNotFound"
    assert "'Microsoft.Web/sites/no-such-site' under resource group 'rg-slipway-tests' was not found" in str(
        missing_site.value
    )

    with pytest.raises(NotFoundError, match=r"sites/.*/slots/canary"):
        provider.check_health(application, "canary")


def test_it_is_the_provider_for_azure_applications(site, application):
    provider = provider_for(application)

    assert isinstance(provider, AzureProvider)
    assert isinstance(provider, HostingProvider)
    assert provider is provider_for(application), "one provider (and SDK client) per process"


# --- health ------------------------------------------------------------------------------------
def test_a_health_check_reports_healthy_unhealthy_stopped_and_unreachable_slots(provider, application, site, emulator):
    site.slot("staging").healthy = False
    site.slot("dev").state = "Stopped"

    production = provider.check_health(application, "production")
    assert production.healthy is True
    assert production.status_code == 200
    assert production.latency_ms is not None
    assert production.detail == f"HTTP 200 OK from http://{site.production.host}/healthz"

    staging = provider.check_health(application, "staging")
    assert (staging.healthy, staging.status_code) == (False, 503)

    dev = provider.check_health(application, "dev")
    assert (dev.healthy, dev.status_code, dev.detail) == (False, None, "The slot is stopped.")
    assert [r.slot for r in emulator.requests("health", site=site.name)] == ["production", "staging"]

    site.slot("staging").host = "127.0.0.1:1"  # nothing listens there
    unreachable = provider.check_health(application, "staging")
    assert (unreachable.healthy, unreachable.status_code) == (False, None)
    assert unreachable.detail.startswith("Could not reach http://127.0.0.1:1/healthz")

    states = {s.name: s for s in provider.slot_states(application)}
    assert (states["production"].healthy, states["staging"].healthy, states["dev"].healthy) == (True, False, False)
    assert states["dev"].state == "Stopped"


def test_a_health_check_uses_the_applications_health_path(provider, application, site):
    application.health_check_path = "/status"

    result = provider.check_health(application, "production")

    assert (result.healthy, result.status_code) == (False, 404)
    assert "/status" in result.detail


# --- swaps -------------------------------------------------------------------------------------
def test_it_swaps_staging_into_production_and_back(provider, application, site, emulator):
    started = time.monotonic()
    handle = provider.begin_swap(application, "staging")
    handle.result(timeout=10)
    took = time.monotonic() - started

    assert handle.done()
    assert versions(site) == {"production": "1.1.0", "staging": "1.0.0", "dev": "1.2.0-dev"}
    (swap,) = emulator.requests("swap", site=site.name)
    assert swap.path.endswith(f"/sites/{site.name}/slotsswap")  # swap with production
    assert swap.body == {"targetSlot": "staging", "preserveVnet": True}
    assert swap.query["api-version"] == "2025-05-01"
    assert [r.status for r in emulator.requests("swap_status", site=site.name)] == [202, 200]
    assert took < 2, f"a swap in tests should take about two polling intervals, took {took:.2f} s"

    provider.begin_swap(application, "staging").result(timeout=10)

    assert versions(site) == {"production": "1.0.0", "staging": "1.1.0", "dev": "1.2.0-dev"}
    assert [s.version for s in provider.slot_states(application)] == ["1.0.0", "1.2.0-dev", "1.1.0"]


def test_it_swaps_two_deployment_slots_through_the_slot_endpoint(provider, application, site, emulator):
    provider.begin_swap(application, "dev", "staging").result(timeout=10)

    assert versions(site) == {"production": "1.0.0", "staging": "1.2.0-dev", "dev": "1.1.0"}
    (swap,) = emulator.requests("swap", site=site.name)
    assert swap.path.endswith(f"/sites/{site.name}/slots/dev/slotsswap")
    assert swap.body == {"targetSlot": "staging", "preserveVnet": True}


def test_it_follows_an_azure_async_operation_header_too(provider, application, site, emulator):
    site.lro_style = "azure-async-operation"

    provider.begin_swap(application, "staging").result(timeout=10)

    assert versions(site)["production"] == "1.1.0"
    assert emulator.calls("swap_async_status", site=site.name) >= 2


@pytest.mark.parametrize("lro_style", ["location", "azure-async-operation"])
def test_a_swap_that_fails_raises_a_permanent_error_with_azures_message(provider, application, site, lro_style):
    site.lro_style = lro_style
    message = (
        f"Cannot swap site slots for site '{site.name}' because the 'staging' slot did not respond to http ping. "
        "(CODE: 417)"
    )
    site.swap_failure = ("SlotSwapWarmupFailed", message)
    handle = provider.begin_swap(application, "staging")

    with pytest.raises(PermanentError) as failed:
        handle.result(timeout=10)

    assert message in str(failed.value)
    assert str(failed.value).startswith(f"Swapping staging into production on {site.name} failed: ")
    assert failed.value.code == "SlotSwapWarmupFailed"
    assert failed.value.status == (400 if lro_style == "location" else None)
    assert handle.done()
    assert versions(site)["production"] == "1.0.0", "a failed swap changes nothing"


def test_a_swap_still_running_after_the_wait_raises_timeout_error(provider, application, site):
    site.hold_swap = True
    handle = provider.begin_swap(application, "staging")

    with pytest.raises(TimeoutError, match="still in progress"):
        handle.result(timeout=0.2)
    assert not handle.done()

    site.hold_swap = False
    handle.result(timeout=10)
    assert handle.done()
    assert versions(site)["production"] == "1.1.0"


def test_a_conflict_with_a_swap_in_progress_is_retried_until_the_site_is_free(provider, application, site, emulator):
    site.hold_swap = True
    first = provider.begin_swap(application, "staging")
    attempts: list[Attempt] = []

    def wait(seconds: float) -> None:
        # While call_with_retry backs off, the other swap finishes.
        site.hold_swap = False
        first.result(timeout=10)

    second = call_with_retry(
        lambda: provider.begin_swap(application, "dev", "staging"),
        base_delay_s=0.01,
        on_attempt=attempts.append,
        sleep=wait,
    )
    second.result(timeout=10)

    assert [(a.number, a.waited_s) for a in attempts] == [(1, 0.01), (2, 0.0)]
    assert attempts[0].error.startswith(
        f"ConflictError: Swapping dev into staging on {site.name} failed: Cannot modify this site "
        f"'{site.name}' because another operation is in progress."
    )
    assert attempts[1].error == ""
    assert [r.status for r in emulator.requests("swap", site=site.name)] == [202, 409, 202]
    assert versions(site) == {"production": "1.1.0", "staging": "1.2.0-dev", "dev": "1.0.0"}


def test_an_injected_conflict_carries_azures_code_and_resolves_with_attempts_recorded(
    provider, application, site, emulator
):
    emulator.inject("swap", 409, times=2, site=site.name)
    attempts: list[Attempt] = []

    handle = call_with_retry(
        lambda: provider.begin_swap(application, "staging"), base_delay_s=0.01, on_attempt=attempts.append
    )
    handle.result(timeout=10)

    assert [(a.number, a.waited_s) for a in attempts] == [(1, 0.01), (2, 0.02), (3, 0.0)]
    assert all(a.error.startswith("ConflictError: ") for a in attempts[:2])
    assert emulator.calls("swap", site=site.name) == 3
    assert versions(site)["production"] == "1.1.0"


def test_throttling_server_errors_and_timeouts_are_transient_and_not_retried_inside_the_sdk(
    provider, application, site, emulator, settings: Settings
):
    emulator.inject("get_site", 429, site=site.name)
    with pytest.raises(TransientError) as throttled:
        provider.check_health(application, "production")
    assert (throttled.value.status, throttled.value.code) == (429, "TooManyRequests")
    assert throttled.value.retry_after == 1.0
    assert emulator.calls("get_site", site=site.name) == 1, "the SDK's own retry policy is off"

    emulator.inject("appsettings_put", 500, times=2, site=site.name)
    attempts: list[Attempt] = []
    call_with_retry(
        lambda: provider.update_app_settings(application, "staging", {"FEATURE": "on"}),
        base_delay_s=0.01,
        on_attempt=attempts.append,
    )
    assert [a.error.split(":")[0] for a in attempts] == ["TransientError", "TransientError", ""]
    assert site.slot("staging").app_settings["FEATURE"] == "on"

    settings.AZURE_HTTP_TIMEOUT = 0.2
    slow = AzureProvider.for_application(application)
    emulator.inject("get_site", None, delay_s=0.6, site=site.name)
    with pytest.raises(TransientError) as timed_out:
        slow.check_health(application, "production")
    assert timed_out.value.code == "ServiceResponseTimeoutError"


def test_a_refusal_by_azure_rbac_is_an_auth_error(provider, application, site, emulator):
    emulator.inject("config_web_get", 403, site=site.name)

    with pytest.raises(AuthError) as refused:
        provider.get_traffic(application)

    assert (refused.value.status, refused.value.code) == (403, "AuthorizationFailed")
    assert "does not have authorization" in str(refused.value)


def test_a_worker_killed_while_polling_resumes_from_the_token_without_a_second_swap_request(
    provider, application, site, emulator, worker_script: Path, tmp_path: Path
):
    site.hold_swap = True
    token_file = tmp_path / "resume-token"
    coordinates = {
        name: getattr(application, name)
        for name in (
            "name",
            "slug",
            "provider",
            "azure_subscription_id",
            "azure_resource_group",
            "azure_site_name",
            "azure_credential",
            "health_check_path",
        )
    }
    environment = {**os.environ, **azure_environment(emulator), "SLIPWAY_TEST_POLLING_INTERVAL": "0.05"}
    worker = subprocess.Popen(  # noqa: S603 - our own script, with the test's interpreter
        [sys.executable, "-m", "tests.azure.swap_worker", json.dumps(coordinates), str(token_file)],
        cwd=django_settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (token_file.exists() and emulator.calls("swap_status", site=site.name) >= 2):
            assert worker.poll() is None, worker.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "the worker never started polling"
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)  # no cleanup, no atexit: as when a machine dies
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == -signal.SIGKILL
    polled_by_worker = emulator.calls("swap_status", site=site.name)
    assert site.current is not None, "the swap is still running on the site"
    assert versions(site)["production"] == "1.0.0"

    site.hold_swap = False
    handle = provider.resume_swap(application, token_file.read_text())
    handle.result(timeout=10)

    assert emulator.calls("swap", site=site.name) == 1, "resuming must not POST the swap again"
    assert emulator.calls("swap_status", site=site.name) > polled_by_worker
    assert versions(site) == {"production": "1.1.0", "staging": "1.0.0", "dev": "1.2.0-dev"}
    assert handle.resume_token == token_file.read_text()


def test_a_resume_token_carries_no_credentials(provider, application, site):
    token = provider.begin_swap(application, "staging").resume_token

    decoded = base64.b64decode(token).decode()
    assert PRINCIPAL.client_secret not in decoded
    assert "Bearer" not in decoded
    assert "operationresults" in decoded


def test_a_token_that_is_not_a_swaps_is_a_permanent_error(provider, application, site):
    with pytest.raises(PermanentError) as invalid:
        provider.resume_swap(application, "not-a-token")
    assert invalid.value.code == "InvalidResumeToken"


# --- swap with preview -------------------------------------------------------------------------
def preview_site(emulator: AzureEmulator, application: Application) -> EmulatedSite:
    return emulator.add_site(
        application.azure_subscription_id,
        application.azure_resource_group,
        application.azure_site_name,
        {"production": "1.0.0", "staging": "1.1.0"},
        app_settings={"production": {"DATABASE": "prod-db"}, "staging": {"DATABASE": "staging-db"}},
        sticky=["DATABASE"],
    )


def test_a_swap_with_preview_applies_productions_settings_to_staging_then_completes(emulator, application):
    site = preview_site(emulator, application)
    provider = AzureProvider.for_application(application)

    provider.apply_swap_preview(application, "staging")

    assert provider.get_app_settings(application, "staging") == {"SLIPWAY_VERSION": "1.1.0", "DATABASE": "prod-db"}
    assert versions(site) == {"production": "1.0.0", "staging": "1.1.0"}, "nothing swapped yet"
    (apply,) = emulator.requests("apply_slot_config", site=site.name)
    assert apply.path.endswith("/slots/staging/applySlotConfig")
    assert apply.body == {"targetSlot": "production", "preserveVnet": True}

    provider.begin_swap(application, "staging").result(timeout=10)

    assert site.production.app_settings == {"SLIPWAY_VERSION": "1.1.0", "DATABASE": "prod-db"}
    assert site.slot("staging").app_settings == {"SLIPWAY_VERSION": "1.0.0", "DATABASE": "staging-db"}


def test_cancelling_a_swap_with_preview_restores_the_slots_own_settings(emulator, application):
    site = preview_site(emulator, application)
    provider = AzureProvider.for_application(application)
    provider.apply_swap_preview(application, "staging")

    provider.cancel_swap_preview(application, "staging")

    assert site.slot("staging").app_settings == {"SLIPWAY_VERSION": "1.1.0", "DATABASE": "staging-db"}
    assert site.production.app_settings == {"SLIPWAY_VERSION": "1.0.0", "DATABASE": "prod-db"}
    assert emulator.requests("reset_slot_config", site=site.name)[0].path.endswith("/slots/staging/resetSlotConfig")
    provider.begin_swap(application, "staging").result(timeout=10)
    assert versions(site) == {"production": "1.1.0", "staging": "1.0.0"}


def test_a_preview_from_production_uses_the_production_endpoints(emulator, application):
    site = preview_site(emulator, application)
    provider = AzureProvider.for_application(application)

    provider.apply_swap_preview(application, PRODUCTION_SLOT, "staging")
    assert site.production.app_settings["DATABASE"] == "staging-db"
    provider.cancel_swap_preview(application, PRODUCTION_SLOT)

    assert site.production.app_settings["DATABASE"] == "prod-db"
    assert emulator.requests("apply_slot_config")[0].path.endswith(f"/sites/{site.name}/applySlotConfig")
    assert emulator.requests("reset_slot_config")[0].path.endswith(f"/sites/{site.name}/resetSlotConfig")


# --- traffic -----------------------------------------------------------------------------------
def test_traffic_share_is_set_read_back_idempotent_and_removed_at_zero(provider, application, site, emulator):
    provider.set_traffic(application, "staging", 20)

    assert provider.get_traffic(application) == {"staging": 20}
    assert site.production.site_config["experiments"]["rampUpRules"] == [
        {"actionHostName": site.slot("staging").host, "reroutePercentage": 20.0, "name": "staging"}
    ]
    assert {s.name: s.traffic_percent for s in provider.slot_states(application)} == {
        "production": 80,
        "dev": 0,
        "staging": 20,
    }
    writes = emulator.calls("config_web_update", site=site.name)
    assert emulator.requests("config_web_update")[0].method == "PATCH"

    provider.set_traffic(application, "staging", 20)
    assert emulator.calls("config_web_update", site=site.name) == writes, "already so: no write"

    provider.set_traffic(application, "dev", 5)
    provider.set_traffic(application, "staging", 30)
    assert provider.get_traffic(application) == {"staging": 30, "dev": 5}

    provider.set_traffic(application, "staging", 0)
    assert provider.get_traffic(application) == {"dev": 5}
    assert [rule["name"] for rule in site.production.site_config["experiments"]["rampUpRules"]] == ["dev"]
    writes = emulator.calls("config_web_update", site=site.name)
    provider.set_traffic(application, "staging", 0)
    assert emulator.calls("config_web_update", site=site.name) == writes


def test_traffic_share_cannot_route_more_than_everything(provider, application, site, emulator):
    provider.set_traffic(application, "staging", 60)

    with pytest.raises(PermanentError, match="at most 40 % is left"):
        provider.set_traffic(application, "dev", 50)
    with pytest.raises(ValueError, match="Production takes the traffic"):
        provider.set_traffic(application, PRODUCTION_SLOT, 50)

    assert provider.get_traffic(application) == {"staging": 60}


# --- settings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("slot", ["production", "staging"])
def test_app_settings_are_merged_and_none_deletes(provider, application, site, emulator, slot):
    provider.update_app_settings(application, slot, {"FEATURE_X": "on", "REGION": "weu"})
    provider.update_app_settings(application, slot, {"FEATURE_X": None, "REGION": "neu", "ABSENT": None})

    assert provider.get_app_settings(application, slot) == {
        "SLIPWAY_VERSION": site.slot(slot).version,
        "REGION": "neu",
    }
    puts = emulator.requests("appsettings_put", site=site.name)
    assert len(puts) == 2
    assert {r.slot for r in puts} == {slot}

    provider.update_app_settings(application, slot, {"REGION": "neu"})
    assert emulator.calls("appsettings_put", site=site.name) == 2, "nothing changed: no write"


def test_sticky_settings_stay_with_their_slot_in_a_swap(provider, application, site, emulator):
    site.sticky_connection_strings = ["MainDb"]
    provider.update_app_settings(application, "production", {"ENVIRONMENT": "prod", "BANNER": "old"})
    provider.update_app_settings(application, "staging", {"ENVIRONMENT": "staging", "BANNER": "new"})

    provider.set_sticky_settings(application, ["ENVIRONMENT"])

    assert provider.get_sticky_settings(application) == ["ENVIRONMENT"]
    assert site.sticky_connection_strings == ["MainDb"], "connection-string names are left alone"
    provider.begin_swap(application, "staging").result(timeout=10)
    assert site.production.app_settings == {"SLIPWAY_VERSION": "1.1.0", "ENVIRONMENT": "prod", "BANNER": "new"}
    assert site.slot("staging").app_settings == {"SLIPWAY_VERSION": "1.0.0", "ENVIRONMENT": "staging", "BANNER": "old"}

    writes = emulator.calls("slot_config_names_put", site=site.name)
    provider.set_sticky_settings(application, ["ENVIRONMENT"])
    assert emulator.calls("slot_config_names_put", site=site.name) == writes


def test_swap_warmup_pings_the_health_path_on_every_slot(provider, application, site):
    application.health_check_path = "/ready"

    provider.configure_swap_warmup(application)

    for slot in site.slots.values():
        assert slot.app_settings[WARMUP_PATH_SETTING] == "/ready"
        assert slot.app_settings[WARMUP_STATUSES_SETTING] == "200,202"


def test_it_restarts_production_and_deployment_slots(provider, application, site, emulator):
    provider.restart(application, "production")
    provider.restart(application, "staging")

    assert {name: slot.restarts for name, slot in site.slots.items()} == {"production": 1, "staging": 1, "dev": 0}
    assert [r.path.rsplit("/", 2)[-2:] for r in emulator.requests("restart")] == [
        [site.name, "restart"],
        ["staging", "restart"],
    ]


# --- metrics -----------------------------------------------------------------------------------
def test_metrics_come_from_azure_monitor_per_minute(provider, application, site, emulator):
    site.slot("staging").metrics = MinuteMetrics(requests=120, errors=3, response_time_ms=85)

    sample = provider.metrics(application, "staging", minutes=5)

    assert sample.requests == 600
    assert sample.errors == 15
    assert sample.error_rate == pytest.approx(0.025)
    assert sample.latencies_ms == pytest.approx([85.0] * 5)
    (request,) = emulator.requests("metrics")
    assert request.path.endswith(f"/sites/{site.name}/slots/staging/providers/Microsoft.Insights/metrics")
    assert request.query["metricnames"] == "Requests,Http5xx,HttpResponseTime"
    assert request.query["aggregation"] == "Total,Average"
    assert request.query["interval"] == "PT1M"
    assert request.query["api-version"] == "2024-02-01"

    quiet = provider.metrics(application, "production", minutes=3)
    assert (quiet.requests, quiet.errors, quiet.latencies_ms) == (0, 0, [])


# --- transport security ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("10.0.0.1", False),
        ("192.168.1.10", False),
        ("management.azure.com", False),
        ("localhost.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_only_loopback_hosts_count_as_loopback(host, loopback):
    assert is_loopback_host(host) is loopback


def test_plain_http_to_a_host_that_is_not_loopback_is_refused(emulator, application, settings: Settings):
    settings.AZURE_RESOURCE_MANAGER_URL = "http://management.slipway-test.invalid"

    with pytest.raises(PermanentError) as refused:
        AzureProvider.for_application(application)
    assert refused.value.code == "InsecureEndpoint"


def test_a_poll_url_over_plain_http_to_another_host_is_refused_before_it_is_sent(provider, application, site, emulator):
    site.poll_base_url = "http://arm.slipway-test.invalid"
    handle = provider.begin_swap(application, "staging")

    with pytest.raises(PermanentError) as refused:
        handle.result(timeout=10)

    assert refused.value.code == "InsecureEndpoint"
    assert "only https is allowed" in str(refused.value)
    assert emulator.calls("swap_status", site=site.name) == 0


# --- credentials -------------------------------------------------------------------------------
def test_the_real_client_secret_credential_gets_its_token_from_the_login_endpoint(emulator, application):
    credential = credential_for(AzureCredential.CLIENT_SECRET)

    token = credential.get_token(f"{emulator.arm_url}/.default")

    assert token.token in emulator.issued_tokens
    assert credential is credential_for(AzureCredential.CLIENT_SECRET), "one credential per process per kind"


@pytest.mark.parametrize(
    ("cleared", "named"),
    [
        (["AZURE_CLIENT_SECRET"], "AZURE_CLIENT_SECRET in the environment; it is not set"),
        (["AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"], "AZURE_TENANT_ID, AZURE_CLIENT_SECRET in the environment; they"),
    ],
)
def test_missing_service_principal_settings_are_an_auth_error_naming_them(
    emulator, application, settings: Settings, cleared, named
):
    for name in cleared:
        setattr(settings, name, "")

    with pytest.raises(AuthError, match=named) as missing:
        AzureProvider.for_application(application)
    assert missing.value.code == "MissingSetting"


def test_a_refused_client_secret_is_an_auth_error_that_never_shows_the_secret(
    emulator, application, site, settings: Settings, caplog: pytest.LogCaptureFixture
):
    wrong = "wrong-secret-Lk3~9d0e5c1c1e9f"
    settings.AZURE_CLIENT_SECRET = wrong
    caplog.set_level(logging.DEBUG)

    with pytest.raises(AuthError) as refused:
        AzureProvider.for_application(application).slot_states(application)

    assert "AADSTS7000215: Invalid client secret provided" in str(refused.value)
    assert emulator.requests("token", server="login")[-1].status == 401
    assert wrong not in str(refused.value)
    assert wrong not in repr(refused.value.__cause__)
    assert wrong not in caplog.text
    assert emulator.calls("get_site", site=site.name) == 0, "no ARM request without a token"


def test_a_managed_identity_is_built_once_with_the_client_id_from_settings(
    emulator, settings: Settings, caplog: pytest.LogCaptureFixture
):
    settings.AZURE_CLIENT_ID = "99999999-8888-7777-6666-555555555555"  # a user-assigned identity
    application = ApplicationFactory.build(azure=True, azure_credential=AzureCredential.MANAGED_IDENTITY)
    caplog.set_level(logging.INFO, logger="azure.identity")

    first = AzureProvider.for_application(application)

    credential = credential_for(AzureCredential.MANAGED_IDENTITY)
    assert isinstance(credential, ManagedIdentityCredential)
    assert "client_id: 99999999-8888-7777-6666-555555555555" in caplog.text  # azure-identity says which identity
    assert credential is credential_for(AzureCredential.MANAGED_IDENTITY)
    assert first is AzureProvider.for_application(application)


def test_default_azure_credential_is_restricted_to_production_credentials(emulator):
    credential = credential_for(AzureCredential.DEFAULT)

    assert isinstance(credential, DefaultAzureCredential)
    # A credential that could not be configured (workload identity here) stands in under its own name.
    kinds = {getattr(member, "_credential_name", type(member).__name__) for member in credential.credentials}
    assert kinds <= {"EnvironmentCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential"}
    assert "ManagedIdentityCredential" in kinds


def test_a_throttled_call_waits_as_long_as_azure_asks_before_retrying(provider, application, site, emulator):
    emulator.inject("appsettings_put", 429, site=site.name)  # the emulator says Retry-After: 1
    slept: list[float] = []
    attempts: list[Attempt] = []

    call_with_retry(
        lambda: provider.update_app_settings(application, "staging", {"FEATURE": "on"}),
        base_delay_s=0.01,
        on_attempt=attempts.append,
        sleep=slept.append,
    )

    assert slept == [1.0]
    assert [a.waited_s for a in attempts] == [1.0, 0.0]
    assert site.slot("staging").app_settings["FEATURE"] == "on"
