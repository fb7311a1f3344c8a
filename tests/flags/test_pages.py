"""The browser flow with Django's test client: create a toggle, dark-launch it to a segment, watch,
widen, roll out and kill it; permissions; and the audit trail with diffs of the definition."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from releases.audit.models import AuditEvent
from releases.catalog.models import Environment
from strategies.flags import services
from strategies.flags.models import DarkLaunch, Flag, FlagApiKey, Segment
from tests.flags.test_ofrep import evaluate

pytestmark = pytest.mark.django_db


def test_a_release_manager_creates_a_toggle_in_the_browser(
    client: Client, release_manager: User, production: Environment
) -> None:
    client.force_login(release_manager)

    response = client.post(
        "/apps/checkout/flags/new",
        {
            "environment": production.pk,
            "key": "new-checkout",
            "flag_type": "boolean",
            "default_variant": "off",
            "description": "The new checkout",
            "planned_removal": "2030-01-31",
        },
    )

    flag = Flag.objects.get()
    assert response.status_code == 302
    assert response.headers["Location"] == flag.get_absolute_url()
    assert flag.definition == {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "metadata": {"type": "boolean", "lifecycle": "new"},
    }
    page = client.get(flag.get_absolute_url())
    assert page.status_code == 200
    assert "flag.created" in page.text and "Kill switch" in page.text
    assert client.get("/apps/checkout/flags/").status_code == 200
    assert "new-checkout" in client.get("/flags/").text or client.get("/flags/").status_code == 200


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (
            {"flag_type": "number", "variants": "few = 3\nmany = lots", "default_variant": "few"},
            "variants",
            "not a number",
        ),
        ({"flag_type": "string", "variants": "a = x", "default_variant": "b"}, "default_variant", "'b' is not one of"),
        ({"flag_type": "object", "variants": "a = [1]", "default_variant": "a"}, "variants", "not a JSON object"),
        ({"key": "new checkout!", "flag_type": "boolean", "default_variant": "off"}, "key", "Use letters, digits"),
    ],
)
def test_the_form_refuses_bad_input_naming_the_field(
    client: Client, release_manager: User, production: Environment, data: dict[str, str], field: str, words: str
) -> None:
    client.force_login(release_manager)

    response = client.post("/apps/checkout/flags/new", {"environment": production.pk, "key": "k", **data})

    assert response.status_code == 400
    assert words in " ".join(response.context["form"].errors[field])
    assert not Flag.objects.exists()


def test_an_unbalanced_split_is_refused_on_the_edit_form(client: Client, release_manager: User, make_flag: Any) -> None:
    flag = make_flag()
    client.force_login(release_manager)

    response = client.post(
        f"/apps/checkout/flags/{flag.pk}/edit",
        {"variants": "on = true\noff = false", "default_variant": "off", "everyone_else": "on = 10, off = 80"},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["everyone_else"] == ["The percentages add up to 90, not 100."]


def test_a_viewer_sees_flags_but_cannot_change_them(client: Client, viewer: User, make_flag: Any) -> None:
    flag = make_flag()
    client.force_login(viewer)

    page = client.get(flag.get_absolute_url())
    kill = client.post(f"/apps/checkout/flags/{flag.pk}/kill")

    assert page.status_code == 200
    assert "Kill switch" not in page.text
    assert kill.status_code == 403
    assert "needs the release manager role" in kill.text
    flag.refresh_from_db()
    assert flag.enabled


def test_the_dark_launch_flow_from_the_browser(
    client: Client, release_manager: User, make_flag: Any, staff_segment: Segment, api_key: str
) -> None:
    flag = make_flag()
    client.force_login(release_manager)
    staff = {"context": {"targetingKey": "alice"}}
    bob = {"targetingKey": "bob", "email": "bob@customer.org"}

    started = client.post(
        f"/apps/checkout/flags/{flag.pk}/launch", {"variant": "on", "segments": ["staff"], "reason": "try it"}
    )
    launch = DarkLaunch.objects.get()
    assert started.status_code == 302 and started.headers["Location"] == launch.get_absolute_url()
    assert evaluate(client, "new-checkout", staff["context"]).json()["value"] is True
    assert evaluate(client, "new-checkout", bob).json()["value"] is False

    # Watching: exposures counted from OFREP answers, errors and latency from reported events.
    client.post(
        f"/flags/api/v1/environments/{flag.environment_id}/events",
        '{"events": [{"flag": "new-checkout", "variant": "on", "ok": false, "latency_ms": 300},'
        ' {"flag": "new-checkout", "variant": "off", "ok": true, "latency_ms": 100}]}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    page = client.get(launch.get_absolute_url())
    assert page.status_code == 200
    assert page.context["figures"].exposures_total == 1
    assert page.context["figures"].cohort.errors == 1 and page.context["figures"].others.count == 1
    partial = client.get(launch.get_absolute_url(), headers={"HX-Request": "true"})
    assert 'id="launch-figures"' in partial.text and "<html" not in partial.text

    widened = client.post(f"/apps/checkout/launches/{launch.pk}/widen", {"users": "bob"})
    assert widened.status_code == 302
    assert evaluate(client, "new-checkout", bob).json()["value"] is True

    half = client.post(f"/apps/checkout/launches/{launch.pk}/rollout", {"percent": "50"})
    assert half.status_code == 302
    served = [evaluate(client, "new-checkout", {"targetingKey": f"user-{i}"}).json()["value"] for i in range(200)]
    assert 60 < sum(served) < 140

    killed = client.post(f"/apps/checkout/launches/{launch.pk}/kill", {"reason": "errors"})
    assert killed.status_code == 302
    assert evaluate(client, "new-checkout", staff["context"]).json()["value"] is False
    launch.refresh_from_db()
    assert launch.status == "killed"
    actions = list(AuditEvent.objects.filter(object_type="strategies.darklaunch").values_list("action", flat=True))
    assert sorted(actions) == [
        "dark_launch.killed",
        "dark_launch.rollout_raised",
        "dark_launch.started",
        "dark_launch.widened",
    ]


def test_rolling_out_to_everyone_makes_the_variant_the_default(
    client: Client, release_manager: User, make_flag: Any, staff_segment: Segment, api_key: str
) -> None:
    flag = make_flag()
    launch = services.launch_start(flag=flag, variant="on", segments=["staff"], actor=release_manager)
    client.force_login(release_manager)

    lower = client.post(f"/apps/checkout/launches/{launch.pk}/rollout", {"percent": "0"})
    done = client.post(f"/apps/checkout/launches/{launch.pk}/rollout", {"percent": "100"})

    assert lower.status_code == 400
    assert done.status_code == 302
    flag.refresh_from_db()
    assert flag.default_variant == "on" and flag.rules.get("rules") == []
    assert evaluate(client, "new-checkout", {"targetingKey": "anyone"}).json()["value"] is True


def test_a_small_percentage_cohort_keeps_its_users_as_it_widens(
    make_flag: Any, release_manager: User, api_key: str, client: Client
) -> None:
    flag = make_flag()
    launch = services.launch_start(flag=flag, variant="on", percent=5, actor=release_manager)
    users = [f"u{i}" for i in range(400)]
    at_5 = {u for u in users if evaluate(client, "new-checkout", {"targetingKey": u}).json()["value"]}

    services.launch_widen(launch=launch, percent=20, actor=release_manager)
    at_20 = {u for u in users if evaluate(client, "new-checkout", {"targetingKey": u}).json()["value"]}

    assert at_5 and at_5 < at_20


def test_a_launch_to_an_unknown_segment_is_refused_naming_the_field(
    make_flag: Any, release_manager: User, client: Client
) -> None:
    flag = make_flag()
    client.force_login(release_manager)

    response = client.post(f"/apps/checkout/flags/{flag.pk}/launch", {"variant": "on", "users": "", "percent": ""})

    assert response.status_code == 400
    assert "Pick a cohort" in " ".join(response.context["form"].errors["segments"])


def test_every_change_is_audited_with_a_readable_diff(client: Client, release_manager: User, make_flag: Any) -> None:
    flag = make_flag()
    client.force_login(release_manager)

    client.post(
        f"/apps/checkout/flags/{flag.pk}/rules/add",
        {"name": "Germany", "match": "all", "attribute_1": "country", "op_1": "is", "value_1": "DE", "serve": "on"},
    )
    client.post(f"/apps/checkout/flags/{flag.pk}/kill", {"reason": "incident 42"})

    added = AuditEvent.objects.get(action="flag.rule_added")
    assert added.before["targeting"] is None
    assert added.after["targeting"] == {"if": [{"==": [{"var": "country"}, "DE"]}, "on", None]}
    page = client.get(flag.get_absolute_url())
    assert page.context["history"][0].event.action == "flag.killed"
    assert '-  "state": "ENABLED",' in page.context["history"][0].diff
    assert '+  "state": "DISABLED",' in page.context["history"][0].diff
    assert "diff-add" in page.text


def test_the_lifecycle_moves_and_stale_flags_are_listed(client: Client, release_manager: User, make_flag: Any) -> None:
    flag = make_flag()
    old = make_flag("old-banner", planned_removal="2020-01-01")
    client.force_login(release_manager)

    client.post(f"/apps/checkout/flags/{flag.pk}/lifecycle", {"to": "stale"})
    wrong = client.post(f"/apps/checkout/flags/{flag.pk}/lifecycle", {"to": "permanent"}, follow=True)
    overview = client.get("/flags/")

    assert {f.key for f in overview.context["stale"]} == {flag.key, old.key}
    assert "can become active, archived" in wrong.text


def test_api_keys_are_issued_once_listed_with_last_use_and_revoked(
    client: Client, release_manager: User, viewer: User, production: Environment, make_flag: Any
) -> None:
    make_flag()
    client.force_login(viewer)
    assert client.get("/apps/checkout/flag-keys/").status_code == 403
    client.force_login(release_manager)

    issued = client.post(
        "/apps/checkout/flag-keys/", {"environment": production.pk, "name": "web", "can_evaluate": "on"}
    )
    secret = issued.context["issued"].secret
    key = FlagApiKey.objects.get()
    assert key.key_hash != secret and secret not in str(key.__dict__)
    assert evaluate(client, "new-checkout", {"targetingKey": "u"}, key=secret).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None

    client.post(f"/apps/checkout/flag-keys/{key.pk}/revoke")

    assert evaluate(client, "new-checkout", {"targetingKey": "u"}, key=secret).status_code == 401
    assert AuditEvent.objects.filter(action="flag_api_key.revoked").exists()


def test_a_segment_in_use_cannot_be_deleted(
    client: Client, release_manager: User, make_flag: Any, staff_segment: Segment
) -> None:
    make_flag(
        rules={
            "rules": [
                {"conditions": [{"attribute": "", "op": "in_segment", "value": "staff"}], "serve": {"variant": "on"}}
            ]
        }
    )
    client.force_login(release_manager)

    response = client.post(f"/apps/checkout/segments/{staff_segment.pk}/delete", follow=True)

    assert "is used by Production: new-checkout" in response.text
    assert Segment.objects.exists()


def test_a_segment_is_made_in_the_browser(client: Client, release_manager: User, production: Environment) -> None:
    client.force_login(release_manager)

    bad = client.post("/apps/checkout/segments/new", {"key": "beta", "name": "Beta", "match": "any"})
    good = client.post(
        "/apps/checkout/segments/new",
        {"key": "beta", "name": "Beta", "match": "any", "attribute_1": "groups", "op_1": "contains", "value_1": "beta"},
    )

    assert bad.status_code == 400
    assert "at least one condition or one user" in " ".join(
        bad.context["form"].non_field_errors()
    ) or "conditions" in str(bad.context["form"].errors)
    assert good.status_code == 302
    assert production.flag_set.document["$evaluators"]["beta"] == {"in": ["beta", {"var": "groups"}]}
