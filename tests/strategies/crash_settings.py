"""Test settings plus the crash handler on the engine's logger (for worker subprocesses)."""

from tests.settings import *  # noqa: F403

LOGGING = {
    **LOGGING,  # noqa: F405
    "handlers": {**LOGGING["handlers"], "kill_at": {"class": "tests.strategies.killer.KillAt"}},  # noqa: F405
    "loggers": {
        **LOGGING["loggers"],  # noqa: F405
        "strategies.operations.engine": {"handlers": ["kill_at"], "level": "INFO"},
    },
}
