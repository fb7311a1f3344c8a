"""Pages a lower layer renders without importing the layer that composes them.

The release page shows approvals, operations and flags, so it lives at the top (portal.pages); the approval
decision posted from it is the approvals app's, and answers a form error by showing the release page again,
in place. The portal app provides the page here at start-up (portal/apps.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

PageRenderer = Callable[..., HttpResponse]

_pages: dict[str, PageRenderer] = {}


def page_provide(name: str, render: PageRenderer) -> None:
    _pages[name] = render


def page_render(name: str, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Render the page provided as `name` (KeyError if none was: a start-up mistake, not a user's)."""
    return _pages[name](request, *args, **kwargs)
