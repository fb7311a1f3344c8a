"""Where an environment's flag changes need approval, no service changes what OFREP serves without it.

Checkout's production flags need one approval. `max-cart-items` serves 100 to the staff segment, 50 to
everyone else. Each row below tries a change through a service (or the page) without approval: it is
refused (or only proposed), and neither the rows nor what OFREP serves change. Kill switches stay immediate.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from portal.core.errors import DomainError, ErrorCode
from releases.audit.models import AuditEvent
from releases.catalog.models import Environment
from strategies.flags import changes, services
from strategies.flags.models import Flag, FlagChangeRequest, Segment
from tests.factories import ApprovalPolicyFactory
from tests.flags.test_ofrep import evaluate

pytestmark = pytest.mark.django_db

STAFF = {"targetingKey": "u-1", "email": "ana@example.com"}
CUSTOMER = {"targetingKey": "u-2", "email": "bo@customer.test"}


@pytest.fixture
def gated(production: Environment, admin_user: User, approver: User) -> Environment:
    group = Group.objects.create(name="checkout-approvers")
    approver.groups.add(group)
    ApprovalPolicyFactory(environment=production, approvals_required=1, approver_groups=[group])
    return production


@pytest.fixture
def cart(gated: Environment, make_flag: Any, staff_segment: Segment, admin_user: User) -> Flag:
    flag = make_flag(
        "max-cart-items",
        flag_type="number",
        variants={"small": 50, "large": 100},
        default_variant="small",
        rules={
            "rules": [
                {
                    "name": "Staff",
                    "conditions": [{"attribute": "", "op": "in_segment", "value": "staff"}],
                    "serve": {"variant": "large"},
                }
            ]
        },
    )
    changes.set_approval(environment=gated, on=True, actor=admin_user)
    return flag


def served(client: Client, api_key: str) -> tuple[Any, Any]:
    return tuple(evaluate(client, "max-cart-items", context).json()["value"] for context in (STAFF, CUSTOMER))


def frozen(flag: Flag) -> dict[str, Any]:
    flag.refresh_from_db()
    return {
        "flag": services.flag_snapshot(flag),
        "segments": list(Segment.objects.values_list("key", "conditions", "users")),
        "requests": FlagChangeRequest.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


SIDE_DOORS = {
    "flag_update": lambda flag, actor: services.flag_update(flag=flag, actor=actor, default_variant="large"),
    "flag_rule_add": lambda flag, actor: services.flag_rule_add(
        flag=flag,
        rule={
            "name": "All",
            "conditions": [{"attribute": "email", "op": "ends_with", "value": ".test"}],
            "serve": {"variant": "large"},
        },
        actor=actor,
    ),
    "flag_rule_remove": lambda flag, actor: services.flag_rule_remove(flag=flag, index=0, actor=actor),
    "flag_archive": lambda flag, actor: (
        services.flag_set_lifecycle(flag=flag, to="active", actor=actor),
        services.flag_set_lifecycle(flag=flag, to="stale", actor=actor),
        services.flag_set_lifecycle(flag=flag, to="archived", actor=actor),
    ),
    "segment_save": lambda flag, actor: services.segment_save(
        segment=_everyone(Segment.objects.get(key="staff")), actor=actor
    ),
}


def _everyone(segment: Segment) -> Segment:
    segment.conditions = [{"attribute": "email", "op": "ends_with", "value": ".test"}]
    return segment


@pytest.mark.parametrize("door", sorted(SIDE_DOORS))
def test_a_service_call_without_approval_is_refused_and_changes_nothing_served(
    client: Client, cart: Flag, api_key: str, release_manager: User, door: str
) -> None:
    assert served(client, api_key) == (100, 50)
    if door == "flag_archive":  # getting to "stale" is bookkeeping and allowed; archiving stops serving
        with pytest.raises(DomainError) as refused:
            SIDE_DOORS[door](cart, release_manager)
        assert cart.__class__.objects.get(pk=cart.pk).lifecycle == "stale"
    else:
        before = frozen(cart)
        with pytest.raises(DomainError) as refused:
            SIDE_DOORS[door](cart, release_manager)
        assert frozen(cart) == before
    assert refused.value.code == ErrorCode.APPROVAL_REQUIRED
    assert "need approval" in str(refused.value) or "needs approval" in str(refused.value)
    assert served(client, api_key) == (100, 50)


def test_turning_a_killed_flag_back_on_needs_approval_but_the_kill_switch_does_not(
    client: Client, cart: Flag, api_key: str, release_manager: User
) -> None:
    services.flag_kill(flag=cart, actor=release_manager, reason="incident")  # immediate
    with pytest.raises(DomainError) as refused:
        services.flag_enable(flag=cart, actor=release_manager, reason="over")
    assert refused.value.code == ErrorCode.APPROVAL_REQUIRED
    cart.refresh_from_db()
    assert not cart.enabled


def test_editing_a_segment_an_approval_gated_flag_uses_only_proposes_it_and_the_approval_applies_it(
    client: Client, cart: Flag, api_key: str, release_manager: User, approver: User
) -> None:
    segment = Segment.objects.get(key="staff")
    client.force_login(release_manager)
    response = client.post(
        reverse("segment_edit", args=[cart.environment.application.slug, segment.pk]),
        {"name": segment.name, "match": "any", "attribute_1": "email", "op_1": "ends_with", "value_1": ".test"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    proposal = FlagChangeRequest.objects.get()
    assert (proposal.action, proposal.status, proposal.flag) == ("segment", "pending", cart)
    segment.refresh_from_db()
    assert segment.conditions[0]["value"] == "@example.com"
    assert served(client, api_key) == (100, 50)  # the OFREP answer is unchanged until it is approved

    changes.decide(request=proposal, actor=approver, approve=True, comment="fine")
    proposal.refresh_from_db()
    assert proposal.status == "applied", proposal.comment
    segment.refresh_from_db()
    assert segment.conditions == [{"attribute": "email", "op": "ends_with", "value": ".test"}]
    assert served(client, api_key) == (50, 100)  # staff are no longer in it; customers are


def test_archiving_on_the_page_is_proposed_where_changes_need_approval(
    client: Client, cart: Flag, release_manager: User, approver: User
) -> None:
    services.flag_set_lifecycle(flag=cart, to="active", actor=release_manager)
    services.flag_set_lifecycle(flag=cart, to="stale", actor=release_manager)
    client.force_login(release_manager)
    client.post(reverse("flag_lifecycle", args=[cart.environment.application.slug, cart.pk]), {"to": "archived"})
    proposal = FlagChangeRequest.objects.get()
    cart.refresh_from_db()
    assert cart.lifecycle == "stale" and proposal.changes == {"lifecycle": "archived"}
    changes.decide(request=proposal, actor=approver, approve=True)
    cart.refresh_from_db()
    assert cart.lifecycle == "archived"
