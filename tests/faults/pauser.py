"""Hold a worker subprocess at a chosen point so that a test can break something under it (fault tests only).

Two hooks, installed by tests/faults/fault_settings.py in an `rqworker` subprocess:

- `PauseAt`, a logging handler on the engine's logger: `SLIPWAY_PAUSE_AT` is `<event>` or
  `<event>:<step position>` with the events the engine logs (claimed, step_started, swap_begun,
  step_finished, waiting), as for tests/strategies/killer.py.
- `pause_on_sql`, a database execute wrapper: `SLIPWAY_PAUSE_SQL` is a piece of SQL and
  `SLIPWAY_PAUSE_SQL_PARAM` (optional) a value among its parameters, e.g. the audit INSERT of
  `release.went_live`, which `_transition` runs inside its transaction after the release's UPDATE.

At the point, the worker creates the file `SLIPWAY_PAUSE_FILE` and waits until `<file>.go` exists;
the test breaks the database connection or Redis meanwhile and then creates `<file>.go`. A point is
held once: with `<file>.go` present later matches pass straight through (forked work horses share no memory).
The engine knows nothing of this.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

HOLD_LIMIT_S = 60.0


def hold() -> None:
    target = os.environ.get("SLIPWAY_PAUSE_FILE", "")
    if not target:
        return
    marker, go = Path(target), Path(f"{target}.go")
    if go.exists():
        return
    marker.touch()
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


class PauseAt(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        wanted = os.environ.get("SLIPWAY_PAUSE_AT", "")
        if not wanted:
            return
        event, _, position = wanted.partition(":")
        if getattr(record, "operation_event", None) != event:
            return
        if position and str(getattr(record, "step_position", "")) != position:
            return
        hold()


def pause_on_sql(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    wanted = os.environ.get("SLIPWAY_PAUSE_SQL", "")
    if wanted and wanted in sql:
        value = os.environ.get("SLIPWAY_PAUSE_SQL_PARAM", "")
        if not value or any(value == p for p in (params or ())):
            hold()
    return execute(sql, params, many, context)


def install_sql_pause(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`connection_created` receiver: wrap every query of the new connection."""
    if os.environ.get("SLIPWAY_PAUSE_SQL") and pause_on_sql not in connection.execute_wrappers:
        connection.execute_wrappers.append(pause_on_sql)
