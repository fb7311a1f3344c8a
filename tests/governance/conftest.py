"""The side-door matrix's world: the strategies' Checkout on the simulator (1.0.0 live, 1.1.0 approved and staged)."""

from tests.strategies.conftest import candidate, checkout, live

__all__ = ["candidate", "checkout", "live"]
