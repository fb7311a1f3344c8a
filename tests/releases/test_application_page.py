"""The application page: a picture of the traffic split, its rings, its releases."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from releases.catalog.models import Slot
from strategies.operations.models import Ring
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db


def test_the_traffic_split_is_drawn_and_written(client: Client, viewer: User) -> None:
    application = ApplicationFactory(name="Checkout")
    Slot.objects.filter(application=application, name="production").update(running_version="1.0.0")
    Slot.objects.filter(application=application, name="staging").update(running_version="1.1.0", traffic_percent=10)
    client.force_login(viewer)

    page = client.get(application.get_absolute_url()).content.decode()

    assert '<title id="traffic-title">Production traffic: production 90 %, staging 10 %</title>' in page
    assert '<rect x="0" y="0" width="90"' in page and '<rect x="90" y="0" width="10"' in page
    assert "<code>staging</code> (1.1.0) 10 %" in page
    assert "style=" not in page[page.index("traffic-figure") : page.index("</figure>")]


def test_the_rings_are_listed_with_a_link_to_edit_them(client: Client, viewer: User) -> None:
    application = ApplicationFactory(name="Checkout")
    staff = ApplicationFactory(name="Checkout staff")
    ring = Ring.objects.create(application=application, position=0, name="Staff", kind=Ring.Kind.TARGETS)
    ring.targets.set([staff])
    Ring.objects.create(
        application=application,
        position=1,
        name="Early",
        kind=Ring.Kind.TRAFFIC,
        traffic_percent=10,
        requires_approval=True,
    )
    client.force_login(viewer)

    page = client.get(application.get_absolute_url()).content.decode()
    rings = page[page.index('id="rings"') :]

    assert "Staff: <a" in rings and "Checkout staff</a>" in rings
    assert "Early: 10 % of production traffic · approved first" in rings
    assert "The rings in detail" in rings
