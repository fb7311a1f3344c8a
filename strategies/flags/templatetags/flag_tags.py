"""Template tags of feature flags: `{% release_flags release as declared %}` for other apps' pages, `as_json`."""

from __future__ import annotations

import json
from typing import Any

from django import template

from strategies.flags.release_links import release_flag_states

register = template.Library()


@register.simple_tag
def release_flags(release: Any) -> dict[str, Any]:
    return release_flag_states(release)


@register.filter
def as_json(value: Any) -> str:
    """A variant's value as the JSON an application receives (true, not True; "a", not a)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
