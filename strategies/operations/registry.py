"""The strategies, by `StrategyKind`: each module has `LABEL`, `DEFAULTS`, `clean()` and `plan()`.

Adding a strategy: a module with those four names, an entry here, a `StrategyKind` choice, step
kinds it needs in `strategies.operations.steps`, and an end-to-end test on the simulator (tests/strategies/).
"""

from __future__ import annotations

from types import ModuleType

from portal.core.errors import DomainError, ErrorCode
from releases.catalog.models import StrategyKind
from strategies.operations import blue_green, canary, rings

STRATEGIES: dict[str, ModuleType] = {
    StrategyKind.BLUE_GREEN: blue_green,
    StrategyKind.CANARY: canary,
    StrategyKind.RINGS: rings,
}


def strategy_for(kind: str) -> ModuleType:
    try:
        return STRATEGIES[kind]
    except KeyError:
        offered = ", ".join(STRATEGIES)
        raise DomainError(
            ErrorCode.INVALID,
            f"There is no strategy {kind!r} to promote with; choose one of {offered}.",
            fields={"strategy": f"Choose one of {offered}."},
        ) from None
