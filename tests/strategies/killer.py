"""A logging handler that SIGKILLs its own process at a chosen engine event (crash tests only).

Installed by tests/strategies/crash_settings.py in an `rqworker` subprocess; `SLIPWAY_KILL_AT` is
`<event>` or `<event>:<step position>`, with the events the engine logs (claimed, step_started,
swap_begun, step_finished, waiting). The engine itself knows nothing of it.
"""

from __future__ import annotations

import logging
import os
import signal


class KillAt(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        wanted = os.environ.get("SLIPWAY_KILL_AT", "")
        if not wanted:
            return
        event, _, position = wanted.partition(":")
        if getattr(record, "operation_event", None) != event:
            return
        if position and str(getattr(record, "step_position", "")) != position:
            return
        os.kill(os.getpid(), signal.SIGKILL)
