"""Slot swaps on the simulator: phases by the clock, completion, resume tokens, conflicts and faults."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from pytest_django.fixtures import Settings

from portal.core import clock
from releases.catalog.models import Application, SimulatorSlot, SimulatorSwap, SwapPhase
from releases.catalog.providers import ConflictError, NotFoundError, PermanentError
from releases.catalog.providers.simulator import SimulatorProvider
from tests.factories import ApplicationFactory, add_simulated_site
from tests.releases.test_jobs import _subprocess_database_url

pytestmark = pytest.mark.django_db


def versions(application: Application) -> dict[str, str]:
    return dict(SimulatorSlot.objects.filter(application=application).values_list("slot_name", "version"))


@pytest.fixture
def demo_timings(settings: Settings) -> None:
    """The demo's timings: 3 s warm-up, 2 s swapping, 1 s switching routing."""
    settings.SIMULATOR_TIMINGS = {
        **settings.SIMULATOR_TIMINGS,
        "swap_seconds": 6.0,
        "warmup_seconds": 3.0,
        "routing_seconds": 1.0,
        "hang_timeout_seconds": 60.0,
    }


def at(start: datetime, seconds: float) -> clock.frozen:  # type: ignore[valid-type]
    return clock.frozen(start + timedelta(seconds=seconds))


@pytest.mark.usefixtures("demo_timings")
def test_a_swap_goes_through_its_phases_by_the_clock_and_exchanges_versions_at_the_end(
    checkout: Application, provider: SimulatorProvider
) -> None:
    start = clock.now()
    with at(start, 0):
        handle = provider.begin_swap(checkout, "staging")
    seen = []
    for seconds in (0, 2.9, 3.0, 4.9, 5.0, 5.9):
        with at(start, seconds):
            seen.append((seconds, handle.done(), handle.status().phase))
        assert versions(checkout)["production"] == "1.0.0", f"exchanged early, at {seconds} s"

    with at(start, 6.0):
        assert handle.done() is True
        handle.result(timeout=0)

    assert seen == [
        (0, False, SwapPhase.WARMING_UP),
        (2.9, False, SwapPhase.WARMING_UP),
        (3.0, False, SwapPhase.SWAPPING),
        (4.9, False, SwapPhase.SWAPPING),
        (5.0, False, SwapPhase.ROUTING),
        (5.9, False, SwapPhase.ROUTING),
    ]
    assert versions(checkout) == {"production": "1.1.0", "staging": "1.0.0", "test": "1.1.0", "dev": "1.2.0-dev.1"}
    swap = SimulatorSwap.objects.get()
    assert (swap.phase, swap.error, swap.finished_at) == (SwapPhase.DONE, "", start + timedelta(seconds=6))
    assert swap.result == {"staging": "1.0.0", "production": "1.1.0"}


@pytest.mark.usefixtures("demo_timings")
def test_a_swap_polled_long_after_it_ended_completes_once(checkout: Application, provider: SimulatorProvider) -> None:
    start = clock.now()
    with at(start, 0):
        handle = provider.begin_swap(checkout, "staging")

    with at(start, 3600):
        assert handle.done() and handle.done()  # the second poll finds it finished and exchanges nothing

    assert versions(checkout)["production"] == "1.1.0"


def test_a_swap_with_test_timings_finishes_in_a_moment(checkout: Application, provider: SimulatorProvider) -> None:
    started = time.monotonic()

    provider.begin_swap(checkout, "staging").result(timeout=5)

    assert time.monotonic() - started < 1
    assert versions(checkout)["production"] == "1.1.0"


def test_a_swap_can_go_between_two_deployment_slots(checkout: Application, provider: SimulatorProvider) -> None:
    provider.begin_swap(checkout, "dev", "test").result(timeout=5)

    assert (versions(checkout)["dev"], versions(checkout)["test"]) == ("1.1.0", "1.2.0-dev.1")


def test_a_new_provider_resumes_the_swap_from_its_token_without_starting_another(
    checkout: Application, provider: SimulatorProvider
) -> None:
    token = provider.begin_swap(checkout, "staging").resume_token

    handle = SimulatorProvider().resume_swap(checkout, token)
    handle.result(timeout=5)

    assert handle.resume_token == token
    assert SimulatorSwap.objects.count() == 1
    assert versions(checkout)["production"] == "1.1.0"


def test_a_token_of_nothing_or_of_another_site_is_not_found(checkout: Application, provider: SimulatorProvider) -> None:
    other = ApplicationFactory()
    add_simulated_site(other)
    token = provider.begin_swap(other, "staging").resume_token

    for bad in (token, "999999", "not-a-token"):
        with pytest.raises(NotFoundError):
            provider.resume_swap(checkout, bad)


