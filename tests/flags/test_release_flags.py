"""Flags a release declares, and their state per environment on the release page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from releases.audit.models import AuditEvent
from releases.catalog.models import Environment
from strategies.flags import release_links, services
from strategies.flags.definitions import DefinitionError
from strategies.flags.models import ReleaseFlag
from tests.factories import ReleaseFactory

pytestmark = pytest.mark.django_db


def test_the_release_page_shows_declared_flags_per_environment(
    client: Client, production: Environment, make_flag: Any, release_manager: User, viewer: User
) -> None:
    release = ReleaseFactory(application=production.application, version="2.4.0")
    flag = make_flag("new-checkout", default_variant="off")
    services.flag_update(flag=flag, actor=release_manager, rules={"fallthrough": {"split": [["on", 25], ["off", 75]]}})
    killed = make_flag("old-banner", default_variant="on")
    services.flag_kill(flag=killed, actor=release_manager)
    release_links.declare(release=release, flag_key="new-checkout", note="new flow", actor=release_manager)
    release_links.declare(release=release, flag_key="old-banner", actor=release_manager)

    states = release_links.release_flag_states(release)
    by_key = {row["link"].flag_key: row["cells"] for row in states["rows"]}
    production_cell = next(c for c in by_key["new-checkout"] if c["environment"] == production)
    assert production_cell["state"] == "on" and production_cell["rollout"] == 25
    assert next(c for c in by_key["old-banner"] if c["environment"] == production)["state"] == "killed"
    assert {c["state"] for c in by_key["new-checkout"] if c["environment"] != production} == {"absent"}

    client.force_login(viewer)
    page = client.get(release.get_absolute_url()).content.decode()
    assert 'id="release-flags"' in page and "new-checkout" in page and "rollout 25 %" in page
    assert "killed" in page and "Declare a flag" not in page


def test_release_managers_declare_and_remove_flags_on_the_release_page(
    client: Client, production: Environment, release_manager: User
) -> None:
    release = ReleaseFactory(application=production.application)
    client.force_login(release_manager)
    response = client.post(f"/releases/{release.pk}/flags/declare", {"flag_key": "new-checkout", "note": "n"})
    assert response.status_code == 302
    link = ReleaseFlag.objects.get()
    assert AuditEvent.objects.filter(action="release.flag_declared").count() == 1
    page = client.get(release.get_absolute_url()).content.decode()
    assert "not created" in page and "Declare a flag" in page

    client.post(f"/releases/{release.pk}/flags/remove", {"link": link.pk})
    assert not ReleaseFlag.objects.exists()


def test_bad_or_duplicate_keys_are_refused(production: Environment, release_manager: User) -> None:
    release = ReleaseFactory(application=production.application)
    with pytest.raises(DefinitionError):
        release_links.declare(release=release, flag_key="no spaces", actor=release_manager)
    release_links.declare(release=release, flag_key="a", actor=release_manager)
    with pytest.raises(DefinitionError):
        release_links.declare(release=release, flag_key="a", actor=release_manager)


def test_viewers_cannot_declare(client: Client, production: Environment, viewer: User) -> None:
    release = ReleaseFactory(application=production.application)
    client.force_login(viewer)
    assert client.post(f"/releases/{release.pk}/flags/declare", {"flag_key": "x"}).status_code == 403
