"""Experiments' state changes: creating (checked input, the power calculation), starting (the split in the flag's
targeting, directly or through approval), stopping and shipping, each audited with before and after."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from portal.core.errors import DomainError, ErrorCode
from releases.audit.models import AuditEvent
from releases.catalog.models import Environment
from strategies.experiments import services, stats
from strategies.experiments.models import Experiment
from strategies.flags import changes
from strategies.flags import services as flag_services
from strategies.flags.definitions import DefinitionError
from strategies.flags.models import Flag, FlagChangeRequest, Segment
from tests.experiments.conftest import draft
from tests.factories import ApprovalPolicyFactory

pytestmark = pytest.mark.django_db
S = Experiment.Status


def test_a_draft_plans_its_sample_with_the_power_calculation(experiment: Experiment) -> None:
    assert experiment.status == S.DRAFT
    expected = stats.users_per_variant(baseline_rate=0.1, mde=0.1, relative=True, alpha=0.05, power=0.8)
    assert experiment.planned_users == expected > 10_000
    event = AuditEvent.objects.get(action="experiment.created")
    assert event.before is None and event.after["allocation"] == [["blue", 50], ["green", 50]]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"allocation": [["blue", 60], ["green", 50]]}, "allocation"),
        ({"allocation": [["blue", 50], ["purple", 50]]}, "allocation"),
        ({"allocation": [["blue", 100]]}, "allocation"),
        ({"primary_metric": {"name": "bad name!", "kind": "conversion"}}, "primary_metric"),
        ({"primary_metric": {"name": "purchase", "kind": "median"}}, "primary_metric"),
        ({"guardrails": [{"name": "purchase", "kind": "conversion", "direction": "increase"}]}, "guardrails"),
        ({"baseline_rate": 1.5}, "baseline_rate"),
        ({"alpha": 0.7}, "alpha"),
        ({"key": "Not A Key"}, "key"),
        ({"tau2": -1.0}, "tau2"),
    ],
)
def test_bad_input_names_the_field(button_flag: Flag, release_manager: User, overrides: dict, field: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        draft(button_flag, release_manager, **overrides)
    assert field in caught.value.errors
    assert not Experiment.objects.exists()


def test_a_continuous_primary_metric_needs_its_standard_deviation(button_flag: Flag, release_manager: User) -> None:
    metric = {"name": "revenue", "kind": "continuous", "direction": "increase"}
    with pytest.raises(DefinitionError) as caught:
        draft(button_flag, release_manager, primary_metric=metric, guardrails=[])
    assert "baseline_sd" in caught.value.errors
    made = draft(
        button_flag, release_manager, primary_metric=metric, guardrails=[], baseline_mean=40.0, baseline_sd=30.0
    )
    assert made.planned_users == stats.users_per_variant_means(sd=30.0, mde=4.0)


def test_viewers_cannot_create_or_start(button_flag: Flag, viewer: User, experiment: Experiment) -> None:
    with pytest.raises(DomainError) as refused:
        draft(button_flag, viewer, key="other")
    assert refused.value.code == ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as refused:
        services.experiment_start(experiment=experiment, actor=viewer)
    assert refused.value.code == ErrorCode.FORBIDDEN


def test_starting_writes_the_split_into_the_fallthrough(experiment: Experiment, release_manager: User) -> None:
    started = services.experiment_start(experiment=experiment, actor=release_manager)
    assert started.status == S.RUNNING and started.started_at is not None
    flag = Flag.objects.get(pk=experiment.flag_id)
    assert flag.rules["fallthrough"] == {"split": [["blue", 50], ["green", 50]]}
    assert flag.definition["targeting"]["fractional"] == [["blue", 50], ["green", 50]]
    event = AuditEvent.objects.get(action="experiment.started")
    assert event.before["status"] == "draft" and event.after["status"] == "running"
    assert AuditEvent.objects.filter(action="flag.updated", reason__contains="button-colour").exists()
    with pytest.raises(DomainError, match="only a draft"):
        services.experiment_start(experiment=started, actor=release_manager)


def test_a_segment_experiment_is_a_rule_at_the_top(
    button_flag: Flag, release_manager: User, staff_segment: Segment
) -> None:
    flag_services.flag_rule_add(
        flag=button_flag,
        rule={
            "name": "Beta",
            "conditions": [{"attribute": "country", "op": "is", "value": "NZ"}],
            "serve": {"variant": "orange"},
        },
        actor=release_manager,
    )
    experiment = draft(button_flag, release_manager, segment=staff_segment)
    services.experiment_start(experiment=experiment, actor=release_manager)
    flag = Flag.objects.get(pk=button_flag.pk)
    assert [r["name"] for r in flag.rules["rules"]] == ["Experiment button-colour", "Beta"]
    assert flag.rules["rules"][0]["serve"] == {"split": [["blue", 50], ["green", 50]]}
    assert "fallthrough" not in flag.rules
    services.experiment_stop(experiment=experiment, actor=release_manager)
    flag.refresh_from_db()
    assert [r["name"] for r in flag.rules["rules"]] == ["Beta"]


def test_a_flag_that_cannot_host_says_why(
    button_flag: Flag, release_manager: User, experiment: Experiment, make_flag: Any
) -> None:
    flag_services.flag_update(
        flag=button_flag, rules={"fallthrough": {"split": [["blue", 90], ["green", 10]]}}, actor=release_manager
    )
    with pytest.raises(DomainError, match="already serves a percentage split"):
        services.experiment_start(experiment=experiment, actor=release_manager)
    launched = make_flag("launched")
    flag_services.launch_start(flag=launched, variant="on", users=["alice"], actor=release_manager)
    other = draft(launched, release_manager, key="on-off", allocation=[["off", 50], ["on", 50]])
    with pytest.raises(DomainError, match="dark launch"):
        services.experiment_start(experiment=other, actor=release_manager)
    manual = make_flag("manual", targeting_override={"if": [True, "on", "off"]})
    third = draft(manual, release_manager, key="manual", allocation=[["off", 50], ["on", 50]])
    with pytest.raises(DomainError, match="hand-written targeting"):
        services.experiment_start(experiment=third, actor=release_manager)
    assert not AuditEvent.objects.filter(action="experiment.started").exists()


def test_one_running_experiment_per_flag(running: Experiment, button_flag: Flag, release_manager: User) -> None:
    second = draft(button_flag, release_manager, key="second")
    with pytest.raises(DomainError, match="already hosts the experiment"):
        services.experiment_start(experiment=second, actor=release_manager)
    Experiment.objects.filter(pk=second.pk).update(status=S.DRAFT)
    with pytest.raises(IntegrityError), transaction.atomic():
        Experiment.objects.filter(pk=second.pk).update(status=S.RUNNING)


def test_stop_ends_exposure_and_records_the_numbers(running: Experiment, release_manager: User) -> None:
    stopped = services.experiment_stop(experiment=running, actor=release_manager, reason="enough")
    assert stopped.status == S.STOPPED and stopped.stopped_at is not None
    flag = Flag.objects.get(pk=running.flag_id)
    assert "fallthrough" not in flag.rules and flag.default_variant == "blue"
    assert stopped.decision["action"] == "stop" and stopped.decision["analysis"]["total_users"] == 0
    event = AuditEvent.objects.get(action="experiment.stopped")
    assert event.before["status"] == "running" and event.after["status"] == "stopped" and event.reason == "enough"
    # Decide after stopping: ship control, which is what everyone has already.
    decided = services.experiment_ship(experiment=stopped, variant="blue", actor=release_manager)
    assert decided.status == S.DECIDED and decided.decision["variant"] == "blue"


def test_ship_rolls_the_flag_to_the_variant(running: Experiment, release_manager: User) -> None:
    with pytest.raises(DefinitionError):
        services.experiment_ship(experiment=running, variant="orange", actor=release_manager)
    shipped = services.experiment_ship(experiment=running, variant="green", actor=release_manager, reason="it sells")
    flag = Flag.objects.get(pk=running.flag_id)
    assert flag.default_variant == "green" and "fallthrough" not in flag.rules
    assert "fractional" not in str(flag.definition.get("targeting"))
    assert shipped.status == S.DECIDED and shipped.decided_by == release_manager
    assert shipped.decision["variant"] == "green" and "metrics" in shipped.decision["analysis"]
    event = AuditEvent.objects.get(action="experiment.shipped")
    assert event.before["status"] == "running" and event.after["decision"]["variant"] == "green"


@pytest.fixture
def gated(production: Environment, admin_user: User, approver: User) -> Environment:
    group = Group.objects.create(name="checkout-approvers")
    approver.groups.add(group)
    ApprovalPolicyFactory(environment=production, approvals_required=1, approver_groups=[group])
    changes.set_approval(environment=production, on=True, actor=admin_user)
    return production


def test_start_and_ship_through_approval(
    gated: Environment, experiment: Experiment, release_manager: User, approver: User
) -> None:
    waiting = services.experiment_start(experiment=experiment, actor=release_manager)
    assert waiting.status == S.STARTING and waiting.pending_change is not None
    assert "fallthrough" not in Flag.objects.get(pk=experiment.flag_id).rules  # not applied yet
    assert AuditEvent.objects.filter(action="experiment.start_proposed").exists()
    assert services.experiment_sync(waiting).status == S.STARTING  # still pending
    changes.decide(request=waiting.pending_change, actor=approver, approve=True, comment="go")
    running = services.experiment_sync(waiting)
    assert running.status == S.RUNNING and running.pending_change is None and running.started_at is not None
    assert Flag.objects.get(pk=experiment.flag_id).rules["fallthrough"]["split"] == [["blue", 50], ["green", 50]]

    shipping = services.experiment_ship(experiment=running, variant="green", actor=release_manager)
    assert shipping.status == S.SHIPPING and shipping.decision["variant"] == "green"
    changes.decide(request=shipping.pending_change, actor=approver, approve=True)
    assert services.sync_pending() == 1
    decided = Experiment.objects.get(pk=experiment.pk)
    assert decided.status == S.DECIDED and decided.decided_by == approver
    assert Flag.objects.get(pk=experiment.flag_id).default_variant == "green"
    sync_event = AuditEvent.objects.filter(action="experiment.shipped").get()
    assert sync_event.actor is None and sync_event.before["status"] == "shipping"


def test_a_refused_start_returns_to_draft(
    gated: Environment, experiment: Experiment, release_manager: User, approver: User
) -> None:
    waiting = services.experiment_start(experiment=experiment, actor=release_manager)
    changes.decide(request=waiting.pending_change, actor=approver, approve=False, comment="not now")
    assert services.experiment_sync(waiting).status == S.DRAFT
    assert FlagChangeRequest.objects.get().status == FlagChangeRequest.Status.REJECTED
    assert AuditEvent.objects.filter(action="experiment.start_refused").exists()


def test_stop_never_waits_for_approval(
    gated: Environment, experiment: Experiment, release_manager: User, approver: User
) -> None:
    waiting = services.experiment_start(experiment=experiment, actor=release_manager)
    changes.decide(request=waiting.pending_change, actor=approver, approve=True)
    running = services.experiment_sync(waiting)
    stopped = services.experiment_stop(experiment=running, actor=release_manager)
    assert stopped.status == S.STOPPED
    assert "fallthrough" not in Flag.objects.get(pk=experiment.flag_id).rules
