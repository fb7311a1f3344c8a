"""Helpers of the server-rendered SVG charts (delivery metrics, experiments)."""

from __future__ import annotations

import math


def nice_number(value: float) -> float:
    """The smallest of 1, 2, 5 and 10 times a power of ten that is at least `value`."""
    exponent = math.floor(math.log10(value)) if value > 0 else 0
    for step in (1, 2, 5, 10):
        if step * 10**exponent >= value - 1e-9:
            return float(step * 10**exponent)
    return float(10 ** (exponent + 1))
