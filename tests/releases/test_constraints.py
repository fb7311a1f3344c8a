"""The database refuses every state the domain forbids, whatever code path writes it.

Each test breaks one invariant inside `transaction.atomic()` and checks that the database names the
constraint that stopped it (so a test cannot pass because some *other* column was wrong); where it
helps, the legal neighbour of the broken state is written first to show the rule is not too broad.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, models, transaction

from portal.core import clock
from releases.approvals.models import ApprovalDecision, ApprovalRequestStatus, FreezeWindow
from releases.catalog.models import Environment, Provider, ReleaseStatus, Slot, Stage
from strategies.operations.models import OPERATION_ACTIVE, Operation, OperationStatus
from tests.factories import (
    ApiTokenFactory,
    ApplicationFactory,
    ApprovalDecisionFactory,
    ApprovalPolicyFactory,
    ApprovalRequestFactory,
    EnvironmentFactory,
    FreezeWindowFactory,
    OperationFactory,
    OperationStepFactory,
    ReleaseFactory,
    SimulatorSlotFactory,
    SlotFactory,
    production_environment,
)

pytestmark = pytest.mark.django_db


def _declared_constraint(name: str) -> tuple[type[models.Model], models.BaseConstraint]:
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            if constraint.name == name:
                return model, constraint
    raise AssertionError(f"No model declares a constraint named {name!r}")


@contextmanager
def violates(name: str) -> Iterator[None]:
    """Expect the block to be refused by the database because of the declared constraint `name`."""
    model, constraint = _declared_constraint(name)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        yield
    message = str(caught.value)
    if connection.vendor == "sqlite" and isinstance(constraint, models.UniqueConstraint):
        # SQLite names the columns of a unique index, not the index.
        table = model._meta.db_table
        columns = ", ".join(f"{table}.{model._meta.get_field(field).column}" for field in constraint.fields)
        assert f"UNIQUE constraint failed: {columns}" in message
    else:
        assert name in message


@contextmanager
def violates_unique_column(model: type[models.Model], field: str) -> Iterator[None]:
    """Expect a refusal from a field-level unique (unique=True, OneToOneField), whose index Django names."""
    column = model._meta.get_field(field).column
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        yield
    message = str(caught.value).lower()
    assert "unique" in message
    assert column in message


# --- Applications, slots and environments --------------------------------------------------------


def test_it_refuses_an_azure_application_without_its_coordinates() -> None:
    ApplicationFactory(azure=True, environments=False)  # complete coordinates are fine

    with violates("application_azure_coordinates_complete"):
        ApplicationFactory(provider=Provider.AZURE, azure_site_name="", environments=False)


def test_it_refuses_a_relative_health_check_path() -> None:
    with violates("application_health_path_absolute"):
        ApplicationFactory(health_check_path="healthz", environments=False)


def test_it_refuses_a_second_slot_with_the_same_name_in_one_application() -> None:
    application = ApplicationFactory()
    SlotFactory(name="staging")  # the same name in another application is fine

    with violates("slot_name_unique_per_application"):
        SlotFactory(application=application, name="staging")


def test_it_refuses_a_second_production_slot_in_one_application() -> None:
    application = ApplicationFactory()
    SlotFactory(application=application, name="canary", is_production=False)
    SlotFactory(is_production=True)  # another application's production slot is fine

    with violates("one_production_slot_per_application"):
        SlotFactory(application=application, name="production-2", is_production=True)


@pytest.mark.parametrize("percent", [101, 1000])
def test_it_refuses_a_traffic_share_over_100_percent(percent: int) -> None:
    SlotFactory(traffic_percent=100)

    with violates("slot_traffic_percent_range"):
        SlotFactory(traffic_percent=percent)


def test_it_refuses_to_bind_one_slot_to_two_environments() -> None:
    preprod = EnvironmentFactory(stage=Stage.PREPRODUCTION)
    staging = Slot.objects.get(environment=preprod)

    with violates_unique_column(Environment, "slot"):
        EnvironmentFactory(application=preprod.application, stage=Stage.PRODUCTION, slot=staging)


def test_it_refuses_a_second_environment_for_the_same_stage() -> None:
    application = ApplicationFactory()
    EnvironmentFactory(stage=Stage.PRODUCTION)  # another application's production is fine

    with violates("environment_stage_unique_per_application"):
        EnvironmentFactory(application=application, stage=Stage.PRODUCTION, position=99)


def test_it_refuses_two_environments_at_the_same_position() -> None:
    application = ApplicationFactory(environments=False)
    EnvironmentFactory(application=application, stage=Stage.DEV, position=10)

    with violates("environment_position_unique"):
        EnvironmentFactory(application=application, stage=Stage.TEST, position=10)


# --- Releases ------------------------------------------------------------------------------------


def test_it_refuses_the_same_version_twice_in_one_application() -> None:
    release = ReleaseFactory(version="2.4.0")
    ReleaseFactory(version="2.4.0")  # the same version of another application is fine

    with violates("release_version_unique_per_application"):
        ReleaseFactory(application=release.application, version="2.4.0")


def test_it_refuses_a_blank_version() -> None:
    with violates("release_version_not_blank"):
        ReleaseFactory(version="")


def test_it_refuses_a_status_outside_the_lifecycle() -> None:
    with violates("release_status_valid"):
        ReleaseFactory(status="deployed")


def test_it_refuses_a_second_live_release_in_one_application() -> None:
    live = ReleaseFactory(status=ReleaseStatus.LIVE)
    ReleaseFactory(application=live.application, status=ReleaseStatus.SUPERSEDED)
    ReleaseFactory(status=ReleaseStatus.LIVE)  # another application's live release is fine

    with violates("one_live_release_per_application"):
        ReleaseFactory(application=live.application, status=ReleaseStatus.LIVE)


# --- Approvals -----------------------------------------------------------------------------------


def test_it_refuses_a_second_pending_request_for_the_same_release_and_environment() -> None:
    first = ApprovalRequestFactory()
    # A settled request for the same pair, and a pending one for another environment, are fine.
    ApprovalRequestFactory(release=first.release, status=ApprovalRequestStatus.EXPIRED, settled_at=clock.now())
    ApprovalRequestFactory(
        release=first.release, environment=first.release.application.environments.get(stage=Stage.TEST)
    )

    with violates("one_pending_request_per_release_environment"):
        ApprovalRequestFactory(release=first.release, environment=first.environment)


def test_it_refuses_a_request_that_expires_before_it_was_made() -> None:
    now = clock.now()

    with violates("request_expires_after_creation"):
        ApprovalRequestFactory(created_at=now, expires_at=now)


@pytest.mark.parametrize(
    ("status", "settled"),
    [
        (ApprovalRequestStatus.PENDING, True),
        (ApprovalRequestStatus.APPROVED, False),
        (ApprovalRequestStatus.REJECTED, False),
        (ApprovalRequestStatus.EXPIRED, False),
        (ApprovalRequestStatus.SUPERSEDED, False),
    ],
)
def test_it_refuses_a_request_whose_settled_time_contradicts_its_status(
    status: ApprovalRequestStatus, settled: bool
) -> None:
    with violates("request_settled_iff_not_pending"):
        ApprovalRequestFactory(status=status, settled_at=clock.now() if settled else None)


def test_it_refuses_a_rejection_without_a_comment() -> None:
    ApprovalDecisionFactory(verdict=ApprovalDecision.Verdict.REJECT, comment="Fails the smoke tests")
    ApprovalDecisionFactory(verdict=ApprovalDecision.Verdict.APPROVE, comment="")

    with violates("rejection_needs_comment"):
        ApprovalDecisionFactory(verdict=ApprovalDecision.Verdict.REJECT, comment="")


def test_it_refuses_a_second_decision_by_the_same_approver_on_one_request() -> None:
    decision = ApprovalDecisionFactory()
    ApprovalDecisionFactory(request=decision.request)  # another approver on the same request is fine

    with violates("one_decision_per_approver_per_request"):
        ApprovalDecisionFactory(request=decision.request, approver=decision.approver)


def test_it_refuses_a_policy_that_lapses_immediately() -> None:
    with violates("policy_expiry_positive"):
        ApprovalPolicyFactory(expiry_hours=0)


def test_it_refuses_a_policy_asking_for_more_than_ten_approvals() -> None:
    ApprovalPolicyFactory(approvals_required=10)

    with violates("policy_approvals_at_most_10"):
        ApprovalPolicyFactory(approvals_required=11)


def test_it_refuses_a_dated_freeze_that_ends_before_it_starts() -> None:
    now = clock.now()

    with violates("freeze_window_dated_ends_after_start"):
        FreezeWindowFactory(starts_at=now, ends_at=now - timedelta(hours=1))


def test_it_refuses_a_weekly_freeze_with_dates_instead_of_weekdays() -> None:
    from datetime import time

    FreezeWindowFactory(
        kind=FreezeWindow.Kind.WEEKLY,
        start_weekday=4,
        start_time=time(16),
        end_weekday=0,
        end_time=time(8),
        starts_at=None,
        ends_at=None,
    )

    with violates("freeze_window_fields_match_kind"):
        FreezeWindowFactory(kind=FreezeWindow.Kind.WEEKLY)


# --- Operations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("first", sorted(OPERATION_ACTIVE))
@pytest.mark.parametrize("second", sorted(OPERATION_ACTIVE))
def test_it_refuses_a_second_active_operation_on_one_application(first: str, second: str) -> None:
    operation = OperationFactory(status=first)

    with violates("one_active_operation_per_application"):
        OperationFactory(
            release=ReleaseFactory(application=operation.application, status=ReleaseStatus.APPROVED), status=second
        )


@pytest.mark.parametrize("finished", sorted(set(OperationStatus.values) - OPERATION_ACTIVE))
def test_it_allows_an_active_operation_next_to_finished_ones(finished: str) -> None:
    done = OperationFactory(status=finished)
    OperationFactory(release=ReleaseFactory(application=done.application), status=finished)
    OperationFactory(release=ReleaseFactory(application=done.application), status=OperationStatus.RUNNING)
    OperationFactory(status=OperationStatus.RUNNING)  # and next to another application's active one

    assert Operation.objects.filter(application=done.application, status=OperationStatus.RUNNING).count() == 1


@pytest.mark.parametrize("status", OperationStatus.values)
def test_it_refuses_an_operation_whose_finish_time_contradicts_its_status(status: str) -> None:
    finished_at = None if status not in OPERATION_ACTIVE else clock.now()

    with violates("operation_finished_iff_terminal"):
        OperationFactory(status=status, finished_at=finished_at)


def test_it_refuses_a_rollback_without_a_reason() -> None:
    OperationFactory(kind=Operation.Kind.ROLLBACK, reason="Error rate doubled after the swap")

    with violates("rollback_needs_reason"):
        OperationFactory(kind=Operation.Kind.ROLLBACK, reason="")


def test_it_refuses_two_steps_at_the_same_position_of_one_operation() -> None:
    step = OperationStepFactory(position=1)

    with violates("step_position_unique_per_operation"):
        OperationStepFactory(operation=step.operation, position=1)


def test_it_refuses_step_progress_over_100_percent() -> None:
    OperationStepFactory(progress=100)

    with violates("step_progress_range"):
        OperationStepFactory(progress=101)


# --- Tokens and the simulator ------------------------------------------------------------------


def test_it_refuses_two_tokens_with_the_same_name_for_one_owner() -> None:
    token = ApiTokenFactory(name="deploy")
    ApiTokenFactory(name="deploy")  # another owner may reuse the name

    with violates("token_name_unique_per_owner"):
        ApiTokenFactory(owner=token.owner, name="deploy")


def test_it_refuses_two_simulated_slots_with_the_same_name() -> None:
    slot = SimulatorSlotFactory(slot_name="production")

    with violates("simulator_slot_unique"):
        SimulatorSlotFactory(application=slot.application, slot_name="production")


def test_it_refuses_simulated_routing_over_100_percent() -> None:
    with violates("simulator_routing_range"):
        SimulatorSlotFactory(routing_percent=101)


def test_the_standard_factory_layout_binds_each_stage_to_its_own_slot() -> None:
    application = ApplicationFactory()

    assert [(e.stage, e.slot.name) for e in application.environments.select_related("slot")] == [
        ("dev", "dev"),
        ("test", "test"),
        ("preprod", "staging"),
        ("prod", "production"),
    ]
    assert list(application.slots.filter(is_production=True)) == [production_environment(application).slot]
