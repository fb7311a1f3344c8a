"""Test settings plus the fault tests' pause hooks (tests/faults/pauser.py), for worker subprocesses."""

from django.db.backends.signals import connection_created

from tests.faults.pauser import install_sql_pause
from tests.settings import *  # noqa: F403

LOGGING = {
    **LOGGING,  # noqa: F405
    "handlers": {**LOGGING["handlers"], "pause_at": {"class": "tests.faults.pauser.PauseAt"}},  # noqa: F405
    "loggers": {
        **LOGGING["loggers"],  # noqa: F405
        "strategies.operations.engine": {"handlers": ["pause_at"], "level": "INFO"},
    },
}

connection_created.connect(install_sql_pause, dispatch_uid="slipway-fault-sql-pause")
