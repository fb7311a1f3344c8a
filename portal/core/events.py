"""Domain events: a lower layer says what happened; a higher one (outgoing webhooks) records what it needs.

`publish()` runs every subscriber synchronously, inside the caller's transaction, so a webhook delivery is
recorded with the change it announces and rolled back with it. Subscribers register once, from their app's
`ready()` (releases.webhooks). This is the one way a concept tells the layers above it about a change
without importing them (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Subscriber = Callable[[str, Any, Any], object]

_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Call `subscriber(event_type, obj, application)` for every event published from now on (once per function)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def publish(event_type: str, obj: Any, application: Any) -> None:
    """Announce `event_type` (a name in releases.webhooks.events.EVENT_TYPES) about `obj` of `application`."""
    for subscriber in _subscribers:
        subscriber(event_type, obj, application)
