"""Template tags of feature flags for other apps' pages: `{% release_flags release as declared %}`."""

from __future__ import annotations

from typing import Any

from django import template

from ..flags.release_links import release_flag_states

register = template.Library()


@register.simple_tag
def release_flags(release: Any) -> dict[str, Any]:
    return release_flag_states(release)