def test_a_second_swap_while_one_is_in_flight_is_a_conflict(
    checkout: Application, provider: SimulatorProvider, demo_timings: None
) -> None:
    start = clock.now()
    with at(start, 0):
        first = provider.begin_swap(checkout, "staging")
    with at(start, 1), pytest.raises(ConflictError) as caught:
        provider.begin_swap(checkout, "test")

    assert caught.value.status == 409
    assert caught.value.retryable is True
    assert str(caught.value).startswith("Cannot modify this site because another operation is in progress.")
    assert f"Id: {first.swap_id}, OperationName: SwapSiteSlots" in str(caught.value)
    with at(start, 7):
        provider.begin_swap(checkout, "test")  # the first one has finished by now: no conflict
    assert SimulatorSwap.objects.count() == 2


def test_swaps_on_two_sites_do_not_conflict(checkout: Application, provider: SimulatorProvider) -> None:
    other = ApplicationFactory()
    add_simulated_site(other)

    provider.begin_swap(checkout, "staging")
    provider.begin_swap(other, "staging")

    assert SimulatorSwap.objects.filter(phase__in=["warming_up", "swapping", "routing"]).count() == 2


def test_a_slot_cannot_swap_with_itself_or_a_missing_slot(checkout: Application, provider: SimulatorProvider) -> None:
    with pytest.raises(PermanentError, match=r"Cannot swap slot 'staging' with itself\."):
        provider.begin_swap(checkout, "staging", "staging")
    with pytest.raises(NotFoundError):
        provider.begin_swap(checkout, "canary")
    assert not SimulatorSwap.objects.exists()


# --- faults ----------------------------------------------------------------------------------------


def test_a_failing_swap_fails_after_warm_up_with_app_services_message(
    checkout: Application, provider: SimulatorProvider
) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(fail_swap=True)
    handle = provider.begin_swap(checkout, "staging")

    with pytest.raises(PermanentError) as caught:
        handle.result(timeout=5)

    assert "because the application initialization in 'staging' slot either took too long or failed" in str(
        caught.value
    )
    assert (caught.value.retryable, caught.value.code) == (False, "SwapFailed")
    assert handle.done() is True
    assert versions(checkout)["production"] == "1.0.0"
    swap = SimulatorSwap.objects.get()
    assert (swap.phase, swap.fault) == (SwapPhase.FAILED, SimulatorSwap.Fault.FAIL)
    # The site is free again: once the fault is cleared, a swap goes through.
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(fail_swap=False)
    provider.begin_swap(checkout, "staging").result(timeout=5)
    assert versions(checkout)["production"] == "1.1.0"


def test_a_fault_on_the_target_slot_fails_the_swap_too(checkout: Application, provider: SimulatorProvider) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="production").update(fail_swap=True)

    with pytest.raises(PermanentError):
        provider.begin_swap(checkout, "staging").result(timeout=5)


def test_a_hanging_swap_never_finishes_and_the_callers_deadline_fails_it(
    checkout: Application, provider: SimulatorProvider
) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(hang_swap=True)
    handle = provider.begin_swap(checkout, "staging")
    with pytest.raises(TimeoutError, match=r"is still swapping after 0\.05 seconds"):
        handle.result(timeout=0.05)
    with pytest.raises(TimeoutError):  # still hanging when polled again, by its token, from a new handle
        provider.resume_swap(checkout, handle.resume_token).result(timeout=0.05)

    assert handle.done() is False
    assert handle.status().phase == SwapPhase.SWAPPING
    assert versions(checkout)["production"] == "1.0.0"
    with pytest.raises(ConflictError):
        provider.begin_swap(checkout, "test")


def test_a_hung_swap_is_abandoned_after_the_hang_timeout(
    checkout: Application, provider: SimulatorProvider, demo_timings: None
) -> None:
    SimulatorSlot.objects.filter(application=checkout, slot_name="production").update(hang_swap=True)
    start = clock.now()
    with at(start, 0):
        handle = provider.begin_swap(checkout, "staging")
    with at(start, 59):
        assert handle.done() is False
    with at(start, 60), pytest.raises(PermanentError, match="did not finish within 60 seconds and was abandoned"):
        handle.result()

    assert SimulatorSwap.objects.get().finished_at == start + timedelta(seconds=60)
    assert versions(checkout)["production"] == "1.0.0"


def test_faults_are_taken_when_the_swap_starts(checkout: Application, provider: SimulatorProvider) -> None:
    handle = provider.begin_swap(checkout, "staging")
    SimulatorSlot.objects.filter(application=checkout, slot_name="staging").update(fail_swap=True)

    handle.result(timeout=5)

    assert versions(checkout)["production"] == "1.1.0"


