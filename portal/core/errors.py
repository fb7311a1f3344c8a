"""The one error type of the domain: what a service refuses, in words a person can act on."""

from __future__ import annotations


class DomainError(Exception):
    """A change the rules do not allow. `str(error)` is shown to the person who asked for it."""