# --- settings and swap with preview ---------------------------------------------------------------


@pytest.fixture
def configured(checkout: Application, provider: SimulatorProvider) -> Application:
    provider.set_sticky_settings(checkout, ["DB"])
    provider.update_app_settings(checkout, "staging", {"DB": "staging-db", "FEATURE": "new"})
    provider.update_app_settings(checkout, "production", {"DB": "prod-db", "FEATURE": "old", "LEGACY": "1"})
    return checkout


def test_a_swap_exchanges_settings_but_sticky_ones_stay_with_their_slot(
    configured: Application, provider: SimulatorProvider
) -> None:
    provider.begin_swap(configured, "staging").result(timeout=5)

    assert provider.get_app_settings(configured, "production") == {"DB": "prod-db", "FEATURE": "new"}
    assert provider.get_app_settings(configured, "staging") == {"DB": "staging-db", "FEATURE": "old", "LEGACY": "1"}


def test_a_preview_applies_the_targets_sticky_settings_and_a_cancel_restores_ours(
    configured: Application, provider: SimulatorProvider
) -> None:
    provider.apply_swap_preview(configured, "staging")
    provider.apply_swap_preview(configured, "staging")  # idempotent
    previewed = provider.get_app_settings(configured, "staging")

    provider.cancel_swap_preview(configured, "staging")
    provider.cancel_swap_preview(configured, "staging")  # idempotent

    assert previewed == {"DB": "prod-db", "FEATURE": "new"}
    assert provider.get_app_settings(configured, "staging") == {"DB": "staging-db", "FEATURE": "new"}
    assert versions(configured)["production"] == "1.0.0"


def test_a_swap_after_a_preview_completes_it(configured: Application, provider: SimulatorProvider) -> None:
    provider.apply_swap_preview(configured, "staging")

    handle = provider.begin_swap(configured, "staging")
    handle.result(timeout=5)

    assert SimulatorSwap.objects.get().with_preview is True
    assert provider.get_app_settings(configured, "production") == {"DB": "prod-db", "FEATURE": "new"}
    assert provider.get_app_settings(configured, "staging") == {"DB": "staging-db", "FEATURE": "old", "LEGACY": "1"}
    assert SimulatorSlot.objects.filter(application=configured).exclude(preview_target="").count() == 0
    assert versions(configured)["production"] == "1.1.0"


def test_a_slot_previews_one_swap_at_a_time(configured: Application, provider: SimulatorProvider) -> None:
    provider.apply_swap_preview(configured, "staging")

    with pytest.raises(PermanentError, match="'staging' is already previewing a swap with 'production'"):
        provider.apply_swap_preview(configured, "staging", "test")
    with pytest.raises(PermanentError, match="'staging' is previewing a swap with 'production'"):
        provider.begin_swap(configured, "staging", "test")


def test_a_setting_changed_during_a_preview_survives_its_cancellation(
    configured: Application, provider: SimulatorProvider
) -> None:
    provider.apply_swap_preview(configured, "staging")
    provider.update_app_settings(configured, "staging", {"FEATURE": "newer"})

    provider.cancel_swap_preview(configured, "staging")

    assert provider.get_app_settings(configured, "staging") == {"DB": "staging-db", "FEATURE": "newer"}


# --- another process -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_another_process_resumes_the_swap_from_the_token(checkout: Application, provider: SimulatorProvider) -> None:
    token = provider.begin_swap(checkout, "staging").resume_token
    script = (
        "from releases.catalog.models import Application\n"
        "from releases.catalog.providers.registry import provider_for\n"
        "app = Application.objects.get(slug='checkout')\n"
        f"handle = provider_for(app).resume_swap(app, {token!r})\n"
        "handle.result(timeout=10)\n"
        "print('resumed', handle.resume_token, handle.status().phase)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _subprocess_database_url()}

    finished = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=Path(django_settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip().splitlines()[-1] == f"resumed {token} done"
    assert SimulatorSwap.objects.get().phase == SwapPhase.DONE
    assert versions(checkout)["production"] == "1.1.0"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("demo_timings")
def test_of_two_racing_swaps_exactly_one_starts(checkout: Application) -> None:
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(source: str) -> None:
        try:
            start.wait()
            SimulatorProvider().begin_swap(checkout, source)
            outcomes.append("started")
        except ConflictError:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(source,)) for source in ("staging", "test")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["conflict", "started"]
    assert SimulatorSwap.objects.count() == 1
